"""Helpers shared by the simulation tests: build scenarios from dicts, replicate."""

from __future__ import annotations

import copy
import math
import zlib
from typing import Any

from scipy import stats

import lbsim
from lbsim.scenario.loader import scenario_from_data


def scenario(data: dict[str, Any], **top: Any) -> lbsim.Scenario:
    d = copy.deepcopy(data)
    d.update(top)
    return scenario_from_data(d, "<test>")


def queue(
    rate: float,
    service: Any,
    *,
    nodes: int = 1,
    workers: int = 1,
    cores: float | None = None,
    policy: str = "round_robin",
    policy_options: dict[str, Any] | None = None,
    duration: float = 5000.0,
    warmup: float = 500.0,
    seed: int | None = None,
) -> dict[str, Any]:
    """A textbook queue as a scenario: Poisson arrivals at ``rate`` (total), no latencies.

    Unless given, the seed is derived from the queue's parameters, so that
    different checks draw independent streams (a shared seed would make all
    of them err in the same direction together).
    """
    if seed is None:
        key = repr((rate, service, nodes, workers, cores, policy, policy_options, duration))
        seed = zlib.crc32(key.encode())
    return {
        "name": "theory",
        "seed": seed,
        "duration": duration,
        "warmup": warmup,
        "workload": {"open": {"rate": rate}, "classes": [{"name": "job", "cpu": service}]},
        # a textbook queue: no upstream timeout, no passive ejection
        "balancer": {
            "policy": policy,
            "policy_options": policy_options or {},
            "upstream_timeout": 1e9,
            "max_fails": 0,
        },
        "app": {
            "nodes": nodes,
            "workers": workers,
            "cores": cores if cores is not None else workers,
            "backlog": 10_000_000,
        },
    }


class Estimate:
    """Mean over replications with a Student-t interval."""

    def __init__(self, values: list[float], confidence: float = 0.99):
        self.values = values
        n = len(values)
        self.mean = sum(values) / n
        var = sum((v - self.mean) ** 2 for v in values) / (n - 1)
        self.half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(var / n)

    def covers(self, target: float) -> bool:
        return abs(self.mean - target) <= self.half

    def __repr__(self) -> str:
        return f"{self.mean:.4f} ± {self.half:.4f} (n={len(self.values)})"


def replicate(data: dict[str, Any], key: str, reps: int) -> tuple[Estimate, lbsim.Result]:
    result = lbsim.simulate(scenario(data), replications=reps)
    values = [float(_get(r, key)) for r in result.runs]
    return Estimate(values), result


def _get(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def check_invariants(result: lbsim.Result) -> None:
    """Conservation, no failures, and Little's law on every replication."""
    for run in result.runs:
        req = run["requests"]
        assert req["failed"]["total"] == 0
        assert req["arrived"] == req["completed"] + req["failed"]["total"] + req["in_flight"]
        little = run["little"]
        duration = result.scenario.duration
        # Little's law as an exact identity over the window (edge terms included)
        identity = little["answered"] / duration * little["W"] + little["edge"]
        assert little["L"] == _approx(identity, rel=1e-6)
        # and the edge terms are small next to L for these long runs
        assert abs(little["edge"]) < 0.05 * little["L"] + 0.05


def _approx(value: float, rel: float) -> Any:
    import pytest

    return pytest.approx(value, rel=rel)
