"""The path of a query from a PHP worker to a database server and back.

Shared by the single server and the Galera cluster: the connection (per
request or persistent per worker, ``max_connections`` → 1040), routing to a
server, row locks for writes (``innodb_lock_wait_timeout`` → 1205), the
thread limit and the CPU. What happens at COMMIT is the engine's business
(:meth:`DatabaseTierBase.commit`): a log flush on a single server,
replication and certification in Galera.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from heapq import heappush
from typing import TYPE_CHECKING, Any

import simpy
from simpy.events import NORMAL

from lbsim.model.cpu import Job
from lbsim.model.database import QueryDone
from lbsim.model.db.keys import KeyPicker
from lbsim.model.db.locks import EXECUTING, Holder
from lbsim.model.db.routing import Router
from lbsim.model.db.server import (
    ERR_DEADLOCK,
    ERR_LOCK_WAIT_TIMEOUT,
    ERR_TOO_MANY_CONNECTIONS,
    DbServer,
)
from lbsim.model.deadlines import Deadlines
from lbsim.model.distributions import Sampler
from lbsim.model.engine import later
from lbsim.model.request import Work
from lbsim.model.streams import RandomStreams
from lbsim.scenario import schema
from lbsim.scenario.database import ServerSettings
from lbsim.stats.latency import LatencySummary

if TYPE_CHECKING:
    from lbsim.model.app import AppNode


class Session:
    """A request's connections: role ("rw", "read", "write") → server index."""

    __slots__ = ("abandoned", "app", "busy", "closing", "conns", "worker")

    def __init__(self, app: AppNode, worker: int):
        self.app = app
        self.worker = worker
        self.conns: dict[str, int] = {}
        self.busy = False
        self.abandoned = False
        self.closing = False


class Statement:
    """One query of one request, through retries."""

    __slots__ = (
        "app_retries",
        "apply_work",
        "bf_aborted",
        "done",
        "error",
        "holder",
        "job",
        "keys",
        "kind",
        "last_seen",
        "query",
        "request",
        "retries",
        "server",
        "state",
        "t_commit",
        "t_issue",
        "token",
        "work",
    )

    def __init__(self, request: Work, query: schema.Query, done: QueryDone):
        self.request = request
        self.query = query
        self.kind = query.kind
        self.done = done
        self.keys: tuple[int, ...] = ()
        self.work = 0.0
        self.apply_work = 0.0
        self.server: DbServer | None = None
        self.holder: Holder | None = None
        self.job: Job | None = None
        self.retries = 0  # server-side (wsrep_retry_autocommit)
        self.app_retries = 0
        self.token = 0
        self.state = 0
        self.last_seen = 0
        self.t_commit = 0.0
        self.t_issue = 0.0  # when the statement reached its server
        self.error: int | None = None  # the answer on its way back to PHP
        self.bf_aborted = False


class DatabaseTierBase:
    def __init__(
        self,
        env: simpy.Environment,
        scenario: schema.Scenario,
        spec: ServerSettings,
        servers: Sequence[DbServer],
        router: Router,
        streams: RandomStreams,
    ):
        self.env = env
        self.spec = spec
        self.servers = list(servers)
        self.router = router
        self._classes = scenario.workload.classes
        self._times = [
            [
                Sampler(q.time, streams.generator(f"query:{c.name}:{i}"))
                for i, q in enumerate(c.queries)
            ]
            for c in self._classes
        ]
        self._net = Sampler(scenario.network.app_db, streams.generator("net:app_db"))
        self._commit = Sampler(spec.commit, streams.generator("db-commit"))
        self.keys = KeyPicker(spec.key_space, spec.skew, streams.generator("db-keys"))
        self._persistent = spec.connect == "persistent"
        hs = spec.handshake
        self._handshake = Sampler(hs, streams.generator("db-handshake")) if hs is not None else None
        # persistent connections of each PHP worker: (app node, worker, role) → server
        self._pools: dict[tuple[int, int, str], int] = {}
        self._lock_deadlines = Deadlines(
            env, spec.lock_wait_timeout, self._lock_pending, self._lock_expired
        )
        self.commit_latency = LatencySummary()
        self.errors: dict[int, int] = {}
        # callbacks bound once (each query passes through them)
        self._arrive_cb = self._arrive
        self._read_start_cb = self._read_start
        self._read_done_cb = self._read_done
        self._deliver_cb = self._deliver

    # -- the app side -------------------------------------------------------------------
    def execute(self, request: Work, query: int, node: AppNode, done: QueryDone) -> None:
        q = self._classes[request.cls].queries[query]
        st = Statement(request, q, done)
        st.work = self._times[request.cls][query].next()
        if request.db is None:
            request.db = Session(node, request.worker)
        request.db.busy = True
        self._hop(self._arrive_cb, st)

    def abandon(self, request: Work) -> None:
        if request.db is not None:
            request.db.abandoned = True

    def finish(self, request: Work) -> None:
        session = request.db
        if session is None:
            return
        if session.busy:
            session.closing = True  # the query still runs; close when it ends
        else:
            self._close(session)
            request.db = None

    def _close(self, session: Session) -> None:
        if self._persistent:
            for role, idx in session.conns.items():
                self._pools[(session.app.index, session.worker, role)] = idx
        else:
            for idx in session.conns.values():
                self.servers[idx].disconnect()
        session.conns = {}

    def _hop(self, fn: Any, st: Statement) -> None:
        net = self._net
        delay = net.constant
        if delay == 0.0:
            fn(st)
            return
        env = self.env
        queue: list[Any] = env._queue  # later(env, delay, fn, st), inlined: 2 per query
        heappush(
            queue,
            (env._now + (delay if delay is not None else net()), NORMAL, next(env._eid), fn, st),
        )

    # -- connection and routing -----------------------------------------------------------
    def _arrive(self, st: Statement) -> None:
        request = st.request
        session: Session = request.db
        router = self.router  # router.role(st.kind), inlined: once per query
        role = ("write" if st.kind == "write" else "read") if router.split else "rw"
        idx = session.conns.get(role)
        if idx is None:
            fresh = self._connect(request, session, role)
            if fresh is None:
                self._reply(st, ERR_TOO_MANY_CONNECTIONS)
                return
            idx, new = fresh
            session.conns[role] = idx
            if new and self._handshake is not None:
                st.server = self.servers[idx]
                st.server.cpu.submit(self._handshake() * st.server.slowness, self._shaken, st)
                return
        st.server = self.servers[idx]
        self._issue(st)

    def _shaken(self, st: Statement) -> None:
        """The handshake's CPU is done; its round trip, then the first query."""
        self._hop(self._hop_back, st)

    def _hop_back(self, st: Statement) -> None:
        self._hop(self._issue, st)

    def _issue(self, st: Statement) -> None:
        st.t_issue = self.env._now
        if st.kind == "write":
            self._write(st)
        else:
            self.read(st)

    def _connect(self, request: Work, session: Session, role: str) -> tuple[int, bool] | None:
        """(server index, whether the connection is new), or None for 1040."""
        if self._persistent:
            kept = self._pools.pop((session.app.index, session.worker, role), None)
            if kept is not None:
                return kept, False
        idx = self.router.route(request, role, session.app.index)
        return (idx, True) if self.servers[idx].connect() else None

    # -- reads --------------------------------------------------------------------------
    def _rows(self, st: Statement) -> tuple[int, ...]:
        q = st.query
        if q.row == "client":
            return (-1 - st.request.client,)  # own rows live apart from drawn ones
        return self.keys.pick(q.keys, q.hot_keys)

    def read(self, st: Statement) -> None:
        """A read: admitted to a thread, runs on the CPU. Engines may wrap it."""
        st.keys = self._rows(st)
        assert st.server is not None
        st.server.admit(self._read_start_cb, st)

    def _read_start(self, st: Statement) -> None:
        self.observe_read(st)
        assert st.server is not None
        server = st.server
        server.queries += 1  # server.execute(st.work, ...), inlined
        st.job = server.cpu.submit(st.work * server.slowness, self._read_done_cb, st)

    def observe_read(self, st: Statement) -> None:
        """Hook: a read's snapshot is taken now (Galera checks staleness)."""

    def _read_done(self, st: Statement) -> None:
        st.job = None
        assert st.server is not None
        st.server.leave()
        self._reply(st, None)

    # -- writes -------------------------------------------------------------------------
    def _write(self, st: Statement) -> None:
        st.keys = self._rows(st)
        self._lock_and_run(st)

    def _lock_and_run(self, st: Statement) -> None:
        assert st.server is not None
        st.holder = Holder(st.keys, EXECUTING)
        st.token += 1
        st.state = EXECUTING
        st.bf_aborted = False
        self._lock_deadlines.add(st, st.token)
        st.server.locks.acquire(
            st.holder, partial(self._locked, st), on_abort=partial(self._bf_aborted, st)
        )

    def _lock_pending(self, st: Statement, token: int) -> bool:
        return st.token == token and st.holder is not None and not st.holder.granted

    def _lock_expired(self, st: Statement, token: int) -> None:
        assert st.server is not None and st.holder is not None
        st.server.locks.cancel(st.holder)
        st.token += 1
        self._reply(st, ERR_LOCK_WAIT_TIMEOUT)

    def _locked(self, st: Statement, _holder: Holder | None = None) -> None:
        assert st.server is not None
        st.server.admit(self._write_start, (st, st.token))

    def _write_start(self, arg: tuple[Statement, int]) -> None:
        st, token = arg
        assert st.server is not None
        if token != st.token:  # aborted while waiting for a thread
            st.server.leave()
            return
        st.job = st.server.execute(st.work, self._write_executed, st)

    def _write_executed(self, st: Statement) -> None:
        st.job = None
        assert st.server is not None
        st.server.leave()
        st.t_commit = self.env._now
        self.commit(st)

    def _bf_aborted(self, st: Statement, _holder: Holder | None = None) -> None:
        """An applier took a row this local transaction held (Galera)."""
        st.bf_aborted = True
        st.token += 1  # its lock wait, if any, is over
        if st.job is not None:
            assert st.server is not None
            st.server.cpu.cancel(st.job)
            st.job = None
            st.server.leave()
        self.on_bf_abort(st)

    def on_bf_abort(self, st: Statement) -> None:
        self.conflict(st)

    def conflict(self, st: Statement) -> None:
        """The statement lost a conflict (1213): retry as configured, else fail."""
        if st.holder is not None and st.server is not None:
            st.server.locks.release(st.holder)
        if st.retries < self.retry_autocommit:
            st.retries += 1
            self._lock_and_run(st)
        elif st.app_retries < self.spec.app_retries:
            st.app_retries += 1
            st.retries = 0
            self._hop(lambda s: self._hop(self._lock_and_run, s), st)
        else:
            self._reply(st, ERR_DEADLOCK)

    retry_autocommit = 0

    def commit(self, st: Statement) -> None:
        """COMMIT of a write whose rows are locked and work done (engine-specific)."""
        raise NotImplementedError

    def finish_commit(self, st: Statement) -> None:
        """Log flush, then release the rows and answer OK."""
        delay = self._commit()
        if delay > 0:
            later(self.env, delay, self._committed, st)
        else:
            self._committed(st)

    def _committed(self, st: Statement) -> None:
        assert st.server is not None and st.holder is not None
        st.server.locks.release(st.holder)
        self.commit_latency.add(self.env._now - st.t_commit)
        self.after_commit(st)
        self._reply(st, None)

    def after_commit(self, st: Statement) -> None:
        """Hook: the write is committed and about to be acknowledged."""

    # -- answering ----------------------------------------------------------------------
    def _reply(self, st: Statement, error: int | None) -> None:
        if error is not None:
            self.errors[error] = self.errors.get(error, 0) + 1
        st.error = error
        self._hop(self._deliver_cb, st)

    def _deliver(self, st: Statement) -> None:
        request = st.request
        session: Session = request.db
        session.busy = False
        if session.closing:
            self._close(session)
            request.db = None
        if not session.abandoned:
            st.done(request, st.error)

    # -- statistics ---------------------------------------------------------------------
    def integrals(self, now: float) -> dict[str, float]:
        """Running integrals (∫ x dt from 0) of what the time series tracks."""
        out = {}
        for s in self.servers:
            out[f"db.{s.name}.cpu"] = s.cpu.busy.integral(now) / s.cpu.cores
            out[f"db.{s.name}.connections"] = s.connections_tw.integral(now)
        return out

    def reset_stats(self, now: float) -> None:
        for s in self.servers:
            s.reset_stats(now)
        self.commit_latency.reset()
        self.errors = {}

    def results(self, now: float) -> dict[str, Any]:
        return {
            "utilisation": {"db": {s.name: {"cpu": s.cpu.utilisation(now)} for s in self.servers}},
            "database": {
                "nodes": {s.name: s.results(now) for s in self.servers},
                "commit_latency": self.commit_latency.summary(),
                "errors": {str(k): v for k, v in sorted(self.errors.items())},
            },
        }
