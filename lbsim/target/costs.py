"""The low-load measurements of a user's stack (``lbsim calibrate --target``).

The same phases as on the built-in stack (:mod:`lbsim.validation.lowload`),
on the containers the target file names:

* **idle**: nothing sent; the containers' CPU is their housekeeping, the
  CPU outside them and this process is the machine's background;
* **classes**: each class's requests (the target's HTTP request for it,
  rendered for the scenario's first requests of that class), one at a time
  between two idle gaps: every container group's CPU (cgroups), the
  client-side latency, the background before and after — and, around the
  phase, every database node's ``SHOW GLOBAL STATUS``, whose ``Com_*``
  counters give the statements one request runs
  (:func:`lbsim.target.topology.statements_from_status`).

The user's application reports no work units, so the CPU its requests
cost is followed through the application itself: during a replay, the app
containers' CPU per request of each class over the CPU measured here
(:func:`app_speed`), which the model applies. The machine's own speed is the
speed probe's (:mod:`lbsim.validation.speedprobe`), whose median cost over
this measurement is the reference every replay is judged against.

The stack's balancer latency is what a request's latency holds beyond its
app and database CPU at low load (the balancer, the network, the round
trips to the database): the weighted mean over the classes.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lbsim.scenario.database import Galera
from lbsim.scenario.schema import Scenario
from lbsim.target.topology import (
    STATEMENT_COUNTERS,
    ClassStatements,
    own_status_counts,
    statements_from_status,
)
from lbsim.target.write_sets import (
    WSREP_COUNTERS,
    NodeLoad,
    node_loads,
    replicated_per_request,
    write_set_costs,
)
from lbsim.validation import collectors
from lbsim.validation.background import SETTLE_MOST, Meter
from lbsim.validation.calibration import Calibration, ClassCost, ContainerGroups, host_cores
from lbsim.validation.campaign import stack_meter
from lbsim.validation.lowload import measure_class_phase, measure_idle_phase
from lbsim.validation.speedprobe import SpeedProbe, median_cost
from lbsim.validation.workplan import MachineCosts

Say = Callable[[str], None]
Status = dict[str, dict[str, str]]

#: a target's machine costs: its application has no work units; the speed of
#: a replay is the app CPU per request over the calibrated one (app_speed),
#: reported in the units of this reference (1.0 = the calibration's speed)
TARGET_COSTS = MachineCosts(unit_seconds=1.0, db_iteration_seconds=0.0)


@dataclass
class TargetMeasurement:
    calibration: Calibration
    statements: list[ClassStatements] = field(default_factory=list)
    #: what the report should say about the measurement (the Galera write-set fit)
    notes: list[str] = field(default_factory=list)


def read_status(stack: Any, nodes: Sequence[str], galera: bool = False) -> Status:
    """Every database node's statement counters (and write-set counters on Galera)."""
    keys = (*STATEMENT_COUNTERS, *WSREP_COUNTERS) if galera else STATEMENT_COUNTERS
    return {n: collectors.global_status(stack, n, keys) for n in nodes}


def first_per_class(
    items: Iterable[Any],
    names: Sequence[str],
    per_class: int,
    more: Mapping[str, int] | None = None,
) -> dict[str, list[Any]]:
    """The first ``per_class`` items of each class (in trace order); ``more``:
    classes that get that many instead."""
    want = {n: (more or {}).get(n, per_class) for n in names}
    out: dict[str, list[Any]] = {n: [] for n in names}
    for item in items:
        bucket = out.get(item.cls_name)
        if bucket is not None and len(bucket) < want[item.cls_name]:
            bucket.append(item)
        if all(len(b) >= want[n] for n, b in out.items()):
            break
    return {n: b for n, b in out.items() if b}


#: on a Galera target, a class whose scenario gives it writes is measured over
#: at least this many requests: the CPU a node spends per received write-set
#: is fitted from these requests, and over 40 comments (about a second) the
#: nodes' housekeeping moved it from 0.56 ms to -0.07 ms between two runs
GALERA_WRITE_REQUESTS = 200
#: the low-load requests are drawn from a trace at least this long (s), so
#: that a rare writing class has its :data:`GALERA_WRITE_REQUESTS`
LOW_LOAD_TRACE_SECONDS = 3600.0


def balancer_residual(classes: Sequence[ClassCost], weights: Mapping[str, float]) -> float:
    """Latency beyond app and database CPU at low load, weighted over the classes."""
    pairs = [
        (weights.get(c.name, 0.0), c.latency - c.app_cpu - c.db_cpu)
        for c in classes
        if math.isfinite(c.latency)
    ]
    total = sum(w for w, _ in pairs)
    if total <= 0:
        return 0.0
    return max(sum(w * r for w, r in pairs) / total, 0.0)


def measure_target(
    stack: Any,
    scenario: Scenario,
    items: Iterable[Any],
    per_class: int,
    phase_repeats: int,
    say: Say,
    gap: float = 2.5,
    probe: SpeedProbe | None = None,
    settle_seconds: float = SETTLE_MOST,
) -> TargetMeasurement:
    """Every low-load measurement of the user's stack ``stack`` (a
    :class:`lbsim.target.containers.TargetHandle`), ``items`` the scenario's
    trace as the target's requests; ``probe``: the running speed probe (its
    median cost over the whole measurement is the calibration's reference)."""
    started = time.monotonic()
    cpu = collectors.ContainerCpu(stack)
    app, db = tuple(stack.app_nodes), tuple(stack.db_nodes)
    other = tuple(s for s in stack.services if s not in app and s not in db)
    groups = ContainerGroups(app, db, other)
    meter = own_meter(cpu, probe)
    say("measuring the idle stack and the machine's background (6 s)")
    idle = measure_idle_phase(meter, 6.0, phase_repeats)
    say(
        f"  idle stack {idle.stack:.3f} cores; background (other programs) {idle.cores:.3f} "
        f"cores{'' if idle.valid else ' — NOT VALID: ' + '; '.join(idle.problems)}"
    )
    galera = isinstance(scenario.database, Galera) and len(db) > 1
    own: dict[str, float] = {}
    if db:
        first = read_status(stack, db, galera)
        own = own_status_counts(first, read_status(stack, db, galera))
    names = [c.name for c in scenario.workload.classes]
    writing = {
        c.name: max(per_class, GALERA_WRITE_REQUESTS)
        for c in scenario.workload.classes
        if galera and any(q.kind == "write" for q in c.queries)
    }
    batches = first_per_class(items, names, per_class, writing)
    say(
        f"measuring every class at low load ({per_class} requests each"
        + (
            f", {GALERA_WRITE_REQUESTS} of {', '.join(writing)}: the write-set cost is fitted "
            "from them"
            if writing
            else ""
        )
        + ", one at a time)"
    )
    classes, phases, statements = [], [], []
    loads: dict[str, list[NodeLoad]] = {}
    for name, batch in batches.items():
        before = read_status(stack, db, galera) if db else {}
        cost, bg = measure_class_phase(
            stack.url, name, batch, cpu.snapshot, meter, groups, 0.0, gap, phase_repeats,
            settle_seconds=settle_seconds,
        )  # fmt: skip
        after = read_status(stack, db, galera) if db else {}
        # a repeated phase sent its requests more than once: counters per request sent
        sent = len(batch) * bg.attempt
        stmts = statements_from_status(name, sent, before, after, own) if db else None
        if stmts is not None:
            statements.append(stmts)
            cost.writes = stmts.writes
        if galera:
            # the CPU is the last attempt's, the counters every attempt's: both per
            # request of their own span (a node's served share does not move);
            # a request's writes are then its write-sets, not its statements
            loads[name] = node_loads(sent, cost.db_node_cpu, before, after, own)
            cost.writes = replicated_per_request(sent, before, after)
        classes.append(cost)
        phases.append(bg)
        say(
            f"  {name}: app CPU {cost.app_cpu * 1e3:.2f} ms, database CPU "
            f"{cost.db_cpu * 1e3:.2f} ms, latency {cost.latency * 1e3:.1f} ms"
            + (
                f", {stmts.reads:.1f} reads + {stmts.writes:.1f} writes per request"
                if stmts is not None
                else ""
            )
            + ("" if bg.valid else f" — NOT VALID: {'; '.join(bg.problems)}")
        )
    weights = {c.name: c.weight for c in scenario.workload.classes}
    n_weights = [c.n for c in classes]
    cal = Calibration(
        costs=TARGET_COSTS,
        classes=classes,
        host_cores=host_cores(),
        idle_cores=idle.stack,
        background=statistics.fmean([bg.cores for bg in phases], weights=n_weights)
        if phases
        else idle.cores,
        phases=[bg.to_dict() for bg in [idle, *phases]],
    )
    cal.balancer_latency = balancer_residual(classes, weights)
    notes: list[str] = []
    if galera:
        ws = write_set_costs(loads)
        cal.apply_cpu = ws.apply_cpu
        fitted = ", ".join(
            f"{name} {f.apply * 1e3:.3f} ms x {r:.2f}" for name, (f, r) in ws.per_class.items()
        )
        notes.append(
            f"Galera: {ws.apply_cpu * 1e3:.3f} ms of CPU per write-set a node receives, fitted "
            "over the nodes' CPU, connections and wsrep_received per class"
            + (f" (per class, x write-sets received per request: {fitted})" if fitted else "")
        )
        if ws.per_class and ws.apply_cpu <= 0:
            notes.append(
                "the write-set cost fitted is not above 0: the database nodes' own "
                "housekeeping moved more than the write-sets cost, and the model's receiving "
                "nodes spend nothing on them (measure again on a quieter machine, or with "
                "more --per-class)"
            )
        notes.extend(ws.notes)
        for line in notes:
            say(f"  {line}")
    if probe is not None:
        samples = probe.between(started, time.monotonic())
        if samples:
            cal.probe_seconds = median_cost(samples)
            say(
                f"  the machine's speed probe: {cal.probe_seconds * 1e3:.2f} ms of CPU per "
                f"piece of fixed work (median of {len(samples)})"
            )
    return TargetMeasurement(cal, statements, notes)


def own_meter(cpu: collectors.ContainerCpu, probe: SpeedProbe | None) -> Meter:
    """The background meter with the speed probe's CPU counted as lbsim's own."""
    if probe is None:
        return stack_meter(cpu)
    return Meter(
        collectors.host_cpu_seconds,
        cpu.snapshot,
        lambda: collectors.own_cpu_seconds() + probe.cpu_seconds(),
        steal=collectors.host_steal_seconds,
    )


def app_speed(cal: Calibration, completed: Mapping[str, int], app_cpu_seconds: float) -> float:
    """How much more the app's CPU per request cost during a replay than at
    calibration: the app containers' CPU over what the completed requests of
    each class cost at calibration (nan when nothing completed)."""
    costs = cal.by_name()
    expected = sum(n * costs[c].app_cpu for c, n in completed.items() if c in costs)
    if expected <= 0 or not math.isfinite(app_cpu_seconds):
        return math.nan
    return app_cpu_seconds / expected
