"""Slow start (HAProxy ``slowstart``, Envoy slow start) on hand-worked values."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import lbsim
from lbsim.model.policies import Backend, make_policy
from lbsim.model.slow_start import SlowStart, envoy_ramp, haproxy_ramp
from tests.support import scenario

pytestmark = pytest.mark.unit


def backends(*weights: int) -> list[Backend]:
    return [
        Backend(index=i, name="ab"[i], address=f"10.0.0.{i + 1}:9000", weight=w)
        for i, w in enumerate(weights)
    ]


def test_haproxy_ramp_is_linear_in_sixteenths() -> None:
    # w = (16 × elapsed + 20) // 20 sixteenths, window 20 s
    got = [haproxy_ramp(t, 20) for t in (0, 1, 5, 10, 19, 20, 25)]
    assert got == [1 / 16, 1 / 16, 5 / 16, 9 / 16, 1.0, 1.0, 1.0]


def test_envoy_ramp_has_a_floor_of_ten_percent() -> None:
    assert [envoy_ramp(t, 20) for t in (0, 1, 5, 10, 20)] == [0.1, 0.1, 0.25, 0.5, 1.0]


def test_haproxy_ramp_moves_only_when_updated() -> None:
    a, b = backends(1, 1)
    ss = SlowStart("haproxy", 20, [a, b])
    ss.began(a, 100.0)
    assert a.ramp == 1 / 16
    ss.update(a, 110.0)
    assert a.ramp == 9 / 16
    ss.update(a, 125.0)
    assert a.ramp == 1.0 and b.ramp == 1.0


def test_envoy_round_robin_gives_a_ramping_host_its_share_by_edf() -> None:
    """Weights 1 × 0.25 and 1: deadlines a 4, b 1, 2, 3, then a (4, added first) and b."""
    a, b = backends(1, 1)
    p = make_policy("round_robin", [a, b], None, np.random.default_rng(0), "envoy")
    a.ramp = 0.25
    assert "".join(p.choose(None, lambda _: True, 0.0).name for _ in range(10)) == (  # type: ignore[union-attr, arg-type]
        "bbbabbbbab"
    )


def test_haproxy_leastconn_scales_the_effective_weight() -> None:
    a, b = backends(1, 1)
    p = make_policy("leastconn_haproxy", [a, b], None, np.random.default_rng(0), "haproxy")
    a.ramp = 1 / 16  # eweight 16 → 1
    a.conns = b.conns = 1
    # keys (1 + 1) × 4096 // 1 = 8192 against (1 + 1) × 4096 // 16 = 512
    assert p.choose(None, lambda _: True, 0.0) is b  # type: ignore[arg-type]
    a.conns = 0  # an idle server has key 0 whatever its weight
    assert p.choose(None, lambda _: True, 0.0) is a  # type: ignore[arg-type]


def test_haproxy_roundrobin_scales_the_effective_weight() -> None:
    """fwrr with eweights 16 and 4 (a at a quarter of its ramp): 4 b for each a."""
    a, b = backends(1, 1)
    p = make_policy("roundrobin_haproxy", [a, b], None, np.random.default_rng(0), "haproxy")
    a.ramp = 4 / 16
    picks = "".join(p.choose(None, lambda _: True, 0.0).name for _ in range(20))  # type: ignore[union-attr, arg-type]
    assert picks.count("a") == 4 and picks.count("b") == 16, picks
    a.ramp = 1.0  # full weight again: fwrr requeues a (a short catch-up), then alternation
    picks = "".join(p.choose(None, lambda _: True, 0.0).name for _ in range(40))  # type: ignore[union-attr, arg-type]
    assert picks[20:].count("a") == 10, picks


def comeback(product: str, policy: str, slow_start: float | None) -> dict[str, Any]:
    balancer: dict[str, Any] = {
        "product": product,
        "policy": policy,
        "health_check": {"interval": 1, "fall": 1, "rise": 1},
    }
    if slow_start is not None:
        balancer["slow_start"] = slow_start
    data = {
        "duration": 40,
        "workload": {"open": {"rate": 20}, "classes": [{"name": "a", "cpu": 0.05}]},
        "balancer": balancer,
        "app": {
            "nodes": [{"outages": [{"start": 0.5, "duration": 10}]}, {}],
            "workers": 8,
            "cores": 8,
        },
    }
    return lbsim.simulate(scenario(data)).to_dict()


@pytest.mark.parametrize(
    ("product", "policy"),
    [
        ("haproxy", "leastconn_haproxy"),
        ("haproxy", "roundrobin_haproxy"),
        ("envoy", "round_robin"),
    ],
)
def test_a_node_that_comes_back_takes_less_traffic_with_slow_start(
    product: str, policy: str
) -> None:
    plain = comeback(product, policy, None)["app"]["app1"]["served"]
    ramped = comeback(product, policy, 20.0)["app"]["app1"]["served"]
    assert ramped < plain


def test_slow_start_needs_health_checks() -> None:
    data = {
        "workload": {"open": {"rate": 1}, "classes": [{"name": "a"}]},
        "balancer": {"product": "haproxy", "slow_start": 10},
    }
    with pytest.raises(lbsim.ScenarioError, match="slow_start needs health_check"):
        scenario(data)
