"""What a run will cost before it starts: requests, periodic events, memory, wall time.

A scenario can be valid and still absurd: a duration of 10¹² s, 10⁶
replications, a report interval of a microsecond, an agent polled every
nanosecond, 10⁷ closed-loop users. :func:`estimate` counts what scales with a
key (expected arrivals, periodic ticks, time-series rows, per-node and
per-worker structures) without building anything; :func:`check` refuses a run
whose estimate is absurd with the key to change, and lets ``insist`` override
the limits where waiting longer is a meaningful choice (wall time), never
where the machine cannot hold the run (memory).

The rates below are deliberately conservative (a slow day on a slow core), so
an estimate errs towards "longer"; they only decide when to warn and refuse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lbsim.experiment.errors import ExperimentInputError
from lbsim.scenario.schema import Scenario

#: simulated requests per wall second on a slow core (a Galera scenario; M/M/c is ~5x faster)
REQUESTS_PER_SECOND = 5_000.0
#: periodic events (health checks, agent replies, report ticks) per wall second
TICKS_PER_SECOND = 200_000.0
#: fixed cost of one replication (building the stack, streams, summaries), s
REPLICATION_OVERHEAD = 0.02
#: memory of one app node's structures and time series (measured: ~40 kB), bytes
NODE_BYTES = 64_000
#: one PHP-FPM worker's entry, bytes
WORKER_BYTES = 64
#: one closed-loop user (a SimPy process and its state), bytes
USER_BYTES = 2_000
#: one time-series value, bytes (a float in a row dict, with its share of the key)
SERIES_VALUE_BYTES = 40
#: one point of a consistent-hash ring (a tuple in a sorted list), bytes
RING_POINT_BYTES = 120
#: one hot row of a Zipf-skewed key picker (a float in its CDF), bytes
HOT_ROW_BYTES = 8

#: beyond this estimated wall time the run is refused unless insisted on, s
MAX_WALL = 6 * 3600.0
#: beyond this a long-run estimate is printed before starting, s
ANNOUNCE_WALL = 30.0
#: beyond this the run is refused, whatever the insistence, bytes
MAX_MEMORY = 4 * 1024**3


class BudgetError(ExperimentInputError):
    """A run whose estimated cost is absurd; ``str()`` names the key to change."""

    def __init__(self, key: str, message: str, insistable: bool):
        super().__init__(message)
        self.key = key
        self.insistable = insistable


@dataclass
class Cost:
    """Estimated cost of simulating a scenario (all replications)."""

    requests: float = 0.0
    ticks: float = 0.0
    memory: float = 0.0
    replications: int = 1
    #: (key, amount in seconds of wall time) of each term, largest first after estimate()
    time_drivers: list[tuple[str, float]] = field(default_factory=list)
    memory_drivers: list[tuple[str, float]] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return (
            self.requests / REQUESTS_PER_SECOND
            + self.ticks / TICKS_PER_SECOND
            + self.replications * REPLICATION_OVERHEAD
        )

    def describe(self) -> str:
        return (
            f"about {_count(self.requests)} requests and {_count(self.ticks)} periodic events "
            f"in {self.replications} replication(s), {_size(self.memory)} of model state; "
            f"roughly {_duration(self.wall)} on a slow core"
        )


def _count(x: float) -> str:
    for unit, scale in (("billion", 1e9), ("million", 1e6), ("thousand", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.0f}"


def _size(b: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= scale:
            return f"{b / scale:.3g} {unit}"
    return f"{b:.0f} B"


def _duration(s: float) -> str:
    if not math.isfinite(s):
        return "forever"
    for unit, scale in (("years", 365 * 86400.0), ("days", 86400.0), ("hours", 3600.0)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    if s >= 60:
        return f"{s / 60:.3g} min"
    return f"{s:.2g} s"


def _service_floor(s: Scenario) -> float:
    """A lower bound of one request's time in the system (s): its mean work, no queueing."""
    per_class = []
    for c in s.workload.classes:
        work = c.cpu.mean + sum(q.time.mean for q in c.queries)
        per_class.append(work)
    floor = min(per_class) if per_class else 0.0
    return floor + s.balancer.latency.mean


def estimate(s: Scenario, replications: int | None = None) -> Cost:
    reps = replications if replications is not None else s.replications
    horizon = s.warmup + s.duration
    cost = Cost(replications=reps)
    wl = s.workload
    if wl.open is not None:
        per_rep = wl.open.mean_rate(horizon) * horizon
        cost.time_drivers.append(("workload.open", per_rep * reps / REQUESTS_PER_SECOND))
    elif wl.closed is not None:
        cycle = wl.closed.think_time.mean + _service_floor(s)
        per_rep = math.inf if cycle <= 0 else wl.closed.users * horizon / cycle
        cost.time_drivers.append(("workload.closed", per_rep * reps / REQUESTS_PER_SECOND))
        users = wl.closed.users * USER_BYTES
        cost.memory_drivers.append(("workload.closed.users", users))
    else:
        assert wl.trace is not None
        per_rep = float(len(wl.trace.rows))
        cost.time_drivers.append(("workload.trace", per_rep * reps / REQUESTS_PER_SECOND))
    cost.requests = per_rep * reps

    nodes = s.app.resolved_nodes()
    n = len(nodes)
    ticks = 0.0
    if s.balancer.health_check is not None:
        hc = n * horizon / s.balancer.health_check.interval
        ticks += hc
        cost.time_drivers.append(("balancer.health_check.interval", hc * reps / TICKS_PER_SECOND))
    agent = s.balancer.policy_options.get("interval") if s.balancer.policy == "least_load" else None
    if isinstance(agent, int | float) and not isinstance(agent, bool) and agent > 0:
        ag = n * horizon / float(agent)
        ticks += ag
        cost.time_drivers.append(("balancer.policy_options.interval", ag * reps / TICKS_PER_SECOND))
    interval = s.report.interval if s.report.interval is not None else s.duration / 100
    rows = horizon / interval
    ticks += rows
    cost.time_drivers.append(("report.interval", rows * reps / TICKS_PER_SECOND))
    cost.ticks = ticks * reps

    columns = 4 * n + 4 * _db_nodes(s) + 8
    cost.memory_drivers.append(("report.interval", rows * columns * SERIES_VALUE_BYTES))
    cost.memory_drivers.append(("app.nodes", n * NODE_BYTES))
    cost.memory_drivers.append(("app.workers", sum(x.workers for x in nodes) * WORKER_BYTES))
    if s.balancer.policy == "consistent_hash":
        # nginx's ketama ring: 160 points per unit of weight, each a (hash, address) pair
        points = 160 * sum(x.weight for x in nodes)
        cost.memory_drivers.append(
            ("app.weight (or app.nodes[i].weight)", points * RING_POINT_BYTES)
        )
    hot = max((q.hot_keys for c in wl.classes for q in c.queries), default=0)
    if _skew(s) > 0:
        cost.memory_drivers.append(("workload.classes.queries.hot_keys", hot * HOT_ROW_BYTES))
    cost.memory = sum(b for _, b in cost.memory_drivers)
    cost.time_drivers.sort(key=lambda kv: -kv[1])
    cost.memory_drivers.sort(key=lambda kv: -kv[1])
    return cost


def _db_nodes(s: Scenario) -> int:
    db = s.database
    nodes = getattr(db, "nodes", 0)
    if isinstance(nodes, int):
        return nodes
    return len(nodes)


def _skew(s: Scenario) -> float:
    return float(getattr(s.database, "skew", 0.0) or 0.0)


def check(s: Scenario, replications: int | None = None, *, insist: bool = False) -> Cost:
    """The estimate, or :class:`BudgetError` naming the key that makes the run absurd."""
    wl = s.workload
    if wl.closed is not None and wl.closed.think_time.mean + _service_floor(s) <= 0:
        raise BudgetError(
            "workload.closed.think_time",
            "workload.closed.think_time: a closed loop whose users neither think nor wait "
            "(think time 0 and every class's work 0) sends infinitely many requests at time 0; "
            "give a think time or some work",
            insistable=False,
        )
    cost = estimate(s, replications)
    if cost.memory > MAX_MEMORY:
        key, amount = cost.memory_drivers[0]
        raise BudgetError(
            key,
            f"{key}: the run would need about {_size(cost.memory)} of memory "
            f"({_size(amount)} for {key}); at most {_size(MAX_MEMORY)} is allowed. "
            f"Lower {key}.",
            insistable=False,
        )
    if cost.wall > MAX_WALL and not insist:
        key, _ = cost.time_drivers[0] if cost.time_drivers else ("duration", 0.0)
        if cost.replications * REPLICATION_OVERHEAD > cost.wall / 2:
            key = "replications"
        raise BudgetError(
            key,
            f"{key}: this run is {cost.describe()}, more than the {_duration(MAX_WALL)} "
            f"lbsim runs without asking. Lower {key} (or duration/replications), or pass "
            "--insist to run it anyway.",
            insistable=True,
        )
    return cost
