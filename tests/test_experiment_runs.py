"""Experiments that simulate (short scenarios): executors give identical results,
results directories resume, an interruption keeps what finished, sequential replications."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import lbsim
from lbsim.experiment.compare import compare
from lbsim.experiment.executors import LocalExecutor, Task, TaskOutput, run_task
from lbsim.experiment.load import load_results
from lbsim.experiment.plan import plan
from lbsim.experiment.stopping import TargetHalfWidth
from lbsim.experiment.sweep import Sweep, sweep
from lbsim.scenario.loader import scenario_from_data

pytestmark = pytest.mark.unit

TINY: dict[str, Any] = {
    "name": "tiny",
    "seed": 3,
    "duration": 15,
    "warmup": 2,
    "workload": {
        "open": {"rate": 30},
        "timeout": 5,
        "classes": [
            {"name": "fast", "weight": 0.8, "cpu": {"dist": "exponential", "mean": 0.01}},
            {"name": "slow", "weight": 0.2, "cpu": {"dist": "gamma", "mean": 0.05, "cv": 0.5}},
        ],
    },
    "app": {"nodes": 2, "workers": 4, "cores": 1},
}


@pytest.fixture
def tiny() -> lbsim.Scenario:
    return scenario_from_data(dict(TINY), "<tiny>")


def same(a: Any, b: Any) -> bool:
    """Equal, NaN included (NaN != NaN in Python)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class Counting:
    """An executor that runs tasks in this process and counts them; it can raise
    KeyboardInterrupt after ``stop_after`` tasks, like a Ctrl-C."""

    def __init__(self, stop_after: int | None = None):
        self.tasks: list[tuple[int, int]] = []
        self.stop_after = stop_after

    @property
    def workers(self) -> int:
        return 1

    @property
    def description(self) -> str:
        return "counting"

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutput]:
        for t in tasks:
            if self.stop_after is not None and len(self.tasks) >= self.stop_after:
                raise KeyboardInterrupt
            self.tasks.append((t.point, t.replication))
            yield run_task(t)

    def close(self, *, interrupted: bool = False) -> None:
        pass


def test_the_same_run_dict_on_every_executor(tiny: lbsim.Scenario) -> None:
    tasks = [Task(0, r, tiny) for r in range(3)]
    here = {o.replication: o.run for o in LocalExecutor(1).run(tasks)}
    with LocalExecutor(2) as pool:
        there = {o.replication: o.run for o in pool.run(tasks)}
    assert same(here, there)
    assert "wall_time" not in here[0]["run"]
    assert here[0] != here[1]  # replications differ from each other


def test_simulate_on_an_executor_matches_simulate(tiny: lbsim.Scenario) -> None:
    plain = lbsim.simulate(tiny, replications=3)
    with LocalExecutor(2) as pool:
        pooled = lbsim.simulate(tiny, replications=3, executor=pool)
    strip = [{k: v for k, v in r.items() if k != "run"} for r in plain.runs]
    assert same(strip, [{k: v for k, v in r.items() if k != "run"} for r in pooled.runs])
    assert same(plain.timeseries, pooled.timeseries)
    assert same(plain.cdf, pooled.cdf)
    assert all("wall_time" in r["run"] for r in pooled.runs)


def test_compare_uses_common_random_numbers(tiny: lbsim.Scenario) -> None:
    c = compare(tiny, policies=["round_robin", "least_conn"], replications=3, executor=Counting())
    # the arrivals are the same in both variants, replication by replication
    for r in range(3):
        assert (
            c.points[0].runs[r]["requests"]["arrived"] == c.points[1].runs[r]["requests"]["arrived"]
        )
    table = c.table(["latency.mean"])
    assert list(table["variant"]) == ["round_robin", "least_conn"]
    assert table["diff"].iloc[0] == 0.0
    base = c.values(0, "latency.mean")
    other = c.values(1, "latency.mean")
    assert table["diff"].iloc[1] == pytest.approx(
        sum(o - b for b, o in zip(base, other, strict=True)) / 3
    )


def test_sweep_resumes_from_its_directory(tiny: lbsim.Scenario, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    first = Counting()
    s1 = sweep(
        tiny, ["workload.open.rate=20,40", "app.nodes=1,2"], replications=2, executor=first, out=out
    )
    assert len(first.tasks) == 8
    again = Counting()
    s2 = sweep(
        tiny, ["workload.open.rate=20,40", "app.nodes=1,2"], replications=2, executor=again, out=out
    )
    assert again.tasks == []  # everything was there
    assert s2.frame.equals(s1.frame)
    more = Counting()
    sweep(
        tiny,
        ["workload.open.rate=20,40,60", "app.nodes=1,2"],
        replications=3,
        executor=more,
        out=out,
    )
    # the old points get a third replication, the new points three
    assert sorted(more.tasks) == sorted(
        [(i, 2) for i in range(4)] + [(i, r) for i in (4, 5) for r in range(3)]
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "complete"
    assert meta["kind"] == "sweep"
    for name in ("results.csv", "results.parquet", "summary.csv", "knee.json"):
        assert (out / name).exists()


def test_interrupted_sweep_keeps_finished_replications_and_resumes_to_the_same_result(
    tiny: lbsim.Scenario, tmp_path: Path
) -> None:
    params = ["workload.open.rate=20,40,60"]
    with pytest.raises(KeyboardInterrupt):
        sweep(tiny, params, replications=2, executor=Counting(stop_after=3), out=tmp_path / "a")
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    saved = [json.loads(p.read_text()) for p in (tmp_path / "a" / "points").glob("*.json")]
    assert sum(len(p["runs"]) for p in saved) == 3
    rest = Counting()
    resumed = sweep(tiny, params, replications=2, executor=rest, out=tmp_path / "a")
    assert len(rest.tasks) == 3
    whole = sweep(tiny, params, replications=2, executor=Counting(), out=tmp_path / "b")
    assert resumed.frame.equals(whole.frame)


def test_a_results_directory_of_another_kind_is_refused(
    tiny: lbsim.Scenario, tmp_path: Path
) -> None:
    sweep(tiny, ["app.nodes=1,2"], replications=1, executor=Counting(), out=tmp_path)
    with pytest.raises(Exception, match="holds sweep results, not compare"):
        compare(tiny, policies=["round_robin", "random"], executor=Counting(), out=tmp_path)


def test_sequential_replications_reach_the_target_or_the_cap(tiny: lbsim.Scenario) -> None:
    target = TargetHalfWidth("latency.mean", 0.004, maximum=8)
    s = sweep(tiny, ["workload.open.rate=10,40"], target=target, executor=Counting())
    for p in s.points:
        n = len(p.ordered_runs())
        assert 3 <= n <= 8
        assert n == 8 or target.half_width_of(p.ordered_runs()) <= 0.004


def test_sequential_compare_keeps_variants_paired(tiny: lbsim.Scenario) -> None:
    target = TargetHalfWidth("latency.p95", 0.01, maximum=6)
    c = compare(tiny, ["app.nodes=1,3"], target=target, executor=Counting())
    counts = {len(p.ordered_runs()) for p in c.points}
    assert len(counts) == 1


def test_sequential_decisions_are_the_same_on_a_process_pool(tiny: lbsim.Scenario) -> None:
    target = TargetHalfWidth("latency.mean", 0.003, maximum=7)
    here = sweep(tiny, ["workload.open.rate=10,40"], target=target, executor=Counting())
    with LocalExecutor(2) as pool:
        there = sweep(tiny, ["workload.open.rate=10,40"], target=target, executor=pool)
    assert here.frame.equals(there.frame)


def test_plan_stops_at_the_cheapest_configuration_that_fits(
    tiny: lbsim.Scenario, tmp_path: Path
) -> None:
    counting = Counting()
    p = plan(
        tiny,
        ["p95<0.2", "failed<0.01"],
        ["app.nodes=1..4"],
        replications=3,
        executor=counting,
        out=tmp_path,
    )
    chosen = p.chosen
    assert chosen is not None
    evaluated = [c for c in p.candidates if c.evaluated]
    assert evaluated[-1] is chosen  # nothing dearer was run
    assert all(not c.met for c in evaluated[:-1])
    assert len(counting.tasks) == 3 * len(evaluated)
    loaded = load_results(tmp_path)
    assert isinstance(loaded, type(p))
    assert loaded.chosen is not None
    assert loaded.chosen.variant.label == chosen.variant.label
    assert json.loads((tmp_path / "plan.json").read_text())["chosen"]["label"] == (
        chosen.variant.label
    )


def test_saved_sweep_loads_back_the_same(tiny: lbsim.Scenario, tmp_path: Path) -> None:
    s = sweep(tiny, ["workload.open.rate=20,40"], replications=2, executor=Counting(), out=tmp_path)
    loaded = load_results(tmp_path)
    assert isinstance(loaded, Sweep)
    assert loaded.frame.equals(s.frame)
    assert loaded.knee_json() == s.knee_json()
