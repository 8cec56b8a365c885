"""Story galera-node-crash (6b) without Docker: the scenario as shipped, what
the model predicts of it, and the story's plumbing with the model playing the
live side (the live test is tests/test_story_galera_fault_live.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lbsim.cli.app import app
from lbsim.experiment.run import run_replication
from lbsim.scenario.database import Galera
from lbsim.scenario.loader import load_scenario
from lbsim.validation.compose import generate_stack
from lbsim.validation.faults import Fault, planned
from lbsim.validation.stories import catalogue, faults_report
from lbsim.validation.stories import faults as story_faults
from lbsim.validation.stories.faults import (
    FaultModelSide,
    fault_window,
    run_fault_story,
    with_seconds,
)
from lbsim.validation.timeline import FaultWindow, from_rows, summarise
from tests.test_story_faults import FakeStack

pytestmark = pytest.mark.unit

STORY = catalogue.GALERA_NODE_CRASH


def test_the_story_kills_db2_from_20_to_45_s_and_replays() -> None:
    sc = load_scenario(STORY.file)
    assert fault_window(sc) == FaultWindow(5.0, 20.0, 45.0, 75.0)
    assert planned(sc) == [Fault("db2", 20.0, 45.0)]
    assert isinstance(sc.database, Galera) and sc.database.routing.mode == "proxy"
    files = generate_stack(sc, Path("/tmp/lbsim-galera-node-crash"))  # not written
    assert "check inter 2s fall 3 rise 2" in files.files["dbproxy/haproxy.cfg"]
    assert catalogue.story("galera-node-crash") is STORY


def test_the_model_predicts_a_late_burst_of_2006_and_an_ist_catch_up() -> None:
    """The connections the proxy still sends to db2 until its checks fail wait
    4 x 5 s and fail with 2006 (the proxy closes before the greeting): a burst
    from 40 s; db2 rejoins 3 s
    after the restart, applies the write-sets it missed and is SYNCED."""
    sc = with_seconds(load_scenario(STORY.file))
    results, extras = run_replication(sc, 0)
    failed = {k: v for k, v in results["requests"]["failed"].items() if v and k != "total"}
    assert set(failed) <= {"db_2006", "db_2013"} and 20 <= failed["db_2006"] <= 80
    assert failed.get("db_2013", 0) <= 3  # only queries running on db2 at the kill
    series = from_rows(extras["timeseries"], sc.horizon)
    summary = summarise(series, fault_window(sc))
    # before 40 s only a query running on db2 at the kill (2013 at 20.0 s, which
    # the model's row ending at 20 s holds: bin 19)
    assert all(f == 0 for k, f in enumerate(series.failed[:40]) if k not in (19, 20))
    assert summary.bursts[-1][0] == 40 and summary.bursts[-1][2] >= 20
    assert summary.dip > 0.3  # a third of the connections stall until db2 is marked down
    db2 = results["galera"]["membership"]["db2"]["1"]
    assert db2["joined"]["time"] == pytest.approx(48.0)
    assert db2["ist"]["writesets"] > 50 and db2["ist"]["donor_cpu"] > 0
    assert 0 < db2["catch_up"] < 5
    nodes = results["galera"]["nodes"]
    assert nodes["db2"]["wsrep_last_committed"] == nodes["db1"]["wsrep_last_committed"]


def test_the_story_pairs_with_the_model_as_the_live_side(tmp_path: Path) -> None:
    result = run_fault_story(
        STORY, FakeStack(), FaultModelSide(), repetitions=2, say=lambda _: None
    )
    assert result.story.passed  # the model against itself
    names = [m.metric for m in result.story.variants[0].metrics]
    assert "requests.db_2006" in names and "requests.db_2013" in names, names
    assert "burst.duration" in names and "recovery" in names
    paths = faults_report.write(result, tmp_path)
    assert (tmp_path / "timeline.md").read_text().count("## proxy") == 1
    assert len(paths) == 4


def test_cli_runs_the_galera_story_with_a_fake_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    assert "galera-node-crash" in runner.invoke(app, ["story", "list"]).output
    monkeypatch.setattr(story_faults, "FaultStackSide", FakeStack)
    monkeypatch.setattr("lbsim.validation.machine.machine", lambda: {"cpu": "test", "cores": 2})
    out = tmp_path / "crash"
    done = runner.invoke(
        app, ["story", "galera-node-crash", "--repetitions", "2", "--out", str(out)]
    )
    assert done.exit_code == 0, done.output
    assert json.loads((out / "story.json").read_text())["passed"]
