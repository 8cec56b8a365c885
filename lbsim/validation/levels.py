"""The load levels of a calibration: repeated, interleaved, paired replays.

Each level is replayed ``repetitions`` times, repetition ``r`` with seed
``scenario.seed + r``, interleaved across levels (30 %, 60 %, 85 %, 30 %,
60 %, 85 %, …) so a drift of the machine spreads over every level instead of
biasing one. Each replay is simulated with its own seed (the same arrivals,
classes, clients and demands), at the CPU speed the app measured during it
and with the background measured during it, so every error is a pair
(:mod:`lbsim.validation.paired`).

The background of a replay is the CPU used outside the stack and the load
generator over the measured window, less what the replay's own requests
cause there (their measured throughput × the calibrated ``induced_cpu``);
the model places it on the host. A replay whose background moved more than
:func:`lbsim.validation.background.drift_limit` between the first and the
last quarter of the window, or whose CPU speed moved more than 10 % between
the first and the last quarter of its requests or is more than 25 % off the
calibration's (:func:`lbsim.validation.background.check_phase`), or
whose load generator lagged its schedule (another program took the core it
sends from: :func:`lbsim.validation.measured.loadgen_verdict`), is replayed
again (same seed), up to ``phase_repeats`` more times, and otherwise kept as
not valid with the reason.

Each replay measures at least ``min_requests`` requests (the level's window
is lengthened to fit, :func:`replay_duration`), so the higher levels keep the
shorter windows their rates allow. A level above capacity (:func:`is_overload`)
is judged by :data:`lbsim.validation.accuracy.OVERLOAD_BOUNDS` on the requests
counted by the horizon (:mod:`lbsim.validation.failures`); its backlog grows
the whole window, so its replay waits at most the client timeout after its last
send (:data:`OVERLOAD_TIMEOUT` when the scenario has none, given to the model
too).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lbsim.experiment.run import simulate
from lbsim.scenario.loader import load_scenario
from lbsim.scenario.schema import Scenario
from lbsim.stats.replications import flatten, unflatten
from lbsim.validation.accuracy import OVERLOAD_BOUNDS, MetricError, compare
from lbsim.validation.background import Meter, PhaseBackground, Sampler, check_phase, settle
from lbsim.validation.background import phase_background as background_of
from lbsim.validation.calibration import Calibration, calibrate_scenario, header
from lbsim.validation.failures import answered_by_horizon, predicted_counts, with_failures
from lbsim.validation.lifecycle import StackHandle
from lbsim.validation.replay import ReplayRun, replay

if TYPE_CHECKING:
    from lbsim.validation.campaign import CampaignOptions

Say = Callable[[str], None]
#: a change to the calibrated scenario's data (a story's model assumption)
Adjust = Callable[[dict[str, Any]], dict[str, Any]]
#: sends a replay's scenario to a stack other than the built-in one (the
#: user's: :func:`lbsim.target.replay.replay_target`), with the calibration
Send = Callable[[Scenario, Calibration], ReplayRun]

#: a level above this fraction of capacity is an overload level
OVERLOAD = 1.0
#: the client timeout (s) of an overload level whose scenario sets none
OVERLOAD_TIMEOUT = 30.0


def is_overload(level: float) -> bool:
    return level > OVERLOAD


@dataclass
class Replay:
    """One replay of one level and its simulation with the same seed."""

    level: float
    rate: float
    repetition: int
    seed: int
    predicted: dict[str, Any]
    measured: dict[str, Any]
    errors: list[MetricError]
    background: PhaseBackground
    problems: list[str] = field(default_factory=list)  # load generator's and phase's

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def speed(self) -> float:
        return self.background.speed


def judged_replays(replays: Sequence[Replay]) -> list[Replay]:
    """The replays a level's (or a story variant's) statistics use: the valid
    ones; all of them when none is (reported as not valid either way)."""
    return [r for r in replays if r.valid] or list(replays)


def speed_factor(measured_unit: float, calibrated_unit: float) -> float:
    """How much more a work unit cost during a level than while the classes were
    measured (1 when the level has no measurement)."""
    if not (math.isfinite(measured_unit) and measured_unit > 0 and calibrated_unit > 0):
        return 1.0
    return measured_unit / calibrated_unit


def replay_duration(rate: float, duration: float, min_requests: int) -> float:
    """Measured seconds of a replay at ``rate``: ``duration``, longer where it
    would measure fewer than ``min_requests`` requests."""
    if rate <= 0 or min_requests <= 0:
        return duration
    return max(duration, float(math.ceil(min_requests / rate)))


def cost_minutes(durations: Sequence[float], repetitions: int, warmup: float) -> float:
    """What the replays take (min): ``repetitions`` of each level's, each its
    warm-up, its measured ``durations`` and ~5 s to drain and simulate."""
    return repetitions * sum(warmup + d + 5.0 for d in durations) / 60.0


def level_overrides(base: Scenario, level: float) -> list[str]:
    """What a level changes beyond its rate: an overload level's client timeout."""
    if is_overload(level) and base.workload.timeout is None:
        return [f"workload.timeout={OVERLOAD_TIMEOUT:g}"]
    return []


def level_model(
    file: Path,
    raw: dict[str, Any],
    base: Scenario,
    cal: Calibration,
    rate: float,
    background: float,
    seed: int,
    horizon: tuple[float, float],
    path: Path,
    timeout: float | None = None,
    adjust: Adjust | None = None,
) -> Scenario:
    """The calibrated scenario of one replay (its rate, seed, background,
    ``horizon``: warm-up and duration; ``timeout``: the client's, where the
    level sets one; ``adjust``: a story's change to the calibrated data),
    written to ``path``."""
    data = calibrate_scenario(raw, base, cal, rate=rate, background=background)
    if adjust is not None:
        data = adjust(data)
    data["seed"] = seed
    data["warmup"], data["duration"] = horizon
    if timeout is not None:
        data["workload"]["timeout"] = timeout
    data["replications"] = 1
    path.write_text(header(file, cal) + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    if "trace" not in data["workload"]:
        return load_scenario(path)
    # relative trace paths resolve against the original's folder
    return load_scenario(file, [f"seed={seed}"])


def _replay_once(
    replayed: Scenario,
    handle: StackHandle | None,
    cal: Calibration,
    meter: Meter,
    level: str,
    send: Send | None = None,
) -> tuple[Any, PhaseBackground]:
    sampler = Sampler(meter, interval=0.5).start()
    try:
        if send is not None:
            run = send(replayed, cal)
        else:
            assert handle is not None
            run = replay(replayed, handle, cal.costs)
    finally:
        samples = sampler.stop()
    meta = run.results["meta"]
    window = meta.get("window", {})
    induced = run.results["throughput"] * cal.induced_cpu_per_request(replayed)
    speed = speed_factor(meta["unit_seconds"], cal.reference_unit())
    # from the end of the window-start status queries: their docker exec CPU is ours
    start = max(window.get("start", 0.0), window.get("collected", 0.0)) or None
    bg = background_of(level, samples, start, window.get("end"), induced * speed)
    # a target's speed is its app CPU per request: the machine and the requests drawn;
    # its speed probe moves with the stack's own load on a shared core (WordPress on
    # this 2-core machine: ×0.74 to ×1.49 from the first to the last quarter of 20 s
    # phases), too noisy to reject a phase, so it is shown beside the background
    moved = float(meta.get("unit_moved", math.nan))
    if meta.get("speed_source", "work_unit") == "work_unit":
        check_phase(bg, speed, moved)
    else:  # a target: its app CPU per request and the speed probe recorded, not judged
        check_phase(bg, speed, judge_speed=False)
        bg.machine, bg.machine_moved = float(meta.get("machine_speed", math.nan)), moved
    return run, bg


def run_replay(
    file: Path,
    raw: dict[str, Any],
    base: Scenario,
    handle: StackHandle | None,
    cal: Calibration,
    meter: Meter,
    options: CampaignOptions,
    level: float,
    rate: float,
    repetition: int,
    horizon: tuple[float, float],
    outdir: Path,
    say: Say,
    adjust: Adjust | None = None,
    send: Send | None = None,
) -> Replay:
    """One level's repetition: replay (again while the machine moved), then simulate
    (``adjust``: see :func:`level_model`; ``send``: replay on another stack than
    ``handle``, the built-in one)."""
    seed = base.seed + repetition
    tag = f"level-{round(level * 100):02d}-r{repetition + 1}"
    warmup, duration = horizon
    top = [f"workload.open.rate={rate}", f"duration={duration}", f"warmup={warmup}"]
    replayed = load_scenario(file, [*top, *level_overrides(base, level), f"seed={seed}"])
    for attempt in range(1, options.phase_repeats + 2):
        if attempt > 1 and options.settle_seconds > 0:  # not straight back into the burst
            still = settle(meter, options.settle_seconds)
            say(
                f"{tag}: waited {still.waited:g} s for the machine to hold still "
                + (
                    f"(outside load {still.cores:.2f} cores)"
                    if still.still
                    else f"(it did not: outside load {still.cores:.2f} cores); replaying anyway"
                )
            )
        say(f"{tag}: replaying {rate:g} requests/s for {warmup + duration:g} s (seed {seed})")
        run, bg = _replay_once(replayed, handle, cal, meter, f"{level:.0%} r{repetition + 1}", send)
        bg.attempt = attempt
        lagged = run.results["meta"]["loadgen"]["problems"]
        if bg.valid and not lagged:
            break
        say(f"{tag}: the machine moved ({'; '.join([*bg.problems, *lagged])})")
    if is_overload(level):  # failures of each kind, counted by the horizon
        run.results = with_failures(run.results, answered_by_horizon(replayed, run.records))
    run.write(outdir, f"{tag}-measured")
    say(
        f"{tag}: background {bg.cores:.2f} cores (start {bg.start:.2f}, end {bg.end:.2f}"
        + (f"; steal {bg.steal:.2f}" if bg.steal >= 0.01 else "")
        + f"), CPU work ×{bg.speed:.3f}; simulating the calibrated scenario with both"
    )
    model = level_model(
        file,
        raw,
        base,
        cal.at_speed(bg.speed),
        rate,
        bg.cores if math.isfinite(bg.cores) else cal.background,
        seed,
        horizon,
        outdir / f"{tag}.calibrated.yaml",
        replayed.workload.timeout if level_overrides(base, level) else None,
        adjust,
    )
    predicted = simulate(model, replications=1).to_dict()
    if is_overload(level):
        predicted = with_failures(predicted, predicted_counts(predicted))
    (outdir / f"{tag}-predicted.json").write_text(
        json.dumps(predicted, indent=2, default=str) + "\n", "utf-8"
    )
    errs = judge(base.name, level, predicted, run.results)
    verdict = run.results["meta"]["loadgen"]
    problems = [*verdict["problems"], *bg.problems]
    return Replay(level, rate, repetition, seed, predicted, run.results, errs, bg, problems)


def judge(
    scenario: str, level: float, predicted: dict[str, Any], measured: dict[str, Any]
) -> list[MetricError]:
    """The bounded metrics of one replay: an overload level's own bounds, else every bound."""
    name = f"{level:.0%}"
    if is_overload(level):
        return compare(scenario, name, predicted, measured, OVERLOAD_BOUNDS)
    return compare(scenario, name, predicted, measured)


def mean_results(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The numeric keys' mean over ``results`` (the contract's tree; plots, tables)."""
    sums: dict[str, list[float]] = {}
    for res in results:
        tree = {k: v for k, v in res.items() if k not in ("scenario", "meta")}
        for k, v in flatten(tree).items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                sums.setdefault(k, []).append(float(v))
    return unflatten({k: sum(v) / len(v) for k, v in sums.items()})
