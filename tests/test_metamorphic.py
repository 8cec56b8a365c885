"""Relations between runs on common random numbers (same seed, same arrivals
and demands): more capacity must never make waiting longer; a load-aware
policy must not lose to round robin on the heavy-user mix."""

from __future__ import annotations

import pytest

import lbsim
from lbsim.scenario.loader import load_scenario
from lbsim.scenario.products import OPTIONS
from tests.support import queue, scenario

pytestmark = pytest.mark.metamorphic

EXP1 = {"dist": "exponential", "mean": 1.0}
NGINX = set(OPTIONS["nginx"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_more_workers_never_increase_mean_wait(seed: int) -> None:
    """FCFS c-server queues on the same sample path: waits are monotone in c."""
    means = []
    for workers in (2, 3, 4, 6):
        data = queue(1.7, EXP1, workers=workers, duration=2000, warmup=0, seed=seed)
        means.append(lbsim.simulate(scenario(data)).value("latency.mean"))
    assert means == sorted(means, reverse=True)
    assert means[0] > means[-1]


@pytest.mark.parametrize("seed", [1, 2])
def test_more_cores_never_increase_mean_latency_under_sharing(seed: int) -> None:
    means = []
    for cores in (1, 1.5, 2, 4):
        data = queue(0.9, EXP1, workers=8, cores=cores, duration=2000, warmup=0, seed=seed)
        means.append(lbsim.simulate(scenario(data)).value("latency.mean"))
    assert means == sorted(means, reverse=True)


@pytest.mark.parametrize("policy", ["round_robin", "least_conn", "random"])
def test_more_nodes_do_not_increase_mean_wait(policy: str) -> None:
    means = []
    for nodes in (2, 3, 4):
        data = queue(1.6, EXP1, nodes=nodes, policy=policy, duration=3000, seed=4)
        result = lbsim.simulate(scenario(data), replications=4)
        means.append(result.value("latency.mean"))
    assert means == sorted(means, reverse=True)


def test_least_conn_is_not_worse_than_round_robin_for_heavy_users() -> None:
    base = load_scenario("scenarios/rr-vs-least-load.yaml", duration=300, warmup=30)
    results = {}
    for policy in ("round_robin", "least_conn", "least_load"):
        data = base.model_dump()
        # product left out: implied by the policy (least_load is HAProxy's)
        data["balancer"] = {
            k: v for k, v in data["balancer"].items() if k != "product" and k not in NGINX
        }
        data["balancer"]["policy"] = policy
        data["balancer"]["policy_options"] = {}
        results[policy] = lbsim.simulate(lbsim.Scenario.model_validate(data), replications=3)
    rr = results["round_robin"].value("latency.mean")
    assert results["least_conn"].value("latency.mean") <= rr
    assert results["least_load"].value("latency.mean") <= rr
    # paired per replication (common random numbers), not only on average
    for a, b in zip(results["least_conn"].runs, results["round_robin"].runs, strict=True):
        assert a["latency"]["mean"] <= b["latency"]["mean"]


def test_same_arrivals_whatever_the_policy() -> None:
    base = load_scenario("scenarios/mixed.yaml", duration=30, warmup=0)
    counts = set()
    for policy in ("round_robin", "least_conn", "ip_hash"):
        data = base.model_dump()
        data["balancer"]["policy"] = policy
        counts.add(lbsim.simulate(lbsim.Scenario.model_validate(data)).value("requests.arrived"))
    assert len(counts) == 1
