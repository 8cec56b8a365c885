"""Live: the access-log round trip, on each balancer product's own log.

A trace (tests/scenarios/live/access-log.yaml: three classes, 120 clients in
12 /24 networks, heavy users of one class) is replayed through the stack; the
balancer logs every request (nginx: ``log_format lbsim``,
:data:`lbsim.validation.configs.NGINX_LOG_FORMAT`; HAProxy: ``option
httplog``), ``Compose.save_stdout`` saves the log of the replay, and
:func:`lbsim.accesslog.from_log` reads it back. What was sent must come back:

- every class's request count exactly (each answered request is logged once;
  the balancer's own health checks fall into ``other``);
- the clients: as many distinct addresses and /24 networks as the replay used,
  and the same number of requests per client (the multiset of per-client
  counts, which is what the heavy-user fit reads);
- the arrival times: the log's arrivals (end time less request time, both in
  ms) against the times the load generator sent each request, sorted, within
  a few milliseconds.
"""

from __future__ import annotations

import csv
import io
import time
from collections import Counter
from pathlib import Path

import pytest

from lbsim.accesslog import from_log
from lbsim.scenario.loader import load_scenario
from lbsim.validation import StackOptions
from lbsim.validation.compose import BALANCER_SERVICE
from lbsim.validation.configs import NGINX_LOG_FORMAT
from lbsim.validation.lifecycle import default_base_image, down, up
from lbsim.validation.replay import replay
from lbsim.validation.workplan import MachineCosts, RequestPlanner
from tests.stack_support import require_docker

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SCENARIO = Path(__file__).parent / "scenarios" / "live" / "access-log.yaml"
CLASSES = [f"{c}=GET /?class={c}&*" for c in ("browse", "search", "report")]
FORMATS = {"nginx": NGINX_LOG_FORMAT, "haproxy": "haproxy"}
#: how far a logged arrival may be from the load generator's send time (s): the
#: log's ms resolution twice, the hop to the balancer, a busy machine's scheduling
TIME_TOLERANCE = 0.015


@pytest.mark.parametrize(("product", "port"), [("nginx", 18150), ("haproxy", 18160)])
def test_the_balancers_access_log_gives_back_the_replayed_workload(
    product: str, port: int, tmp_path: Path
) -> None:
    require_docker()
    scenario = load_scenario(SCENARIO, [f"balancer.product={product}"])
    opts = StackOptions(balancer=product, port=port, base_image=default_base_image())  # type: ignore[arg-type]
    log = tmp_path / "access.log"
    try:
        handle = up(scenario, opts, 300.0)
        since = time.time()
        run = replay(scenario, handle, MachineCosts())
        handle.compose.save_stdout(BALANCER_SERVICE, since, log)
    finally:
        down(scenario, opts)
    assert run.valid, run.results["meta"]["loadgen"]["problems"]
    answered = [r for r in run.records if r.status == 200]
    assert len(answered) == len(run.records) > 300

    trace = io.StringIO()
    got = from_log(log, FORMATS[product], CLASSES, bin_seconds=6, trace=trace)
    print(f"{product}: {got.lines}, classes {[(c.name, c.count) for c in got.classes]}")
    assert got.lines["malformed"] == 0, got.malformed_examples

    # every class exactly
    sent = Counter(r.cls for r in answered)
    logged = {c.name: c.count for c in got.classes if c.pattern is not None}
    assert logged == dict(sent)

    # the clients: addresses, /24 networks, requests per client
    planner = RequestPlanner(scenario, MachineCosts(), 1)
    addresses = {r.client: ".".join(map(str, planner.clients.ip(r.client))) for r in answered}
    rows = [row for row in csv.reader(io.StringIO(trace.getvalue())) if row[0] != "time"]
    mine = [row for row in rows if row[1] != "other"]
    # the balancer's own health checks (class other) come from an address of their own
    checks = {row[2] for row in rows if row[1] == "other"} - {row[2] for row in mine}
    assert got.clients == len(set(addresses.values())) + len(checks)
    subnets = len({a.rsplit(".", 1)[0] for a in addresses.values()})
    assert subnets <= got.subnets <= subnets + len(checks)
    assert len(mine) == len(answered)
    per_client_log = sorted(Counter(row[2] for row in mine).values())
    per_client_sent = sorted(Counter(addresses[r.client] for r in answered).values())
    assert per_client_log == per_client_sent

    # the arrival times, from the first one
    logged_t = sorted(float(row[0]) for row in mine)
    sent_t = sorted(r.sent for r in answered)
    diffs = [
        abs((a - logged_t[0]) - (b - sent_t[0])) for a, b in zip(logged_t, sent_t, strict=True)
    ]
    diffs.sort()
    print(
        f"{product}: |logged - sent| median {diffs[len(diffs) // 2] * 1e3:.1f} ms, "
        f"max {diffs[-1] * 1e3:.1f} ms"
    )
    assert diffs[int(0.99 * len(diffs))] <= TIME_TOLERANCE
    # the rate schedule: every request in a 6 s step
    assert sum(got.counts) == len(rows)
