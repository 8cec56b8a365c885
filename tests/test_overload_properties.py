"""No input crashes the model, and every request is accounted for.

Regression: with ``max_conns`` above a node's workers, a node that finished a
request answered the balancer, which at once sent its next queued request to
the node; that request took the freed worker ahead of the node's own backlog,
and the node then popped an empty deque (IndexError). Now a connection that
arrives while the backlog is non-empty queues behind it.

Regression: with ``max_conns``, a request sent from HAProxy's queue or Envoy's
pending queue to a node that refuses connections (down, or its backlog full)
was refused at once, which freed the slot and sent the next queued request
from inside that refusal: one stack frame deeper per queued request, until
``RecursionError``. nginx's next peer after a refusal recursed the same way,
one level per refusing peer. Now the freed slot is offered in an event of the
same instant, and nginx's next peer is chosen in a loop.

Regression: a node kept its running work per request, not per try. After a
per-try timeout Envoy retried onto the node still running the first try, which
overwrote that try's worker, phase and CPU job (KeyError in ``AppNode._finish``,
found by ``test_any_limits_run_and_conserve_requests``); after nginx's timeout
the retry on the next peer took the request, and the first peer's worker,
returning from a query, saw the request gone and never finished: the worker was
lost for the rest of the run. Now a try that starts while another still runs
gets its own state (:class:`lbsim.model.request.Try`).
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


def queued_behind_refusals(
    product: str,
    *,
    max_conns: int = 2,
    queue_timeout: float = 30.0,
    outage: tuple[float, float] = (5.0, 5.0),
    nodes: int = 1,
    backlog: int = 8,
    rate: float = 200.0,
    seed: int = 1,
) -> dict[str, Any]:
    """Arrivals far above capacity queue at the balancer (``max_conns``) while
    a node refuses connections (an outage, default ``connections: refused``)."""
    start, duration = outage
    balancer: dict[str, Any] = {"product": product}
    if product == "haproxy":
        balancer["queue_timeout"] = queue_timeout
    return {
        "name": "queued-behind-refusals",
        "seed": seed,
        "duration": 15.0,
        "warmup": 0.0,
        "workload": {
            "open": {"rate": rate},
            "timeout": 60.0,
            "classes": [{"name": "page", "cpu": {"dist": "lognormal", "mean": 0.05, "cv": 1.0}}],
        },
        "balancer": balancer,
        "app": {
            "nodes": [
                {"outages": [{"start": start, "duration": duration}]},
                *([{}] * (nodes - 1)),
            ],
            "workers": 2,
            "cores": 1,
            "backlog": backlog,
            "max_conns": max_conns,
        },
    }


@pytest.mark.parametrize("product", ["haproxy", "envoy"])
def test_queue_in_front_of_a_refusing_node_does_not_recurse(product: str) -> None:
    """The reported input: some 800 requests queued when the only node goes
    down; each one sent from the queue is refused at once (RecursionError)."""
    result = lbsim.simulate(scenario(queued_behind_refusals(product)))
    conserved(result)
    r = result.to_dict()["requests"]
    assert r["failed"]["http_503"] > 500  # refused after the retries, or no server
    assert r["completed"] > 0


def test_nginx_next_peer_over_many_refusing_peers_does_not_recurse() -> None:
    """300 peers down at once: the first request after the crash is refused by
    each in turn (next_upstream_tries 0: every peer) before its 502."""
    data = queued_behind_refusals("nginx", max_conns=0, rate=50.0)
    data["app"]["nodes"] = [{"outages": [{"start": 5.0, "duration": 5.0}]}] * 300
    result = lbsim.simulate(scenario(data))
    conserved(result)
    assert result.to_dict()["requests"]["failed"]["http_502"] > 0


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    product=st.sampled_from(["haproxy", "envoy"]),
    max_conns=st.integers(1, 6),
    queue_timeout=st.sampled_from([0.5, 3.0, 30.0]),
    start=st.floats(0.0, 12.0),
    duration=st.floats(0.5, 10.0),
    nodes=st.integers(1, 3),
    backlog=st.integers(0, 4),
    rate=st.sampled_from([20.0, 80.0, 200.0]),
    seed=st.integers(0, 1000),
)
def test_any_queue_behind_refusals_runs_and_conserves_requests(
    product: str,
    max_conns: int,
    queue_timeout: float,
    start: float,
    duration: float,
    nodes: int,
    backlog: int,
    rate: float,
    seed: int,
) -> None:
    data = queued_behind_refusals(
        product,
        max_conns=max_conns,
        queue_timeout=queue_timeout,
        outage=(start, duration),
        nodes=nodes,
        backlog=backlog,
        rate=rate,
        seed=seed,
    )
    conserved(lbsim.simulate(scenario(data)))


def test_envoy_retry_onto_the_node_still_running_the_first_try() -> None:
    """The example the property test drew (KeyError before the fix)."""
    data = overloaded(
        rate=2.0, nodes=1, workers=2, backlog=2, max_conns=0, product="envoy", seed=161
    )
    conserved(lbsim.simulate(scenario(data)))


def _slow_tries(product: str, nodes: int, *, queries: bool) -> dict[str, Any]:
    """One request every 10 s whose 1 s of work outlasts the 0.5 s per-try timeout."""
    cls: dict[str, Any] = {"name": "job", "cpu": {"dist": "deterministic", "mean": 1.0}}
    data: dict[str, Any] = {
        "name": "two-tries",
        "seed": 3,
        "duration": 400.0,
        "warmup": 0.0,
        "workload": {"open": {"rate": 0.1}, "timeout": 30.0, "classes": [cls]},
        "balancer": {"product": product, "upstream_timeout": 0.5},
        "app": {"nodes": [{}] * nodes, "workers": 2, "cores": 1},
    }
    if product == "envoy":
        data["balancer"]["retry_policy"] = {"num_retries": 1}
    if queries:
        cls["cpu"]["mean"] = 0.4
        read = {"kind": "read", "time": {"dist": "deterministic", "mean": 0.3}}
        cls["queries"] = [read, read]
        data["database"] = {"engine": "mysql"}
    return data


def test_envoy_second_try_on_the_same_node_runs_beside_the_first() -> None:
    """Both tries do their whole second of CPU: 2 x 1 s x 0.1/s = 0.2 cores."""
    result = lbsim.simulate(scenario(_slow_tries("envoy", 1, queries=False)))
    conserved(result)
    d = result.to_dict()
    arrived = d["requests"]["arrived"]
    assert d["app"]["app1"]["served"] == 2 * arrived
    assert d["utilisation"]["app"]["app1"]["cpu"] == pytest.approx(2 * arrived * 1.0 / 400.0)


def test_nginx_next_peer_leaves_the_first_try_to_finish() -> None:
    """The first peer's worker finishes its try (its queries answer it, not the
    retry): no worker stays busy for the rest of the run (0.96 before the fix)."""
    result = lbsim.simulate(scenario(_slow_tries("nginx", 2, queries=True)))
    conserved(result)
    d = result.to_dict()
    for node in ("app1", "app2"):
        assert d["app"][node]["served"] > 0, d["app"]
        assert d["utilisation"]["app"][node]["workers"] < 0.05, d["utilisation"]
