"""Every shipped scenario validates and runs; the textbook ones match their theory."""

from __future__ import annotations

from pathlib import Path

import pytest

import lbsim

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "scenarios").rglob("*.yaml"))


def test_scenarios_are_shipped() -> None:
    names = {p.name for p in SHIPPED}
    assert {
        "mixed.yaml",
        "rr-vs-least-load.yaml",
        "galera-hotspot.yaml",
        "galera-slow-node.yaml",
        "read-after-write.yaml",
        "mysql-too-many-connections.yaml",
    } <= names
    assert len(list((ROOT / "scenarios" / "theory").glob("*.yaml"))) >= 5


@pytest.mark.unit
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "scenarios")))
def test_shipped_scenario_runs_briefly(path: Path) -> None:
    sc = lbsim.load_scenario(path, duration=20, warmup=2, replications=1)
    run = lbsim.simulate(sc).runs[0]
    req = run["requests"]
    assert req["arrived"] > 0
    assert req["arrived"] == req["completed"] + req["failed"]["total"] + req["in_flight"]


@pytest.mark.theory
@pytest.mark.parametrize(
    ("name", "expected"),
    [("mm1.yaml", 5.0), ("md1.yaml", 3.0), ("mg1-ps.yaml", 5.0), ("round-robin-two.yaml", 2.6006)],
)
def test_theory_scenarios_match_their_closed_forms(name: str, expected: float) -> None:
    sc = lbsim.load_scenario(ROOT / "scenarios" / "theory" / name, duration=6000, warmup=600)
    result = lbsim.simulate(sc)
    mean, half = result.value("latency.mean"), result.ci95("latency.mean")
    # 99 % interval from the 95 % half-width of 10 replications: × t(.995)/t(.975)
    assert abs(mean - expected) <= half * 3.2498 / 2.2622, (mean, half, expected)
