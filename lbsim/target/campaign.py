"""``lbsim calibrate SCENARIO --target TARGET``: the calibration on the user's stack.

The same campaign as on the built-in stack (:mod:`lbsim.validation.campaign`)
with the user's containers in place of lbsim's:

1. Attach to the running compose project the target names
   (:func:`lbsim.target.containers.attach`: every service, the URL and the
   database credentials checked; started only where the target allows).
2. Write the scenario with the user's topology
   (``<report>/<name>.topology.yaml``: one app node per app container with its
   cores and PHP workers, the database nodes likewise —
   :mod:`lbsim.target.topology`); it is the scenario every later step reads,
   so replay, model and report name the nodes as the containers are named.
3. Measure at low load (:mod:`lbsim.target.costs`): idle, each class's
   requests one at a time (cgroup CPU of every container, the statements
   they ran), the background in every phase; write the calibrated scenario
   next to the original.
4. Replay every level R times, interleaved, and simulate each replay with
   its seed, the speed the app's CPU showed and the background measured
   while it ran (:mod:`lbsim.validation.levels`, with
   :func:`lbsim.target.replay.replay_target` as the sender); paired errors,
   95 % intervals and verdicts; the knee.
5. The same report (:mod:`lbsim.validation.report`) with the target's
   section (services, topology, statements per class, what was not read).

A what-if (``--costs CAL``): the class costs of an earlier calibration —
of another target, say one app node — replace step 3, and the levels run on
this target's topology (three app nodes, another balancer policy given with
``--set``): the model's answer for a configuration, then its measurement.

The stale-read probe of the built-in stack needs lbsim's own app (a write
and an immediate read of the same row on two nodes) and is not run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from lbsim.scenario.loader import load_scenario
from lbsim.scenario.overrides import apply_overrides
from lbsim.scenario.schema import Scenario
from lbsim.target.costs import LOW_LOAD_TRACE_SECONDS, measure_target, own_meter
from lbsim.target.http import TargetRequest
from lbsim.target.loader import load_target
from lbsim.target.replay import replay_target
from lbsim.target.requests import MissingRequests, target_plan
from lbsim.target.schema import TargetSpec
from lbsim.target.topology import (
    ClassStatements,
    Topology,
    apply_topology,
    place_queries,
    target_capacity,
)
from lbsim.validation import collectors
from lbsim.validation.calibration import (
    Calibration,
    CalibrationError,
    calibrate_scenario,
    calibrated_path,
)
from lbsim.validation.campaign import CampaignOptions, CampaignResult, run_levels
from lbsim.validation.machine import machine
from lbsim.validation.speedprobe import SpeedProbe
from lbsim.validation.workplan import MachineCosts, PlannedQuery, work_plan

Say = Callable[[str], None]
#: the keys of a calibration.json that are :class:`Calibration`'s own
_CAL_FIELDS = frozenset(Calibration.__dataclass_fields__)


class MeasuredRequest(TargetRequest):
    """A target request with the scenario's planned demands of the same
    request (what the low-load costs are compared with)."""

    cpu: float
    queries: tuple[PlannedQuery, ...]

    def __init__(
        self, request: TargetRequest, cpu: float, queries: tuple[PlannedQuery, ...]
    ) -> None:
        super().__init__(**{f: getattr(request, f) for f in request.__dataclass_fields__})
        object.__setattr__(self, "cpu", cpu)
        object.__setattr__(self, "queries", queries)


def measured_items(scenario: Scenario, target: TargetSpec) -> Iterator[MeasuredRequest]:
    """The target's requests for the scenario's trace, each carrying its
    class's *mean* demands (CPU and each query's time): a real request costs
    what its application does for it, not what the model drew for it, so a
    class's measured mean is set against the distribution's mean (the
    calibrated scenario's class mean is then the measured one)."""
    spec = {c.name: c for c in scenario.workload.classes}
    # the built-in app's costs only turn demands into work units, unused here
    planned = work_plan(scenario, MachineCosts(), 1)
    for req, plan in zip(target_plan(scenario, target), planned, strict=False):
        c = spec[req.cls_name]
        means = tuple(
            replace(q, demand=c.queries[i].time.mean) if i < len(c.queries) else q
            for i, q in enumerate(plan.queries)
        )
        yield MeasuredRequest(req, c.cpu.mean, means)


def low_load_trace(scenario: Scenario) -> Scenario:
    """``scenario`` with a trace long enough for the low-load requests (at least
    :data:`LOW_LOAD_TRACE_SECONDS`): only its first requests of each class are
    sent, the longer duration only gives a rare class enough of them."""
    if scenario.duration >= LOW_LOAD_TRACE_SECONDS:
        return scenario
    return scenario.model_copy(update={"duration": LOW_LOAD_TRACE_SECONDS})


def earlier_calibration(
    path: Path, scenario: Scenario
) -> tuple[Calibration, list[ClassStatements], str]:
    """The class costs (and the statements per class) of an earlier
    ``calibration.json``, for a what-if: every class of ``scenario`` must have
    its costs there. Returns them with the name of the target they were
    measured on ("lbsim's stack" for the built-in one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cal = Calibration.from_dict({k: v for k, v in data.items() if k in _CAL_FIELDS})
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CalibrationError(
            f"{path}: not a calibration.json of `lbsim calibrate` ({type(exc).__name__}: {exc})"
        ) from None
    have = {c.name for c in cal.classes}
    missing = [c.name for c in scenario.workload.classes if c.name not in have]
    if missing:
        raise CalibrationError(
            f"{path}: no costs for class(es) {', '.join(missing)} of the scenario "
            f"{scenario.name!r} (it has {', '.join(sorted(have)) or 'none'})"
        )
    section = data.get("target") if isinstance(data.get("target"), dict) else {}
    try:
        statements = [ClassStatements(**s) for s in section.get("statements", [])]
    except TypeError as exc:
        raise CalibrationError(f"{path}: target.statements: {exc}") from None
    return cal, statements, str(section.get("name", "lbsim's stack"))


def header(
    scenario_file: Path, target_file: Path, cal: Calibration, costs: Path | None = None
) -> str:
    if costs is not None:
        return (
            f"# A what-if: the class costs of {costs} on the topology of {target_file}\n"
            f"# (`lbsim calibrate {scenario_file} --target {target_file} --costs {costs}`).\n"
        )
    lines = [
        f"# Calibrated by `lbsim calibrate {scenario_file} --target {target_file}` on this",
        f"# machine ({cal.host_cores:g} cores; the idle containers used {cal.idle_cores:.3f} of",
        f"# them and other programs {cal.background:.3f}: both are the host's background).",
        "# App and database nodes are the target's containers (cores: their CPU limits;",
        "# workers: php-fpm's pm.max_children); class CPU and query demands are the",
        "# scenario's distributions rescaled to what the requests cost in the containers.",
    ]
    return "\n".join(lines) + "\n"


def _absolute_trace(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A trace file named relative to the scenario, made absolute (the
    topology scenario is written elsewhere)."""
    wl = raw.get("workload")
    if isinstance(wl, dict) and isinstance(wl.get("trace"), str):
        wl["trace"] = str((folder / wl["trace"]).resolve())
    return raw


def target_section(
    target: TargetSpec,
    target_file: Path,
    stack: Any,
    topology: Topology,
    statements: list[ClassStatements],
    notes: list[str],
) -> dict[str, Any]:
    return {
        "statements": [s.to_dict() for s in statements],
        "name": target.target,
        "file": str(target_file),
        "url": stack.url,
        "app": list(stack.app_nodes),
        "database": list(stack.db_nodes),
        "topology": topology.to_dict(),
        "notes": [*topology.notes, *notes],
    }


def run_target_campaign(
    file: Path,
    target_file: Path,
    options: CampaignOptions,
    say: Say = print,
    costs: Path | None = None,
    overrides: Sequence[str] = (),
) -> CampaignResult:
    """The campaign on the target. ``costs``: a what-if: the class costs of an
    earlier calibration.json instead of measuring this target at low load (the
    calibrated scenario then goes into the report directory, never over the
    one that calibration wrote); ``overrides``: ``--set`` on the scenario."""
    from lbsim.target.containers import attach

    base = load_scenario(file, overrides)
    earlier = None if costs is None else earlier_calibration(costs, base)
    if base.workload.open is None:
        raise CalibrationError(
            f"{file}: lbsim calibrate drives the stack at chosen arrival rates and needs an "
            "open-loop workload (workload.open)"
        )
    target = load_target(target_file)
    try:
        list(target_plan(base.model_copy(update={"duration": 0.0, "warmup": 0.0}), target))
    except MissingRequests as exc:
        raise CalibrationError(f"{target_file}: {exc}") from None
    outdir = options.out or Path("validation/results") / f"{base.name}-{target.target}"
    outdir.mkdir(parents=True, exist_ok=True)
    say(f"attaching to the target {target.target!r} ({target_file})")
    stack = attach(target, target_file)
    topology = stack.topology()
    say(
        "  app: "
        + ", ".join(
            f"{s.name} ({s.cores or '?'} cores, {s.workers or '?'} workers)" for s in topology.app
        )
        + "; database: "
        + (", ".join(s.name for s in topology.db) or "none")
    )
    for line in topology.notes:
        say(f"  {line}")
    with SpeedProbe() as probe:
        if earlier is None:
            m = measure_target(
                stack,
                base,
                measured_items(low_load_trace(base), target),
                options.per_class,
                options.phase_repeats,
                say,
                probe=probe,
                settle_seconds=options.settle_seconds,
            )
            cal, statements, measured_notes = m.calibration, m.statements, m.notes
        else:
            cal, statements, source = earlier
            measured_notes = []
            say(
                f"a what-if: the class costs of {costs} (measured on {source}); this target "
                "is not measured at low load"
            )
        result, topo_file, raw, topo = _calibrated(
            file, target_file, costs, overrides, base, target, stack, topology, cal, statements,
            outdir, say,
        )  # fmt: skip
        result.target["notes"].extend(measured_notes)
        _levels(result, topo_file, raw, topo, stack, target, options, say, probe)
    from lbsim.validation.report import write_report

    for path in write_report(result):
        say(f"wrote {path}")
    return result


def _calibrated(
    file: Path,
    target_file: Path,
    costs: Path | None,
    overrides: Sequence[str],
    base: Scenario,
    target: TargetSpec,
    stack: Any,
    topology: Topology,
    cal: Calibration,
    statements: list[ClassStatements],
    outdir: Path,
    say: Say,
) -> tuple[CampaignResult, Path, dict[str, Any], Scenario]:
    """The scenario with the target's topology and the calibrated one, written;
    the campaign's result with its capacity and target section."""
    raw0 = _absolute_trace(yaml.safe_load(file.read_text(encoding="utf-8")), file.parent)
    raw0 = apply_overrides(raw0, overrides, str(file))
    raw, notes = place_queries(apply_topology(raw0, topology), cal, statements)
    for line in notes:
        say(f"  {line}")
    topo_file = outdir / f"{base.name}.topology.yaml"
    topo_file.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    topo = load_scenario(topo_file)
    cal_file = calibrated_path(file) if costs is None else outdir / calibrated_path(file).name
    data = calibrate_scenario(raw, topo, cal)
    cal_file.write_text(
        header(file, target_file, cal, costs) + yaml.safe_dump(data, sort_keys=False), "utf-8"
    )
    say(f"wrote {cal_file}")
    capacity = target_capacity(cal, topo, topology)
    result = CampaignResult(
        topo, cal, capacity, machine=machine(), outdir=outdir, calibrated_file=cal_file
    )
    result.target = target_section(target, target_file, stack, topology, statements, notes)
    if costs is not None:
        result.target["costs_from"] = str(costs)
        result.target["overrides"] = list(overrides)
    say(f"capacity of the target on this machine: {capacity:.1f} requests/s")
    for line in cal.invalid_phases():
        say(f"calibration NOT VALID: {line}")
    return result, topo_file, raw, topo


def _levels(
    result: CampaignResult,
    file: Path,
    raw: dict[str, Any],
    base: Scenario,
    stack: Any,
    target: TargetSpec,
    options: CampaignOptions,
    say: Say,
    probe: SpeedProbe | None = None,
) -> None:
    def send(scenario: Scenario, c: Calibration) -> Any:
        return replay_target(scenario, stack, target, c, probe=probe)

    meter = own_meter(collectors.ContainerCpu(stack), probe)
    run_levels(result, file, raw, base, None, meter, options, say, send=send)
