"""Node outages on the real stack: ``docker kill`` at the outage's start,
``docker start`` at its end.

Galera nodes' outages (``database.nodes[].outages``) are replayed alike: the
MariaDB container is killed, and started again its entrypoint recovers the
last committed position from InnoDB (grastate.dat says seqno -1 after a
crash) and joins the running members, which send the missed write-sets by
IST (validation/stack/mariadb/entrypoint.sh); the DB proxy's checks take it
out and back (:mod:`lbsim.model.db.membership` models the same).

A scenario's ``app.nodes[].outages`` say when a PHP node is down. The replay
crashes its container as a machine crash would: ``docker kill`` (SIGKILL to
php-fpm, which the kernel turns into resets of the connections it held or had
queued), and starts it again with ``docker start`` (the same container, so
the same pool config; the entrypoint execs php-fpm again, which replaces a
stale pid file and binds its port in the container's fresh network). The
balancer finds out by itself: nginx by its passive ``max_fails``, HAProxy by
its health checks.

The load generator calls each hook on its own schedule, on its event loop:
a hook here only starts a thread, so no send waits for docker. Every docker
command has a time limit (:data:`COMMAND_TIMEOUT`); a restart first waits
(bounded) for the same node's kill. :meth:`Injector.finish` (the replay
calls it in ``finally``) waits for the threads, bounded, and starts again
every container it killed that was not started yet, so no replay, even a
failed one, leaves a dead node behind.

Each action is recorded (:class:`FaultEvent`): when it was due, when docker
returned on the replay's clock, when the container's process died or was
started by docker's own account (``State.FinishedAt``/``StartedAt``: the
model simulates the outage then, :func:`as_injected`), whether it worked,
and the container's address and MAC before the kill and after the restart.
A container that came
back with another address is not reached by a balancer that resolved the name
at start-up (nginx, HAProxy without resolvers): :meth:`Injector.problems`
says so. (A new MAC at the same address is only recorded: the balancer's
neighbour entry finds it once it goes stale.)

The container's address goes with it: connections to it are neither
accepted nor refused until it is back (the scenario's outage says
``connections: unanswered`` to model that).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from lbsim.scenario.database import Galera
from lbsim.scenario.outages import Outage
from lbsim.scenario.schema import Scenario
from lbsim.validation.docker import StackError

#: the most a docker kill / start / inspect may take (s)
COMMAND_TIMEOUT = 30.0
#: how long finish() waits for each action thread (s)
JOIN_TIMEOUT = 2 * COMMAND_TIMEOUT + 5.0

#: run ``argv`` within ``timeout`` s; its stdout, or an exception
Runner = Callable[[Sequence[str], float], str]
Hook = tuple[float, Callable[[], None]]


class Containers(Protocol):
    """What the injector needs of the stack: its docker client and container ids."""

    def container_id(self, service: str) -> str: ...


@dataclass(frozen=True)
class Fault:
    """One outage of one app node: killed at ``start``, started at ``end`` (s)."""

    node: str
    start: float
    end: float


def planned(scenario: Scenario) -> list[Fault]:
    """Every app node and Galera node outage of ``scenario``, in time order
    (a Galera node's container is its node's name)."""
    out = [
        Fault(str(node.name), o.start, o.start + o.duration)
        for node in scenario.app.resolved_nodes()
        for o in node.outages
    ]
    db = scenario.database
    if isinstance(db, Galera):
        out += [
            Fault(g.name, o.start, o.start + o.duration)
            for g in db.resolved_nodes()
            for o in g.outages
        ]
    return sorted(out, key=lambda f: (f.start, f.node))


def as_injected(scenario: Scenario, events: Sequence[Mapping[str, Any]]) -> Scenario:
    """``scenario`` with each outage moved to when the replay's container
    actually died and started again (each event's ``at``, where read), so the
    model is paired with the crash that happened and not the one planned.

    Which requests a crash catches in flight decides what follows: under
    nginx a reset takes the node out at once, no reset leaves it in for the
    clients to time out on. A tenth of a second is the difference (the
    app-node-crash story, 2026-12-08: one replay's plan, 20.0 s, had no
    request on app2 in the model, its kill at 20.19 s had one). An outage
    whose kill was not read stays as planned; one whose start was not read
    keeps its planned length.
    """

    def when(node: str, action: str, due: float) -> float:
        for e in events:
            if (
                e.get("node") == node
                and e.get("action") == action
                and e.get("ok")
                and abs(float(e.get("due", math.nan)) - due) < 1e-6
            ):
                return float(e.get("at", math.nan))
        return math.nan

    def moved(node: str, outages: tuple[Outage, ...]) -> tuple[Outage, ...]:
        out = []
        for o in outages:
            died = when(node, "kill", o.start)
            if not math.isfinite(died):
                out.append(o)
                continue
            back = when(node, "start", o.start + o.duration)
            end = back if math.isfinite(back) and back > died else died + o.duration
            out.append(o.model_copy(update={"start": died, "duration": end - died}))
        return tuple(out)

    def tier(section: Any, resolved: Sequence[Any]) -> Any:
        """An app or Galera section with its nodes' outages moved (a count of
        nodes has none to move)."""
        if not isinstance(section.nodes, tuple):
            return section
        specs = tuple(
            spec.model_copy(update={"outages": moved(node.name, spec.outages)})
            for spec, node in zip(section.nodes, resolved, strict=True)
        )
        return section.model_copy(update={"nodes": specs})

    db = scenario.database
    if isinstance(db, Galera):
        db = tier(db, db.resolved_nodes())
    app = tier(scenario.app, scenario.app.resolved_nodes())
    return scenario.model_copy(update={"app": app, "database": db})


@dataclass
class FaultEvent:
    node: str
    action: str  # kill, start, start (cleanup)
    due: float  # s on the replay's clock
    #: when docker returned, on the replay's clock (due + the command's time)
    done: float = float("nan")
    #: when the container's process died (a kill) or was started (a start), on
    #: the replay's clock: docker's State.FinishedAt / StartedAt (nan: unread)
    at: float = float("nan")
    ok: bool = False
    error: str = ""
    address: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def docker_runner(docker: str) -> Runner:
    """Runs ``docker <argv>`` with :func:`lbsim.validation.docker.run`."""
    from lbsim.validation.docker import run

    def go(argv: Sequence[str], timeout: float) -> str:
        return run([docker, *argv], timeout).stdout

    return go


#: the container's address and MAC on each network ("172.18.0.3/02:42:ac:12:00:03")
ADDRESS_FORMAT = "{{range .NetworkSettings.Networks}}{{.IPAddress}}/{{.MacAddress}} {{end}}"
#: when the container's process last died and started (RFC 3339, nanoseconds, UTC)
STATE_TIMES = {"kill": "{{.State.FinishedAt}}", "start": "{{.State.StartedAt}}"}


def docker_time(text: str) -> float:
    """Seconds since the epoch of one of docker's RFC 3339 times
    (``2026-12-08T02:41:23.123456789Z``; beyond microseconds dropped, a time
    without a zone taken as UTC); nan if it is none (docker's zero time, or
    not a time)."""
    text = text.strip()
    if not text or text.startswith("0001-"):
        return float("nan")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return float("nan")
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def _ips(address: str) -> set[str]:
    return {a.split("/")[0] for a in address.split() if a and not a.startswith("?")}


@dataclass
class Injector:
    """Kills and restarts app and database containers on the replay's schedule."""

    faults: list[Fault]
    #: service name -> container id (looked up before the replay)
    ids: dict[str, str]
    run: Runner
    horizon: float
    clock: Callable[[], float] = time.monotonic
    #: the wall clock docker's state times are read against
    wall: Callable[[], float] = time.time
    timeout: float = COMMAND_TIMEOUT
    events: list[FaultEvent] = field(default_factory=list)
    #: each node's address before the replay (:meth:`remember`)
    before: dict[str, str] = field(default_factory=dict)
    _threads: dict[str, list[threading.Thread]] = field(default_factory=dict)
    _killed: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def for_stack(
        cls, scenario: Scenario, stack: Containers, run: Runner, **kw: Any
    ) -> Injector | None:
        """The injector of ``scenario``'s outages on ``stack``; None without outages."""
        faults = planned(scenario)
        if not faults:
            return None
        ids = {f.node: stack.container_id(f.node) for f in faults}
        injector = cls(faults, ids, run, scenario.horizon, **kw)
        injector.remember()
        return injector

    def remember(self) -> None:
        """Each node's address now (before the replay: the kill then waits for nothing)."""
        self.before = {node: self._address(cid) for node, cid in self.ids.items()}

    def hooks(self) -> list[Hook]:
        """``(time, hook)`` for the load generator: a kill at each start and a
        start at each end within the horizon (later ones are left to finish)."""
        out: list[Hook] = []
        for f in self.faults:
            out.append((f.start, self._spawn(f.node, "kill", f.start)))
            if f.end <= self.horizon:
                out.append((f.end, self._spawn(f.node, "start", f.end)))
        return out

    def _spawn(self, node: str, action: str, due: float) -> Callable[[], None]:
        def hook() -> None:
            fired = self.clock()
            fired_wall = self.wall()
            before = list(self._threads.get(node, []))
            t = threading.Thread(
                target=self._act,
                args=(node, action, due, (fired, fired_wall), before),
                name=f"lbsim-fault-{action}-{node}",
                daemon=True,
            )
            self._threads.setdefault(node, []).append(t)
            t.start()

        return hook

    def _act(
        self,
        node: str,
        action: str,
        due: float,
        fired: tuple[float, float],
        before: list[threading.Thread],
    ) -> None:
        for t in before:  # a start waits for the node's kill
            t.join(JOIN_TIMEOUT)
        event = FaultEvent(node, action, due)
        cid = self.ids[node]
        try:
            if action == "kill":
                event.address = self.before.get(node, "")
                with self._lock:
                    self._killed.add(node)
                self.run(["kill", "--signal", "KILL", cid], self.timeout)
            else:
                self.run(["start", cid], self.timeout)
                with self._lock:
                    self._killed.discard(node)
                event.address = self._address(cid)
            event.ok = True
        except Exception as exc:  # recorded with the results, never lost
            event.error = str(exc) or type(exc).__name__
        event.done = due + (self.clock() - fired[0])
        if event.ok:
            event.at = self._state_time(cid, action, due, fired[1], event.done)
        with self._lock:
            self.events.append(event)

    def _state_time(
        self, cid: str, action: str, due: float, fired_wall: float, done: float
    ) -> float:
        """When docker says the container died or started, on the replay's
        clock; nan when unread or outside the command's own span (give or take
        a clock step of 0.5 s: another kill or start then, not this one)."""
        try:
            text = self.run(["inspect", "-f", STATE_TIMES[action], cid], self.timeout)
        except StackError:
            return float("nan")
        at = due + (docker_time(text) - fired_wall)
        return at if math.isfinite(at) and due - 0.5 <= at <= done + 0.5 else float("nan")

    def _address(self, cid: str) -> str:
        try:
            return self.run(["inspect", "-f", ADDRESS_FORMAT, cid], self.timeout).strip()
        except StackError as exc:
            return f"? ({exc})"

    def finish(self) -> list[FaultEvent]:
        """Wait for the actions (bounded), then start every container still
        killed; the events in the order they ended."""
        for threads in list(self._threads.values()):
            for t in threads:
                t.join(JOIN_TIMEOUT)
        with self._lock:
            left = sorted(self._killed)
        for node in left:
            event = FaultEvent(node, "start (cleanup)", self.horizon)
            try:
                self.run(["start", self.ids[node]], self.timeout)
                event.ok = True
                with self._lock:
                    self._killed.discard(node)
                event.address = self._address(self.ids[node])
            except Exception as exc:
                event.error = str(exc) or type(exc).__name__
            self.events.append(event)
        return list(self.events)

    def problems(self) -> list[str]:
        """Actions that failed, and nodes that came back at another address."""
        out = [
            f"{e.action} {e.node} at {e.due:g} s failed: {e.error}" for e in self.events if not e.ok
        ]
        before = {e.node: e.address for e in self.events if e.action == "kill" and e.ok}
        for e in self.events:
            was, now = _ips(before.get(e.node, "")), _ips(e.address)
            if e.ok and e.action.startswith("start") and was and now and now != was:
                out.append(
                    f"{e.node} came back at {e.address}, not {before[e.node]}: a balancer "
                    "that resolved its name at start-up does not reach it"
                )
        return out
