"""Live: the stack's least_load agent on a full node, from its own status
listener and through the pool (``agent_status``), as the model has them.

One php-fpm worker runs a request of about 4.5 s while the test asks the agent
(validation/app/agent.php) for its reply, inside the app container. From the
status listener (``pm.status_listen``) the agent answers at once that the node
is full (``1%``); through the pool its status request waits behind the busy
worker, so a check with a 1 s timeout gets nothing (HAProxy then keeps the
node's weight), and once the worker is free it answers the node idle again.
"""

from __future__ import annotations

import threading
import time
import urllib.request

import pytest

import lbsim
from lbsim.validation import StackOptions
from lbsim.validation.lifecycle import StackHandle, default_base_image, down, up
from tests.stack_support import require_docker

pytestmark = [pytest.mark.stack, pytest.mark.slow]

PORT = 18095
SCENARIO = """
name: agent-{status}
workload:
  open: {{rate: 1}}
  classes: [{{name: a, cpu: 0.01}}]
balancer:
  product: haproxy
  policy: least_load
  policy_options: {{interval: 2, agent_status: {status}}}
app: {{nodes: 1, workers: 1, cores: 1, weight: 100}}
database: {{engine: none}}
"""
#: about 4.5 s of PHP CPU at this machine's ~9 us work unit (more on a slower one)
LONG = "?class=a&units=500000"
ASK = (
    '$t = microtime(true); $s = stream_socket_client("tcp://127.0.0.1:9777", $e, $m, 5);'
    " stream_set_timeout($s, (int)$argv[1]); $r = fgets($s);"
    ' printf("%s %.3f\\n", $r === false ? "-" : trim($r), microtime(true) - $t);'
)


def ask(handle: StackHandle, timeout: int) -> tuple[str, float]:
    """The agent's reply to one connection (``-``: none within ``timeout`` s), and its time."""
    out = handle.exec("app1", ["php", "-r", ASK, "--", str(timeout)], timeout=timeout + 30)
    reply, took = out.split()
    return reply, float(took)


@pytest.mark.parametrize("status", ["listener", "pool"])
def test_a_full_nodes_agent_answers_only_from_its_own_listener(status: str) -> None:
    require_docker()
    s = lbsim.loads_scenario(SCENARIO.format(status=status), f"agent-{status}.yaml")
    opts = StackOptions(balancer="haproxy", port=PORT, base_image=default_base_image())
    try:
        handle = up(s, opts, 300.0)
        assert ask(handle, 5)[0] == "100%"  # an idle node
        answers: list[tuple[int, float]] = []

        def long_request() -> None:
            with urllib.request.urlopen(handle.url + LONG, timeout=60) as resp:
                answers.append((resp.status, time.monotonic()))

        worker = threading.Thread(target=long_request)
        worker.start()
        time.sleep(0.5)
        reply, took = ask(handle, 1)
        asked = time.monotonic()
        worker.join(60)
        assert [status for status, _ in answers] == [200]
        assert asked < answers[0][1], "the worker was free before the agent was asked"
        if status == "listener":
            assert reply == "1%" and took < 1.0, (reply, took)
        else:
            assert reply == "-" and took >= 1.0, (reply, took)
            # the worker free again, the agent catches up with the checks
            # queued meanwhile (HAProxy's, every 2 s) and answers idle, once
            # php-fpm's master has refreshed the listen queue it shows (once a
            # second: until then it still counts the status request that waited)
            time.sleep(1.5)
            assert ask(handle, 10)[0] == "100%"
    finally:
        down(s, opts)
