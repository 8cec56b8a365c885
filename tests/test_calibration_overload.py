"""The calibration's 95 % and overload levels without Docker: the bounds of the
issue, failures of each kind counted alike on both sides (recorded requests,
the model's results), their pairing and verdicts near zero, the overload
replay's bounded client timeout (a fake replay), the per-level windows and
their cost, and the report's overload section."""

from __future__ import annotations

import inspect
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

import lbsim
from lbsim.validation.accuracy import (
    BOUNDS,
    FAILURE_FLOOR,
    OVERLOAD_BOUNDS,
    MetricError,
    compare,
    error,
)
from lbsim.validation.background import PhaseBackground
from lbsim.validation.failures import (
    FAILURE_KEYS,
    answered_by_horizon,
    fractions,
    predicted_counts,
    with_failures,
)
from lbsim.validation.levels import (
    OVERLOAD_TIMEOUT,
    Replay,
    cost_minutes,
    is_overload,
    judge,
    level_overrides,
    replay_duration,
)
from lbsim.validation.loadgen import CONNECT_ERROR, NOT_SENT, TIMEOUT, Record
from lbsim.validation.paired import pair, signed_error

pytestmark = pytest.mark.unit

MIXED = Path("scenarios/mixed.yaml")


# ---------------------------------------------------------------- the bounds
def test_the_bounds_are_the_issues() -> None:
    got = {b.metric: (b.kind, b.limit) for b in BOUNDS}
    assert got == {
        "throughput": ("relative", 0.03),
        "latency.mean": ("relative", 0.15),
        "latency.p95": ("relative", 0.25),
        "utilisation.app.*.cpu": ("absolute", 0.05),
        "galera.flow_control.paused": ("absolute", 0.05),
        "galera.stale_read_fraction": ("absolute", 0.02),
    }
    over = {b.metric: (b.kind, b.limit, b.floor) for b in OVERLOAD_BOUNDS}
    assert over == {
        "throughput": ("relative", 0.15, 0.0),
        "failures.*": ("relative", 0.15, FAILURE_FLOOR),
    }


def test_the_default_levels_reach_95_percent_and_overload() -> None:
    from lbsim.cli.validate import calibrate
    from lbsim.validation.campaign import CampaignOptions

    levels = CampaignOptions().levels
    assert levels == (0.3, 0.6, 0.85, 0.95, 1.1)
    default = inspect.signature(calibrate).parameters["levels"].default
    assert tuple(float(x) for x in default.split(",")) == levels
    assert [is_overload(lv) for lv in levels] == [False] * 4 + [True]
    assert not is_overload(1.0)


# ---------------------------------------------------------------- windows and cost
def test_each_level_measures_min_requests_in_its_own_window() -> None:
    capacity = 14.2  # mixed on the quiet 2-core machine
    rates = [round(lv * capacity, 3) for lv in (0.3, 0.6, 0.85, 0.95, 1.1)]
    durations = [replay_duration(r, 60.0, 2000) for r in rates]
    assert durations == [470.0, 235.0, 166.0, 149.0, 129.0]
    assert all(d * r >= 2000 for d, r in zip(durations, rates, strict=True))
    assert replay_duration(40.0, 60.0, 2000) == 60.0
    assert replay_duration(4.0, 60.0, 0) == 60.0
    # 3 repetitions of 10 s warm-up + window + 5 s each: about an hour, less
    # than the three old levels at the lowest level's window (3 x 3 x 485 s)
    cost = cost_minutes(durations, 3, 10.0)
    assert cost == pytest.approx(3 * (1149 + 5 * 15) / 60)
    assert cost < 9 * (10 + 470 + 5) / 60
    assert replay_duration(0.0, 60.0, 2000) == 60.0


def test_an_overload_level_bounds_the_client_timeout_on_both_sides() -> None:
    mixed = lbsim.load_scenario(MIXED)
    assert mixed.workload.timeout == 30.0
    assert level_overrides(mixed, 1.1) == []  # its own timeout already bounds the wait
    bare = lbsim.load_scenario(MIXED, ["workload.timeout=null"])
    assert bare.workload.timeout is None
    assert level_overrides(bare, 0.95) == []
    assert level_overrides(bare, 1.1) == [f"workload.timeout={OVERLOAD_TIMEOUT:g}"]


# ---------------------------------------------------------------- failures, both sides
def _rec(i: int, at: float, status: int, latency: float, db_error: int = 0) -> Record:
    return Record(i, "browse", 1, at, sent=at, latency=latency, status=status, db_error=db_error)


def _recorded() -> tuple[Any, list[Record]]:
    sc = lbsim.load_scenario(MIXED, ["warmup=10", "duration=100"])  # horizon 110
    recs = [
        _rec(0, 5.0, 502, 0.01),  # before the warm-up: not counted
        _rec(1, 20.0, 200, 0.5),
        _rec(2, 21.0, 200, 0.5),
        _rec(3, 22.0, 502, 0.01),
        _rec(4, 23.0, 503, 1.0),
        _rec(5, 24.0, 504, 60.0),
        _rec(6, 30.0, TIMEOUT, 30.0),
        _rec(7, 31.0, CONNECT_ERROR, 0.001),  # the model has no such reason: "other"
        _rec(8, 32.0, 500, 0.1, db_error=1213),  # a deadlock: "other"
        _rec(9, 100.0, TIMEOUT, 30.0),  # answered after the horizon: in flight
        _rec(10, 101.0, 200, 20.0),  # also after the horizon
        Record(11, "browse", 1, 50.0),  # not sent: not counted
        _rec(12, 110.0, 200, 0.1),  # at the horizon: outside the window
    ]
    return sc, recs


def test_failures_are_counted_by_the_horizon_as_the_model_counts_them() -> None:
    sc, recs = _recorded()
    assert recs[11].status == NOT_SENT
    counts = answered_by_horizon(sc, recs)
    assert counts == {
        "arrived": 10,
        "completed": 2,
        "http_502": 1,
        "http_503": 1,
        "http_504": 1,
        "timeout": 1,
        "connect_error": 1,
        "db_1213": 1,
        "in_flight": 2,
    }
    shares = fractions(counts)
    assert tuple(shares) == FAILURE_KEYS
    assert shares == pytest.approx(
        {
            "http_502": 0.1,
            "http_503": 0.1,
            "http_504": 0.1,
            "timeout": 0.1,
            "other": 0.2,
            "total": 0.6,
        }
    )
    assert fractions({"arrived": 0}) == {}  # nothing arrived: nothing to compare


def test_the_models_counts_give_the_same_blocks() -> None:
    results = {
        "throughput": 9.0,
        "requests": {
            "arrived": 200,
            "completed": 170,
            "in_flight": 10,
            "failed": {
                "timeout": 12,
                "http_502": 0,
                "http_503": 4,
                "http_504": 0,
                "db_1213": 4,
                "total": 20,
            },
        },
    }
    counts = predicted_counts(results)
    assert counts["arrived"] == 200 and counts["in_flight"] == 10 and "total" not in counts
    out = with_failures(results, counts)
    assert out["failures"] == pytest.approx(
        {
            "http_502": 0.0,
            "http_503": 0.02,
            "http_504": 0.0,
            "timeout": 0.06,
            "other": 0.02,
            "total": 0.1,
        }
    )
    assert out["answered"] == counts and "failures" not in results  # a copy
    assert with_failures(results, {"arrived": 0}) is results


def test_a_simulated_overload_carries_every_failure_key() -> None:
    """The model at twice a small capacity with a short client timeout: its
    results give the blocks the replay's give, and they add up."""
    sc = lbsim.load_scenario(
        MIXED,
        [
            "warmup=5",
            "duration=40",
            "workload.open.rate=40",
            "app.cores=0.25",
            "workload.timeout=2",
        ],
    )
    from lbsim.experiment.run import simulate

    results = simulate(sc, replications=1).to_dict()
    res = with_failures(results, predicted_counts(results))
    shares, counts = res["failures"], res["answered"]
    assert set(shares) == set(FAILURE_KEYS)
    assert shares["timeout"] > 0.05  # the client gave up on a good part
    assert shares["total"] == pytest.approx(
        sum(shares[k] for k in FAILURE_KEYS if k != "total"), abs=1e-12
    )
    failed = counts["arrived"] - counts["completed"] - counts["in_flight"]
    assert shares["total"] == pytest.approx(failed / counts["arrived"])


# ---------------------------------------------------------------- comparison and verdicts
def _overload_pair(p: dict[str, float], m: dict[str, float], tp: float = 10.0) -> list[MetricError]:
    pred = {"throughput": tp, "latency": {"mean": 9.0}, "failures": p}
    meas = {"throughput": 10.0, "latency": {"mean": 1.0}, "failures": m}
    return judge("s", 1.1, pred, meas)


def test_an_overload_level_is_judged_by_throughput_and_each_failure_kind() -> None:
    zero = dict.fromkeys(FAILURE_KEYS, 0.0)
    errs = {e.metric: e for e in _overload_pair(zero, zero, tp=11.4)}
    assert set(errs) == {"throughput", *(f"failures.{k}" for k in FAILURE_KEYS)}
    assert errs["throughput"].bound == 0.15 and errs["throughput"].ok  # 14 % is within 15 %
    # no failure on either side: no error, no NaN, no division by zero
    assert all(errs[f"failures.{k}"].error == 0.0 for k in FAILURE_KEYS)
    assert all(errs[f"failures.{k}"].floor == FAILURE_FLOOR for k in FAILURE_KEYS)
    # latency is not judged above capacity (it grows with the window)
    assert "latency.mean" not in errs
    # a level up to capacity keeps every bound
    below = judge(
        "s",
        0.95,
        {"throughput": 10.0, "latency": {"mean": 0.1}},
        {"throughput": 10.0, "latency": {"mean": 0.1}},
    )
    assert {e.metric for e in below} == {"throughput", "latency.mean"}
    assert next(e for e in below if e.metric == "throughput").bound == 0.03


def test_a_failure_share_near_zero_is_measured_against_the_floor() -> None:
    # 0.1 % predicted, 0 measured: 0.001 / 0.02 = 5 %, within 15 %
    assert error(0.001, 0.0, "relative", FAILURE_FLOOR) == pytest.approx(0.05)
    assert signed_error(0.0, 0.001, "relative", FAILURE_FLOOR) == pytest.approx(-0.05)
    # 1 % predicted, 0 measured: 50 %, a miss of half a percent point... of 2 %
    assert error(0.01, 0.0, "relative", FAILURE_FLOOR) == pytest.approx(0.5)
    # above the floor, relative to the measured share
    assert error(0.092, 0.08, "relative", FAILURE_FLOOR) == pytest.approx(0.15)
    assert signed_error(0.0, 0.0, "relative", FAILURE_FLOOR) == 0.0
    assert math.isinf(error(0.001, 0.0, "relative"))  # without a floor: infinite
    assert math.isnan(error(math.nan, 0.0, "relative", FAILURE_FLOOR))


def test_paired_failure_verdicts_at_the_new_bounds() -> None:
    zero = dict.fromkeys(FAILURE_KEYS, 0.0)

    def share(timeout: float) -> dict[str, float]:
        return {**zero, "timeout": timeout, "total": timeout}

    # none on either side in every replay: within, a zero-width interval
    calm = {p.metric: p for p in pair([_overload_pair(zero, zero) for _ in range(3)])}
    t = calm["failures.timeout"]
    assert t.n == 3 and t.mean == 0.0 and t.half == 0.0 and t.verdict == "within"
    assert t.to_dict()["floor"] == FAILURE_FLOOR and t.r_needed is None
    # the model predicts no timeout where 8-9 % timed out: a significant miss
    missed = pair([_overload_pair(zero, share(m)) for m in (0.08, 0.09, 0.085)])
    t = {p.metric: p for p in missed}["failures.timeout"]
    assert t.errors == pytest.approx([-1.0, -1.0, -1.0]) and t.verdict == "miss"
    # close on average, noisy across replays: inconclusive, with the R needed
    noisy = pair(
        [_overload_pair(share(p), share(m)) for p, m in ((0.10, 0.08), (0.09, 0.08), (0.10, 0.08))]
    )
    t = {p.metric: p for p in noisy}["failures.timeout"]
    assert t.mean == pytest.approx((0.25 + 0.125 + 0.25) / 3)
    assert t.verdict == "inconclusive" and t.r_needed is not None and t.r_needed > 3
    # throughput saturation: 20 % off in every replay is a miss of the 15 % bound
    sat = {
        p.metric: p for p in pair([_overload_pair(zero, zero, tp=8.0 - 0.01 * i) for i in range(3)])
    }
    assert sat["throughput"].verdict == "miss"


def test_fractions_compare_key_by_key_only_where_both_sides_have_them() -> None:
    pred = {"throughput": 10.0, "failures": {"timeout": 0.01, "total": 0.01}}
    meas = {"throughput": 10.0}
    assert [e.metric for e in compare("s", "110%", pred, meas, OVERLOAD_BOUNDS)] == ["throughput"]


# ---------------------------------------------------------------- a fake overload replay
def test_an_overload_replay_counts_failures_on_both_sides_with_one_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_replay with the stack replaced by recorded answers: the scenario has
    no client timeout, so the replay and the model both get 30 s; both results
    carry the failure blocks and the level is judged by the overload bounds."""
    from lbsim.validation import levels
    from lbsim.validation.campaign import CampaignOptions
    from lbsim.validation.measured import summarise
    from lbsim.validation.replay import ReplayRun
    from tests.test_validation_replay import _calibration

    raw = yaml.safe_load(MIXED.read_text())
    del raw["workload"]["timeout"]
    file = tmp_path / "mixed.yaml"
    file.write_text(yaml.safe_dump(raw, sort_keys=False))
    base = lbsim.load_scenario(file)
    cal = _calibration()
    rate = round(1.1 * cal.capacity(base), 3)
    seen: dict[str, Any] = {}

    def fake_once(
        replayed: Any, handle: Any, c: Any, meter: Any, level: str, send: Any = None
    ) -> Any:
        seen["timeout"], seen["horizon"] = replayed.workload.timeout, replayed.horizon
        n = round(rate * replayed.horizon)
        recs = [
            _rec(i, t, 200 if i % 10 else TIMEOUT, 0.4 if i % 10 else 30.0)
            for i in range(n)
            for t in [i / rate]
        ]
        results = summarise(replayed, recs, {"app1": 10.0, "app2": 10.0})
        results["meta"] = {"loadgen": {"valid": True, "problems": []}}
        bg = PhaseBackground(level, replayed.duration, 0.0, 0.0, 0.0)
        return ReplayRun(replayed, recs, results), bg

    monkeypatch.setattr(levels, "_replay_once", fake_once)
    one = levels.run_replay(
        file,
        raw,
        base,
        None,
        cal,
        None,  # type: ignore[arg-type]
        CampaignOptions(phase_repeats=0),
        1.1,
        rate,
        0,
        (5.0, 40.0),
        tmp_path,
        lambda _: None,
    )
    assert seen == {"timeout": OVERLOAD_TIMEOUT, "horizon": 45.0}
    model = yaml.safe_load((tmp_path / "level-110-r1.calibrated.yaml").read_text())
    assert model["workload"]["timeout"] == OVERLOAD_TIMEOUT
    for side in (one.measured, one.predicted):
        assert set(side["failures"]) == set(FAILURE_KEYS)
        assert side["answered"]["arrived"] > 0
    # a tenth timed out after 30 s: those sent in the window's first 10 s are answered by
    # the horizon, the others are still in flight there
    m = one.measured["answered"]
    assert m["timeout"] > 0 and m["in_flight"] > 0
    assert {e.metric for e in one.errors} == {
        "throughput",
        *(f"failures.{k}" for k in FAILURE_KEYS),
    }
    saved = json.loads((tmp_path / "level-110-r1-measured.json").read_text())
    assert saved["failures"]["timeout"] == pytest.approx(one.measured["failures"]["timeout"])
    assert "failures" in json.loads((tmp_path / "level-110-r1-predicted.json").read_text())


def test_a_replay_whose_load_generator_lagged_is_replayed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another program took the generator's core: its sends lagged the schedule.
    The replay is repeated (same seed) up to phase_repeats more times, and kept
    as not valid with the reason only when every attempt lagged."""
    from lbsim.validation import levels
    from lbsim.validation.background import Settled
    from lbsim.validation.campaign import CampaignOptions
    from lbsim.validation.measured import summarise
    from lbsim.validation.replay import ReplayRun
    from tests.test_validation_replay import _calibration

    raw = yaml.safe_load(MIXED.read_text())
    base = lbsim.load_scenario(MIXED)
    cal = _calibration()
    rate = round(0.3 * cal.capacity(base), 3)
    late = "sends lagged their schedule (p99 lateness 61.2 ms > 10 ms)"

    still = Settled(5.0, True, 0.1, 0.0)
    settles: list[float] = []

    def fake_settle(meter: Any, most: float) -> Settled:
        settles.append(most)
        return still

    def replay(lagging: int, repeats: int) -> tuple[Any, list[int]]:
        seeds: list[int] = []
        settles.clear()

        def fake_once(
            replayed: Any, handle: Any, c: Any, meter: Any, level: str, send: Any = None
        ) -> Any:
            seeds.append(replayed.seed)
            n = round(rate * replayed.horizon)
            recs = [_rec(i, i / rate, 200, 0.1) for i in range(n)]
            results = summarise(replayed, recs, {"app1": 10.0, "app2": 10.0})
            problems = [late] if len(seeds) <= lagging else []
            results["meta"] = {"loadgen": {"valid": not problems, "problems": problems}}
            return ReplayRun(replayed, recs, results), PhaseBackground(
                level, replayed.duration, 0.0, 0.0, 0.0
            )

        monkeypatch.setattr(levels, "_replay_once", fake_once)
        # between attempts it waits for the machine to hold still (not the first)
        monkeypatch.setattr(levels, "settle", fake_settle)
        one = levels.run_replay(
            MIXED,
            raw,
            base,
            None,
            cal,
            None,  # type: ignore[arg-type]
            CampaignOptions(phase_repeats=repeats),
            0.3,
            rate,
            1,
            (2.0, 20.0),
            tmp_path,
            lambda _: None,
        )
        return one, seeds

    one, seeds = replay(lagging=1, repeats=2)
    assert seeds == [base.seed + 1] * 2 and one.problems == [] and one.background.attempt == 2
    assert settles == [CampaignOptions().settle_seconds]
    one, seeds = replay(lagging=5, repeats=2)
    assert len(seeds) == 3 and one.problems == [late] and len(settles) == 2


# ---------------------------------------------------------------- the report
def _campaign(outdir: Path) -> Any:
    """A campaign at 30, 95 and 110 % with recorded results, 3 replays each."""
    from lbsim.validation.calibration import Calibration, ClassCost
    from lbsim.validation.campaign import CampaignResult, LevelResult
    from lbsim.validation.workplan import MachineCosts

    sc = lbsim.load_scenario(MIXED)
    classes = [
        ClassCost(c.name, 40, 0.01, 0.02, 0.0, 0.005, 0.002, 0.05, 0.04, 0.0, 0.0)
        for c in sc.workload.classes
    ]
    cal = Calibration(MachineCosts(), classes, 2.0, 0.05, background=0.0)

    def counts(timeouts: int, in_flight: int) -> dict[str, int]:
        return {
            "arrived": 1000,
            "completed": 1000 - timeouts - in_flight - 3,
            "in_flight": in_flight,
            "timeout": timeouts,
            "http_502": 3,
            "connect_error": 0,
        }

    def run(level: float, r: int) -> Replay:
        over = is_overload(level)
        lat = {"mean": 0.1 * (20 if over else 1), "p95": 0.3 * (20 if over else 1)}
        measured: dict[str, Any] = {"throughput": 10.0, "latency": lat, "meta": {}}
        predicted: dict[str, Any] = {"throughput": 9.5, "latency": dict(lat)}
        if over:
            measured = with_failures(measured, counts(80 + r, 40))
            predicted = with_failures(predicted, counts(70 + 2 * r, 50))
        errors = judge("mixed", level, predicted, measured)
        bg = PhaseBackground(f"{level:.0%} r{r + 1}", 60.0, 0.5, 0.5, 0.5)
        return Replay(level, 10.0 * level, r, 7 + r, predicted, measured, errors, bg)

    levels = [
        LevelResult.of(lv, round(10 * lv, 3), [run(lv, r) for r in range(3)])
        for lv in (0.3, 0.95, 1.1)
    ]
    return CampaignResult(sc, cal, 10.0, levels, outdir=outdir)


def test_the_report_shows_the_95_percent_level_and_the_overloads_failures(tmp_path: Path) -> None:
    from lbsim.validation.report import write_report

    result = _campaign(tmp_path)
    write_report(result)
    text = (tmp_path / "report.md").read_text()
    assert "### 95% of capacity: 9.5 requests/s, 3 valid replays of 3" in text
    assert "### 110% of capacity (overload): 11 requests/s" in text
    # 95 %: the new bound of throughput; 110 %: the failures, predicted vs measured
    assert "| throughput | 9.50/s | 10.00/s | -5.0% ± 0.0% | 3% | ✗ miss |  |" in text
    assert "| failures.http_502 | 0.30% | 0.30% | +0.0% ± 0.0% | 15% (of ≥ 2%) | ✓ within |" in text
    assert "| failures.timeout | 7.20% | 8.10% | -11.1%" in text
    assert "| predicted | 1000.0 | 875.0 | 50.0 | 3.0 | 0.0 | 0.0 | 72.0 | 0.0 |" in text
    assert "| measured | 1000.0 | 876.0 | 40.0 | 3.0 | 0.0 | 0.0 | 81.0 | 0.0 |" in text
    assert "| p95 (× the lowest level's) | 6000 ms | 6000 ms | ×20.0 | ×20.0 |" in text
    doc = json.loads((tmp_path / "errors.json").read_text())
    timeout = next(p for p in doc["paired"] if p["metric"] == "failures.timeout")
    assert timeout["level"] == "110%" and timeout["n"] == 3 and timeout["ci95"] > 0
    assert timeout["predicted_mean"] == pytest.approx(0.072)
    assert timeout["measured_mean"] == pytest.approx(0.081)
    (over,) = doc["overload"]
    assert over["level"] == 1.1 and over["measured"]["answered"]["timeout"] == 81.0
    assert over["predicted"]["failures"]["timeout"] == pytest.approx(0.072)
    assert over["measured"]["latency"]["mean"]["growth"] == pytest.approx(20.0)
    csv = (tmp_path / "measurements.csv").read_text()
    assert "workload.open.rate,11,failures.timeout,0.081,0.0024" in csv
    assert "workload.open.rate,9.5,latency.p95,0.3," in csv


def test_the_knee_sweep_simulates_each_rate_with_its_replays_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The predicted knee's sweep gives every rate the window a replay at that
    rate gets (lengthened only below the rate that sends min_requests in 60 s)."""
    from lbsim.experiment import run as experiment_run
    from lbsim.validation import levels
    from lbsim.validation.campaign import LevelResult
    from lbsim.validation.knee import campaign_knee
    from tests.test_validation_replay import _calibration

    seen: dict[float, tuple[float, float]] = {}

    def fake_model(*args: Any) -> Any:
        rate, horizon = args[4], args[7]
        seen[rate] = horizon
        return rate

    class Fake:
        def __init__(self, rate: float) -> None:
            self.rate = rate

        def to_dict(self) -> dict[str, Any]:
            return {"latency": {"p95": 0.1 if self.rate < 9 else 0.1 * self.rate}}

    monkeypatch.setattr(levels, "level_model", fake_model)
    monkeypatch.setattr(experiment_run, "simulate", lambda m, replications: Fake(m))
    sc = lbsim.load_scenario(MIXED)
    bg = PhaseBackground("x", 1.0, 0.2, 0.2, 0.2)
    lvs = [
        LevelResult.of(
            lv,
            10.0 * lv,
            [Replay(lv, 10.0 * lv, 0, 7, {}, {"latency": {"p95": 0.1 * lv}}, [], bg)],
        )
        for lv in (0.3, 1.1)
    ]

    def horizon(rate: float) -> tuple[float, float]:
        return 10.0, replay_duration(rate, 60.0, 2000)

    knee = campaign_knee(MIXED, {}, sc, _calibration(), lvs, 10.0, horizon, tmp_path)
    assert len(seen) == 25 and min(seen) == 3.0 and max(seen) == pytest.approx(12.0)
    assert all(h == horizon(rate) for rate, h in seen.items())
    assert seen[3.0] == (10.0, 667.0) and seen[max(seen)] == (10.0, 167.0)
    assert knee["predicted"]["reached"]


def test_calibrate_prints_the_overload_rows_with_their_floor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from lbsim.cli import validate
    from lbsim.cli.app import app

    got: dict[str, Any] = {}

    def fake(file: Path, options: Any, say: Any) -> Any:
        got["levels"] = options.levels
        return _campaign(tmp_path / "report")

    monkeypatch.setattr(validate, "run_campaign", fake)
    out = CliRunner().invoke(
        app, ["calibrate", str(MIXED), "--out", str(tmp_path / "report")], env={"COLUMNS": "200"}
    )
    assert got["levels"] == (0.3, 0.6, 0.85, 0.95, 1.1), out.output
    assert "failures.timeout" in out.output and "15% of ≥ 2%" in out.output
    assert "see the misses" in out.output  # throughput misses its 3 % at 30 and 95 %
