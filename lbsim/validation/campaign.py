"""``lbsim calibrate``: measure, calibrate, then predict and replay at several loads.

1. Start (building if needed) the scenario's stack and wait until it serves.
2. Measure at low load (:mod:`lbsim.validation.calibration`) and write the
   calibrated scenario next to the original (``<name>.calibrated.yaml``).
3. For each load level (a fraction of the capacity the measurements imply:
   the machine's free cores over the CPU of one request of the mix), replay
   the scenario's trace at that rate on the stack and simulate the calibrated
   scenario at the same rate with the same seed — the same arrivals, classes,
   clients and demands — and compare every bounded metric
   (:mod:`lbsim.validation.accuracy`).
4. For Galera, probe stale reads (with and without ``sync_wait``) next to the
   model's fraction for the same pattern.
5. Write the report: ``report.md``, PNG plots, ``errors.json`` (one entry per
   level × metric), ``calibration.json``, per level the predicted and measured
   results and the raw requests, ``measurements.csv`` (the tidy format
   notebooks/04-calibration.ipynb reads).
"""

from __future__ import annotations

import contextlib
import json
import math
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lbsim import __version__
from lbsim.experiment.run import simulate
from lbsim.scenario.database import Galera, NoDatabase
from lbsim.scenario.loader import load_scenario
from lbsim.scenario.schema import Scenario
from lbsim.stats.replications import flatten
from lbsim.validation import collectors, lifecycle
from lbsim.validation.accuracy import MetricError, compare
from lbsim.validation.calibration import (
    Calibration,
    CalibrationError,
    ContainerGroups,
    calibrate_scenario,
    calibrated_path,
    header,
    host_cores,
    measure_classes,
    measure_costs,
    measure_idle,
    measure_log_flush,
    measure_writes,
)
from lbsim.validation.lifecycle import StackHandle
from lbsim.validation.replay import replay

Say = Callable[[str], None]


@dataclass(frozen=True)
class CampaignOptions:
    levels: tuple[float, ...] = (0.3, 0.6, 0.85)
    duration: float = 60.0  # measured seconds per level
    warmup: float = 10.0
    per_class: int = 40  # low-load requests per class
    balancer: str = "nginx"
    port: int = 8080
    out: Path | None = None
    #: leave the stack running afterwards (``lbsim stack down`` stops it)
    keep_up: bool = True
    probe_reads: int = 200


@dataclass
class LevelResult:
    level: float
    rate: float
    predicted: dict[str, Any]
    measured: dict[str, Any]
    errors: list[MetricError]
    valid: bool
    problems: list[str]
    #: CPU cost of a work unit during the level over its calibrated cost
    speed: float = 1.0


@dataclass
class CampaignResult:
    scenario: Scenario
    calibration: Calibration
    capacity: float
    levels: list[LevelResult] = field(default_factory=list)
    probe: list[MetricError] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    outdir: Path = Path(".")
    calibrated_file: Path = Path(".")

    def all_errors(self) -> list[MetricError]:
        return [e for lv in self.levels for e in lv.errors] + self.probe

    @property
    def passed(self) -> bool:
        return all(e.ok for e in self.all_errors()) and all(lv.valid for lv in self.levels)


def machine() -> dict[str, Any]:
    """What the measurements ran on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    docker = ""
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        docker = subprocess.run(
            ["docker", "version", "--format", "{{.Server.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout.strip()
    mem = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": host_cores(),
        "memory_gib": round(mem, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "docker": docker,
        "lbsim": __version__,
    }


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
    say("measuring the idle stack (5 s)")
    idle = measure_idle(collectors.host_cpu_seconds, 5.0)
    db_nodes = list(groups.db)

    def db_cpu() -> dict[str, float]:
        snap = cpu.snapshot()
        return {n: snap[n] for n in db_nodes}

    say("measuring the cost of a work unit and of a BENCHMARK() iteration")
    costs = measure_costs(handle.url, db_cpu if db_nodes else None)
    say(
        f"  PHP work unit {costs.unit_seconds * 1e6:.3f} us, "
        f"BENCHMARK iteration {costs.db_iteration_seconds * 1e9:.2f} ns"
    )
    rows = int(handle.meta.get("rows", 0)) or 1
    say(f"measuring every class at low load ({options.per_class} requests each, one at a time)")
    classes = measure_classes(
        handle.url,
        scenario,
        costs,
        rows,
        cpu.snapshot,
        collectors.host_cpu_seconds,
        idle,
        groups,
        per_class=options.per_class,
    )
    cal = Calibration(costs=costs, classes=classes, host_cores=host_cores(), idle_cores=idle)
    db = scenario.database
    if not isinstance(db, NoDatabase):
        others: list[str] = []
        writer = handle.db_nodes[0]
        if isinstance(db, Galera):
            names = [n.name for n in db.resolved_nodes()]
            writer = names[db.routing.writer] if db.routing.read_write_split else names[0]
            others = [n for n in names if n != writer]
        say("measuring the write path (write − read time" + (", apply cost)" if others else ")"))
        path = measure_writes(handle.url, cpu.snapshot, others)
        cal.apply_cpu, cal.write_commit = path.apply_cpu, path.extra
        cal.app_db = path.read_wall / 2
        cal.connect = path.connect_wall
        cal.log_flush = measure_log_flush(lambda argv: handle.exec(writer, argv))
        say(
            f"  write − read {path.extra * 1e3:.3f} ms, log flush {cal.log_flush * 1e3:.3f} ms, "
            f"empty read {path.read_wall * 1e3:.3f} ms, connect {path.connect_wall * 1e3:.3f} ms"
            + (f", {path.apply_cpu * 1e3:.3f} ms CPU per write-set elsewhere" if others else "")
        )
    weights = [c.n for c in classes]
    cal.balancer_latency = max(
        statistics.fmean([c.latency - c.wall for c in classes], weights=weights), 0.0
    )
    return cal


def _level_model(
    file: Path,
    raw: dict[str, Any],
    base: Scenario,
    cal: Calibration,
    rate: float,
    options: CampaignOptions,
    outdir: Path,
    tag: str,
) -> Scenario:
    """The calibrated scenario at ``rate``, written to ``<tag>.calibrated.yaml``."""
    data = calibrate_scenario(raw, base, cal, rate=rate)
    data["duration"], data["warmup"], data["replications"] = (
        options.duration,
        options.warmup,
        1,
    )
    path = outdir / f"{tag}.calibrated.yaml"
    path.write_text(header(file, cal) + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    # relative paths in the scenario (trace files) resolve against the original's folder
    return load_scenario(path) if "trace" not in data["workload"] else load_scenario(file)


def speed_factor(measured_unit: float, calibrated_unit: float) -> float:
    """How much more a work unit cost during a level than while the classes were
    measured (1 when the level has no measurement)."""
    if not (math.isfinite(measured_unit) and measured_unit > 0 and calibrated_unit > 0):
        return 1.0
    return measured_unit / calibrated_unit


def run_campaign(file: Path, options: CampaignOptions, say: Say = print) -> CampaignResult:
    base = load_scenario(file)
    if base.workload.open is None:
        raise CalibrationError(
            f"{file}: lbsim calibrate drives the stack at chosen arrival rates and needs an "
            "open-loop workload (workload.open)"
        )
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    outdir = options.out or Path("validation/results") / base.name
    outdir.mkdir(parents=True, exist_ok=True)
    stack_opts = lifecycle.default_options(options.balancer, options.port)
    say(f"building the stack of {base.name!r} ({options.balancer}; base {stack_opts.base_image})")
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
    for level in options.levels:
        rate = round(level * capacity, 3)
        tag = f"level-{round(level * 100):02d}"
        say(f"{tag}: replaying {rate:g} requests/s for {options.warmup + options.duration:g} s")
        top = [f"duration={options.duration}", f"warmup={options.warmup}"]
        replayed = load_scenario(file, [f"workload.open.rate={rate}", *top])
        run = replay(replayed, handle, cal.costs)
        run.write(outdir, f"{tag}-measured")
        # This machine's CPU speed drifts (a shared VM: ±10-20 % over minutes);
        # the level's prediction uses the speed the app measured while it ran.
        speed = speed_factor(run.results["meta"]["unit_seconds"], cal.reference_unit())
        say(f"{tag}: simulating the calibrated scenario (CPU work at ×{speed:.3f} its cost)")
        model = _level_model(file, raw, base, cal.at_speed(speed), rate, options, outdir, tag)
        predicted = simulate(model, replications=1).to_dict()
        (outdir / f"{tag}-predicted.json").write_text(
            json.dumps(predicted, indent=2, default=str) + "\n", "utf-8"
        )
        errs = compare(base.name, f"{level:.0%}", predicted, run.results)
        verdict = run.results["meta"]["loadgen"]
        result.levels.append(
            LevelResult(
                level,
                rate,
                predicted,
                run.results,
                errs,
                verdict["valid"],
                verdict["problems"],
                speed,
            )
        )
        worst = max(errs, key=lambda e: e.error / e.bound if e.bound else 0.0, default=None)
        say(
            f"{tag}: {sum(e.ok for e in errs)}/{len(errs)} metrics within bounds"
            + (f"; worst {worst.metric} {worst.error:.3f} (bound {worst.bound:g})" if worst else "")
            + ("" if verdict["valid"] else f"; NOT VALID: {'; '.join(verdict['problems'])}")
        )
    if isinstance(base.database, Galera) and len(base.database.resolved_nodes()) > 1:
        result.probe = probe_stale_reads(handle, base, cal_file, options, say)
    from lbsim.validation.report import write_report

    for path in write_report(result):
        say(f"wrote {path}")
    return result


def probe_stale_reads(
    handle: StackHandle, base: Scenario, calibrated: Path, options: CampaignOptions, say: Say
) -> list[MetricError]:
    """Measured against predicted stale-read fraction, without and with sync_wait."""
    from lbsim.validation.accuracy import BOUNDS, MetricError, error
    from lbsim.validation.probe import model_stale_fraction
    from lbsim.validation.probe import probe_stale_reads as probe

    assert isinstance(base.database, Galera)
    names = [n.name for n in base.database.resolved_nodes()]
    bound = next(b for b in BOUNDS if b.metric == "galera.stale_read_fraction")
    model = load_scenario(calibrated)
    out = []
    for sync in (False, True):
        say(f"stale-read probe: {options.probe_reads} write→read pairs, sync_wait={int(sync)}")
        got = probe(handle.url, names[0], names[1], options.probe_reads, sync)
        predicted = model_stale_fraction(model, sync)
        out.append(
            MetricError(
                base.name,
                f"probe sync_wait={int(sync)}",
                "galera.stale_read_fraction",
                predicted,
                got.stale_fraction,
                error(predicted, got.stale_fraction, "absolute"),
                "absolute",
                bound.limit,
            )
        )
    return out


def flat(results: dict[str, Any]) -> dict[str, Any]:
    return flatten({k: v for k, v in results.items() if k not in ("scenario", "meta")})
