"""The user's topology in the calibrated scenario, and the capacity it implies.

``lbsim calibrate SCENARIO --target TARGET`` models *the user's* stack: the
calibrated scenario takes its app nodes (names, cores, PHP workers) and its
database nodes (cores, ``max_connections``) from the running containers
(:mod:`lbsim.target.containers`), where the built-in stack takes them from the
scenario. What the containers do not say (a CPU limit not set, a pool size
that could not be read) stays the scenario's, and :class:`Topology` records
which values came from where so the report can say so.

A class whose requests ran database statements that the scenario gives no
queries gets them (:func:`place_queries`): one read carrying the reads' share
of the measured database CPU, one write with the writes' share, so the
database time is modelled instead of silently dropped.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from lbsim.scenario.schema import Scenario
from lbsim.validation.calibration import Calibration, runs_throttled


@dataclass(frozen=True)
class NodeShape:
    """One container as the model sees it; ``None``: not read from the container."""

    name: str
    cores: float | None = None
    workers: int | None = None  # php-fpm pm.max_children (app nodes)
    max_connections: int | None = None  # database nodes
    #: the CFS period (s) of a quota limit (None: none, or a cpuset)
    cpu_period: float | None = None

    def cfs(self) -> dict[str, float]:
        """``cpu_period`` for the scenario where the container is under one core
        by a CFS quota: full speed until the quota is spent, then throttled,
        which processor sharing at ``cores`` is not (a WordPress node at cpus
        0.5 measured 127 ms where processor sharing said 222 ms). A quota of a
        core or more is left to processor sharing."""
        if self.cpu_period is None or not runs_throttled(self.cores):
            return {}
        return {"cpu_period": self.cpu_period}


@dataclass
class Topology:
    app: list[NodeShape]
    db: list[NodeShape]
    #: the machine's cores (the cap of a container with no CPU limit)
    host_cores: float
    #: what was not read from the containers, one line each (the report shows them)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClassStatements:
    """Database statements one request of a class ran (means, from the
    servers' ``Com_*`` counters over the class's low-load requests)."""

    name: str
    n: int
    reads: float
    writes: float
    connections: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def apply_topology(data: dict[str, Any], topology: Topology) -> dict[str, Any]:
    """``data`` (a scenario as written) with the containers' app and database
    nodes: one app node per app container (its name, and its cores and workers
    where the container says), the database node count and shapes likewise."""
    out = copy.deepcopy(data)
    app = out.setdefault("app", {})
    nodes = []
    for shape in topology.app:
        node: dict[str, Any] = {"name": shape.name}
        if shape.cores is not None:
            node["cores"] = round(shape.cores, 4)
        if shape.workers is not None:
            node["workers"] = shape.workers
        node.update(shape.cfs())
        nodes.append(node)
    app["nodes"] = nodes
    db = out.get("database")
    if isinstance(db, dict) and db.get("engine", "none") != "none" and topology.db:
        limited = [(s.cores, s) for s in topology.db if s.cores is not None]
        conns = [s.max_connections for s in topology.db if s.max_connections is not None]
        if limited:
            cores, tightest = min(limited, key=lambda cs: cs[0])
            db["cores"] = round(cores, 4)
            if db.get("engine") != "galera":  # the single server's period
                db.update(tightest.cfs())
        if conns:
            db["max_connections"] = min(conns)
        if db.get("engine") == "galera":
            db["nodes"] = [
                {"name": s.name, **({"cores": round(s.cores, 4)} if s.cores else {}), **s.cfs()}
                for s in topology.db
            ]
    return out


def place_queries(
    data: dict[str, Any], cal: Calibration, statements: Sequence[ClassStatements]
) -> tuple[dict[str, Any], list[str]]:
    """Classes the scenario gives no queries but whose requests used the
    database: a read and/or a write carrying the measured database CPU.
    Returns the data and one note per class changed."""
    out = copy.deepcopy(data)
    costs = cal.by_name()
    stmts = {s.name: s for s in statements}
    notes = []
    for spec in out["workload"]["classes"]:
        name = spec.get("name")
        c, s = costs.get(name), stmts.get(name)
        if c is None or s is None or spec.get("queries") or c.db_cpu <= 0:
            continue
        total = s.reads + s.writes
        if total <= 0:
            continue
        queries: list[dict[str, Any]] = []
        if s.reads > 0:
            queries.append({"kind": "read", "time": round(c.db_cpu * s.reads / total, 7)})
        if s.writes >= 0.5:
            queries.append({"kind": "write", "time": round(c.db_cpu * s.writes / total, 7)})
        elif queries:  # a rare write: its CPU stays on the read
            queries[0]["time"] = round(c.db_cpu, 7)
        spec["queries"] = queries
        notes.append(
            f"class {name}: the scenario gives it no queries; its requests ran "
            f"{s.reads:.1f} reads and {s.writes:.1f} writes ({c.db_cpu * 1e3:.2f} ms of "
            "database CPU), modelled as " + " and ".join(str(q["kind"]) for q in queries)
        )
    return out, notes


def _weights(scenario: Scenario) -> dict[str, float]:
    total = sum(c.weight for c in scenario.workload.classes) or 1.0
    return {c.name: c.weight / total for c in scenario.workload.classes}


def target_capacity(cal: Calibration, scenario: Scenario, topology: Topology) -> float:
    """Requests per second at which the first resource saturates: the app
    containers' cores over the app CPU of a request of the mix, the database
    containers' likewise, or the machine's free cores over all the CPU a
    request costs (the built-in stack's capacity, :meth:`Calibration.capacity`)."""
    w = _weights(scenario)
    costs = cal.by_name()
    app_cpu = sum(w.get(n, 0.0) * c.app_cpu for n, c in costs.items())
    db_cpu = sum(w.get(n, 0.0) * c.db_cpu for n, c in costs.items())
    limits = [cal.capacity(scenario)]
    app_cores = sum(s.cores or topology.host_cores for s in topology.app)
    if app_cpu > 0:
        limits.append(app_cores / app_cpu)
    if db_cpu > 0 and topology.db:
        # one server (or a Galera writer) takes a request's statements
        db_cores = min(s.cores or topology.host_cores for s in topology.db)
        limits.append(db_cores * len(topology.db) / db_cpu)
    finite = [x for x in limits if math.isfinite(x) and x > 0]
    return min(finite) if finite else 0.0


def statements_from_status(
    name: str,
    n: int,
    before: Mapping[str, Mapping[str, str]],
    after: Mapping[str, Mapping[str, str]],
    own: Mapping[str, float],
) -> ClassStatements:
    """A class's statements per request from each database node's ``SHOW GLOBAL
    STATUS`` before and after its ``n`` requests, less ``own``: what reading the
    status itself adds to each counter (:func:`own_status_counts`)."""

    def delta(key: str) -> float:
        return counter_delta(before, after, key, own)

    reads = delta("com_select")
    writes = sum(delta(k) for k in WRITE_COUNTERS)
    return ClassStatements(name, n, reads / n, writes / n, delta("connections") / n)


def counter_delta(
    before: Mapping[str, Mapping[str, str]],
    after: Mapping[str, Mapping[str, str]],
    key: str,
    own: Mapping[str, float] | None = None,
) -> float:
    """How far status counter ``key`` moved, summed over the nodes read both
    times (:func:`node_counter_delta` each)."""
    return sum(
        node_counter_delta(b, after[node], key, own) for node, b in before.items() if node in after
    )


def node_counter_delta(
    before: Mapping[str, str],
    after: Mapping[str, str],
    key: str,
    own: Mapping[str, float] | None = None,
) -> float:
    """How far one node's status counter ``key`` moved, less ``own[key]`` (what
    reading the status adds) and at least 0; a value that is not a number
    counts nothing."""
    try:
        d = float(after.get(key, "0")) - float(before.get(key, "0"))
    except ValueError:
        return 0.0
    return max(d - (own or {}).get(key, 0.0), 0.0)


#: the ``SHOW GLOBAL STATUS`` counters of statements that change rows
WRITE_COUNTERS = ("com_insert", "com_update", "com_delete", "com_replace", "com_insert_select")
#: the counters :func:`statements_from_status` reads
STATEMENT_COUNTERS = ("com_select", *WRITE_COUNTERS, "connections")


def own_status_counts(
    first: Mapping[str, Mapping[str, str]], second: Mapping[str, Mapping[str, str]]
) -> dict[str, float]:
    """What one status reading adds to each counter, per node (the largest
    over the nodes): two readings with nothing between them."""
    out: dict[str, float] = {}
    for key in STATEMENT_COUNTERS:
        diffs = []
        for node, a in first.items():
            b = second.get(node)
            if b is None:
                continue
            try:
                diffs.append(float(b.get(key, "0")) - float(a.get(key, "0")))
            except ValueError:
                continue
        out[key] = max(diffs, default=0.0)
    return out
