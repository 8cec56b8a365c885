"""Story read-your-write without Docker: the visibility lag calibrated from the
poll probe, the measured and predicted values, the verdicts (sync_wait never
stale), the stack side with fake probes and stack, the report and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lbsim.cli.app import app
from lbsim.scenario.database import Galera
from lbsim.scenario.loader import load_scenario
from lbsim.scenario.schema import Scenario
from lbsim.validation import lifecycle
from lbsim.validation.probe import ProbeResult
from lbsim.validation.stories import catalogue
from lbsim.validation.stories import readback as rb
from lbsim.validation.stories.catalogue import ReadbackStory
from lbsim.validation.stories.readback import (
    BOUNDS,
    Measurement,
    ProbeStackSide,
    calibrated,
    measured_values,
    predicted_values,
    run_readback,
)
from lbsim.validation.visibility import VisibilityPoll, VisibilityProbe

STORY = catalogue.READ_YOUR_WRITE


def _probe(sync: bool, stale: int, read: float, p95: float, write: float = 0.001) -> ProbeResult:
    return ProbeResult(1000, stale, stale / 1000, sync, read, p95, 0, write)


def test_the_visibility_lag_is_calibrated_as_lbsim_calibrate_does() -> None:
    sc = STORY.scenario()
    cal = calibrated(sc, [0.0] * 9 + [0.0004]).scenario
    db = cal.database
    assert isinstance(db, Galera) and isinstance(sc.database, Galera)
    assert db.apply is not None and db.apply.mean == 0.0
    assert db.receive == sc.database.apply  # the others' CPU, off the path to visibility
    assert db.visibility_lag is not None
    # commit + each lag past the OK: 0.5 ms nine times in ten, 0.9 ms once
    assert db.visibility_lag.mean == pytest.approx(0.0005 + 0.00004)
    assert db.commit == sc.database.commit and db.replication_delay == sc.database.replication_delay
    with pytest.raises(ValueError, match="Galera"):
        calibrated(load_scenario(catalogue.TOO_MANY_CONNECTIONS.file), [0.0])


def test_the_round_trips_are_calibrated_from_the_timing_probe() -> None:
    """Write 0.9 ms, read 0.3 ms, sync_wait +0.05 ms: the causal read waits one
    group round (replication_delay), the write's rest is its execution and commit;
    the model's probe then takes those times back (no late writes)."""
    sc = STORY.scenario()
    timing = rb.Timing(0.0009, 0.0003, 0.00005)
    model = calibrated(sc, [0.0] * 100, timing)
    db = model.scenario.database
    assert isinstance(db, Galera)
    hops = 2 * sc.network.app_db.mean
    assert db.replication_delay.mean == pytest.approx(0.00005)
    assert model.read_time == pytest.approx(0.0003 - hops)
    assert model.write_time + db.commit.mean == pytest.approx(0.0009 - hops - 0.00005)
    got = predicted_values(model, "db1", "db2", 0, duration=5.0)
    assert got["async.cycle_mean"] == pytest.approx(0.0009 + 0.0003, rel=0.02)
    assert got["cost.mean"] == pytest.approx(0.00005, rel=0.05)
    assert got["async.stale_fraction"] == 0.0 and got["sync.stale_fraction"] == 0.0
    # a write faster than its two hops and the group round: no negative commit
    fast = calibrated(sc, [0.0], rb.Timing(0.0001, 0.00005, 0.0001))
    assert fast.scenario.database.commit.mean == 0.0  # type: ignore[union-attr]
    assert fast.read_time == rb.LEAST_TIME and fast.write_time == rb.LEAST_TIME


def test_the_group_round_is_a_lognormal_with_the_measured_p95() -> None:
    import math

    assert rb.group_round(0.00005, 0.00004) == 0.00005  # no tail beyond the mean
    spec = rb.group_round(0.00005, 0.0001)
    assert isinstance(spec, dict) and spec["dist"] == "lognormal" and spec["mean"] == 0.00005
    sigma = math.sqrt(math.log1p(spec["cv"] ** 2))
    mu = math.log(spec["mean"]) - sigma**2 / 2
    assert math.exp(mu + 1.645 * sigma) == pytest.approx(0.0001, rel=1e-3)
    capped = rb.group_round(0.00005, 0.01)  # 200x the mean: capped, still a lognormal
    assert isinstance(capped, dict) and math.isfinite(capped["cv"])
    sc = STORY.scenario()
    model = calibrated(sc, [0.0] * 10, rb.Timing(0.0009, 0.0003, 0.00005, 0.0, 0.0001))
    delay = model.scenario.database.replication_delay  # type: ignore[union-attr]
    assert delay.mean == pytest.approx(0.00005) and delay.cv > 0.5


def test_the_share_of_late_writes_comes_from_the_timing_probe() -> None:
    """The poll probe saw 20 % of its writes late, the plain timing probe 5 %
    stale: the model keeps the late lags' shape at a 5 % share. (Lags shorter
    than a probe cycle, as measured: a longer one would hold back the next
    writes too, visibility being in seqno order.)"""
    sc = STORY.scenario()
    lags = [0.0] * 80 + [0.0003] * 10 + [0.0005] * 10
    model = calibrated(sc, lags, rb.Timing(0.0009, 0.0003, 0.00005, 0.05))
    lag = model.scenario.database.visibility_lag  # type: ignore[union-attr]
    commit = model.scenario.database.commit.mean  # type: ignore[union-attr]
    assert lag is not None and lag.weights == pytest.approx([0.95, 0.025, 0.025])
    assert lag.values == pytest.approx([commit, commit + 0.0003, commit + 0.0005], abs=1e-5)
    got = predicted_values(model, "db1", "db2", 0, duration=5.0)
    assert got["async.stale_fraction"] == pytest.approx(0.05, abs=0.02)
    # nothing stale in the timing probe: every write on time, the lag is the commit
    none = calibrated(sc, lags, rb.Timing(0.0009, 0.0003, 0.00005, 0.0))
    assert none.scenario.database.visibility_lag.mean == pytest.approx(commit, abs=1e-5)  # type: ignore[union-attr]


def test_the_measured_values_come_from_the_two_probes() -> None:
    got = measured_values(_probe(False, 30, 0.0002, 0.0004), _probe(True, 0, 0.0005, 0.0009))
    assert got == pytest.approx(
        {
            "async.stale_fraction": 0.03,
            "sync.stale_fraction": 0.0,
            "async.cycle_mean": 0.0012,
            "sync.cycle_mean": 0.0015,
            "cost.mean": 0.0003,
            "cost.p95": 0.0005,
        }
    )


def test_the_model_reads_stale_as_often_as_the_calibrated_writes_showed_late() -> None:
    sc = STORY.scenario()
    on_time = predicted_values(calibrated(sc, [0.0] * 100), "db1", "db2", 0, duration=5.0)
    assert on_time["async.stale_fraction"] == 0.0
    late = predicted_values(calibrated(sc, [0.0] * 80 + [0.001] * 20), "db1", "db2", 0, 5.0)
    assert late["async.stale_fraction"] == pytest.approx(0.2, abs=0.03)
    for got in (on_time, late):
        assert got["sync.stale_fraction"] == 0.0
        assert got["cost.mean"] > 0.0001
        assert got["sync.cycle_mean"] > got["async.cycle_mean"]
    # writes on time: a causal read waits a group round (replication_delay 0.15 ms);
    # the write's part of the cycle varies a little (the host's CPU is shared)
    assert on_time["cost.mean"] == pytest.approx(0.00015, rel=0.05)
    # waiting for the late writes costs more
    assert late["cost.mean"] > on_time["cost.mean"]


def _values(**change: float) -> dict[str, float]:
    base = {
        "async.stale_fraction": 0.03,
        "sync.stale_fraction": 0.0,
        "async.cycle_mean": 0.0012,
        "sync.cycle_mean": 0.0014,
        "cost.mean": 0.0002,
        "cost.p95": 0.0003,
    }
    return base | {k.replace("_", ".", 1): v for k, v in change.items()}


class _Fake:
    """A measurement per replication and the model's values, both canned."""

    def __init__(self, measured: list[dict[str, float]], predicted: dict[str, float]) -> None:
        self.measured = measured
        self.predicted = predicted
        self.calibrated: list[Scenario] = []

    def measure(self, story: ReadbackStory, sc: Scenario, r: int) -> Measurement:
        return Measurement(self.measured[r], [0.0, 0.0004], {"valid": True, "problems": []})

    def predict(self, story: ReadbackStory, model: rb.ProbeModel, r: int) -> dict[str, float]:
        self.calibrated.append(model.scenario)
        return self.predicted


def test_the_verdicts_and_a_stale_sync_wait_read() -> None:
    fake = _Fake([_values(), _values(), _values()], _values(cost_mean=0.00021))
    said: list[str] = []
    good = run_readback(STORY, fake.measure, fake.predict, repetitions=3, say=said.append)
    assert good.passed and not good.problems
    assert [m.metric for m in good.metrics] == list(BOUNDS)
    cost = good.metrics[list(BOUNDS).index("cost.mean")]
    assert cost.errors == pytest.approx([0.05] * 3) and cost.verdict == "within"
    # each repetition's model is calibrated from that repetition's lags
    lag = fake.calibrated[0].database.visibility_lag  # type: ignore[union-attr]
    assert lag is not None and lag.mean == pytest.approx(0.0005 + 0.0002)
    stale = _Fake([_values(), _values(sync_stale_fraction=0.002)], _values(cost_mean=0.0004))
    bad = run_readback(STORY, stale.measure, stale.predict, repetitions=2, say=said.append)
    assert not bad.passed
    assert bad.problems == ["a sync_wait read was stale (measured, replication 1: 0.0020)"]
    verdicts = {m.metric: m.verdict for m in bad.metrics}
    assert verdicts["cost.mean"] == "miss"  # +100 % both times: no noise, a miss
    assert verdicts["sync.stale_fraction"] == "within"  # 0.002 is within 0.02, still a problem
    with pytest.raises(ValueError, match="at least 1"):
        run_readback(STORY, fake.measure, fake.predict, repetitions=0)
    # a cost of tens of microseconds: its error is judged over a read's time
    small = _Fake([_values(cost_mean=0.00003)] * 3, _values(cost_mean=0.00006))
    tiny = run_readback(STORY, small.measure, small.predict, repetitions=3, say=said.append)
    cost = tiny.metrics[list(BOUNDS).index("cost.mean")]
    assert cost.floor == rb.COST_FLOOR == 2e-4
    assert cost.errors == pytest.approx([0.15] * 3) and cost.verdict == "within"  # +30 us of 0.2 ms


def _polls(n: int, late: int) -> VisibilityProbe:
    polls = [VisibilityPoll(0, None, 0.0001)] * (n - late) + [VisibilityPoll(1, 0.0, 0.0004)] * late
    return VisibilityProbe(_probe(False, late, 0.0002, 0.0003), tuple(polls), 0.5, False)


def test_the_stack_side_polls_then_probes_both_ways_on_a_fresh_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Any] = []

    def up(sc: Scenario, options: Any) -> Any:
        calls.append("up")
        return type("Handle", (), {"url": "http://127.0.0.1:18094"})()

    def probe(url: str, w: str, r: str, n: int, sync: bool, key: int) -> ProbeResult:
        calls.append(("sync" if sync else "async", key))
        if sync and n == 13:
            raise OSError("the stack went away")
        return _probe(sync, 0 if sync else 40, 0.0005 if sync else 0.0002, 0.001)

    monkeypatch.setattr(lifecycle, "up", up)
    monkeypatch.setattr(lifecycle, "down", lambda sc, options: calls.append("down"))

    def poll(*args: Any, **kwargs: Any) -> VisibilityProbe:
        calls.append("poll")
        return _polls(10, 2)

    monkeypatch.setattr(rb, "poll_visibility", poll)
    monkeypatch.setattr(rb, "probe_stale_reads", probe)
    side = ProbeStackSide(18094, say=lambda _: None)
    got = side(STORY, STORY.scenario(), 0)
    assert calls == [
        "up",
        ("async", rb.WARMUP_KEY),
        ("async", rb.TIMING_ASYNC_KEY),
        ("sync", rb.TIMING_SYNC_KEY),
        "poll",
        ("async", rb.ASYNC_KEY),
        ("sync", rb.SYNC_KEY),
        "down",
    ]
    # the timing probe: write 1 ms, read 0.2 ms, sync_wait's extra 0.3 ms
    assert got.timing == rb.Timing(0.001, 0.0002, pytest.approx(0.0003), 0.04)
    assert got.values["async.stale_fraction"] == 0.04 and got.values["sync.stale_fraction"] == 0
    assert got.values["cost.mean"] == pytest.approx(0.0003)
    # two of ten writes showed 2 x app_db + 0.2 ms after the OK
    assert sorted(got.lags)[-2:] == pytest.approx([0.00032, 0.00032])
    assert got.notes["valid"] and got.notes["probes"]["async"]["stale"] == 40
    calls.clear()
    side(STORY, STORY.scenario(), 1)  # odd repetitions: with sync_wait first
    assert calls[5][0] == "sync"
    calls.clear()
    with pytest.raises(OSError, match="went away"):
        side(ReadbackStory("x", "x", STORY.file, n=13), STORY.scenario(), 0)
    assert calls[-1] == "down"  # taken down also when the probe fails


def test_the_report_and_the_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = _Fake([_values(), _values()], _values(cost_mean=0.00021))

    class FakeSide:
        def __init__(self, port: int, say: Any) -> None:
            pass

        def __call__(self, story: ReadbackStory, sc: Scenario, r: int) -> Measurement:
            return fake.measure(story, sc, r)

    monkeypatch.setattr(rb, "ProbeStackSide", FakeSide)
    monkeypatch.setattr(rb, "model_side", fake.predict)
    monkeypatch.setattr("lbsim.validation.machine.machine", lambda: {"cpu": "test", "cores": 2})
    runner = CliRunner()
    assert "read-your-write" in runner.invoke(app, ["story", "list"]).output
    out = tmp_path / "ryw"
    done = runner.invoke(app, ["story", "read-your-write", "--repetitions", "2", "--out", str(out)])
    assert done.exit_code == 0, done.output
    data = json.loads((out / "story.json").read_text())
    assert data["passed"] and len(data["runs"]) == 2
    assert {m["metric"] for m in data["metrics"]} == set(BOUNDS)
    md = (out / "story.md").read_text()
    assert "| sync_wait's cost: read-back mean (ms) | 0.210 | 0.200 | +5.0%" in md
    assert "Calibrated in the same run: `visibility_lag`" in md
