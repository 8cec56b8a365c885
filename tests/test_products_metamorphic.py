"""Relations between products and capacities on common random numbers."""

from __future__ import annotations

from typing import Any

import pytest

import lbsim
from tests.support import scenario

pytestmark = pytest.mark.metamorphic


def stack(product: str, policy: str | None, **app: Any) -> dict[str, Any]:
    balancer: dict[str, Any] = {"product": product, "upstream_timeout": 1e6}
    if policy is not None:
        balancer["policy"] = policy
    return {
        "seed": 5,
        "duration": 300,
        "warmup": 0,
        "workload": {
            "open": {"rate": 20},
            "classes": [{"name": "job", "cpu": {"dist": "lognormal", "mean": 0.25, "cv": 1.5}}],
        },
        "balancer": balancer,
        "app": {"nodes": 3, "workers": 4, "cores": 4, "backlog": 100_000, **app},
    }


def run(data: dict[str, Any]) -> dict[str, Any]:
    return lbsim.simulate(scenario(data)).to_dict()


@pytest.mark.parametrize("policy", ["random", None])
def test_nginx_and_haproxy_agree_while_no_peer_is_full_or_failing(policy: str | None) -> None:
    """Same arrivals and demands, no max_conns, no refusals, no outages: the
    products differ only on overload and failure, so the runs are identical
    (the default policies, smooth WRR and fwrr, both rotate on equal weights)."""
    nginx = run(stack("nginx", policy))
    haproxy = run(stack("haproxy", policy))
    assert nginx["requests"]["failed"]["total"] == 0
    assert nginx["requests"] == haproxy["requests"]
    assert nginx["latency"] == haproxy["latency"]


def test_nginx_and_haproxy_differ_once_max_conns_binds() -> None:
    nginx = run(stack("nginx", "random", max_conns=4))
    haproxy = run(stack("haproxy", "random", max_conns=4))
    assert nginx["requests"]["failed"]["http_502"] > 0  # skipped: nothing usable
    assert haproxy["requests"]["failed"]["total"] < nginx["requests"]["failed"]["total"]
    assert haproxy["latency"]["mean"] > nginx["latency"]["mean"]  # waited in the queue


@pytest.mark.parametrize(
    ("product", "options"),
    [
        ("nginx", {}),
        ("haproxy", {"queue_timeout": 2.0}),
        ("envoy", {"circuit_breaker": {"max_pending_requests": 5}}),
    ],
)
def test_more_capacity_never_more_failures(product: str, options: dict[str, Any]) -> None:
    """Raising max_conns (with workers) never fails more requests."""
    failures = []
    for slots in (1, 2, 3, 4, 6):
        data = stack(product, None, workers=slots, max_conns=slots, cores=slots)
        data["balancer"].update(options)
        failures.append(run(data)["requests"]["failed"]["total"])
    assert failures == sorted(failures, reverse=True), failures
    assert failures[0] > failures[-1]
