"""What the replayer asks the real stack to do, request by request.

The simulation draws every random quantity from named streams
(:class:`lbsim.model.streams.RandomStreams`): arrival times, classes and
clients (:func:`lbsim.model.workload.arrival_trace`), each request's PHP CPU
demand (stream ``cpu:<class>``, drawn in arrival order), each query's service
demand (``query:<class>:<i>``) and the rows it touches (``db-keys``). The work
plan draws from the *same* streams with the same seed, so the replay sends the
very requests the model simulated: same instants, same classes, same clients,
same CPU demands. (Query demands and rows are drawn in arrival order here and
in service order in the model; for requests that overlap the two can pair up
differently — the same distribution, not always the same value.)

Demands become work the app performs for real (validation/app/index.php):
``units`` of PHP computation (``cpu / unit_seconds``) and, per query, MariaDB
``BENCHMARK()`` iterations per row (``time / rows / db_iteration_seconds``).
The two constants are this machine's (:class:`MachineCosts`, measured by
:func:`lbsim.validation.calibration.measure_costs`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

from lbsim.model.db.keys import KeyPicker
from lbsim.model.distributions import Sampler
from lbsim.model.streams import RandomStreams
from lbsim.model.workload import ClientPopulation, arrival_trace, closed_loop_classes
from lbsim.scenario.database import NoDatabase
from lbsim.scenario.schema import Scenario


@dataclass(frozen=True)
class MachineCosts:
    """What one work unit costs on the machine running the stack."""

    #: PHP CPU seconds per work unit (1000 iterations of the app's hash loop)
    unit_seconds: float = 7.5e-6
    #: MariaDB CPU seconds per BENCHMARK() iteration of CRC32 on a row's pad
    db_iteration_seconds: float = 5.0e-8

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MachineCosts:
        return cls(float(data["unit_seconds"]), float(data["db_iteration_seconds"]))


@dataclass(frozen=True)
class PlannedQuery:
    kind: str  # "r" or "w"
    rows: tuple[int, ...]  # row ids in lbsim.kv (1-based)
    iterations: int  # BENCHMARK() iterations per row
    demand: float  # the model's service demand (s)

    def spec(self) -> str:
        return f"{self.kind}{'+'.join(map(str, self.rows))}:{self.iterations}"


@dataclass(frozen=True)
class PlannedRequest:
    index: int
    time: float  # scheduled send time from the start of the run (s)
    cls: int
    cls_name: str
    client: int
    address: str  # the simulated client's IP (X-Forwarded-For)
    cpu: float  # the model's PHP CPU demand (s)
    units: int
    queries: tuple[PlannedQuery, ...]

    def path(self) -> str:
        # '+' joins row ids: escaped, or PHP would decode it as a space
        q = quote(",".join(p.spec() for p in self.queries), safe=":,")
        out = f"/?class={quote(self.cls_name)}&units={self.units}"
        return f"{out}&q={q}" if q else out


def client_row(client: int, rows: int) -> int:
    """The row id of a client's own row (``row: client``): the rows after the
    drawn key space (seeded by the stack, see :func:`seeded_rows`)."""
    return rows + 1 + client


def seeded_rows(scenario: Scenario, drawn_rows: int) -> int:
    """Rows the stack must hold: the drawn key space plus one per client when a
    query uses the client's own row."""
    own = any(q.row == "client" for c in scenario.workload.classes for q in c.queries)
    return drawn_rows + (scenario.workload.clients.count if own else 0)


class RequestPlanner:
    """Turns (time, class, client) into a :class:`PlannedRequest`, drawing its
    demands from the model's streams in the order requests are made."""

    def __init__(self, scenario: Scenario, costs: MachineCosts, rows: int, replication: int = 0):
        self.streams = streams = RandomStreams(scenario.seed, replication)
        wl = scenario.workload
        self.classes = wl.classes
        self.costs = costs
        self.rows = rows
        self.clients = ClientPopulation(wl.clients, wl.class_names, streams)
        self._cpu = [Sampler(c.cpu, streams.generator(f"cpu:{c.name}")) for c in wl.classes]
        self._qtime = [
            [
                Sampler(q.time, streams.generator(f"query:{c.name}:{i}"))
                for i, q in enumerate(c.queries)
            ]
            for c in wl.classes
        ]
        db = scenario.database
        self._keys = (
            None
            if isinstance(db, NoDatabase)
            else KeyPicker(db.key_space, db.skew, streams.generator("db-keys"))
        )

    def make(self, index: int, t: float, cls: int, client: int) -> PlannedRequest:
        c = self.classes[cls]
        costs, rows = self.costs, self.rows
        demand = float(self._cpu[cls]())
        queries = []
        for i, q in enumerate(c.queries):
            assert self._keys is not None  # the schema refuses queries without a database
            d = float(self._qtime[cls][i]())
            if q.row == "client":
                ids: tuple[int, ...] = (client_row(client, rows),)
            else:
                ids = tuple(sorted({1 + k % rows for k in self._keys.pick(q.keys, q.hot_keys)}))
            queries.append(
                PlannedQuery(
                    "w" if q.kind == "write" else "r",
                    ids,
                    max(0, round(d / len(ids) / costs.db_iteration_seconds)),
                    d,
                )
            )
        return PlannedRequest(
            index=index,
            time=t,
            cls=cls,
            cls_name=c.name,
            client=client,
            address=".".join(map(str, self.clients.ip(client))),
            cpu=demand,
            units=max(0, round(demand / costs.unit_seconds)) if math.isfinite(demand) else 0,
            queries=tuple(queries),
        )


def work_plan(
    scenario: Scenario,
    costs: MachineCosts,
    rows: int,
    replication: int = 0,
) -> Iterator[PlannedRequest]:
    """The requests of ``scenario``'s arrival trace (open loop or trace file), with
    the work each one does.

    ``rows`` is the number of drawn rows seeded in the stack's table (the
    scenario's key space, possibly capped): a drawn key ``k`` maps to row
    ``1 + k mod rows``.
    """
    planner = RequestPlanner(scenario, costs, rows, replication)
    for index, (t, cls, client) in enumerate(arrival_trace(scenario, replication)):
        yield planner.make(index, t, cls, client)


class ClosedLoopPlan:
    """The users of a closed-loop scenario, drawing what the model's users draw.

    The model's :class:`lbsim.model.workload.ClosedLoopSource` takes think times
    from stream ``think`` and classes from stream ``classes`` (heavy users with
    their own mix); requests from :class:`RequestPlanner`'s streams. This plan
    draws from the same streams, in the order the load generator asks: the
    first think time of every user in user order, then one class per request
    and one think time per answer. With one user that order is the model's
    exactly; with more it follows the real answers' order (same distributions).
    """

    def __init__(self, scenario: Scenario, costs: MachineCosts, rows: int, replication: int = 0):
        closed = scenario.workload.closed
        if closed is None:
            raise ValueError("a closed-loop plan needs workload.closed")
        self.planner = RequestPlanner(scenario, costs, rows, replication)
        streams = self.planner.streams
        self.users = closed.users
        self.horizon = scenario.horizon
        self._think = Sampler(closed.think_time, streams.generator("think"))
        self.n_heavy, self._heavy, self._light = closed_loop_classes(
            scenario, streams.generator("classes")
        )
        self.made = 0

    def think(self) -> float:
        """The next think time (s)."""
        return float(self._think())

    def request(self, user: int, t: float) -> PlannedRequest:
        """User ``user``'s next request, due at ``t`` s from the start of the run."""
        cls = self._heavy() if user < self.n_heavy else self._light()
        item = self.planner.make(self.made, t, cls, user)
        self.made += 1
        return item
