"""The speed probe: a child process timing fixed work (lbsim.validation.speedprobe)."""

from __future__ import annotations

import math
import time

import pytest

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


def test_a_targets_replay_records_the_probe_beside_a_background_that_alone_judges() -> None:
    """On a target the speed probe is shown, not judged: with the stack's own load
    on a shared core its quarters moved ×0.74 to ×1.49 within 20 s WordPress
    phases on this 2-core machine. The background still makes a phase not valid."""
    from lbsim.scenario import loads_scenario
    from lbsim.target.costs import TARGET_COSTS
    from lbsim.validation.background import Meter
    from lbsim.validation.calibration import Calibration
    from lbsim.validation.levels import _replay_once

    scenario = loads_scenario(
        "name: t\nduration: 5\nworkload: {open: {rate: 5}, classes: [{name: a, cpu: 0.01}]}\n"
        "app: {nodes: 1, workers: 2, cores: 1}\n"
    )
    cal = Calibration(TARGET_COSTS, [], 2.0, idle_cores=0.0, probe_seconds=0.004)

    class Run:
        def __init__(self, meta: dict[str, object]) -> None:
            self.results = {"throughput": 5.0, "meta": meta}

    def meter(outside: float) -> Meter:
        t0 = time.monotonic()  # the host's CPU: `outside` cores busy beside the stack
        return Meter(lambda: outside * (time.monotonic() - t0), dict, lambda: 0.0)

    def send(meta: dict[str, object]) -> object:
        def _send(s: object, c: object) -> object:
            time.sleep(1.2)  # the sampler reads the meter meanwhile
            return Run(meta)

        return _send

    meta = {"unit_seconds": 1.4, "speed_source": "app_cpu", "machine_speed": 1.3, "unit_moved": 0.4}
    _, bg = _replay_once(scenario, None, cal, meter(0.0), "30 % r1", send(meta))
    assert bg.valid and (bg.speed, bg.machine, bg.machine_moved) == (1.4, 1.3, 0.4)
    assert bg.to_dict()["machine"] == 1.3
    work_unit = {"unit_seconds": 1.0, "unit_moved": 0.4}  # lbsim's stack: a moved unit judged
    _, bg = _replay_once(scenario, None, cal, meter(0.0), "30 % r1", send(work_unit))
    assert not bg.valid and math.isnan(bg.machine)
