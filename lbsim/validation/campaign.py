"""``lbsim calibrate``: measure, calibrate, then predict and replay at several loads.

1. Start (building if needed) the scenario's stack and wait until it serves.
2. Measure at low load (:mod:`lbsim.validation.calibration`) and write the
   calibrated scenario next to the original (``<name>.calibrated.yaml``).
3. For each load level (a fraction of the capacity the measurements imply:
   the machine's free cores over the CPU of one request of the mix), replay
   the scenario's trace at that rate on the stack ``repetitions`` times with
   different seeds, interleaved across levels, and simulate the calibrated
   scenario at the same rate with each replay's seed, CPU speed and measured
   background (:mod:`lbsim.validation.levels`); every bounded metric's paired
   errors give a mean, a 95 % interval and a verdict
   (:mod:`lbsim.validation.paired`). Every phase measures the CPU other
   programs use (:mod:`lbsim.validation.background`). A level above capacity
   (the default's 110 %) is judged by its throughput and its failures of each
   kind (:mod:`lbsim.validation.failures`); its latency growth is reported.
4. For Galera, probe stale reads (with and without ``sync_wait``) next to the
   model's fraction for the same pattern.
5. Write the report: ``report.md``, PNG plots, ``errors.json`` (one entry per
   level × metric), ``calibration.json``, per level the predicted and measured
   results and the raw requests, ``measurements.csv`` (the tidy format
   notebooks/04-calibration.ipynb reads).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lbsim.scenario.database import Galera, NoDatabase
from lbsim.scenario.loader import load_scenario
from lbsim.scenario.overrides import apply_overrides
from lbsim.scenario.schema import Scenario
from lbsim.stats.replications import flatten
from lbsim.validation import collectors, lifecycle
from lbsim.validation.accuracy import MetricError
from lbsim.validation.background import SETTLE_MOST, Meter
from lbsim.validation.calibration import (
    Calibration,
    CalibrationError,
    ContainerGroups,
    calibrate_scenario,
    calibrated_path,
    header,
    host_cores,
    measure_log_flush,
    measure_stack_costs,
    measure_writes,
)
from lbsim.validation.knee import campaign_knee, knee_line
from lbsim.validation.levels import (
    Replay,
    Send,
    cost_minutes,
    is_overload,
    judged_replays,
    mean_results,
    replay_duration,
    run_replay,
)
from lbsim.validation.levels import (
    speed_factor as speed_factor,  # re-exported: a level's speed
)
from lbsim.validation.lifecycle import StackHandle
from lbsim.validation.lowload import (
    MIN_CLASS_SECONDS,
    measure_classes_phase,
    measure_idle_phase,
)
from lbsim.validation.machine import machine as machine  # re-exported: what it ran on
from lbsim.validation.node_costs import measure_node_costs
from lbsim.validation.paired import PairedMetric, pair
from lbsim.validation.products import product_overrides, stack_balancer
from lbsim.validation.visibility import calibrate_visibility

Say = Callable[[str], None]


@dataclass(frozen=True)
class CampaignOptions:
    #: fractions of capacity; above 1: an overload level (throughput and failures)
    levels: tuple[float, ...] = (0.3, 0.6, 0.85, 0.95, 1.1)
    duration: float = 60.0  # measured seconds per level (at least)
    warmup: float = 10.0
    per_class: int = 40  # low-load requests per class
    #: the stack's balancer; None: the scenario's balancer.product (default nginx)
    balancer: str | None = None
    port: int = 8080
    out: Path | None = None
    #: leave the stack running afterwards (``lbsim stack down`` stops it)
    keep_up: bool = True
    probe_reads: int = 200
    #: replays per level (different seeds, interleaved across levels)
    repetitions: int = 3
    #: each replay measures at least this many requests (its level's
    #: ``duration`` is lengthened to fit): enough for a p95 at the lowest level
    min_requests: int = 2000
    #: a phase measured while the machine moved is measured again up to this often
    phase_repeats: int = 2
    #: ... after waiting up to this many seconds for the machine to hold still
    #: (:func:`lbsim.validation.background.settle`; 0: at once)
    settle_seconds: float = SETTLE_MOST


@dataclass
class LevelResult:
    level: float
    rate: float
    predicted: dict[str, Any]
    measured: dict[str, Any]
    errors: list[MetricError]
    valid: bool
    problems: list[str]
    #: CPU cost of a work unit during the level over its calibrated cost (mean)
    speed: float = 1.0
    #: every replay of the level, and the paired statistics of its valid ones
    replays: list[Replay] = field(default_factory=list)
    paired: list[PairedMetric] = field(default_factory=list)

    @classmethod
    def of(cls, level: float, rate: float, replays: list[Replay]) -> LevelResult:
        valid = [r for r in replays if r.valid]
        problems = [f"r{r.repetition + 1}: {p}" for r in replays for p in r.problems]
        use = judged_replays(replays)
        return cls(
            level,
            rate,
            mean_results([r.predicted for r in use]),
            {**mean_results([r.measured for r in use]), "meta": use[0].measured.get("meta", {})},
            [e for r in replays for e in r.errors],
            len(valid) == len(replays),
            problems,
            statistics.fmean(r.speed for r in use),
            replays,
            pair([r.errors for r in valid]),
        )


@dataclass
class CampaignResult:
    scenario: Scenario
    calibration: Calibration
    capacity: float
    levels: list[LevelResult] = field(default_factory=list)
    probe: list[MetricError] = field(default_factory=list)
    #: why a stale-read probe was not valid (the machine moved under it every time)
    probe_problems: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    outdir: Path = Path(".")
    calibrated_file: Path = Path(".")
    #: predicted against measured knee (:func:`lbsim.validation.knee.campaign_knee`)
    knee: dict[str, Any] = field(default_factory=dict)
    #: the user's stack, where it was calibrated against one
    #: (:func:`lbsim.target.campaign.target_section`); empty: the built-in stack
    target: dict[str, Any] = field(default_factory=dict)

    def all_errors(self) -> list[MetricError]:
        """Every replay's errors, one by one, and the stale-read probe's."""
        return [e for lv in self.levels for e in lv.errors] + self.probe

    def paired(self) -> list[PairedMetric]:
        return [p for lv in self.levels for p in lv.paired]

    def not_valid(self) -> list[str]:
        """Why a phase is not a measurement of this stack (empty: every one is)."""
        out = [f"calibration {line}" for line in self.calibration.invalid_phases()]
        out += [f"level {lv.level:.0%} {p}" for lv in self.levels for p in lv.problems]
        return out + self.probe_problems

    @property
    def passed(self) -> bool:
        """No significant miss (:mod:`lbsim.validation.paired`), no probe outside
        its bound, every phase valid."""
        return (
            all(p.verdict != "miss" for p in self.paired())
            and all(e.ok for e in self.probe)
            and not self.not_valid()
        )


def _groups(handle: StackHandle) -> ContainerGroups:
    services = handle.services
    app, db = tuple(handle.app_nodes), tuple(handle.db_nodes)
    other = tuple(s for s in services if s not in app and s not in db)
    return ContainerGroups(app, db, other)


def measure(
    handle: StackHandle, scenario: Scenario, options: CampaignOptions, say: Say
) -> Calibration:
    """Every low-load measurement (see :mod:`lbsim.validation.calibration`)."""
    cpu = collectors.ContainerCpu(handle)
    groups = _groups(handle)
    meter = stack_meter(cpu)
    say("measuring the idle stack and the machine's background (6 s)")
    idle = measure_idle_phase(meter, 6.0, options.phase_repeats)
    say(
        f"  idle stack {idle.stack:.3f} cores; background (other programs) {idle.cores:.3f} "
        f"cores{'' if idle.valid else ' — NOT VALID: ' + '; '.join(idle.problems)}"
    )
    say("measuring the cost of a work unit and of a BENCHMARK() iteration")
    costs = measure_stack_costs(handle)
    say(
        f"  PHP work unit {costs.unit_seconds * 1e6:.3f} us, "
        f"BENCHMARK iteration {costs.db_iteration_seconds * 1e9:.2f} ns"
    )
    rows = int(handle.meta.get("rows", 0)) or 1
    say(
        f"measuring every class at low load ({options.per_class} requests each, more to last "
        f"{MIN_CLASS_SECONDS:g} s, one at a time)"
    )
    classes, phases = measure_classes_phase(
        handle.url,
        scenario,
        costs,
        rows,
        cpu.snapshot,
        meter,
        groups,
        options.per_class,
        options.phase_repeats,
        settle_seconds=options.settle_seconds,
    )
    for bg in phases:
        say(
            f"  {bg.phase}: background {bg.cores:.3f} cores (before {bg.start:.3f}, after "
            f"{bg.end:.3f}), CPU work ×{bg.speed:.3f}"
            + ("" if bg.valid else f" — NOT VALID: {'; '.join(bg.problems)}")
        )
    weights = [c.n for c in classes]
    cal = Calibration(
        costs=costs,
        classes=classes,
        host_cores=host_cores(),
        idle_cores=idle.stack,
        background=statistics.fmean([bg.cores for bg in phases], weights=weights),
        phases=[bg.to_dict() for bg in [idle, *phases]],
    )
    db = scenario.database
    if not isinstance(db, NoDatabase):
        others: list[str] = []
        writer = handle.db_nodes[0]
        if isinstance(db, Galera):
            names = [n.name for n in db.resolved_nodes()]
            writer = names[db.routing.writer] if db.routing.read_write_split else names[0]
            others = [n for n in names if n != writer]
        say("measuring the write path (write − read time" + (", apply cost)" if others else ")"))
        path = measure_writes(handle.url)
        cal.write_commit = path.extra
        if others:
            # each receiving node's CPU over 300 writes less its own idle rate (the
            # lower of two quiet windows); the earlier 40-write difference against a
            # read batch measured 0 in CI when a node was busier during the reads
            node_cpu = measure_node_costs(handle.url, cpu.snapshot, others)
            cal.apply_cpu = statistics.fmean(node_cpu.values())
            if cal.apply_cpu <= 0:
                raise CalibrationError(
                    f"the database nodes {', '.join(others)} spent no measurable CPU on "
                    "the write-sets they received: their CPU counters do not move"
                )
        cal.app_db = path.read_wall / 2
        cal.connect = path.connect_wall
        cal.log_flush = measure_log_flush(lambda argv: handle.exec(writer, argv))
        say(
            f"  write − read {path.extra * 1e3:.3f} ms, log flush {cal.log_flush * 1e3:.3f} ms, "
            f"empty read {path.read_wall * 1e3:.3f} ms, connect {path.connect_wall * 1e3:.3f} ms"
            + (f", {cal.apply_cpu * 1e3:.3f} ms CPU per write-set elsewhere" if others else "")
        )
        if others:
            cal.visibility_lags = calibrate_visibility(
                handle.url, writer, others[0], cal.app_db, say
            )
    cal.balancer_latency = max(
        statistics.fmean([c.latency - c.wall for c in classes], weights=weights), 0.0
    )
    return cal


def stack_meter(cpu: collectors.ContainerCpu) -> Meter:
    """The machine, the stack's containers and this process (the load generator)."""
    return Meter(
        collectors.host_cpu_seconds,
        cpu.snapshot,
        collectors.own_cpu_seconds,
        steal=collectors.host_steal_seconds,
    )


def run_campaign(file: Path, options: CampaignOptions, say: Say = print) -> CampaignResult:
    base = load_scenario(file)
    if base.workload.open is None:
        raise CalibrationError(
            f"{file}: lbsim calibrate drives the stack at chosen arrival rates and needs an "
            "open-loop workload (workload.open)"
        )
    outdir = options.out or Path("validation/results") / base.name
    outdir.mkdir(parents=True, exist_ok=True)
    # the stack runs the product the model follows: a file that names none is
    # read as --balancer's (its default policy and options), in the calibrated file too
    sets = product_overrides(file, options.balancer)
    base = load_scenario(file, sets)
    balancer = stack_balancer(base, options.balancer)
    raw = apply_overrides(yaml.safe_load(file.read_text(encoding="utf-8")), sets, str(file))
    stack_opts = lifecycle.default_options(balancer, options.port)
    say(
        f"building the stack of {base.name!r} ({stack_opts.balancer}; base {stack_opts.base_image})"
    )
    stack_opts = lifecycle.build(base, stack_opts, base=stack_opts.base_image)
    say("starting it and waiting until every service is ready")
    handle = lifecycle.up(base, stack_opts)
    try:
        return _campaign(file, raw, base, handle, options, outdir, say)
    finally:
        if not options.keep_up:
            lifecycle.down(base, stack_opts)


def _campaign(
    file: Path,
    raw: dict[str, Any],
    base: Scenario,
    handle: StackHandle,
    options: CampaignOptions,
    outdir: Path,
    say: Say,
) -> CampaignResult:
    cal = measure(handle, base, options, say)
    cal_file = calibrated_path(file)
    data = calibrate_scenario(raw, base, cal)
    cal_file.write_text(header(file, cal) + yaml.safe_dump(data, sort_keys=False), "utf-8")
    say(f"wrote {cal_file}")
    capacity = cal.capacity(base)
    result = CampaignResult(
        base, cal, capacity, machine=machine(), outdir=outdir, calibrated_file=cal_file
    )
    say(
        f"capacity on this machine: {capacity:.1f} requests/s "
        f"({cal.host_cores:g} cores, {cal.cpu_per_request(base) * 1e3:.1f} ms CPU per request)"
    )
    for line in cal.invalid_phases():
        say(f"calibration NOT VALID: {line}")
    meter = stack_meter(collectors.ContainerCpu(handle))
    run_levels(result, file, raw, base, handle, meter, options, say)
    if isinstance(base.database, Galera) and len(base.database.resolved_nodes()) > 1:
        from lbsim.validation.probe_phase import probe_phases

        phases = probe_phases(
            handle.url, base, cal_file, meter, options.probe_reads, options.phase_repeats, say
        )
        result.probe, result.probe_problems = phases.errors, phases.problems
    from lbsim.validation.report import write_report

    for path in write_report(result):
        say(f"wrote {path}")
    return result


def run_levels(
    result: CampaignResult,
    file: Path,
    raw: dict[str, Any],
    base: Scenario,
    handle: StackHandle | None,
    meter: Meter,
    options: CampaignOptions,
    say: Say,
    send: Send | None = None,
) -> None:
    """Every level replayed R times, interleaved, each simulated paired
    (:func:`lbsim.validation.levels.run_replay`: on ``handle``, or through
    ``send`` on another stack); ``result.levels`` and its knee."""
    cal, capacity, outdir = result.calibration, result.capacity, result.outdir
    rates = {level: round(level * capacity, 3) for level in options.levels}

    def horizon(rate: float) -> tuple[float, float]:
        return options.warmup, replay_duration(rate, options.duration, options.min_requests)

    durations = {level: horizon(rate)[1] for level, rate in rates.items()}
    r = options.repetitions
    say(
        f"{len(rates)} levels × {r} repetitions, interleaved; each replay {options.warmup:g} s "
        "warm-up + "
        + ", ".join(
            f"{d:g} s at {lv:.0%}" + (" (overload)" if is_overload(lv) else "")
            for lv, d in durations.items()
        )
        + f" measured: about {cost_minutes(list(durations.values()), r, options.warmup):.0f} min"
    )
    replays: dict[float, list[Replay]] = {level: [] for level in rates}
    for rep in range(r):
        for level, rate in rates.items():
            h = horizon(rate)
            one = run_replay(
                file, raw, base, handle, cal, meter, options, level, rate, rep, h, outdir, say,
                send=send,
            )  # fmt: skip
            replays[level].append(one)
            worst = max(
                one.errors, key=lambda e: e.error / e.bound if e.bound else 0.0, default=None
            )
            say(
                f"  {sum(e.ok for e in one.errors)}/{len(one.errors)} metrics within bounds"
                + (
                    f"; worst {worst.metric} {worst.error:.3f} (bound {worst.bound:g})"
                    if worst
                    else ""
                )
                + ("" if one.valid else f"; NOT VALID: {'; '.join(one.problems)}")
            )
    result.levels = [LevelResult.of(level, rates[level], replays[level]) for level in rates]
    say("sweeping the calibrated model for its knee (p95 above 3× its lowest-load value)")
    result.knee = campaign_knee(file, raw, base, cal, result.levels, capacity, horizon, outdir)
    say(knee_line(result.knee))


def flat(results: dict[str, Any]) -> dict[str, Any]:
    return flatten({k: v for k, v in results.items() if k not in ("scenario", "meta")})
