"""Story hot-rows without Docker: the conflict counts of each side, the model on
the story's scenario (multi-writer conflicts, none with a single writer, retries
instead of 1213), the harness's verdicts and the CLI with a fake live side."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lbsim.cli.app import app
from lbsim.experiment.run import run_replication
from lbsim.scenario.loader import load_scenario
from lbsim.scenario.schema import Scenario
from lbsim.validation.loadgen import NOT_SENT, Record
from lbsim.validation.replay import ReplayRun
from lbsim.validation.stories import catalogue
from lbsim.validation.stories import conflicts as story_conflicts
from lbsim.validation.stories.conflicts import (
    ConflictModelSide,
    ConflictStackSide,
    galera_sums,
    measured_retries,
    model_retries,
)
from lbsim.validation.stories.harness import Counts, run_story

STORY = catalogue.HOT_ROWS


def _scenario(*overrides: str) -> Scenario:
    return load_scenario(STORY.file, list(overrides))


def test_the_counters_are_summed_over_the_nodes() -> None:
    galera = {
        "nodes": {
            "db1": {"wsrep_local_cert_failures": 2.0, "wsrep_local_bf_aborts": 5.0},
            "db2": {"wsrep_local_cert_failures": 1.0, "wsrep_local_bf_aborts": 0.0},
            "db3": {"wsrep_local_bf_aborts": 7.0, "wsrep_replicated": 90.0},
        },
        "flow_control": {"paused": 0.0},
    }
    assert galera_sums(galera) == {"wsrep_local_cert_failures": 3, "wsrep_local_bf_aborts": 12}
    assert galera_sums({}) == {"wsrep_local_cert_failures": 0, "wsrep_local_bf_aborts": 0}


def _record(i: int, scheduled: float, retries: int, status: int = 200, error: int = 0) -> Record:
    return Record(
        i, "update", 0, scheduled, sent=scheduled, latency=0.01, status=status,
        retries=retries, db_error=error,
    )  # fmt: skip


def test_the_measured_retries_are_those_of_the_window_s_requests() -> None:
    sc = _scenario()  # warm-up 5 s, horizon 45 s
    records = [
        _record(0, 4.9, 3),  # before the window
        _record(1, 5.0, 1),
        _record(2, 20.0, 2, 500, 1213),  # retried twice, then failed
        _record(3, 44.9, 1),
        _record(4, 45.0, 5),  # after the horizon
        Record(5, "update", 0, 30.0, retries=4),  # never sent
    ]
    assert records[5].status == NOT_SENT
    assert measured_retries(sc, records) == 4


def test_the_model_s_retries_are_the_conflicts_it_did_not_answer_1213() -> None:
    counts = {"wsrep_local_cert_failures": 3, "wsrep_local_bf_aborts": 20, "db_1213": 5}
    assert model_retries(_scenario("database.app_retries=2"), counts) == 18
    assert model_retries(_scenario(), counts) == 0  # no application retries
    with pytest.raises(ValueError, match="retry_autocommit"):
        model_retries(_scenario("database.app_retries=2", "database.retry_autocommit=1"), counts)
    with pytest.raises(ValueError, match="Galera"):
        model_retries(load_scenario(catalogue.TOO_MANY_CONNECTIONS.file), counts)


def _run(
    sc: Scenario, records: list[Record], galera: dict[str, Any], errors: list[str]
) -> ReplayRun:
    results: dict[str, Any] = {"meta": {"collector_errors": errors}}
    if galera:
        results["galera"] = galera
    return ReplayRun(sc, records, results)


def test_the_stack_side_counts_answers_counters_and_retries() -> None:
    sc = _scenario("database.app_retries=2")
    records = [_record(1, 6.0, 0), _record(2, 7.0, 2, 500, 1213), _record(3, 8.0, 1)]
    galera = {"nodes": {"db1": {"wsrep_local_bf_aborts": 3.0, "wsrep_local_cert_failures": 1.0}}}
    side = ConflictStackSide()
    side.last_notes = {"valid": True, "problems": []}
    got = side.counts(sc, _run(sc, records, galera, []))
    assert got == {
        "arrived": 3,
        "completed": 2,
        "db_1213": 1,
        "wsrep_local_cert_failures": 1,
        "wsrep_local_bf_aborts": 3,
        "retries": 3,
    }
    assert side.last_notes["valid"] is True


def test_counters_not_read_make_the_replay_invalid() -> None:
    sc = _scenario()
    side = ConflictStackSide()
    side.last_notes = {"valid": True, "problems": ["late"]}
    side.counts(sc, _run(sc, [_record(1, 6.0, 0)], {}, ["status at window end: boom"]))
    assert side.last_notes == {"valid": False, "problems": ["late", "status at window end: boom"]}
    side.last_notes = {"valid": True, "problems": []}
    side.counts(sc, _run(sc, [_record(1, 6.0, 0)], {}, []))
    assert side.last_notes["problems"] == ["no Galera counters were read"]


def test_the_model_predicts_conflicts_only_with_many_writers() -> None:
    model = ConflictModelSide()
    by = {v.name: [model(STORY.scenario(v), r) for r in range(2)] for v in STORY.variants}
    for multi in by["multi_writer"]:
        # clearly measurable: judged relative (40 or more) and every lost conflict a 1213
        assert multi["db_1213"] >= 30
        lost = multi["wsrep_local_cert_failures"] + multi["wsrep_local_bf_aborts"]
        assert multi["db_1213"] == pytest.approx(lost, abs=2)
        assert multi["retries"] == 0
    for single in by["single_writer"]:
        assert all(single.get(k, 0) == 0 for k in catalogue.CONFLICTS)
        assert single["completed"] >= single["arrived"] - 5
    for retried, multi in zip(by["app_retries"], by["multi_writer"], strict=True):
        assert retried.get("db_1213", 0) <= 2
        assert retried["retries"] >= 30
        assert retried["arrived"] == multi["arrived"]  # the same trace


def test_the_shipped_scenario_plans_under_1_2_cores() -> None:
    """The whole stack shares a 2-core machine with the load generator."""
    sc = _scenario()
    results, _ = run_replication(sc, 0)
    util = results["utilisation"]
    db = {n.name: n.cores for n in sc.database.resolved_nodes()}  # type: ignore[union-attr]
    app = {n.name: n.cores for n in sc.app.resolved_nodes()}
    cores = sum(util["db"][k]["cpu"] * c for k, c in db.items())
    cores += sum(util["app"][k]["cpu"] * c for k, c in app.items())
    assert 0.2 < cores < 1.2


class _FakeStack:
    """Measures what the model predicts, give or take: the harness's verdicts and
    zeros come from the counts alone."""

    def __init__(self, port: int = 8080, say: Any = print, single_1213: int = 0) -> None:
        self.model = ConflictModelSide()
        self.single_1213 = single_1213
        self.last_notes: dict[str, Any] = {}

    def __call__(self, scenario: Scenario, replication: int) -> Counts:
        self.last_notes = {"valid": True, "problems": []}
        got = self.model(scenario, replication)
        if scenario.database.routing.policy == "first":  # type: ignore[union-attr]
            got["db_1213"] = self.single_1213
        else:
            got["wsrep_local_cert_failures"] += 2  # the real cluster fails a few certifications
        return got


def test_a_1213_with_a_single_writer_is_a_problem() -> None:
    quiet: list[str] = []
    ok = run_story(STORY, _FakeStack(), ConflictModelSide(), repetitions=2, say=quiet.append)
    assert ok.passed, [v.problems for v in ok.variants]
    metrics = {(v.variant.name, m.metric) for v in ok.variants for m in v.metrics}
    assert ("multi_writer", "requests.wsrep_local_bf_aborts") in metrics
    assert ("single_writer", "requests.db_1213") in metrics  # 0 = 0, but shown
    bad = run_story(
        STORY, _FakeStack(single_1213=1), ConflictModelSide(), repetitions=2, say=quiet.append
    )
    single = next(v for v in bad.variants if v.variant.name == "single_writer")
    assert not bad.passed
    assert single.problems[0].startswith("db_1213 should be 0 with single_writer but was 1")


def test_the_cli_runs_the_story_with_the_conflict_sides(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["story", "list"])
    assert "hot-rows" in listed.output
    monkeypatch.setattr(story_conflicts, "ConflictStackSide", _FakeStack)
    monkeypatch.setattr("lbsim.validation.machine.machine", lambda: {"cpu": "test", "cores": 2})
    out = tmp_path / "hot"
    done = runner.invoke(
        app, ["story", "hot-rows", "--repetitions", "2", "--duration", "10", "--out", str(out)]
    )
    assert done.exit_code == 0, done.output
    data = json.loads((out / "story.json").read_text())
    assert data["passed"] and [v["name"] for v in data["variants"]] == [
        "multi_writer",
        "single_writer",
        "app_retries",
    ]
    assert "wsrep_local_bf_aborts" in (out / "story.md").read_text()
