"""The speed probe: a child process timing fixed work (lbsim.validation.speedprobe)."""

from __future__ import annotations

import math
import time

import pytest

from lbsim.validation.background import PhaseBackground, check_phase
from lbsim.validation.speedprobe import ProbeSample, SpeedProbe, median_cost, speed_of


def _samples(costs: list[float]) -> list[ProbeSample]:
    return [ProbeSample(float(i), c) for i, c in enumerate(costs)]


def test_speed_is_the_median_cost_over_the_reference_and_moved_is_last_over_first_quarter() -> None:
    steady = _samples([0.012] * 16)
    assert speed_of(steady, 0.010) == pytest.approx((1.2, 0.0))
    slowing = _samples([0.010] * 8 + [0.014] * 8)  # the machine slowed half-way
    factor, moved = speed_of(slowing, 0.010)
    assert factor == pytest.approx(1.2) and moved == pytest.approx(0.4)
    spiky = _samples([0.010] * 15 + [0.5])  # one sample beside a burst: the median holds
    assert speed_of(spiky, 0.010) == pytest.approx((1.0, 0.0))


def test_too_few_samples_or_no_reference_say_nan() -> None:
    factor, moved = speed_of(_samples([0.01] * 5), 0.01)
    assert factor == pytest.approx(1.0) and math.isnan(moved)
    assert math.isnan(speed_of(_samples([0.01] * 10), 0.0)[0])
    assert math.isnan(speed_of([], 0.01)[0]) and math.isnan(median_cost([]))


def test_the_probe_process_reports_cpu_costs_and_ends_with_stop() -> None:
    with SpeedProbe(iterations=20_000, interval=0.05) as probe:
        t0 = time.monotonic()
        deadline = t0 + 60  # a loaded machine: wait for samples, bounded
        while len(probe.samples) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        used = probe.cpu_seconds()
        proc = probe._proc
    samples = probe.samples
    assert len(samples) >= 5
    assert all(0 < s.cpu < 5 for s in samples)
    assert [s.t for s in samples] == sorted(s.t for s in samples)
    assert probe.between(samples[1].t, samples[3].t) == samples[1:4]
    assert used >= 0 and proc is not None and proc.poll() is not None  # ended by stop
    assert probe.cpu_seconds() == 0.0


def test_a_machine_speed_off_the_calibration_makes_a_target_phase_not_valid() -> None:
    bg = PhaseBackground("60 % r1", 40.0, 0.03, 0.05, 0.06)
    assert check_phase(bg, 1.5, judge_speed=False, machine=1.1) == []  # the app's ×1.5
    assert check_phase(bg, 1.5, judge_speed=False, machine=1.27) == [
        "the machine's speed probe cost ×1.270 its cost while the classes were measured "
        "(outside 1 ± 0.25)"
    ]
    assert check_phase(bg, 1.0, moved=0.2, judge_speed=False)  # it moved within the phase
