"""Each product's rules on overload and failure, on hand-worked sequences.

Small deterministic runs (a trace of arrivals, fixed CPU demands, no
latencies) whose every event can be worked out by hand, and the passive
checks driven state by state. shared/reference/balancers.md, last section,
is the source of each rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import lbsim
from lbsim.model.passive import EnvoyOutliers, HaproxyObserve, NginxFails
from lbsim.model.policies import Backend
from lbsim.scenario.products import OutlierDetection
from tests.support import scenario

pytestmark = pytest.mark.unit


def backends(n: int) -> list[Backend]:
    return [Backend(index=i, name=f"app{i + 1}", address=f"10.0.1.{i + 1}:9000") for i in range(n)]


def traced(
    tmp_path: Path,
    arrivals: list[tuple[float, str]],
    balancer: dict[str, Any],
    app: dict[str, Any],
    cpu: float = 1.0,
    duration: float = 30.0,
) -> dict[str, Any]:
    """Run arrivals ``(time, class)`` (classes a, b, c with ``cpu`` each) and return the results."""
    trace = tmp_path / "arrivals.csv"
    trace.write_text("".join(f"{t},{c}\n" for t, c in arrivals))
    data = {
        "duration": duration,
        "workload": {
            "trace": {"file": str(trace)},
            "classes": [{"name": n, "cpu": cpu} for n in "abc"],
        },
        "balancer": balancer,
        "app": {"cores": 8, **app},
    }
    return lbsim.simulate(scenario(data)).to_dict()


def failed(out: dict[str, Any], status: int) -> int:
    return int(out["requests"]["failed"][f"http_{status}"])


# --------------------------------------------------------------------------- full peers


def every(step: float, until: float) -> list[tuple[float, str]]:
    return [(round(k * step, 6), "a") for k in range(int(until / step))]


FULL = {"nodes": 1, "workers": 1, "backlog": 10, "max_conns": 1}


def test_nginx_skips_a_full_peer_and_answers_502_at_once(tmp_path: Path) -> None:
    """Arrivals every 0.4 s, 1 s each, max_conns 1: served at 0, 1.2, 2.4, ... 8.4
    (done by 9.6), the two between each pair refused with 502 — none waits."""
    out = traced(tmp_path, every(0.4, 10), {"product": "nginx"}, FULL, duration=10)
    assert out["requests"]["completed"] == 8
    assert failed(out, 502) == 16
    assert out["requests"]["in_flight"] == 1  # the one sent at 9.6
    assert out["latency"]["max"] == pytest.approx(1.0)


def test_haproxy_queues_at_a_full_server_until_timeout_queue(tmp_path: Path) -> None:
    """Same arrivals under HAProxy: one at a time (1 s each) from the queue; a request
    waits until a slot frees or 2 s (timeout queue) pass, then 503."""
    out = traced(
        tmp_path, every(0.4, 10), {"product": "haproxy", "queue_timeout": 2.0}, FULL, duration=10
    )
    assert failed(out, 502) == 0
    assert out["requests"]["completed"] == 9  # the server never idles: done at 1, 2, ..., 9
    assert failed(out, 503) > 0
    assert out["latency"]["max"] > 2.0  # waited in the queue, then 1 s of work


def test_envoy_overflows_pending_requests_with_503(tmp_path: Path) -> None:
    """Envoy with no room for pending requests: the same 16 as nginx fail, with 503."""
    balancer = {"product": "envoy", "circuit_breaker": {"max_pending_requests": 0}}
    out = traced(tmp_path, every(0.4, 10), balancer, FULL, duration=10)
    assert (out["requests"]["completed"], failed(out, 503), failed(out, 502)) == (8, 16, 0)
    # max_requests 1: the second concurrent request overflows the same way
    balancer = {"product": "envoy", "circuit_breaker": {"max_requests": 1}}
    out = traced(tmp_path, every(0.4, 10), balancer, {**FULL, "max_conns": 0}, duration=10)
    assert (out["requests"]["completed"], failed(out, 503)) == (8, 16)


def test_nginx_hashing_moves_on_from_a_full_peer_haproxy_waits(tmp_path: Path) -> None:
    """One client hashed to one of two nodes, two requests at once: nginx's
    consistent hash takes the next ring point (other node), HAProxy queues for
    the hashed server (persistence)."""
    arrivals = [(0.0, "a"), (0.0, "b")]
    app = {"nodes": 2, "workers": 1, "max_conns": 1}
    nginx = traced(tmp_path, arrivals, {"product": "nginx", "policy": "consistent_hash"}, app)
    assert nginx["latency"]["max"] == pytest.approx(1.0)
    assert sorted(n["served"] for n in nginx["app"].values()) == [1, 1]
    haproxy = traced(tmp_path, arrivals, {"product": "haproxy", "policy": "consistent_hash"}, app)
    assert haproxy["latency"]["max"] == pytest.approx(2.0)
    assert sorted(n["served"] for n in haproxy["app"].values()) == [0, 2]


# --------------------------------------------------------------------------- retries


TIMEOUTS = {"nodes": 2, "workers": 1}


@pytest.mark.parametrize(
    ("options", "tries"),
    [
        ({}, 2),  # next_upstream error timeout: the timeout is retried on app2
        ({"next_upstream": ["error"]}, 1),
        ({"next_upstream_tries": 1}, 1),
        ({"next_upstream_timeout": 0.4}, 1),  # 0.5 s spent: no further try
        ({"next_upstream_timeout": 0.6}, 2),
    ],
)
def test_nginx_retries_a_timeout_on_the_next_peer(
    tmp_path: Path, options: dict[str, Any], tries: int
) -> None:
    """1 s of work, upstream_timeout 0.5 s: each try times out; 504 in the end."""
    balancer = {"product": "nginx", "upstream_timeout": 0.5, "max_fails": 0, **options}
    out = traced(tmp_path, [(0.0, "a")], balancer, TIMEOUTS)
    assert failed(out, 504) == 1
    assert sum(n["served"] for n in out["app"].values()) == tries  # work goes on regardless


def test_nginx_a_reset_is_retried_haproxy_and_envoy_answer_it(tmp_path: Path) -> None:
    """app1 crashes at 0.5 s holding the request: nginx resends it to app2 (done
    at 1.5 s); HAProxy answers 502 and Envoy 503 (reset before headers)."""
    app = {"nodes": [{"outages": [{"start": 0.5, "duration": 5}]}, {}], "workers": 1}
    nginx = traced(tmp_path, [(0.0, "a")], {"product": "nginx"}, app)
    assert nginx["requests"]["completed"] == 1
    assert nginx["latency"]["max"] == pytest.approx(1.5)
    haproxy = traced(tmp_path, [(0.0, "a")], {"product": "haproxy"}, app)
    assert failed(haproxy, 502) == 1
    envoy = traced(tmp_path, [(0.0, "a")], {"product": "envoy"}, app)
    assert failed(envoy, 503) == 1
    retried = traced(
        tmp_path, [(0.0, "a")], {"product": "envoy", "retry_policy": {"retry_on": ["reset"]}}, app
    )
    assert retried["requests"]["completed"] == 1
    assert 1.5 <= retried["latency"]["max"] <= 1.5 + 0.025  # one back-off of U(0, 25 ms)


REFUSING = {"nodes": 1, "workers": 1, "backlog": 0}
TWO_AT_ONCE = [(0.0, "a"), (0.1, "b")]


@pytest.mark.parametrize(
    ("retries", "b_latency", "b_503"),
    [
        (3, 5.5, 0),  # refused at 0.1, 1.1, 2.1; in at 3.1 (a left at 2.5), done at 5.6
        (2, None, 1),  # refused at 0.1, 1.1, 2.1: 503
        (0, None, 1),
    ],
)
def test_haproxy_retries_the_same_server_one_second_apart(
    tmp_path: Path, retries: int, b_latency: float | None, b_503: int
) -> None:
    balancer = {"product": "haproxy", "retries": retries}
    out = traced(tmp_path, TWO_AT_ONCE, balancer, REFUSING, cpu=2.5)
    assert failed(out, 503) == b_503
    assert out["app"]["app1"]["refused"] == min(retries + 1, 4) - (1 if b_503 == 0 else 0)
    if b_latency is not None:
        assert out["classes"]["b"]["latency"]["mean"] == pytest.approx(b_latency)


def test_haproxy_redispatch_sends_the_last_retry_elsewhere(tmp_path: Path) -> None:
    """Round robin sends a to app1 and b to app2, which is down (no health check,
    so HAProxy still tries it). retries 1: b's retry at 1.1 goes to app2 again
    (503), or with redispatch to app1 (2 workers), done at 1.1 + 2.5."""
    app = {"nodes": [{"workers": 2}, {"outages": [{"start": 0, "duration": 5}]}], "backlog": 0}
    plain = traced(tmp_path, TWO_AT_ONCE, {"product": "haproxy", "retries": 1}, app, cpu=2.5)
    balancer = {"product": "haproxy", "retries": 1, "redispatch": True}
    redisp = traced(tmp_path, TWO_AT_ONCE, balancer, app, cpu=2.5)
    assert (failed(plain, 503), plain["app"]["app2"]["refused"]) == (1, 2)
    assert (failed(redisp, 503), redisp["app"]["app2"]["refused"]) == (0, 1)
    assert redisp["classes"]["b"]["latency"]["mean"] == pytest.approx(1.0 + 2.5)


def test_envoy_refused_is_503_and_retried_only_with_a_policy(tmp_path: Path) -> None:
    out = traced(tmp_path, TWO_AT_ONCE, {"product": "envoy"}, REFUSING, cpu=2.5)
    assert failed(out, 503) == 1 and out["app"]["app1"]["refused"] == 1
    policy = {"num_retries": 3, "retry_on": ["connect-failure"], "base_interval": 1.0}
    out = traced(
        tmp_path, TWO_AT_ONCE, {"product": "envoy", "retry_policy": policy}, REFUSING, cpu=2.5
    )
    # back-offs U(0, 1), U(0, 3), U(0, 7) capped at 10: the request gets in or fails
    assert out["app"]["app1"]["refused"] >= 2
    assert out["requests"]["completed"] + failed(out, 503) == 2


# --------------------------------------------------------------------------- passive checks


def test_nginx_fails_reset_only_after_the_checking_period() -> None:
    a, b = backends(2)
    nginx = NginxFails([a, b], max_fails=2, fail_timeout=10)
    nginx.selected(a, 0.5)
    nginx.failed(a, 1.0)  # fails 1, checked = accessed = 1
    nginx.succeeded(a, 2.0)  # same period: the count stays
    assert (a.fails, a.failed_until) == (1, -1.0)
    nginx.failed(a, 3.0)  # fails 2 = max_fails: out until 13
    assert (a.fails, a.failed_until) == (2, 13.0)
    nginx.selected(a, 14.0)  # a new period: this one probe, others skip a until 24
    assert a.failed_until == 24.0
    nginx.succeeded(a, 15.0)  # accessed 3 < checked 14: cleared
    assert (a.fails, a.failed_until) == (0, -1.0)
    assert a.effective_weight == 1  # weight 1 // max_fails 2 = 0 lost per failure


def test_nginx_never_takes_out_the_single_server() -> None:
    (a,) = backends(1)
    nginx = NginxFails([a], max_fails=1, fail_timeout=10)
    for t in range(5):
        nginx.failed(a, float(t))
    assert (a.fails, a.failed_until) == (0, -1.0)


class FakeChecks:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def failed(self, b: Backend) -> None:
        self.events.append(("fail-check", b.name))

    def mark_down(self, b: Backend) -> None:
        self.events.append(("mark-down", b.name))


@pytest.mark.parametrize("mark", [False, True])
def test_haproxy_observe_acts_after_error_limit_consecutive_errors(mark: bool) -> None:
    a, b = backends(2)
    checks = FakeChecks()
    observe = HaproxyObserve([a, b], checks, limit=3, mark=mark)  # type: ignore[arg-type]
    for t in range(2):
        observe.failed(a, float(t))
    observe.succeeded(a, 2.0)  # resets the run of errors
    for t in range(3, 8):
        observe.failed(a, float(t))  # 3rd in a row acts, then counts afresh
    observe.failed(b, 9.0)
    action = "mark-down" if mark else "fail-check"
    assert checks.events == [(action, "app1")]


def test_envoy_ejects_after_consecutive_5xx_within_max_ejection_percent() -> None:
    a, b, c = backends(3)
    spec = OutlierDetection(consecutive_5xx=3, interval=10, base_ejection_time=30)
    envoy = EnvoyOutliers([a, b, c], spec)
    envoy.failed(a, 1.0)
    envoy.succeeded(a, 2.0)  # not consecutive any more
    for t in (3.0, 4.0):
        envoy.failed(a, t)
    assert a.failed_until == -1.0
    envoy.failed(a, 5.0)  # 3 in a row: out 30 s, back at the sweep at 40
    assert a.failed_until == 40.0
    for t in (6.0, 7.0, 8.0):
        envoy.failed(b, t)  # (1 + 1) / 3 = 67 % > 10 %: not ejected
    assert b.failed_until == -1.0
    for t in (43.0, 44.0, 45.0):
        envoy.failed(a, t)  # second ejection, 5 s after coming back: 60 s → sweep at 110
    assert a.failed_until == 110.0
    for t in (125.0, 126.0, 127.0):
        envoy.failed(a, t)  # 17 s back: one sweep interval, multiplier 2 - 1 + 1 = 2
    assert a.failed_until == 190.0


def test_envoy_panic_balances_over_unhealthy_hosts(tmp_path: Path) -> None:
    """Two of three hosts down (marked by checks): 1.4 × 33 % = 47 % < 50 %: panic,
    round robin over all three, the down ones refuse: 503."""
    app = {
        "nodes": [{"outages": [{"start": 0, "duration": 100}]}] * 2 + [{}],
        "workers": 4,
    }
    checks = {"interval": 1, "fall": 1, "rise": 1}
    arrivals = [(10.0 + k, "a") for k in range(9)]
    panic = traced(tmp_path, arrivals, {"product": "envoy", "health_check": checks}, app)
    assert (panic["requests"]["completed"], failed(panic, 503)) == (3, 6)
    calm = traced(
        tmp_path,
        arrivals,
        {"product": "envoy", "health_check": checks, "panic_threshold": 0},
        app,
    )
    assert calm["requests"]["completed"] == 9
