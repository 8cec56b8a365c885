"""Calibration on a busy machine, without Docker: the background accounting (from
recorded /proc/stat and cgroup readings), the phase validity rules and repeats,
the pairing and Student-t arithmetic, the verdicts."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

import lbsim
from lbsim.validation import collectors
from lbsim.validation.accuracy import MetricError
from lbsim.validation.background import (
    SETTLE_MOST,
    CpuReading,
    Meter,
    PhaseBackground,
    Sampler,
    check_phase,
    drift_limit,
    outside_cores,
    phase_background,
    settle,
)
from lbsim.validation.calibration import Calibration, ClassCost, ContainerGroups
from lbsim.validation.calibration import calibrate_scenario as calibrated
from lbsim.validation.levels import cost_minutes, mean_results, replay_duration
from lbsim.validation.lowload import class_cost, measure_idle_phase
from lbsim.validation.paired import (
    PairedMetric,
    half_width,
    pair,
    repetitions_needed,
    signed_error,
    verdict,
)
from lbsim.validation.workplan import MachineCosts, PlannedQuery, PlannedRequest

pytestmark = pytest.mark.unit

MIXED = Path("scenarios/mixed.yaml")


class Machine:
    """A 2-core machine on a virtual clock: the stack's containers, this process
    and other programs each use a number of cores until told otherwise."""

    def __init__(self) -> None:
        self.t = 100.0
        self.host = 5000.0
        self.cg = {"app1": 10.0, "db1": 20.0, "lb": 1.0}
        self.own = 3.0
        self.rates = {"app1": 0.0, "db1": 0.02, "lb": 0.005}
        self.own_rate = 0.0
        self.outside = 0.0  # other programs + what the requests cause outside

    def run(self, seconds: float) -> None:
        for name, rate in self.rates.items():
            self.cg[name] += rate * seconds
        self.own += self.own_rate * seconds
        busy = sum(self.rates.values()) + self.own_rate + self.outside
        self.host += busy * seconds
        self.t += seconds

    def proc_stat(self) -> str:
        ticks = round(self.host * 100)  # USER_HZ 100: user nice system ... as recorded
        user, system = ticks * 2 // 3, ticks - ticks * 2 // 3
        return f"cpu  {user} 0 {system} 777777 1234 0 0 0 0 0\ncpu0 1 0 1 1 0 0 0 0 0 0\n"

    def cpu_stat(self, name: str) -> str:
        return f"usage_usec {round(self.cg[name] * 1e6)}\nuser_usec 1\nsystem_usec 1\n"

    def meter(self) -> Meter:
        # the counters as the collectors parse them from the recorded files
        return Meter(
            lambda: collectors.parse_proc_stat(self.proc_stat(), 100),
            lambda: {n: collectors.parse_cpu_stat(self.cpu_stat(n)) for n in self.cg},
            lambda: self.own,
            lambda: self.t,
        )


def _samples(machine: Machine, steps: list[tuple[float, float]]) -> list[CpuReading]:
    """Readings every 0.5 s while other programs use ``cores`` for ``seconds``, step by step."""
    meter = machine.meter()
    out = [meter.read()]
    for seconds, cores in steps:
        machine.outside = cores
        for _ in range(round(seconds / 0.5)):
            machine.run(0.5)
            out.append(meter.read())
    return out


def test_outside_cores_is_host_busy_minus_the_stack_minus_the_load_generator() -> None:
    m = Machine()
    meter = m.meter()
    a = meter.read()
    m.rates["app1"], m.own_rate, m.outside = 0.6, 0.1, 0.98  # a burner on one core, and more
    m.run(10.0)
    b = meter.read()
    assert outside_cores(a, b) == pytest.approx(0.98, abs=0.002)  # ticks of 10 ms
    assert math.isnan(outside_cores(b, b))


def test_a_steady_burner_is_measured_background_not_a_moved_machine() -> None:
    bg = phase_background("idle", _samples(Machine(), [(6.0, 1.0)]))
    assert bg.cores == pytest.approx(1.0, abs=0.01)
    assert bg.stack == pytest.approx(0.025, abs=1e-6)  # the containers' housekeeping
    assert not check_phase(bg) and bg.valid


def test_a_background_that_moves_inside_the_phase_makes_it_not_valid() -> None:
    bg = phase_background("idle", _samples(Machine(), [(3.0, 0.1), (3.0, 0.6)]))
    assert (bg.start, bg.end) == pytest.approx((0.1, 0.6), abs=0.01)
    problems = check_phase(bg)
    assert len(problems) == 1 and "moved from 0.10 to 0.60" in problems[0]
    assert not bg.valid and bg.to_dict()["drift"] == pytest.approx(0.5, abs=0.01)


def test_a_moved_phase_names_the_hypervisors_steal_in_its_outside_load() -> None:
    # a virtual machine's neighbour took 0.4 core in the phase's second half:
    # outside load (the stack had less of the machine), named as steal
    t, host, steal = [0.0], [0.0], [0.0]

    def tick() -> float:
        return host[0]

    meter = Meter(tick, dict, lambda: 0.0, lambda: t[0], steal=lambda: steal[0])
    samples = [meter.read()]
    for i in range(12):
        stolen = 0.4 if i >= 6 else 0.0
        t[0] += 0.5
        host[0] += (0.1 + stolen) * 0.5
        steal[0] += stolen * 0.5
        samples.append(meter.read())
    bg = phase_background("r1", samples)
    assert (bg.steal_start, bg.steal_end) == pytest.approx((0.0, 0.4))
    assert bg.steal == pytest.approx(0.2)
    (problem,) = check_phase(bg)
    assert "moved from 0.10 to 0.50" in problem and "steal 0.00 to 0.40" in problem
    # without steal the message does not mention it
    quiet = phase_background("r2", _samples(Machine(), [(3.0, 0.1), (3.0, 0.6)]))
    assert quiet.steal == 0.0 and "steal" not in check_phase(quiet)[0]


def test_settle_waits_for_two_windows_in_a_row_that_agree() -> None:
    m = Machine()
    loads = iter([0.1, 0.7, 0.3, 0.32, 0.9])  # a burst, then two windows that agree
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        m.outside = next(loads)
        m.run(seconds)

    got = settle(m.meter(), most=40.0, window=2.5, sleep=sleep)
    assert got.still and got.waited == 10.0 and slept == [2.5] * 4
    assert got.cores == pytest.approx(0.32, abs=0.01)
    # a machine that never holds still: it gives up after ``most`` seconds
    swings = iter([0.1, 0.9] * 20)

    def swinging(seconds: float) -> None:
        m.outside = next(swings)
        m.run(seconds)

    gave_up = settle(m.meter(), most=10.0, window=2.5, sleep=swinging)
    assert not gave_up.still and gave_up.waited == 10.0


def test_the_drift_limit_is_a_quarter_of_the_level_between_005_and_015_core() -> None:
    assert drift_limit(0.0) == 0.05  # a quiet machine: the noise floor
    assert drift_limit(0.4) == pytest.approx(0.10)  # 25 %
    assert drift_limit(1.0) == 0.15  # a burner's core: 0.15 core at most
    quiet = PhaseBackground("x", 5.0, 0.02, 0.01, 0.05)  # +400 % but 0.04 core: noise
    assert not check_phase(quiet)
    busy = PhaseBackground("x", 5.0, 1.0, 0.95, 1.12)  # 0.17 core
    assert check_phase(busy)


def test_a_speed_that_moves_within_a_phase_or_far_off_the_calibration_is_not_valid() -> None:
    """A steady offset (the machine 15 % faster for minutes) is absorbed: the
    phase's model runs at the phase's speed. A speed that moves within the
    phase, or one far off the calibration, makes it not valid."""
    bg = PhaseBackground("60 % r1", 30.0, 0.5, 0.5, 0.5)
    assert not check_phase(bg, 1.09)
    assert not check_phase(bg, 0.84, moved=0.03) and bg.speed == 0.84
    assert check_phase(bg, 1.3) == [
        "a CPU work unit cost ×1.300 its calibrated cost (outside 1 ± 0.25)"
    ]
    assert check_phase(bg, 1.0, moved=-0.12) == [
        "a CPU work unit's cost moved ×0.880 from the first to the last quarter of the "
        "phase (outside 1 ± 0.1)"
    ]
    assert bg.speed == 1.0


def test_the_unit_cost_moved_from_the_first_to_the_last_quarter() -> None:
    from lbsim.validation.loadgen import Record
    from lbsim.validation.measured import unit_cost_moved

    def rec(i: int, per_unit: float) -> Record:
        return Record(
            i, "c", 0, float(i), sent=float(i), status=200, work=per_unit * 100, units=100
        )

    steady = [rec(i, 1e-5) for i in range(40)]
    assert unit_cost_moved(steady) == pytest.approx(0.0)
    slowed = [rec(i, 1e-5 if i < 20 else 1.2e-5) for i in range(40)]
    assert unit_cost_moved(slowed) == pytest.approx(0.2)
    assert math.isnan(unit_cost_moved(steady[:7]))


def test_the_induced_load_is_taken_from_the_mean_and_cancels_in_the_drift() -> None:
    bg = phase_background("85 % r1", _samples(Machine(), [(20.0, 1.3)]), induced=0.3)
    assert bg.cores == pytest.approx(1.0, abs=0.01)
    assert bg.start == pytest.approx(bg.end, abs=0.01)


def test_the_window_is_cut_to_the_replays_measured_part() -> None:
    m = Machine()
    samples = _samples(m, [(5.0, 1.5), (10.0, 0.4), (5.0, 1.5)])  # warm-up, window, drain
    t0 = samples[0].t
    bg = phase_background("w", samples, t0 + 5.0, t0 + 15.0)
    assert bg.seconds == pytest.approx(10.0)
    assert bg.cores == pytest.approx(0.4, abs=0.01)


def test_the_idle_phase_is_repeated_while_the_machine_moves_then_reported() -> None:
    m = Machine()
    loads = iter([(0.2, 0.9), (0.5, 0.5), (0.5, 0.5)])

    steps: list[float] = []

    def sleep(seconds: float) -> None:  # a phase's first half at one load, its second at another
        if not steps:
            steps.extend(next(loads))
            steps[:] = [steps[0]] * 6 + [steps[1]] * 6
        m.outside = steps.pop(0)
        m.run(seconds)

    bg = measure_idle_phase(m.meter(), 6.0, repeats=2, sleep=sleep)
    assert bg.valid and bg.attempt == 2 and bg.cores == pytest.approx(0.5, abs=0.01)

    loads = iter([(0.2, 0.9)] * 3)
    bad = measure_idle_phase(m.meter(), 6.0, repeats=2, sleep=sleep)
    assert bad.attempt == 3 and not bad.valid and "moved" in bad.problems[0]


def _items(n: int) -> list[PlannedRequest]:
    q = (PlannedQuery("r", (1,), 100, 0.002),)
    return [PlannedRequest(i, 0.0, 0, "page", 0, "10.0.0.1", 0.01, 1000, q) for i in range(n)]


def test_a_class_cost_does_not_absorb_another_programs_work() -> None:
    """Ten requests of 20 ms app CPU and 5 ms database CPU each, one at a time,
    while a burner uses 0.9 core; the requests cost the load generator 2 ms
    and docker-proxy 1 ms each; the database keeps its housekeeping."""
    from lbsim.validation.loadgen import Record

    m = Machine()
    m.outside = 0.9
    meter = m.meter()
    snaps, reads = [dict(m.cg)], [meter.read()]
    m.run(2.0)  # the idle gap before
    snaps.append(dict(m.cg))
    reads.append(meter.read())
    span = 1.0  # ten requests in one second
    m.rates["app1"] += 0.2
    m.rates["db1"] += 0.05
    m.own_rate, m.outside = 0.02, 0.9 + 0.01
    m.run(span)
    m.rates["app1"] -= 0.2
    m.rates["db1"] -= 0.05
    m.own_rate, m.outside = 0.0, 0.9
    snaps.append(dict(m.cg))
    reads.append(meter.read())
    m.run(2.0)  # the idle gap after
    snaps.append(dict(m.cg))
    reads.append(meter.read())
    recs = [Record(i, "page", 0, 0.0, latency=0.1, status=200, wall=0.09) for i in range(10)]
    groups = ContainerGroups(("app1",), ("db1",), ("lb",))
    cost, bg = class_cost("page", _items(10), recs, snaps, reads, groups)
    assert bg.cores == pytest.approx(0.9, abs=0.01)
    assert not check_phase(bg)
    assert cost.app_cpu == pytest.approx(0.020, abs=1e-6)
    assert cost.db_cpu == pytest.approx(0.005, abs=1e-6)  # housekeeping not charged
    # other = load generator 2 ms + docker-proxy 1 ms (the burner's 90 ms excluded)
    assert cost.other_cpu == pytest.approx(0.003, abs=0.0006)
    assert cost.induced_cpu == pytest.approx(0.001, abs=0.0006)


def test_capacity_and_the_host_leave_out_the_background() -> None:
    sc = lbsim.load_scenario(MIXED)
    classes = [
        ClassCost(c.name, 40, 0.01, 0.02, 0.0, 0.005, 0.002, 0.05, 0.04, 0.0, 0.0, 0.0, 0.001)
        for c in sc.workload.classes
    ]
    cal = Calibration(MachineCosts(), classes, host_cores=2.0, idle_cores=0.1, background=0.9)
    assert cal.capacity(sc) == pytest.approx(1.0 / 0.027)
    assert cal.induced_cpu_per_request(sc) == pytest.approx(0.001)
    raw = yaml.safe_load(MIXED.read_text())
    host = calibrated(raw, sc, cal, rate=10.0)["hosts"][0]
    assert host["background"] == pytest.approx(0.1 + 0.9 + 10 * 0.002)
    host = calibrated(raw, sc, cal, rate=10.0, background=0.3)["hosts"][0]
    assert host["background"] == pytest.approx(0.1 + 0.3 + 10 * 0.002)
    host = calibrated(raw, sc, cal, rate=10.0, background=5.0)["hosts"][0]
    assert host["background"] == pytest.approx(1.9)  # the model keeps a sliver of the cores
    cal.phases = [
        PhaseBackground("idle", 6.0, 0.9, 0.9, 0.9).to_dict(),
        PhaseBackground("class a", 9.0, 0.9, 0.5, 0.9, problems=["moved"]).to_dict(),
    ]
    assert cal.invalid_phases() == ["class a: moved"]


def test_the_sampler_reads_until_stopped() -> None:
    m = Machine()
    with Sampler(m.meter(), interval=0.01) as s:
        import time

        # one reading from the thread besides start's: on a loaded machine the
        # thread can wait well over 50 ms for a core, so wait for the reading
        # (the bound only catches a sampler that never reads)
        deadline = time.monotonic() + 60
        while len(s.samples) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert len(s.samples) >= 3 and not s.errors


# ---------------------------------------------------------------- paired statistics
def _err(level: str, metric: str, p: float, m: float, kind: str = "relative") -> MetricError:
    bound = 0.2 if kind == "relative" else 0.07
    return MetricError("s", level, metric, p, m, abs(p - m), kind, bound)  # type: ignore[arg-type]


def test_signed_errors() -> None:
    assert signed_error(0.12, 0.10, "relative") == pytest.approx(0.2)
    assert signed_error(0.08, 0.10, "relative") == pytest.approx(-0.2)
    assert signed_error(0.5, 0.45, "absolute") == pytest.approx(0.05)
    assert signed_error(0.0, 0.0, "relative") == 0.0
    assert signed_error(1.0, 0.0, "relative") == math.inf
    assert math.isnan(signed_error(math.nan, 1.0, "relative"))


def test_the_student_t_half_width() -> None:
    # mean 2, s = 1, R = 3: t(0.975, 2) = 4.3027
    assert half_width([1.0, 2.0, 3.0]) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert math.isnan(half_width([1.0]))


@pytest.mark.parametrize(
    ("mean", "half", "expected"),
    [
        (0.15, 0.30, "within"),  # the bound applies to the mean
        (-0.19, 0.01, "within"),
        (0.35, 0.10, "miss"),  # 0.25..0.45: all beyond 0.2
        (-0.35, 0.10, "miss"),
        (0.25, 0.10, "inconclusive"),  # 0.15..0.35 straddles 0.2
        (0.25, math.nan, "inconclusive"),  # one replay: no interval
        (math.inf, 0.1, "miss"),
    ],
)
def test_verdicts(mean: float, half: float, expected: str) -> None:
    assert verdict(mean, half, 0.2) == expected


def test_pairs_over_replays_and_the_repetitions_a_verdict_needs() -> None:
    replays = [
        [_err("60%", "latency.mean", 0.130, 0.100), _err("60%", "u", 0.50, 0.45, "absolute")],
        [_err("60%", "latency.mean", 0.120, 0.100), _err("60%", "u", 0.52, 0.46, "absolute")],
        [_err("60%", "latency.mean", 0.155, 0.100), _err("60%", "u", 0.49, 0.45, "absolute")],
    ]
    lat, util = pair(replays)
    assert isinstance(lat, PairedMetric) and lat.metric == "latency.mean" and lat.n == 3
    assert lat.errors == pytest.approx([0.30, 0.20, 0.55])
    assert lat.mean == pytest.approx(0.35)
    assert lat.half == pytest.approx(half_width([0.30, 0.20, 0.55]))
    assert lat.verdict == "inconclusive"  # 0.35 ± 0.45 straddles 0.2
    need = lat.r_needed
    assert need is not None and need > 3
    sd = math.sqrt(sum((e - 0.35) ** 2 for e in lat.errors) / 2)
    assert repetitions_needed(sd, 0.15) == need
    assert util.kind == "absolute" and util.mean == pytest.approx(0.05) and util.verdict == "within"
    d = lat.to_dict()
    assert d["verdict"] == "inconclusive" and d["measured_mean"] == pytest.approx(0.1)
    assert d["ci95"] == pytest.approx(lat.half) and d["r_needed"] == need
    tight = pair([[_err("85%", "throughput", 1.5 + 0.01 * i, 1.0)] for i in range(3)])[0]
    assert tight.verdict == "miss" and tight.r_needed is None


def test_replays_are_long_enough_for_their_percentiles() -> None:
    assert [replay_duration(r, 60.0, 2000) for r in (4.0, 8.0, 12.0)] == [500.0, 250.0, 167.0]
    assert replay_duration(40.0, 60.0, 2000) == 60.0
    assert replay_duration(4.0, 60.0, 0) == 60.0
    assert cost_minutes([500.0, 250.0, 167.0], 3, 10.0) == pytest.approx(3 * 962 / 60)


def test_mean_results_average_the_contract_keys() -> None:
    got = mean_results(
        [
            {"throughput": 1.0, "latency": {"mean": 0.1}, "meta": {"x": 1}},
            {"throughput": 3.0, "latency": {"mean": 0.3}, "scenario": {}},
        ]
    )
    assert got == {"throughput": 2.0, "latency": {"mean": pytest.approx(0.2)}}


def test_every_class_is_measured_between_idle_gaps_against_an_app(tmp_path: Path) -> None:
    """The whole class phase against a loopback app, on the real clock, with
    the machine's counters from a fake that other programs keep at 0.7 core."""
    import time

    from lbsim.validation.lowload import measure_classes_phase
    from tests.test_validation_replay import FakeApp

    m = Machine()
    m.outside = 0.7
    last = [time.monotonic()]

    def tick() -> float:  # the machine runs on the real clock
        now = time.monotonic()
        m.run(now - last[0])
        last[0] = now
        return m.host

    meter = Meter(tick, lambda: dict(m.cg), lambda: m.own, time.monotonic)
    sc = lbsim.load_scenario(MIXED)
    with FakeApp(delay=0.002) as app:
        classes, phases = measure_classes_phase(
            app.url,
            sc,
            MachineCosts(),
            100,
            lambda: dict(m.cg),
            meter,
            ContainerGroups(("app1",), ("db1",), ("lb",)),
            per_class=6,
            gap=0.3,
            min_seconds=0.0,
        )
    assert tuple(c.name for c in classes) == sc.workload.class_names
    assert all(bg.valid and bg.cores == pytest.approx(0.7, abs=0.05) for bg in phases)
    assert all(c.other_cpu == pytest.approx(0.0, abs=0.01) for c in classes)  # not the 0.7
    assert all(c.n == 6 for c in classes)


def test_short_classes_are_measured_over_at_least_min_seconds() -> None:
    """Requests of 2 ms: per_class 6 would last 12 ms, within the database's
    housekeeping noise; enough of them to last min_seconds are sent instead,
    at most MAX_CLASS_REQUESTS; a class whose requests are long keeps per_class."""
    from lbsim.validation.lowload import MAX_CLASS_REQUESTS, class_items
    from tests.test_validation_replay import FakeApp

    sc = lbsim.load_scenario(MIXED)
    with FakeApp(delay=0.002) as app:
        short = class_items(app.url, sc, MachineCosts(), 100, per_class=6, min_seconds=0.1)
        none = class_items(app.url, sc, MachineCosts(), 100, per_class=6, min_seconds=0.0)
        most = class_items(app.url, sc, MachineCosts(), 100, per_class=6, min_seconds=1e6)
    assert all(6 < len(items) <= 50 for items in short.values())  # 0.1 s of >= 2 ms
    assert all(len(items) == 6 for items in none.values())
    assert all(len(items) == MAX_CLASS_REQUESTS for items in most.values())


# ---------------------------------------------------------------- the knee
def test_the_knee_is_where_p95_first_exceeds_three_times_its_lowest_value() -> None:
    from lbsim.validation.knee import knee_error, knee_line, knee_rate, predicted_knee, sweep_rates

    k = knee_rate([(10.0, 0.10), (5.0, 0.10), (15.0, 0.20), (20.0, 0.50)])
    assert k.base_p95 == 0.10 and (k.below, k.above) == (15.0, 20.0)
    assert k.rate == pytest.approx(15.0 + 5.0 * (0.30 - 0.20) / (0.50 - 0.20))
    flat = knee_rate([(5.0, 0.1), (10.0, 0.2)])
    assert not flat.reached and flat.below == 10.0
    assert sweep_rates(4.0, 10.0, steps=4) == [4.0, 6.0, 8.0, 10.0, 12.0]
    model, points = predicted_knee(lambda r: 0.1 if r < 9 else 0.1 * r, [4.0, 8.0, 12.0])
    assert model.rate == pytest.approx(8.0 + 4.0 * (0.3 - 0.1) / (1.2 - 0.1))
    assert points[-1][0] == 12.0 and points[-1][1] == pytest.approx(1.2)
    assert knee_error(model, k) == pytest.approx(abs(model.rate - k.rate) / k.rate)
    assert math.isnan(knee_error(model, flat))
    line = knee_line(
        {"predicted": model.to_dict(), "measured": flat.to_dict(), "error": math.nan, "bound": 0.1}
    )
    assert "measured not reached up to 10 requests/s" in line


# ---------------------------------------------------------------- the report
def test_the_report_shows_paired_errors_verdicts_and_every_phases_background(
    tmp_path: Path,
) -> None:
    import json

    from lbsim.validation.campaign import CampaignResult, LevelResult
    from lbsim.validation.levels import Replay
    from lbsim.validation.path_times import PARTS
    from lbsim.validation.report import write_report

    sc = lbsim.load_scenario(MIXED)
    classes = [
        ClassCost(c.name, 40, 0.01, 0.02, 0.0, 0.005, 0.002, 0.05, 0.04, 0.0, 0.0)
        for c in sc.workload.classes
    ]
    idle = PhaseBackground("idle", 6.0, 1.0, 1.0, 1.01, stack=0.05)
    cal = Calibration(MachineCosts(), classes, 2.0, 0.05, background=1.0, phases=[idle.to_dict()])

    def run(level: float, r: int, p95: float, moved: bool = False) -> Replay:
        # where the time went: at 30 % only (the 60 % replays carry none, as a target's)
        path = dict.fromkeys(PARTS, 0.001 * (r + 1)) if level < 0.5 else {}
        # waiting for a core: the load generator's, at 30 % only
        rq = {"load generator": {"wait_per_request": 0.001 * (r + 1), "slices_per_request": 2.0}}
        meta = {"path": path, "runqueue": rq if level < 0.5 else {}}
        measured = {"throughput": 5.0, "latency": {"mean": 0.1, "p95": p95}, "meta": meta}
        predicted = {"throughput": 5.0, "latency": {"mean": 0.1 + 0.01 * r, "p95": 0.3}}
        errors = [
            _err(f"{level:.0%}", "throughput", 5.0, 5.0),
            _err(f"{level:.0%}", "latency.mean", 0.1 + 0.01 * r, 0.1),
            _err(f"{level:.0%}", "latency.p95", 0.3, p95),
        ]
        bg = PhaseBackground(f"{level:.0%} r{r + 1}", 15.0, 0.98, 0.97, 1.0 if not moved else 1.5)
        check_phase(bg, 1.02)
        return Replay(level, 5.0, r, 7 + r, predicted, measured, errors, bg, list(bg.problems))

    low = LevelResult.of(0.3, 5.0, [run(0.3, r, 0.3) for r in range(3)])
    high = LevelResult.of(0.6, 10.0, [run(0.6, 0, 1.0), run(0.6, 1, 1.1, moved=True)])
    knee = {
        "predicted": {"rate": 9.0, "reached": True, "below": 8.0, "above": 10.0},
        "measured": {"rate": 8.0, "reached": True, "below": 5.0, "above": 10.0},
        "error": 0.125,
        "bound": 0.1,
    }
    result = CampaignResult(sc, cal, 30.0, [low, high], outdir=tmp_path, knee=knee)
    assert low.valid and not high.valid and len(high.paired[0].errors) == 1  # the valid one
    assert result.not_valid() == [
        "level 60% r2: the CPU used outside the stack moved from 0.97 to 1.50 cores during the "
        "phase (more than 0.15)"
    ]
    assert not result.passed
    paths = write_report(result)
    assert {p.name for p in paths} >= {"report.md", "errors.json", "measurements.csv"}
    text = (tmp_path / "report.md").read_text()
    assert "| idle | 1 | 1.000 | 1.000 → 1.010 | ×1.000 | ✓ |" in text
    assert "| latency.mean | 110.0 ms | 100.0 ms | +10.0% ± 24.8% | 20% | ✓ within |" in text
    assert "knee: predicted 9.00 requests/s" in text and "1 phases NOT VALID" in text
    assert "## Where the time went" in text
    assert "| 30% | " + " | ".join(["2.00"] * len(PARTS)) + " |" in text
    assert "| 60% | " not in text
    assert "## Waiting for a core" in text
    assert "| 30% | 2.00 (2.0) | 2.00 |" in text  # the mean of 1, 2 and 3 ms
    doc = json.loads((tmp_path / "errors.json").read_text())
    assert doc["passed"] is False and len(doc["phases"]) == 1 + 5
    assert doc["paired"][1]["verdict"] == "within" and doc["knee"]["error"] == 0.125
    csv = (tmp_path / "measurements.csv").read_text()
    assert "workload.open.rate,5,latency.p95,0.3,0" in csv


# ---------------------------------------------------------------- the stale-read probe
PROBE_SCENARIO = Path(__file__).parent / "scenarios" / "live" / "probe.yaml"


def _probe_machine(outside: list[list[float]]) -> tuple[Meter, Callable[..., Any], list[bool]]:
    """A meter on the real clock and a fake probe: its ``i``-th call takes 0.8 s
    while other programs use ``outside[i][0]`` cores, then ``outside[i][1]``."""
    import threading
    import time

    from lbsim.validation.probe import ProbeResult

    m = Machine()
    last = [time.monotonic()]
    lock = threading.RLock()  # the sampler's thread and the probe both advance the machine

    def tick() -> float:
        with lock:
            now = time.monotonic()
            m.run(now - last[0])
            last[0] = now
            return m.host

    calls: list[bool] = []

    def probe(url: str, writer: str, reader: str, n: int, sync: bool) -> ProbeResult:
        first, second = outside[len(calls)]
        calls.append(sync)
        with lock:
            tick()
            m.outside = first
        time.sleep(0.4)
        with lock:
            tick()
            m.outside = second
        time.sleep(0.4)
        return ProbeResult(n, 3, 3 / n, sync, 0.001, 0.002, 0)

    def stack() -> dict[str, float]:  # read on the same clock as the host
        with lock:
            tick()
            return dict(m.cg)

    return Meter(tick, stack, lambda: m.own, time.monotonic), probe, calls


def test_a_probe_the_machine_moved_under_is_repeated_then_compared() -> None:
    from lbsim.validation.probe_phase import probe_phases

    sc = lbsim.load_scenario(PROBE_SCENARIO)
    # sync_wait=0: a burner starts halfway (0 -> 0.9 core), then a steady run; sync_wait=1 steady
    meter, probe, calls = _probe_machine([[0.0, 0.9], [0.9, 0.9], [0.5, 0.5]])
    said: list[str] = []
    got = probe_phases("u", sc, PROBE_SCENARIO, meter, 100, 2, said.append, probe=probe)
    assert calls == [False, False, True]
    assert got.problems == []
    assert [bg.attempt for bg in got.backgrounds] == [2, 1]
    assert got.backgrounds[0].cores == pytest.approx(0.9, abs=0.1)
    assert any("probe sync_wait=0: the machine moved" in s for s in said)
    assert [e.level for e in got.errors] == ["probe sync_wait=0", "probe sync_wait=1"]
    assert [e.measured for e in got.errors] == [0.03, 0.03]
    assert all(e.noise == pytest.approx(0.0545, abs=1e-3) for e in got.errors)  # 3 of 100
    assert all(e.metric == "galera.stale_read_fraction" for e in got.errors)


def test_a_probes_fraction_is_judged_with_its_own_sampling_noise() -> None:
    """A probe's stale fraction is one sample of its reads: the error is a miss
    only beyond the bound plus the fraction's Wilson 95 % half-width (a CI run:
    4.9 points off on 100 reads, noise; the same on 10,000 reads, a miss)."""
    from lbsim.validation.accuracy import MetricError, proportion_half_width

    # Wilson 95 % for 5/100: [0.0215, 0.1118], its larger side 0.0618
    assert proportion_half_width(5, 100) == pytest.approx(0.0618, abs=5e-4)
    assert proportion_half_width(0, 100) == pytest.approx(0.0370, abs=5e-4)
    assert proportion_half_width(500, 10_000) < 0.005
    assert proportion_half_width(0, 0) == 0.0

    def judged(noise: float) -> MetricError:
        return MetricError("s", "probe sync_wait=0", "galera.stale_read_fraction",
                           0.001, 0.05, 0.049, "absolute", 0.02, noise=noise)  # fmt: skip

    assert judged(proportion_half_width(5, 100)).ok
    assert not judged(proportion_half_width(500, 10_000)).ok
    assert not judged(0.0).ok


def test_a_probe_the_machine_always_moved_under_is_not_valid() -> None:
    from lbsim.validation.campaign import CampaignResult
    from lbsim.validation.probe_phase import probe_phases

    sc = lbsim.load_scenario(PROBE_SCENARIO)
    meter, probe, calls = _probe_machine([[0.0, 0.9], [0.9, 0.0], [0.0, 0.9], [0.2, 0.2]])
    got = probe_phases("u", sc, PROBE_SCENARIO, meter, 100, 2, lambda s: None, probe=probe)
    assert calls == [False, False, False, True]  # 1 + 2 repeats, then the sync_wait=1 probe
    assert len(got.problems) == 1
    assert got.problems[0].startswith("probe sync_wait=0: the CPU used outside the stack moved")
    result = CampaignResult(sc, Calibration(MachineCosts(), [], 2.0, 0.1, 0.0), 10.0)
    result.probe, result.probe_problems = got.errors, got.problems
    assert result.not_valid() == got.problems
    assert not result.passed


def test_a_targets_app_cpu_per_request_is_recorded_not_judged() -> None:
    """On the user's stack the speed is the app's CPU per request, which moves
    with the requests drawn (WordPress: a post with 40 comments costs 5× one
    with 8; replays of one calibration measured ×1.15 to ×1.47 on a quiet
    machine): it is applied to the model and shown, but only the background
    invalidates the phase."""
    bg = PhaseBackground("30 % r2", 30.0, 0.02, 0.05, 0.04)
    assert check_phase(bg, 1.417, judge_speed=False) == [] and bg.speed == 1.417
    assert check_phase(bg, 1.417) != []
    moving = PhaseBackground("30 % r2", 30.0, 0.6, 0.1, 0.6)
    assert check_phase(moving, 1.0, judge_speed=False)  # the background still counts


def test_a_moved_class_phase_waits_for_the_machine_before_it_is_measured_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The class phase's repeat waits for the outside load to hold still
    (background.settle), as a replay's does: never straight back into the burst."""
    from lbsim.validation import lowload

    moved = PhaseBackground("class x", 4.0, 0.3, 0.1, 0.5)  # 0.1 -> 0.5 cores
    still = PhaseBackground("class x", 4.0, 0.1, 0.1, 0.11)
    phases = [moved, still]
    settled: list[float] = []

    def fake_cost(*args: Any) -> tuple[ClassCost, PhaseBackground]:
        attempt = args[-1]
        return ClassCost("x", 5, 0.01, 0.01, 0, 0, 0, 0.02, 0.01, 0, 0), phases[attempt - 1]

    def fake_settle(meter: Any, most: float, sleep: Any = None) -> Any:
        settled.append(most)

    monkeypatch.setattr(lowload, "send_sequential", lambda url, items: [])
    monkeypatch.setattr(lowload, "_check", lambda recs, what: None)
    monkeypatch.setattr(lowload, "class_cost", fake_cost)
    monkeypatch.setattr(lowload, "settle", fake_settle)
    m = Machine()
    _, bg = lowload.measure_class_phase(
        "http://127.0.0.1:1", "x", [], lambda: dict(m.cg), m.meter(),
        ContainerGroups(("app1",), (), ()), 0.0, gap=0.0, sleep=lambda s: None,
    )  # fmt: skip
    assert bg is still and bg.valid and settled == [SETTLE_MOST]
    # settle_seconds 0 (a campaign's option): measured again at once
    settled.clear()
    _, bg = lowload.measure_class_phase(
        "http://127.0.0.1:1", "x", [], lambda: dict(m.cg), m.meter(),
        ContainerGroups(("app1",), (), ()), 0.0, gap=0.0, sleep=lambda s: None,
        settle_seconds=0.0,
    )  # fmt: skip
    assert bg is still and settled == []


def test_a_class_costs_enter_the_calibration_at_the_probes_speed() -> None:
    """ClassCost.at_unit: every CPU demand scaled by the reference unit over the
    class's own, the unit set to the reference, latencies kept; unknown units
    leave the class as measured."""
    c = ClassCost("x", 5, 0.01, 0.013, 0.002, 0.0026, 0.0013, 0.02, 0.01, 0.001, 0, 1.3e-5, 3.9e-4)
    got = c.at_unit(1e-5)
    assert got.app_cpu == pytest.approx(0.01) and got.db_cpu == pytest.approx(0.002)
    assert got.other_cpu == pytest.approx(0.001) and got.induced_cpu == pytest.approx(3e-4)
    assert got.unit == 1e-5 and (got.latency, got.wall, got.db_wall) == (0.02, 0.01, 0.001)
    assert c.at_unit(0.0) is c
    unknown = ClassCost("x", 5, 0.01, 0.013, 0, 0, 0, 0.02, 0.01, 0, 0)  # unit 0: a target's
    assert unknown.at_unit(1e-5) is unknown


def test_a_slow_class_phase_is_measured_at_its_own_speed_not_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CI run lost a campaign to a class measured while the VM ran ×1.28 slow
    (background steady): the phase is valid, its speed recorded, and its costs
    brought to the cost probe's speed; a moving background still repeats it."""
    from lbsim.validation import lowload

    slow = ClassCost("x", 5, 0.01, 0.0128, 0.0, 0.0, 0.0, 0.02, 0.01, 0, 0, 1.28e-5)
    still = PhaseBackground("class x", 4.0, 0.1, 0.1, 0.11)
    calls: list[int] = []

    def fake_cost(*args: Any) -> tuple[ClassCost, PhaseBackground]:
        calls.append(args[-1])
        return slow, still

    monkeypatch.setattr(lowload, "send_sequential", lambda url, items: [])
    monkeypatch.setattr(lowload, "_check", lambda recs, what: None)
    monkeypatch.setattr(lowload, "class_cost", fake_cost)
    m = Machine()
    cost, bg = lowload.measure_class_phase(
        "http://127.0.0.1:1", "x", [], lambda: dict(m.cg), m.meter(),
        ContainerGroups(("app1",), (), ()), 1e-5, gap=0.0, sleep=lambda s: None,
    )  # fmt: skip
    assert calls == [1] and bg.valid and bg.speed == pytest.approx(1.28)
    assert cost.app_cpu == pytest.approx(0.01) and cost.unit == 1e-5
