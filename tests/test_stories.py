"""Validation stories without Docker: the model side on the shipped story
scenarios, the count pairing and its bounds, the required zeros, invalid
replays, the report and the CLI (a fake live side)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lbsim.cli.app import app
from lbsim.scenario.loader import load_scenario
from lbsim.scenario.schema import Scenario
from lbsim.validation.background import PhaseBackground
from lbsim.validation.levels import Replay
from lbsim.validation.stories import catalogue, policies_report, report, sides
from lbsim.validation.stories.harness import (
    COUNT_BOUND,
    SMALL_COUNT_BOUND,
    Counts,
    Story,
    count_metric,
    run_story,
    verdict_line,
)
from lbsim.validation.stories.policies import PoliciesResult, class_metrics, differences
from lbsim.validation.stories.sides import ModelSide

STORY = catalogue.TOO_MANY_CONNECTIONS


def test_every_story_scenario_is_shipped_and_runs_in_the_model() -> None:
    for story in catalogue.STORIES.values():
        assert story.file.is_file(), story.file
        if isinstance(story, catalogue.PolicyStory):
            for policy in story.policies:
                s = load_scenario(story.file, [f"balancer.policy={policy}", "duration=10"])
                assert ModelSide()(s, 0)["arrived"] > 50
            continue
        for v in story.variants:
            counts = ModelSide()(story.scenario(v, ["duration=10"]), 0)
            assert counts["arrived"] > 50


def test_the_model_predicts_1040_only_without_the_fix() -> None:
    model = ModelSide()
    by = {v.name: model(STORY.scenario(v), 0) for v in STORY.variants}
    # 24 workers in turn, 15 keep a connection: about 9/24 of the requests fail
    share = by["persistent"]["db_1040"] / by["persistent"]["arrived"]
    assert share == pytest.approx(9 / 24, abs=0.04)
    for fix in ("per_request", "fewer_workers"):
        assert by[fix].get("db_1040", 0) == 0
        assert by[fix]["completed"] >= by[fix]["arrived"] - 3


def test_a_count_of_forty_or_more_is_judged_relative_below_it_absolute() -> None:
    big = count_metric("s", "v", "db_1040", [(100, 90), (110, 100), (95, 100)])
    assert big.kind == "relative" and big.bound == COUNT_BOUND
    assert big.errors[0] == pytest.approx(10 / 90)
    assert big.verdict == "within"
    small = count_metric("s", "v", "http_502", [(0, 3), (2, 0), (1, 1)])
    assert small.kind == "absolute" and small.bound == SMALL_COUNT_BOUND
    assert small.errors == [-3.0, 2.0, 0.0]
    assert small.verdict == "within"
    zero = count_metric("s", "v", "db_1040", [(0, 0), (0, 0), (0, 0)])
    assert zero.mean == 0.0 and zero.verdict == "within"


def test_a_consistent_miss_beyond_its_interval_is_a_miss() -> None:
    miss = count_metric("s", "v", "db_1040", [(200, 100), (210, 102), (190, 98)])
    assert miss.verdict == "miss"
    noisy = count_metric("s", "v", "db_1040", [(170, 100), (80, 100), (150, 100)])
    assert noisy.mean > COUNT_BOUND and noisy.verdict == "inconclusive"
    assert noisy.r_needed is None or noisy.r_needed > 3


class Fake:
    """A live side that returns given counts (and can mark a replay invalid)."""

    def __init__(
        self, counts: dict[str, list[Counts]], invalid: frozenset[tuple[str, int]] = frozenset()
    ):
        self.counts = counts
        self.invalid = invalid
        self.calls: list[tuple[str, int]] = []
        self.last_notes: dict[str, object] = {}

    def __call__(self, scenario: Scenario, replication: int) -> Counts:
        name = "per_request" if scenario.database.connect == "per_request" else "persistent"
        self.calls.append((name, replication))
        bad = (name, replication) in self.invalid
        self.last_notes = {"valid": not bad, "problems": ["late sends"] if bad else []}
        return self.counts[name][replication]


def _two_variant_story() -> Story:
    return Story(
        "t",
        "T",
        STORY.file,
        (STORY.variants[0], STORY.variants[1]),
        counts=("completed", "db_1040"),
        zero={"per_request": ("db_1040",)},
    )


def _predicted(scenario: Scenario, replication: int) -> Counts:
    if scenario.database.connect == "per_request":
        return {"arrived": 800, "completed": 800}
    return {"arrived": 800, "completed": 500, "db_1040": 300}


def test_run_story_interleaves_variants_pairs_counts_and_checks_the_fix() -> None:
    measured = {
        "persistent": [{"arrived": 800, "completed": 505, "db_1040": 295}] * 3,
        "per_request": [{"arrived": 800, "completed": 798, "db_1040": 2}] * 3,
    }
    live = Fake(measured)
    result = run_story(_two_variant_story(), live, _predicted, repetitions=3, say=lambda _: None)
    assert live.calls == [(n, r) for r in range(3) for n in ("persistent", "per_request")]
    persistent, fix = result.variants
    assert [m.metric for m in persistent.metrics] == ["requests.completed", "requests.db_1040"]
    assert all(m.verdict == "within" for m in persistent.metrics)
    # the fix's 1040 count is within ±10 but must be 0: a problem, so not passed
    assert any("db_1040 should be 0" in p for p in fix.problems)
    assert not result.passed


def test_an_invalid_replay_is_a_problem_not_a_silent_pass() -> None:
    counts = {"arrived": 800, "completed": 500, "db_1040": 300}
    measured = {
        "persistent": [counts] * 2,
        "per_request": [{"arrived": 800, "completed": 800}] * 2,
    }
    live = Fake(measured, invalid=frozenset({("persistent", 1)}))
    result = run_story(_two_variant_story(), live, _predicted, repetitions=2, say=lambda _: None)
    assert result.variants[0].problems == ["replication 1 not a valid measurement: late sends"]
    assert not result.passed


def test_an_invalid_replay_is_replayed_up_to_the_bound_then_reported() -> None:
    """A replay whose load generator lagged is replayed (the same replication),
    at most ``repeats`` more times; one valid attempt is kept, a replay never
    valid is reported. Validity is the replay's own, not the comparison's."""
    counts = {"arrived": 800, "completed": 500, "db_1040": 300}
    measured = {
        "persistent": [counts] * 2,
        "per_request": [{"arrived": 800, "completed": 800}] * 2,
    }

    class LateOnce(Fake):
        def __call__(self, scenario: Scenario, replication: int) -> Counts:
            got = super().__call__(scenario, replication)
            first = self.calls.count(self.calls[-1]) == 1
            if self.calls[-1] == ("persistent", 1) and first:
                self.last_notes = {"valid": False, "problems": ["late sends"]}
            return got

    said: list[str] = []
    live = LateOnce(measured)
    result = run_story(_two_variant_story(), live, _predicted, repetitions=2, say=said.append)
    assert live.calls.count(("persistent", 1)) == 2
    assert result.variants[0].problems == [] and result.passed
    assert result.variants[0].repetitions[1].notes["attempt"] == 2
    assert any("late sends" in s and "replaying replication 1 again" in s for s in said)

    always = Fake(measured, invalid=frozenset({("persistent", 1)}))
    result = run_story(
        _two_variant_story(), always, _predicted, repetitions=2, say=lambda _: None, repeats=1
    )
    assert always.calls.count(("persistent", 1)) == 2  # once, and one repeat
    assert result.variants[0].problems == ["replication 1 not a valid measurement: late sends"]


def test_report_files_hold_every_repetition_and_verdict(tmp_path: Path) -> None:
    measured = {
        "persistent": [{"arrived": 800, "completed": 505, "db_1040": 295}] * 3,
        "per_request": [{"arrived": 800, "completed": 800}] * 3,
    }
    result = run_story(
        _two_variant_story(), Fake(measured), _predicted, repetitions=3, say=lambda _: None
    )
    assert result.passed
    paths = report.write(result, tmp_path / "out")
    data = json.loads(paths[0].read_text())
    assert data["passed"] is True and data["repetitions"] == 3
    metric = data["variants"][0]["metrics"][1]
    assert metric["metric"] == "requests.db_1040" and metric["verdict"] == "within"
    assert metric["predicted"] == [300.0] * 3 and metric["measured"] == [295.0] * 3
    assert math.isclose(metric["mean_error"], 5 / 295)
    md = paths[1].read_text()
    assert "| persistent | db_1040 | 300.0 | 295.0 | +1.7% ± 0.0% | 25% | within |" in md
    assert "per_request, replication 2: arrived 800/800, completed 800/800" in md


def test_cli_lists_refuses_unknown_and_runs_with_a_fake_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["story", "list"])
    assert listed.exit_code == 0 and "too-many-connections" in listed.output
    unknown = runner.invoke(app, ["story", "nope"])
    assert unknown.exit_code == 2 and "no story 'nope'" in unknown.output

    class Live:
        def __init__(self, port: int, say: object) -> None:
            self.model = ModelSide()
            self.last_notes = {"valid": True, "problems": []}

        def __call__(self, scenario: Scenario, replication: int) -> Counts:
            return self.model(scenario, replication)

    monkeypatch.setattr(sides, "StackSide", Live)
    monkeypatch.setattr("lbsim.validation.machine.machine", lambda: {"cpu": "test", "cores": 2})
    out = tmp_path / "story"
    done = runner.invoke(
        app,
        [
            "story",
            "too-many-connections",
            "--repetitions",
            "2",
            "--duration",
            "10",
            "--out",
            str(out),
        ],
    )
    assert done.exit_code == 0, done.output
    data = json.loads((out / "story.json").read_text())
    assert [v["name"] for v in data["variants"]] == ["persistent", "per_request", "fewer_workers"]
    assert data["duration"] == 10 and data["passed"]
    bad = runner.invoke(app, ["story", "too-many-connections", "--repetitions", "0"])
    assert bad.exit_code == 2


# -- story 1: heavy users vs policy (the paired, calibrated comparison) --------------


def _replay(rep: int, pred: tuple[float, float], meas: tuple[float, float]) -> Replay:
    from lbsim.validation.accuracy import compare

    def tree(mean: float, p95: float) -> dict[str, object]:
        lat = {"mean": mean, "p95": p95}
        return {
            "throughput": 10.0,
            "latency": lat,
            "classes": {"browse": {"latency": lat}, "report": {"latency": {"mean": 1.0, "p95": 2}}},
        }

    p, m = tree(*pred), tree(*meas)
    bg = PhaseBackground("t", 60.0, 0.1, 0.1, 0.1)
    return Replay(0.7, 10.0, rep, 23 + rep, p, m, compare("s", "70%", p, m), bg)


def test_policy_differences_are_paired_per_repetition_and_ranked() -> None:
    rr = [_replay(r, (0.30, 1.2), (0.32, 1.3)) for r in range(3)]
    lc = [_replay(r, (0.15, 0.6), (0.16, 0.62)) for r in range(3)]
    diffs = differences("s", "rr", "lc", rr, lc)
    mean = next(d for d in diffs if d.metric == "latency.mean")
    assert mean.predicted == pytest.approx([-0.15] * 3)
    assert mean.measured == pytest.approx([-0.16] * 3)
    assert mean.errors[0] == pytest.approx((-0.15 + 0.16) / 0.16)
    assert mean.verdict == "within"
    classes = class_metrics("s", "rr", rr)
    assert {c.metric for c in classes} == {
        "classes.browse.latency.mean",
        "classes.browse.latency.p95",
        "classes.report.latency.mean",
        "classes.report.latency.p95",
    }
    result = PoliciesResult(
        _heavy_users(), ("rr", "lc"), 0.7, 10.0, 14.0, None,  # type: ignore[arg-type]
        replays={"rr": rr, "lc": lc},
    )  # fmt: skip
    assert result.ranking("predicted", "latency.mean") == ["lc", "rr"]
    assert result.ranking("measured", "latency.p95") == ["lc", "rr"]
    result.metrics = {"rr": classes}
    result.differences = diffs
    assert result.passed
    rr[1].problems.append("sends lagged their schedule")
    assert result.not_valid() == ["rr r2: sends lagged their schedule"] and not result.passed


def _heavy_users() -> Scenario:
    return load_scenario(catalogue.HEAVY_USERS.file)


def test_policies_report_names_ranking_differences_and_replays(tmp_path: Path) -> None:
    rr = [_replay(r, (0.30, 1.2), (0.32, 1.3)) for r in range(3)]
    lc = [_replay(r, (0.15, 0.6), (0.34, 1.35)) for r in range(3)]  # the model over-sells lc
    result = PoliciesResult(
        _heavy_users(), ("rr", "lc"), 0.7, 10.0, 14.0, None,  # type: ignore[arg-type]
        replays={"rr": rr, "lc": lc},
    )  # fmt: skip
    result.metrics = {p: class_metrics("s", p, r) for p, r in result.replays.items()}
    result.differences = differences("s", "rr", "lc", rr, lc)
    assert not result.passed  # predicted Δ -150 ms vs measured +20 ms: a miss
    paths = policies_report.write(result, tmp_path, "heavy-users", "T", "about")
    md = paths[1].read_text()
    assert "| latency.mean | lc < rr | rr < lc |" in md
    assert "| lc - rr | latency.mean | -150 ms | 20 ms |" in md
    data = json.loads(paths[0].read_text())
    assert data["ranking"]["measured.latency.mean"] == ["rr", "lc"]
    assert data["passed"] is False and len(data["replays"]["lc"]) == 3


def test_a_reports_verdict_line_says_what_passing_means() -> None:
    """A failed story's report read "NOT passed (no significant miss, every
    replay valid)", as if it had no miss; the parenthesis states the criterion."""
    means = "no significant miss, every replay valid"
    assert verdict_line(False, means) == (
        "Verdict: **NOT passed** (passed means: no significant miss, every replay valid)."
    )
    assert verdict_line(True, means).startswith("Verdict: **passed** (passed means: ")
