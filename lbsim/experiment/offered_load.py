"""Operational analysis before simulating: the offered load of every resource.

utilisation = arrival rate × demand per request / capacity (the utilisation
law). Requests are assumed split among app nodes in proportion to their
weights, as round robin does; hashing, ``first`` and load-aware policies can
skew the split, which the simulation then shows. Worker occupancy counts the
time a worker holds a request without contention (CPU + queries + hops to the
database), so it is a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbsim.scenario.schema import Scenario

QUEUE_GROWS = (
    "its queue grows without bound, so results depend on the run length "
    "(and failures on the limits)"
)


@dataclass(frozen=True)
class ResourceLoad:
    resource: str
    utilisation: float
    detail: str
    #: what happens when the offered load reaches 1
    when_full: str = QUEUE_GROWS


def arrival_rate(scenario: Scenario) -> tuple[float, float, str]:
    """(mean rate, peak rate, how it was found) in requests per second."""
    wl = scenario.workload
    horizon = scenario.horizon
    if wl.open is not None:
        mean = wl.open.mean_rate(horizon)
        return mean, wl.open.peak_rate(horizon), "open loop"
    if wl.trace is not None:
        n = sum(1 for t, _, _ in wl.trace.rows if t < horizon)
        return n / horizon, n / horizon, "trace"
    assert wl.closed is not None
    demand = sum(p * d for p, d in zip(_class_probs(scenario), _residence(scenario), strict=True))
    rate = wl.closed.users / (wl.closed.think_time.mean + demand)
    return rate, rate, "closed loop, upper bound N/(Z+D)"


def _class_probs(scenario: Scenario) -> list[float]:
    weights = [c.weight for c in scenario.workload.classes]
    total = sum(weights)
    return [w / total for w in weights]


def _residence(scenario: Scenario) -> list[float]:
    """Uncontended time a worker holds a request of each class (s)."""
    hop = scenario.network.app_db.mean
    return [
        c.cpu.mean + sum(q.time.mean + 2 * hop for q in c.queries)
        for c in scenario.workload.classes
    ]


def offered_load(scenario: Scenario, use_peak: bool = False) -> list[ResourceLoad]:
    mean, peak, _ = arrival_rate(scenario)
    lam = peak if use_peak else mean
    probs = _class_probs(scenario)
    cpu = sum(p * c.cpu.mean for p, c in zip(probs, scenario.workload.classes, strict=True))
    hold = sum(p * r for p, r in zip(probs, _residence(scenario), strict=True))
    nodes = scenario.app.resolved_nodes()
    total_weight = sum(n.weight for n in nodes)
    out: list[ResourceLoad] = []
    host_work: dict[str, float] = {}
    for n in nodes:
        lam_i = lam * n.weight / total_weight
        out.append(
            ResourceLoad(
                f"app {n.name} cpu",
                lam_i * cpu / n.cores,
                f"{lam_i:.4g}/s × {cpu:.4g} s / {n.cores:g} cores",
            )
        )
        out.append(
            ResourceLoad(
                f"app {n.name} workers",
                lam_i * hold / n.workers,
                f"{lam_i:.4g}/s × {hold:.4g} s / {n.workers} workers",
            )
        )
        if n.host is not None:
            host_work[n.host] = host_work.get(n.host, 0.0) + lam_i * cpu
    db_loads, db_host_work = _database_loads(scenario, lam, probs)
    for name, work in db_host_work.items():
        host_work[name] = host_work.get(name, 0.0) + work
    for h in scenario.hosts:
        if h.name in host_work:
            out.append(
                ResourceLoad(
                    f"host {h.name} cpu",
                    host_work[h.name] / (h.cores - h.background),
                    f"{host_work[h.name]:.4g} core-s/s / {h.cores - h.background:g} cores"
                    + (f" ({h.background:g} of {h.cores:g} busy outside)" if h.background else ""),
                )
            )
    out.extend(db_loads)
    return out


def _database_loads(
    scenario: Scenario, lam: float, probs: list[float]
) -> tuple[list[ResourceLoad], dict[str, float]]:
    """Database CPU (queries, and for Galera the applying of other nodes' write-sets)
    and Galera applier threads, and the CPU work (core-s/s) each host receives from
    the database servers placed on it. Reads and writes are assumed spread evenly
    over the nodes a connection may reach (the writer takes all writes with a
    read/write split; ``first`` sends everything to the first node). The commit
    (log flush) is a delay in the model, not CPU work, so it loads no core."""
    db = scenario.database
    host_work: dict[str, float] = {}
    if db.engine == "none":
        return [], host_work
    classes = scenario.workload.classes
    read = (
        sum(
            p * sum(q.time.mean for q in c.queries if q.kind == "read")
            for p, c in zip(probs, classes, strict=True)
        )
        * lam
    )
    write = (
        sum(
            p * sum(q.time.mean for q in c.queries if q.kind == "write")
            for p, c in zip(probs, classes, strict=True)
        )
        * lam
    )
    writes_per_s = (
        sum(
            p * sum(1 for q in c.queries if q.kind == "write")
            for p, c in zip(probs, classes, strict=True)
        )
        * lam
    )
    conns = _connections(scenario, lam, probs)
    # connection handshakes (per-request connections): CPU of the server accepting
    # them, one per role a request uses (reads and writes apart with a split)
    split = db.engine == "galera" and db.routing.read_write_split
    hs_read = hs_write = 0.0
    if db.handshake is not None and db.connect == "per_request":
        for p, c in zip(probs, classes, strict=True):
            kinds = {q.kind for q in c.queries}
            if split:
                hs_read += p * ("read" in kinds)
                hs_write += p * ("write" in kinds)
            else:
                hs_read += p * bool(kinds)
        hs_read *= db.handshake.mean * lam
        hs_write *= db.handshake.mean * lam
    read += hs_read
    if db.engine == "mysql":
        write += hs_write
        if db.host is not None:
            host_work[db.host] = read + write
        return [
            ResourceLoad(
                "db db1 cpu",
                (read + write) / db.cores,
                f"{read + write:.4g} core-s/s / {db.cores:g} cores",
            ),
            conns,
        ], host_work
    nodes = db.resolved_nodes()
    n = len(nodes)
    routing = db.routing
    single = routing.mode == "proxy" and routing.policy == "first"
    writer = 0 if single else (routing.writer if routing.read_write_split else None)
    apply_cost = db.apply.mean * writes_per_s if db.apply is not None else write
    # group communication work per received write-set: CPU, but not the appliers'
    receive_cost = db.receive.mean * writes_per_s if db.receive is not None else 0.0
    out = []
    for i, node in enumerate(nodes):
        reads_i = read if single and i == 0 else (0.0 if single else read / n)
        if writer is None:
            own = write / n
            applied = apply_cost * (n - 1) / n
            received = receive_cost * (n - 1) / n
            applied_rate = writes_per_s * (n - 1) / n
        else:
            own = write + hs_write if i == writer else 0.0
            applied = 0.0 if i == writer else apply_cost
            received = 0.0 if i == writer else receive_cost
            applied_rate = 0.0 if i == writer else writes_per_s
        work = (reads_i + own + applied + received) * node.slowness
        if node.host is not None:
            host_work[node.host] = host_work.get(node.host, 0.0) + work
        out.append(
            ResourceLoad(
                f"db {node.name} cpu",
                work / node.cores,
                f"{work:.4g} core-s/s / {node.cores:g} cores",
            )
        )
        if applied_rate > 0:
            per_ws = (applied / applied_rate) * node.slowness
            out.append(
                ResourceLoad(
                    f"db {node.name} appliers",
                    applied_rate * per_ws / node.applier_threads,
                    f"{applied_rate:.4g} write-sets/s × {per_ws:.4g} s / "
                    f"{node.applier_threads} applier(s)",
                )
            )
    out.append(conns)
    return out, host_work


def _connections(scenario: Scenario, lam: float, probs: list[float]) -> ResourceLoad:
    """Connections against max_connections (summed over the database nodes)."""
    db = scenario.database
    assert db.engine != "none"
    limit = (
        db.max_connections
        if db.engine == "mysql"
        else sum(n.max_connections for n in db.resolved_nodes())
    )
    users = [c for c in scenario.workload.classes if c.queries]
    if db.connect == "persistent":
        workers = sum(n.workers for n in scenario.app.resolved_nodes())
        return ResourceLoad(
            "db connections",
            workers / limit,
            f"{workers} PHP workers keep one each / max_connections {limit}",
            "workers beyond max_connections get error 1040 (Too many connections)",
        )
    # per request: held from the first query to the end of the request (Little's law)
    held = sum(
        p * (c.cpu.mean + sum(q.time.mean for q in c.queries))
        for p, c in zip(probs, scenario.workload.classes, strict=True)
        if c in users
    )
    return ResourceLoad(
        "db connections",
        lam * held / limit,
        f"{lam:.4g}/s × {held:.4g} s / max_connections {limit}",
        "connection attempts fail with error 1040 (Too many connections)",
    )


def bottleneck(loads: list[ResourceLoad]) -> ResourceLoad:
    return max(loads, key=lambda r: r.utilisation)
