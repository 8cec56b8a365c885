"""Calibration: measure the real stack at low load and write a scenario that describes it.

What is measured, on an idle stack, one request at a time (nothing queues):

* the machine's work-unit costs (:class:`MachineCosts`): PHP CPU per work
  unit from the app's ``X-Lbsim-Work`` header, MariaDB CPU per ``BENCHMARK()``
  iteration from the database containers' CPU;
* per request class, ``k`` requests of the scenario's own trace: the CPU every
  container used (cgroup accounting) — the app containers' share becomes the
  class's PHP CPU demand, the database containers' share its query demands;
  what the balancer, the database proxy and the load generator used is CPU
  the model does not place on a node: it becomes the host's ``background``;
* the write path: how much longer an empty write takes than an empty read
  (``commit``: every node, the writer and each applier, commits every
  write-set in order and pays it; on one machine the Galera round trip is
  loopback and inside it), and, for the report, the time of one synchronous
  log write on a database node's datadir (``dd oflag=dsync``): the bare
  flush is a fraction of the commit path. The CPU each other node spends on
  one write-set is ``receive`` (group communication, certification and the
  row apply together); ``apply``, the applier's CPU before the rows become
  visible, is 0: an applier installs row images and does not re-run the
  statement (its BENCHMARK() work); when the rows show there, measured by
  polling a node after a write, is ``visibility_lag`` (validation.visibility);
* latency outside the app: client → balancer → php-fpm and back
  (``balancer.latency``), and the database round trip (``network.app_db``:
  half the median time of an empty read as PHP sees it);
* opening a database connection (``handshake``): its median time less one
  round trip, as CPU of the server accepting it (thread, authentication) —
  so it grows with the load like the work it competes with.

The calibrated scenario keeps every distribution's family and shape and
scales it (a lognormal stays a lognormal with the same cv), so the model
draws the very demands the replay sends, scaled by what they cost here.
Every container shares this machine's cores: the calibrated scenario places
all app and database nodes on one host with the machine's cores.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from lbsim.report import atomic
from lbsim.scenario.database import Galera, MySQL, NoDatabase
from lbsim.scenario.schema import RequestClass, Scenario
from lbsim.validation import collectors
from lbsim.validation.loadgen import Record, send_sequential
from lbsim.validation.measured import unit_seconds
from lbsim.validation.visibility import visibility_keys
from lbsim.validation.workplan import MachineCosts, PlannedQuery, PlannedRequest, work_plan

if TYPE_CHECKING:
    from lbsim.validation.lifecycle import StackHandle

#: the host every container of the calibrated scenario is placed on
HOST = "machine"
#: the least database CPU a query of a class is given (s): what the
#: calibration measures for a class's queries is the database's CPU less the
#: other nodes' write-sets and the connections' handshakes, which can leave
#: nothing, or less, for a cheap read within the noise
MIN_QUERY_CPU = 1e-5

Snapshot = Callable[[], Mapping[str, float]]


@dataclass
class ClassCost:
    """What one request of a class cost on the idle stack (means over ``n``)."""

    name: str
    n: int
    planned_cpu: float  # the scenario's PHP CPU demand of these requests (s)
    app_cpu: float  # CPU of the app containers (s)
    planned_db: float  # the scenario's query demands (s)
    db_cpu: float  # CPU of the database containers (s)
    other_cpu: float  # balancer, database proxy and load generator CPU (s)
    latency: float  # client-side latency (s)
    wall: float  # php-fpm's wall time (s)
    db_wall: float  # time in the database, connect included (s)
    writes: float  # write queries per request
    #: PHP CPU per work unit while these requests ran (s); 0: not measured
    unit: float = 0.0
    #: the part of ``other_cpu`` outside every container and this process
    #: (docker-proxy, the kernel's network stack) (s)
    induced_cpu: float = 0.0
    #: each database container's CPU per request (s; its idle rate taken off,
    #: not clamped at 0: around 0 it is noise a fit over the nodes needs)
    db_node_cpu: dict[str, float] = field(default_factory=dict)

    def at_unit(self, unit: float) -> ClassCost:
        """These costs on the machine as it was when a work unit cost ``unit``
        seconds: every CPU demand scaled by ``unit`` over the unit measured in
        these requests (unchanged when either is unknown); latencies kept.

        A class measured while the virtual machine ran ×1.28 slow (a CI run:
        one class ×1.28, the next ×1.17, the last ×1.01, minutes apart) would
        otherwise enter the mix at its own speed."""
        if not (self.unit > 0 and unit > 0 and math.isfinite(self.unit)):
            return self
        f = unit / self.unit
        return replace(
            self,
            app_cpu=self.app_cpu * f,
            db_cpu=self.db_cpu * f,
            other_cpu=self.other_cpu * f,
            induced_cpu=self.induced_cpu * f,
            db_node_cpu={k: v * f for k, v in self.db_node_cpu.items()},
            unit=unit,
        )


@dataclass
class Calibration:
    """Everything :func:`calibrate_scenario` needs, JSON-serialisable."""

    costs: MachineCosts
    classes: list[ClassCost]
    host_cores: float
    #: cores the idle stack's containers use (database housekeeping, php-fpm masters)
    idle_cores: float
    apply_cpu: float = 0.0
    #: how much longer an empty write takes than an empty read: the commit path
    write_commit: float = 0.0
    #: one synchronous log write on a database node's datadir (s); 0: not measured
    log_flush: float = 0.0
    #: median time to open a database connection, as PHP sees it (s)
    connect: float = 0.0
    balancer_latency: float = 0.0
    app_db: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: cores busy outside the stack and the load generator while the classes
    #: were measured (other programs: :mod:`lbsim.validation.background`)
    background: float = 0.0
    #: each low-load phase's background, speed and validity
    #: (:meth:`lbsim.validation.background.PhaseBackground.to_dict`)
    phases: list[dict[str, Any]] = field(default_factory=list)
    #: Galera: polled writes' lags past the writer's OK (s; validation.visibility)
    visibility_lags: list[float] = field(default_factory=list)
    #: a user's stack: the speed probe's median CPU cost while the classes were
    #: measured (s; :mod:`lbsim.validation.speedprobe`); 0: not measured
    probe_seconds: float = 0.0

    def at_speed(self, factor: float) -> Calibration:
        """This calibration on a machine whose CPU work costs ``factor`` times
        as much (the work unit measured during a run over the one measured at
        calibration): every CPU demand scaled, latencies and idle load kept."""
        out = copy.deepcopy(self)
        for c in out.classes:
            c.app_cpu *= factor
            c.db_cpu *= factor
            c.other_cpu *= factor
            c.induced_cpu *= factor
        out.apply_cpu *= factor
        return out

    def reference_unit(self) -> float:
        """PHP CPU per work unit while the classes were measured (s): the speed
        the measured demands belong to (the cost measurement's when unknown)."""
        known = [(c.n, c.unit) for c in self.classes if math.isfinite(c.unit) and c.unit > 0]
        if not known:
            return self.costs.unit_seconds
        return sum(n * u for n, u in known) / sum(n for n, _ in known)

    def by_name(self) -> dict[str, ClassCost]:
        return {c.name: c for c in self.classes}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["costs"] = self.costs.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        data = dict(data)
        data["costs"] = MachineCosts.from_dict(data["costs"])
        data["classes"] = [ClassCost(**c) for c in data["classes"]]
        return cls(**data)

    def cpu_per_request(self, scenario: Scenario) -> float:
        """Mean CPU of one request of the scenario's mix, every process included (s)."""
        weights = {c.name: c.weight for c in scenario.workload.classes}
        total = sum(weights.values())
        return sum(
            weights[c.name] / total * (c.app_cpu + c.db_cpu + c.other_cpu) for c in self.classes
        )

    def other_cpu_per_request(self, scenario: Scenario) -> float:
        weights = {c.name: c.weight for c in scenario.workload.classes}
        total = sum(weights.values())
        return sum(weights[c.name] / total * c.other_cpu for c in self.classes)

    def capacity(self, scenario: Scenario) -> float:
        """Requests per second that keep this machine's cores busy (those the
        idle stack and the background leave)."""
        free = self.host_cores - self.idle_cores - self.background
        return max(free, 0.0) / self.cpu_per_request(scenario)

    def induced_cpu_per_request(self, scenario: Scenario) -> float:
        """CPU a request of the mix causes outside every container and the load
        generator (s): what a replay's outside CPU holds besides the background."""
        weights = {c.name: c.weight for c in scenario.workload.classes}
        total = sum(weights.values())
        return sum(weights[c.name] / total * c.induced_cpu for c in self.classes)

    def invalid_phases(self) -> list[str]:
        """One line per low-load phase measured on a machine that did not hold still."""
        return [f"{p['phase']}: {'; '.join(p['problems'])}" for p in self.phases if p["problems"]]


# --------------------------------------------------------------------------- measuring


def _mean(values: Iterable[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return statistics.fmean(vals) if vals else 0.0


def _delta(a: Mapping[str, float], b: Mapping[str, float], names: Iterable[str]) -> float:
    return sum(b[n] - a[n] for n in names if n in a and n in b)


def _request(index: int, units: int, queries: tuple[PlannedQuery, ...]) -> PlannedRequest:
    return PlannedRequest(index, 0.0, 0, "calibrate", 0, "10.255.0.1", 0.0, units, queries)


def measure_costs(url: str, db_cpu: Snapshot | None, n: int = 20) -> MachineCosts:
    """The machine's cost of a PHP work unit and of a BENCHMARK() iteration."""
    units = 4000
    recs = send_sequential(url, [_request(i, units, ()) for i in range(n)])
    _check(recs, "PHP work-unit measurement")
    unit = _mean(r.work for r in recs) / units
    if db_cpu is None:
        return MachineCosts(unit_seconds=unit)
    iterations = 200_000
    row = (1,)
    base = [_request(i, 0, (PlannedQuery("r", row, 0, 0.0),)) for i in range(n)]
    heavy = [_request(i, 0, (PlannedQuery("r", row, iterations, 0.0),)) for i in range(n)]
    a = db_cpu()
    ok_base = _answered(send_sequential(url, base), "database baseline")
    b = db_cpu()
    ok_heavy = _answered(send_sequential(url, heavy), "BENCHMARK() measurement")
    c = db_cpu()
    per_base = (sum(b.values()) - sum(a.values())) / ok_base
    per_heavy = (sum(c.values()) - sum(b.values())) / ok_heavy
    it = max(per_heavy - per_base, 0.0) / iterations
    return MachineCosts(unit_seconds=unit, db_iteration_seconds=it or 5e-8)


def _answered(records: Sequence[Record], what: str, least: int = 5) -> int:
    """How many of a database measurement's requests were answered; a stack
    that refuses some (error 1040: the too-many-connections story's
    persistent connections outnumber ``max_connections``) is measured on the
    others, and only one that answers fewer than ``least`` is an error."""
    ok = sum(1 for r in records if r.status == 200)
    if ok < least:
        _check(records, what)
    return ok


def measure_stack_costs(handle: StackHandle) -> MachineCosts:
    """:func:`measure_costs` on a running built-in stack, the BENCHMARK()
    iteration measured on its database containers' CPU (when it has any).

    Every replay plans a query's time as iterations at this cost: left at the
    default 50 ns on a machine where one takes 95 ns, the hot-rows story's
    15 ms row locks held 30 ms on the stack and it measured twice the model's
    conflicts (a 2-core Intel VM, 2026-12-06)."""
    nodes = handle.db_nodes
    if not nodes:
        return measure_costs(handle.url, None)
    cpu = collectors.ContainerCpu(handle, nodes)
    return measure_costs(handle.url, cpu.snapshot)


def _check(records: Sequence[Record], what: str) -> None:
    bad = [r for r in records if r.status != 200]
    if bad:
        r = bad[0]
        raise CalibrationError(
            f"{what}: {len(bad)} of {len(records)} requests failed "
            f"(first: status {r.status}, database error {r.db_error or 'none'}) — "
            "is the stack up and healthy? (lbsim stack status)"
        )


class CalibrationError(Exception):
    """The stack could not be measured (a clear message for the user)."""


@dataclass(frozen=True)
class ContainerGroups:
    app: tuple[str, ...]
    db: tuple[str, ...]
    other: tuple[str, ...]  # balancer, database proxy


def measure_classes(
    url: str,
    scenario: Scenario,
    costs: MachineCosts,
    rows: int,
    cpu: Snapshot,
    machine_cpu: Callable[[], float],
    idle_cores: float,
    groups: ContainerGroups,
    per_class: int = 40,
    max_seconds: float = 60.0,
) -> list[ClassCost]:
    """``per_class`` requests of each class from the scenario's trace, one at a time.

    A class whose requests are long gets fewer (its ``per_class`` requests
    would exceed ``max_seconds``), never fewer than 5.
    """
    by_class: dict[str, list[PlannedRequest]] = {c.name: [] for c in scenario.workload.classes}
    for item in work_plan(scenario, costs, rows):
        bucket = by_class[item.cls_name]
        if len(bucket) < per_class:
            bucket.append(item)
        if all(len(b) >= per_class for b in by_class.values()):
            break
    out = []
    for name, items in by_class.items():
        if not items:
            continue
        probe = send_sequential(url, items[:2])
        _check(probe, f"class {name!r}")
        each = _mean(r.latency for r in probe)
        n = max(5, min(len(items), int(max_seconds / max(each, 1e-3))))
        items = items[:n]
        a, m0, t0 = cpu(), machine_cpu(), time.monotonic()
        recs = send_sequential(url, items)
        b, m1, t1 = cpu(), machine_cpu(), time.monotonic()
        app, dbs = _delta(a, b, groups.app), _delta(a, b, groups.db)
        # everything else the machine did for these requests: balancer, proxies,
        # docker-proxy, the kernel's network stack, this load generator
        other = max(m1 - m0 - app - dbs - idle_cores * (t1 - t0), 0.0)
        _check(recs, f"class {name!r}")
        out.append(
            ClassCost(
                name=name,
                n=n,
                planned_cpu=_mean(i.cpu for i in items),
                app_cpu=app / n,
                planned_db=_mean(sum(q.demand for q in i.queries) for i in items),
                db_cpu=dbs / n,
                other_cpu=other / n,
                latency=_mean(r.latency for r in recs),
                wall=_mean(r.wall for r in recs),
                db_wall=_mean(r.db for r in recs),
                writes=_mean(sum(1 for q in i.queries if q.kind == "w") for i in items),
                unit=_finite_or_zero(unit_seconds(recs)),
            )
        )
    return out


@dataclass(frozen=True)
class WritePath:
    """An empty write against an empty read, measured one at a time."""

    #: how much longer the write takes than the read as PHP sees it (s)
    extra: float
    #: median time of the empty read as PHP sees it (s): two hops and a trivial query
    read_wall: float
    #: median time PHP takes to open a database connection (s)
    connect_wall: float = 0.0


def _finite_or_zero(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def single_row_requests(kind: str, n: int) -> list[PlannedRequest]:
    """``n`` requests of one single-row statement each (``kind`` "r" or "w"), on rows
    2 to ``n`` + 1, no PHP work: the write-path measurements' load."""
    return [_request(i, 0, (PlannedQuery(kind, (2 + i,), 0, 0.0),)) for i in range(n)]


def measure_writes(url: str, n: int = 40) -> WritePath:
    """The write path of a single-row autocommit UPDATE against a single-row SELECT.
    (What the other Galera nodes spend per write-set is measured apart, by
    :func:`lbsim.validation.node_costs.measure_node_costs`.)"""
    reads = single_row_requests("r", n)
    writes = single_row_requests("w", n)
    _check(send_sequential(url, reads[:3]), "warm-up reads")
    r = send_sequential(url, reads)
    w = send_sequential(url, writes)
    _check(r, "Galera read baseline")
    _check(w, "Galera write measurement")
    read_times = [x.db - x.connect for x in r]
    write_times = [x.db - x.connect for x in w]
    # medians: a write now and then waits milliseconds for something unrelated
    extra = max(statistics.median(write_times) - statistics.median(read_times), 0.0)
    return WritePath(
        extra,
        max(statistics.median(read_times), 0.0),
        statistics.median(x.connect for x in r),
    )


def parse_dd_seconds(text: str) -> float:
    """The elapsed seconds in GNU dd's summary ("... copied, 0.0407 s, 20.1 MB/s")."""
    for line in text.splitlines():
        if "copied," in line:
            part = line.split("copied,", 1)[1].split(",")[0].strip()
            number, _, unit = part.partition(" ")
            if unit.strip() == "s":
                return float(number)
    raise ValueError(f"no elapsed time in dd's output: {text.strip()[-200:]!r}")


#: a synchronous write loop on the database's datadir (removed afterwards)
FLUSH_PROBE = (
    "cd /var/lib/mysql && dd if=/dev/zero of=lbsim-flush.probe bs=4096 count={n} "
    "oflag=dsync 2>&1; rm -f lbsim-flush.probe"
)


def measure_log_flush(run: Callable[[list[str]], str], n: int = 200) -> float:
    """Seconds per synchronous 4 KiB write on a database node's datadir: what one
    redo-log flush costs there. ``run`` executes a command in the node's container."""
    return parse_dd_seconds(run(["sh", "-c", FLUSH_PROBE.format(n=n)])) / n


def host_cores() -> float:
    """This machine's cores (the containers' CPUs share them)."""
    try:
        return float(len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return float(os.cpu_count() or 1)


# --------------------------------------------------------------------------- the scenario


def scale_dist(spec: Any, factor: float) -> Any:
    """``spec`` (a scenario distribution as written in YAML) with every value
    multiplied by ``factor``; family and shape (cv, k, alpha, weights) are kept."""
    if isinstance(spec, int | float):
        return float(spec) * factor
    if not isinstance(spec, dict):
        raise TypeError(f"not a distribution: {spec!r}")
    out = dict(spec)
    kind = out.get("dist", "deterministic")
    if kind == "deterministic":
        out["value"] = float(out["value"]) * factor
    elif kind in ("exponential", "lognormal", "gamma", "erlang", "pareto"):
        out["mean"] = float(out["mean"]) * factor
    elif kind == "hyperexponential":
        out["means"] = [float(m) * factor for m in out["means"]]
    elif kind == "uniform":
        out["low"] = float(out["low"]) * factor
        out["high"] = float(out["high"]) * factor
    elif kind == "empirical":
        if "file" in out:
            raise ValueError("an empirical distribution read from a file cannot be rescaled")
        out["values"] = [float(v) * factor for v in out["values"]]
    else:
        raise ValueError(f"unknown distribution {kind!r}")
    return out


def calibrate_scenario(
    raw: dict[str, Any],
    scenario: Scenario,
    cal: Calibration,
    rate: float | None = None,
    background: float | None = None,
) -> dict[str, Any]:
    """The scenario file's data (``raw``, as written) with measured costs in place.

    The host's ``background`` is the idle stack's housekeeping, the CPU other
    programs used (``background`` cores, as measured while a level ran; by
    default the calibration's) and, at ``rate``, the CPU of the requests
    spent on no modelled node (balancer, proxies, load generator)."""
    out: dict[str, Any] = copy.deepcopy(raw)
    costs = cal.by_name()
    db = scenario.database
    handshake = max(cal.connect - 2 * cal.app_db, 0.0)
    replicas = len(db.resolved_nodes()) - 1 if isinstance(db, Galera) else 0
    for spec_cls, c in zip(out["workload"]["classes"], scenario.workload.classes, strict=True):
        m = costs.get(c.name)
        if m is None:
            continue
        if m.planned_cpu > 0 and "cpu" in spec_cls:
            spec_cls["cpu"] = scale_dist(spec_cls["cpu"], m.app_cpu / m.planned_cpu)
        if m.planned_db > 0 and spec_cls.get("queries"):
            # the database CPU of the class's own queries: measured minus what the
            # other nodes spent on its write-sets (`receive`, below) and the
            # handshakes of its connections (`handshake`)
            path_cpu = m.db_cpu - m.writes * replicas * cal.apply_cpu
            path_cpu -= _connections(c, db) * handshake
            # a class whose own queries cost less than the noise of what is taken
            # off them keeps a query's least cost: a live run measured a page's
            # reads at or below its handshake, and a zero mean is no distribution
            path_cpu = max(path_cpu, MIN_QUERY_CPU * len(spec_cls["queries"]))
            factor = path_cpu / m.planned_db
            for q in spec_cls["queries"]:
                q["time"] = scale_dist(q["time"], factor)
    load = cal.idle_cores + (cal.background if background is None else background)
    if rate is not None:
        load += rate * cal.other_cpu_per_request(scenario)
    # the model needs a core's sliver for the containers: a machine busier than
    # that is reported by the phase checks, not refused here
    load = min(max(load, 0.0), cal.host_cores * 0.95)
    out["hosts"] = [{"name": HOST, "cores": cal.host_cores, "background": round(load, 4)}]
    app = out.setdefault("app", {})
    app["host"] = HOST
    for node in app.get("nodes", []) if isinstance(app.get("nodes"), list) else []:
        node.pop("host", None)
    cfs_under_a_core(app, scenario)
    out.setdefault("balancer", {})["latency"] = round(cal.balancer_latency, 6)
    net = out.setdefault("network", {})
    net["client_lb"] = 0.0  # the load generator is on this machine: loopback
    net["lb_app"] = 0.0  # included in balancer.latency (measured end to end)
    if not isinstance(db, NoDatabase):
        net["app_db"] = round(cal.app_db, 6)
        dbo = out["database"]
        dbo["host"] = HOST
        if isinstance(dbo.get("nodes"), list):
            for node in dbo["nodes"]:
                node.pop("host", None)
        # Every node commits every write-set in seqno order, and that commit
        # (wsrep commit order, InnoDB's two-phase commit and its flushes) costs
        # about the whole extra time of a write, not only the bare log flush:
        # with the flush alone the model kept write latency flat up to 85 % of
        # capacity where the real writes slowed 4-6x (scenarios/galera-writes).
        dbo["commit"] = round(cal.write_commit, 7)
        if handshake > 0 and db.connect == "per_request":
            dbo["handshake"] = round(handshake, 7)
        if isinstance(db, Galera):
            # the loopback group round is inside the measured write − read time
            dbo["replication_delay"] = 0.0
            dbo["receive"] = round(cal.apply_cpu, 7)
            dbo["apply"] = 0.0
            dbo.update(visibility_keys(cal.visibility_lags, cal.write_commit))
    if rate is not None and isinstance(out["workload"].get("open"), dict):
        out["workload"]["open"]["rate"] = rate
    return out


#: the CFS period (s) of a container limited with Docker's ``cpus`` (the
#: kernel's default; lbsim.validation.compose limits the app nodes so)
CPUS_PERIOD = 0.1


def runs_throttled(cores: float | None) -> bool:
    """Whether the model runs a container's CFS quota of ``cores`` as such
    (a ``cpu_period``: full speed until the quota is spent, then throttled)
    rather than processor-shared at ``cores``: under one core. At a core or
    more a busy worker gets a whole core either way. The rule of the built-in
    stack (:func:`cfs_under_a_core`) and of a target's containers
    (``lbsim.target.topology.NodeShape.cfs``) alike."""
    return cores is not None and cores < 1.0


def cfs_under_a_core(app: dict[str, Any], scenario: Scenario) -> None:
    """Give every app node under one core without a ``cpu_period`` the one it
    runs with (:data:`CPUS_PERIOD`), in the scenario data's ``app`` section.

    ``cpus: 0.5`` is a CFS quota of 50 ms per 100 ms period. A busy PHP
    worker runs at a full core's speed until the quota is spent. Processor
    sharing at 0.5 cores would run it at half speed at best. Measured on the
    stories' replays (2026-12-07, 2-core VM), processor sharing got these
    class means wrong:

    - the slow-galera-node story's view class: 14-15 ms predicted,
      9.1-10.0 ms measured;
    - the heavy-users story's browse class under least_load: 57-62 ms
      predicted, 42-47 ms measured.

    Simulated again under CFS, they became 9.1-9.5 ms and 41-46 ms. A node of
    a core or more is left to processor sharing: its busy worker gets a whole
    core either way. A target's nodes arrive with the period read from their
    containers, which this function keeps.

    The database nodes stay processor-shared, although the stack gives those
    under a core 10 ms periods (``compose.DB_CPU_PERIOD``). Under CFS, the
    slow-galera-node story's orders were predicted further from the
    measurement (23 ms against 28 ms processor-shared and 45-52 ms measured).
    What the model lacks there is Galera's safe delivery: see
    validation/results/stories/slow-galera-node/SAFE-DELIVERY.md.
    """
    nodes = app.get("nodes")
    resolved = scenario.app.resolved_nodes()
    if isinstance(nodes, list):
        for spec, node in zip(nodes, resolved, strict=True):
            if runs_throttled(node.cores) and node.cpu_period is None:
                spec["cpu_period"] = CPUS_PERIOD
    elif app.get("cpu_period") is None and all(
        runs_throttled(n.cores) and n.cpu_period is None for n in resolved
    ):
        app["cpu_period"] = CPUS_PERIOD


def _connections(cls: RequestClass, db: NoDatabase | MySQL | Galera) -> int:
    """Database connections one request of ``cls`` opens (reads and writes
    apart under a Galera read/write split)."""
    kinds = {q.kind for q in cls.queries}
    if isinstance(db, Galera) and db.routing.read_write_split:
        return len(kinds)
    return 1 if kinds else 0


def header(scenario_file: Path, cal: Calibration) -> str:
    lines = [
        f"# Calibrated by `lbsim calibrate {scenario_file}` on this machine",
        f"# ({cal.host_cores:g} cores; the idle stack used {cal.idle_cores:.3f} of them and other "
        f"programs {cal.background:.3f}:",
        "# both are the host's background; keep the idle stack's alone for a dedicated machine).",
        f"# PHP work unit {cal.costs.unit_seconds * 1e6:.3f} us, "
        f"BENCHMARK iteration {cal.costs.db_iteration_seconds * 1e9:.2f} ns.",
        "# Class CPU and query demands are the original distributions rescaled to",
        "# what the requests cost in the containers; every node shares host 'machine'.",
    ]
    return "\n".join(lines) + "\n"


def write_calibrated(
    path: Path, raw: dict[str, Any], scenario: Scenario, cal: Calibration, source: Path
) -> Path:
    data = calibrate_scenario(raw, scenario, cal)
    text = header(source, cal) + yaml.safe_dump(data, sort_keys=False, width=100)
    atomic.write_text(path, text)
    return path


def calibrated_path(source: Path) -> Path:
    """``scenarios/mixed.yaml`` → ``scenarios/mixed.calibrated.yaml``."""
    return source.with_name(f"{source.stem}.calibrated{source.suffix or '.yaml'}")
