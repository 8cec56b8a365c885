"""No input crashes the model, and every request is accounted for.

Regression: with ``max_conns`` above a node's workers, a node that finished a
request answered the balancer, which at once sent its next queued request to
the node; that request took the freed worker ahead of the node's own backlog,
and the node then popped an empty deque (IndexError). Now a connection that
arrives while the backlog is non-empty queues behind it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lbsim
from tests.support import scenario

pytestmark = pytest.mark.property

PRODUCTS = ("nginx", "haproxy", "envoy")
#: every failure path of each product switched on
PRODUCT_OPTIONS: dict[str, dict[str, Any]] = {
    "nginx": {"max_fails": 2, "fail_timeout": 3.0, "next_upstream_timeout": 5.0},
    "haproxy": {
        "queue_timeout": 2.0,
        "retries": 2,
        "redispatch": True,
        "observe": {"error_limit": 3, "on_error": "mark-down"},
    },
    "envoy": {
        "circuit_breaker": {"max_requests": 9, "max_pending_requests": 3},
        "outlier_detection": {"consecutive_5xx": 3, "interval": 2.0, "base_ejection_time": 3.0},
        "retry_policy": {"num_retries": 2},
        "panic_threshold": 50,
    },
}


def overloaded(
    *,
    rate: float,
    nodes: int,
    workers: int,
    backlog: int,
    max_conns: int,
    product: str,
    closed: bool = False,
    outage: bool = True,
    seed: int = 1,
) -> dict[str, Any]:
    """Heavy-tailed work at or above capacity, a node outage, retries and timeouts on."""
    workload: dict[str, Any] = (
        {"closed": {"users": 6, "think_time": 0.0}} if closed else {"open": {"rate": rate}}
    )
    return {
        "name": "overload",
        "seed": seed,
        "duration": 40.0,
        "warmup": 0.0,
        "workload": {
            **workload,
            "timeout": 8.0,
            "classes": [{"name": "job", "cpu": {"dist": "lognormal", "mean": 0.3, "cv": 2.0}}],
        },
        "balancer": {
            "product": product,
            "upstream_timeout": 3.0,
            "health_check": {"interval": 1.0, "fall": 2, "rise": 1},
            **PRODUCT_OPTIONS[product],
        },
        "app": {
            "nodes": [
                {"outages": [{"start": 10.0, "duration": 8.0}] if outage else []},
                *([{}] * (nodes - 1)),
            ],
            "workers": workers,
            "cores": 1,
            "backlog": backlog,
            "max_conns": max_conns,
            "request_timeout": 2.5,
        },
    }


def conserved(result: lbsim.Result) -> None:
    r = result.to_dict()["requests"]
    assert r["arrived"] == r["completed"] + r["failed"]["total"] + r["in_flight"], r


def test_max_conns_above_workers_does_not_crash() -> None:
    """The reported input: rr-vs-least-load with app.max_conns=5 (4 workers a node)."""
    sc = lbsim.load_scenario(
        "scenarios/rr-vs-least-load.yaml", duration=60, warmup=0, replications=1
    )
    data = sc.model_dump(mode="json")
    data["app"]["max_conns"] = 5
    result = lbsim.simulate(lbsim.Scenario.model_validate(data))
    conserved(result)
    assert result.value("requests.completed") > 0


@pytest.mark.parametrize("product", PRODUCTS)
def test_closed_loop_reentry_does_not_crash(product: str) -> None:
    """Zero think time: an answer makes its user send again at the same instant,
    from inside the node that just freed a worker. Six users never fill the
    two nodes' eight slots (nor their backlogs), so no answer is an instant
    failure, which with zero think time would repeat forever at one instant."""
    data = overloaded(
        rate=1,
        nodes=2,
        workers=2,
        backlog=3,
        max_conns=4,
        product=product,
        closed=True,
        outage=False,
    )
    # no timeouts: an abandoned request would keep its slot while its user sends again
    data["workload"].pop("timeout")
    data["app"].pop("request_timeout")
    data["balancer"]["upstream_timeout"] = 1e6
    conserved(lbsim.simulate(scenario(data)))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    rate=st.sampled_from([2.0, 6.0, 15.0]),
    nodes=st.integers(1, 3),
    workers=st.integers(1, 4),
    backlog=st.integers(0, 6),
    max_conns=st.integers(0, 12),
    product=st.sampled_from(PRODUCTS),
    seed=st.integers(0, 1000),
)
def test_any_limits_run_and_conserve_requests(
    rate: float, nodes: int, workers: int, backlog: int, max_conns: int, product: str, seed: int
) -> None:
    data = overloaded(
        rate=rate,
        nodes=nodes,
        workers=workers,
        backlog=backlog,
        max_conns=max_conns,
        product=product,
        seed=seed,
    )
    conserved(lbsim.simulate(scenario(data)))
