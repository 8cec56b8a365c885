"""Live: the product decides what a full node does, on the real stack as in the model.

One php-fpm node (1 core, 4 workers) behind a balancer with ``max_conns: 2``,
arrivals at 4 x what the node serves (tests/scenarios/live/overload.yaml):

- nginx skips the full server and, nothing else being usable, answers 502 at
  once ("no live upstreams"): 502s, no 503s, the 502s answered in milliseconds;
- HAProxy queues the request until a slot frees or ``timeout queue`` (1 s)
  expires: 503s after about a second, no 502s, the served requests queued.

The model predicts the count of each kind within 25 % of the measurement,
summed over three replays of 15 s, each paired with the simulation of the
same replication (same arrivals). The capacity is measured in the same run
(the cores the node got, the cost of a work unit meanwhile), and in heavy
overload failures ~ arrivals - capacity x time, so a slower or busier machine
moves the prediction with the measurement instead of failing the test
(lbsim.validation.overload). Each product's stack runs about 70 s.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lbsim.validation.overload import OverloadResult, run_overload
from tests.stack_support import require_docker

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SCENARIO = Path(__file__).parent / "scenarios" / "live" / "overload.yaml"
REPETITIONS = 3
BOUND = 0.25
QUEUE_TIMEOUT = 1.0  # HAProxy `timeout queue` (s)


def _run(product: str, port: int, *sets: str) -> OverloadResult:
    require_docker()
    result = run_overload(
        SCENARIO,
        product,  # type: ignore[arg-type]
        port,
        repetitions=REPETITIONS,
        overrides=sets,
        say=print,
    )
    print("\n".join(result.summary()))
    for rep in result.repetitions:
        assert rep.loadgen["not_sent"] == 0, rep.loadgen
        assert rep.measured.get("timeout", 0) == 0, rep.line()  # the client never gave up
    return result


def _within(result: OverloadResult, key: str) -> None:
    predicted, measured = result.total("predicted", key), result.total("measured", key)
    assert measured > 0, f"no {key} measured"
    error = abs(predicted - measured) / measured
    assert error <= BOUND, (
        f"{result.product} {key}: predicted {predicted}, measured {measured}, "
        f"error {error:.1%} > {BOUND:.0%}\n" + "\n".join(result.summary())
    )


def test_nginx_answers_502_when_max_conns_binds() -> None:
    result = _run("nginx", 18130)
    for side in ("measured", "predicted"):
        assert result.total(side, "http_503") == 0, f"{side} 503s under nginx"
    _within(result, "http_502")
    for rep in result.repetitions:
        assert rep.latency["http_502"] < 0.1, rep.line()  # refused at once, never queued


def test_haproxy_queues_then_answers_503() -> None:
    result = _run("haproxy", 18140, f"balancer.queue_timeout={QUEUE_TIMEOUT}")
    for side in ("measured", "predicted"):
        assert result.total(side, "http_502") == 0, f"{side} 502s under HAProxy"
    _within(result, "http_503")
    for rep in result.repetitions:
        # a 503 waited out `timeout queue`; the served requests waited in the queue too
        assert QUEUE_TIMEOUT <= rep.latency["http_503"] < QUEUE_TIMEOUT + 0.5, rep.line()
        assert rep.latency["ok"] > QUEUE_TIMEOUT / 2, rep.line()
