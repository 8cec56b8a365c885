"""A MariaDB Galera cluster (shared/reference/galera.md).

Life of a write on node A: local execution under A's row locks → COMMIT →
send monitor (closed while any flow-control STOP is outstanding:
``wsrep_local_send_queue``) → total-order broadcast (the
``replication_delay`` plus a round trip to the slowest member) → a global
seqno and deterministic certification: it fails if an earlier write-set
from *another* node touched one of its keys with seqno > its ``last_seen``
(→ retried ``retry_autocommit`` times, then 1213) → A commits in seqno order
(after everything ordered before it is committed on A), flushes, answers OK.

On every other node B the write-set waits in B's receive queue; one of B's
``applier_threads`` takes it, waits for what it depends on, takes its rows
(brute-force aborting a local transaction still executing on them: 1213),
applies it on B's CPU and commits in seqno order; with ``visibility_lag``
its rows show on B that long after B's commit (:mod:`lbsim.model.db.visibility`).
Until then a read of those rows on B returns old data (a stale read). With
``sync_wait`` a read first waits for a causal message round and for B to
catch up with (see) everything ordered before it (never stale;
``causal_read_timeout`` → 1205).

Flow control: upper = floor(fc_limit·(1 if single_primary else √N) + 0.5),
lower = floor(upper·fc_factor + 0.5). A node whose receive queue is longer
than upper when a remote write-set arrives sends FC_STOP; it sends FC_CONT
when the queue drops to lower. While any STOP is outstanding no node may
replicate new commits. FC messages take effect at once (they are tiny and
ordered like the rest; their delivery delay is ignored).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import simpy

from lbsim.model.cpu import Host
from lbsim.model.db.locks import ORDERED, Holder
from lbsim.model.db.routing import Router
from lbsim.model.db.server import ERR_LOCK_WAIT_TIMEOUT, DbServer
from lbsim.model.db.tier import DatabaseTierBase, Statement
from lbsim.model.db.visibility import Visibility
from lbsim.model.deadlines import Deadlines
from lbsim.model.distributions import Sampler
from lbsim.model.engine import later
from lbsim.model.streams import RandomStreams
from lbsim.scenario import schema
from lbsim.scenario.database import Galera
from lbsim.stats.latency import LatencySummary
from lbsim.stats.timeweighted import TimeWeighted

REPLICATING = 3  # Statement state: sent, not yet certified


def flow_control_limits(
    fc_limit: int, fc_factor: float, single_primary: bool, members: int
) -> tuple[int, int]:
    """(upper, lower) receive-queue limits exactly as gcs.cpp computes them."""
    upper = math.floor(fc_limit * (1.0 if single_primary else math.sqrt(members)) + 0.5)
    lower = math.floor(upper * fc_factor + 0.5)
    return upper, lower


class WriteSet:
    __slots__ = (
        "apply_work",
        "depends",
        "keys",
        "last_seen",
        "ok",
        "origin",
        "seqno",
        "statement",
        "t_ok",
    )

    def __init__(
        self,
        origin: int,
        keys: tuple[int, ...],
        last_seen: int,
        apply_work: float,
        statement: Statement,
    ):
        self.origin = origin
        self.keys = keys
        self.last_seen = last_seen
        self.apply_work = apply_work
        self.statement = statement
        self.seqno = 0
        self.depends = 0
        self.ok = False
        self.t_ok = 0.0


class GaleraNode:
    """Replication state of one member: in-order commit, receive queue, appliers."""

    def __init__(
        self,
        env: simpy.Environment,
        server: DbServer,
        appliers: int,
        cluster: GaleraTier,
        write_set_cost: float = 1.0,
    ):
        self.env = env
        self.server = server
        #: multiplies the CPU of each write-set received (``write_set_cost``)
        self.ws_cost = write_set_cost
        self.cluster = cluster
        self.appliers = appliers
        self.free_appliers = appliers
        self.last_committed = 0
        self._noop: set[int] = set()
        self._waiting: list[tuple[int, int, Callable[[Any], None], Any]] = []
        self._seq = 0
        self.recv_queue: deque[WriteSet] = deque()
        self.send_queue: deque[Statement] = deque()
        self.fc_stop = False
        #: False while the node catches up after rejoining (a joiner sends no FC_STOP)
        self.fc_enabled = True
        #: counts the node's crashes: work scheduled before one is dropped
        self.epoch = 0
        self.recv_tw = TimeWeighted()
        #: the visible-seqno watermark; None: visible as soon as committed
        self.visibility = (
            Visibility(env, self._committed) if cluster.visibility_lag is not None else None
        )
        self.reset_counters()

    def _committed(self) -> int:
        return self.last_committed

    def visible(self) -> int:
        """Everything up to this seqno is visible to reads on this node."""
        vis = self.visibility
        return self.last_committed if vis is None else vis.seqno()

    def when_visible(self, target: int, fn: Callable[[Any], None], arg: Any) -> None:
        """Call ``fn(arg)`` once everything up to ``target`` is visible here."""
        vis = self.visibility
        if vis is None:
            self.when_committed(target, fn, arg)
        else:
            self.when_committed(target, partial(vis.when_visible, target, fn), arg)

    def reset_counters(self) -> None:
        self.c: dict[str, int] = dict.fromkeys(
            (
                "replicated",
                "received",
                "local_commits",
                "local_cert_failures",
                "local_bf_aborts",
                "local_replays",
                "flow_control_sent",
                "flow_control_recv",
            ),
            0,
        )
        self.recv_q_sum = 0
        self.recv_q_n = 0
        self.send_q_sum = 0
        self.send_q_n = 0
        self.deps_sum = 0
        self.interval_sum = 0
        self.certified_n = 0

    # -- in-order commit ----------------------------------------------------------------
    def when_committed(self, target: int, fn: Callable[[Any], None], arg: Any) -> None:
        """Call ``fn(arg)`` once everything up to seqno ``target`` is committed here."""
        if self.last_committed >= target:
            fn(arg)
        else:
            self._seq += 1
            heapq.heappush(self._waiting, (target, self._seq, fn, arg))

    def advance(self, seqno: int) -> None:
        assert seqno == self.last_committed + 1, (seqno, self.last_committed)
        self.last_committed = seqno
        noop = self._noop
        while self.last_committed + 1 in noop:
            noop.remove(self.last_committed + 1)
            self.last_committed += 1
        waiting = self._waiting
        while waiting and waiting[0][0] <= self.last_committed:
            _, _, fn, arg = heapq.heappop(waiting)
            fn(arg)

    def skip(self, seqno: int) -> None:
        """A write-set that failed certification: nothing to commit, keep the order."""
        if seqno == self.last_committed + 1:
            self.advance(seqno)
        else:
            self._noop.add(seqno)

    # -- receiving and applying ---------------------------------------------------------
    def receive(self, ws: WriteSet) -> None:
        q = self.recv_queue
        self.recv_q_sum += len(q)  # queue seen by the arriving write-set
        self.recv_q_n += 1
        q.append(ws)
        self.recv_tw.set(self.env._now, len(q))
        if len(q) > self.cluster.fc_upper and not self.fc_stop and self.fc_enabled:
            self.fc_stop = True
            self.c["flow_control_sent"] += 1
            self.cluster.flow_control_changed(stop=True)
        self._start_appliers()

    def _start_appliers(self) -> None:
        q = self.recv_queue
        while self.free_appliers and q:
            ws = q.popleft()
            self.free_appliers -= 1
            self.recv_tw.set(self.env._now, len(q))
            if self.fc_stop and len(q) <= self.cluster.fc_lower:
                self.fc_stop = False
                self.cluster.flow_control_changed(stop=False)
            self.when_committed(ws.depends, self._apply_locks, ws)

    def _apply_locks(self, ws: WriteSet) -> None:
        holder = Holder(ws.keys, ORDERED)
        self.server.locks.acquire(holder, partial(self._apply, ws), brute_force=True)

    def _apply(self, ws: WriteSet, holder: Holder) -> None:
        self.server.execute(ws.apply_work * self.ws_cost, self._applied, (ws, holder))

    def _applied(self, arg: tuple[WriteSet, Holder]) -> None:
        ws, _ = arg
        self.when_committed(ws.seqno - 1, self._apply_commit, arg)

    def _apply_commit(self, arg: tuple[WriteSet, Holder]) -> None:
        # InnoDB makes a commit visible in memory, then flushes the log
        # (trx_commit_in_memory before trx_flush_log_if_needed): readers on
        # this node see the rows now (or ``visibility_lag`` later); the applier
        # is busy until the flush.
        seqno = arg[0].seqno
        lag = self.cluster.visibility_lag
        if lag is not None and self.visibility is not None:
            self.visibility.hide(seqno, lag())
        self.advance(seqno)
        delay = self.cluster.commit_delay()
        if delay > 0:
            later(self.env, delay, self._apply_done_later, (arg, self.epoch))
        else:
            self._apply_done(arg)

    def _apply_done_later(self, arg: tuple[tuple[WriteSet, Holder], int]) -> None:
        if arg[1] == self.epoch:  # else the node crashed meanwhile
            self._apply_done(arg[0])

    def _apply_done(self, arg: tuple[WriteSet, Holder]) -> None:
        _, holder = arg
        self.server.locks.release(holder)
        self.free_appliers += 1
        self._start_appliers()


def _received(_: Any) -> None:
    """A write-set's receive work is done (nothing waits for it)."""


class GaleraTier(DatabaseTierBase):
    def __init__(
        self,
        env: simpy.Environment,
        scenario: schema.Scenario,
        spec: Galera,
        streams: RandomStreams,
        hosts: Mapping[str, Host] | None = None,
    ):
        resolved = spec.resolved_nodes()
        placed = hosts or {}
        servers = [
            DbServer(
                env,
                i,
                n.name,
                n.cores,
                n.max_connections,
                spec.threads,
                n.slowness,
                placed[n.host] if n.host is not None else None,
                n.cpu_period,
            )
            for i, n in enumerate(resolved)
        ]
        router = Router(servers, spec.routing, streams.generator("db-routing"))
        super().__init__(env, scenario, spec, servers, router, streams)
        self.galera = spec
        self.retry_autocommit = spec.retry_autocommit
        self.visibility_lag = (
            Sampler(spec.visibility_lag, streams.generator("visibility"))
            if spec.visibility_lag is not None
            else None
        )
        self.members = [
            GaleraNode(env, s, n.applier_threads, self, n.write_set_cost)
            for s, n in zip(servers, resolved, strict=True)
        ]
        #: the members in the primary view, which receive write-sets (all of
        #: them but a node that is down: :mod:`lbsim.model.db.membership`)
        self.receivers = self.members
        #: write-sets ordered while a node is away (None: nobody is), for IST
        self.gcache: deque[WriteSet] | None = None
        self.fc_upper, self.fc_lower = flow_control_limits(
            spec.fc_limit, spec.fc_factor, spec.fc_single_primary, len(servers)
        )
        self._gcs_delay = Sampler(spec.replication_delay, streams.generator("gcs"))
        self._rtt_extra = 2.0 * max(n.latency for n in resolved)
        self._apply = (
            Sampler(spec.apply, streams.generator("apply")) if spec.apply is not None else None
        )
        self._commit_sampler = Sampler(spec.commit, streams.generator("apply-commit"))
        self._receive = (
            Sampler(spec.receive, streams.generator("receive"))
            if spec.receive is not None
            else None
        )
        self.seqno = 0
        self._cert_index: dict[int, tuple[int, int]] = {}  # key -> (seqno, origin)
        # key -> (seqno, time acknowledged, origin node)
        self._key_ok: dict[int, tuple[int, float, int]] = {}
        # client -> (seqno, time) of its last acknowledged write
        self._client_write: dict[int, tuple[int, float, int]] = {}
        self._purge_every = 2048
        self._floor = 0  # seqnos at or below are committed everywhere
        self.paused = False
        self.paused_tw = TimeWeighted()
        self._causal = Deadlines(
            env, spec.causal_read_timeout, self._causal_pending, self._causal_expired
        )
        self.reset_read_stats()

    def reset_read_stats(self) -> None:
        self.reads = 0
        self.stale_reads = 0
        self.raw_reads = 0  # reads by clients who wrote before
        self.raw_stale = 0
        self.staleness = LatencySummary()

    def commit_delay(self) -> float:
        return self._commit_sampler()

    # -- the write path -----------------------------------------------------------------
    def commit(self, st: Statement) -> None:
        assert st.server is not None
        node = self.members[st.server.index]
        st.state = REPLICATING
        st.last_seen = node.last_committed
        st.apply_work = self._apply() if self._apply is not None else st.work
        node.c["replicated"] += 1
        node.send_q_sum += len(node.send_queue)
        node.send_q_n += 1
        if self.paused:
            node.send_queue.append(st)
        else:
            self._broadcast(st)

    def _broadcast(self, st: Statement) -> None:
        later(self.env, self._gcs_delay.next() + self._rtt_extra, self._deliver_ws, st)

    def _deliver_ws(self, st: Statement) -> None:
        """Total order: the write-set gets its seqno and is certified, identically everywhere."""
        assert st.server is not None
        origin = st.server.index
        self.seqno += 1
        ws = WriteSet(origin, st.keys, st.last_seen, st.apply_work, st)
        ws.seqno = s = self.seqno
        index = self._cert_index
        ok = not st.bf_aborted
        depends = self._floor
        for k in ws.keys:
            prev = index.get(k)
            if prev is not None:
                if prev[0] > st.last_seen and prev[1] != origin:
                    ok = False
                if prev[0] > depends:
                    depends = prev[0]
        ws.ok = ok
        ws.depends = depends
        origin_node = self.members[origin]
        if ok:
            for k in ws.keys:
                index[k] = (s, origin)
            origin_node.deps_sum += s - depends
            origin_node.interval_sum += s - st.last_seen - 1
            origin_node.certified_n += 1
        if self.gcache is not None:
            self.gcache.append(ws)
        receive = self._receive
        for m in self.receivers:
            if m is origin_node:
                continue
            m.c["received"] += 1
            if receive is not None:
                # group communication work: a thread of its own, off the applier's path
                work = receive()
                if work > 0:
                    m.server.cpu.submit(work * m.server.slowness * m.ws_cost, _received, None)
            if ok:
                m.receive(ws)
            else:
                m.skip(s)
        if ok:
            st.state = ORDERED
            if st.holder is not None:
                st.holder.state = ORDERED
            origin_node.when_committed(s - 1, self._local_commit, ws)
        else:
            origin_node.skip(s)
            if not st.bf_aborted:
                origin_node.c["local_cert_failures"] += 1
            self.conflict(st)
        if s % self._purge_every == 0:
            self._purge()

    def _purge(self) -> None:
        """Forget keys no transaction can conflict with any more (cert index purge)."""
        floor = min(m.last_committed for m in self.receivers)
        self._floor = floor
        self._cert_index = {k: v for k, v in self._cert_index.items() if v[0] > floor}
        # a write stays a possible stale read until every node shows it
        seen = min(m.visible() for m in self.receivers)
        self._key_ok = {k: v for k, v in self._key_ok.items() if v[0] > seen}

    def _local_commit(self, ws: WriteSet) -> None:
        delay = self._commit()
        if delay > 0:
            later(self.env, delay, self._local_committed, ws)
        else:
            self._local_committed(ws)

    def _local_committed(self, ws: WriteSet) -> None:
        st = ws.statement
        node = self.members[ws.origin]
        node.advance(ws.seqno)
        node.c["local_commits"] += 1
        assert st.server is not None and st.holder is not None
        st.server.locks.release(st.holder)
        now = self.env._now
        self.commit_latency.add(now - st.t_commit)
        for k in ws.keys:
            self._key_ok[k] = (ws.seqno, now, ws.origin)
        self._client_write[st.request.client] = (ws.seqno, now, ws.origin)
        self._reply(st, None)

    def on_bf_abort(self, st: Statement) -> None:
        assert st.server is not None
        self.members[st.server.index].c["local_bf_aborts"] += 1
        if st.state == REPLICATING:
            return  # already sent: certification will fail it (its rows were taken)
        self.conflict(st)

    # -- flow control -------------------------------------------------------------------
    def flow_control_changed(self, stop: bool) -> None:
        if stop:
            for m in self.members:
                m.c["flow_control_recv"] += 1
        paused = any(m.fc_stop for m in self.members)
        if paused == self.paused:
            return
        self.paused = paused
        self.paused_tw.set(self.env._now, 1.0 if paused else 0.0)
        if not paused:
            for m in self.members:
                q = m.send_queue
                while q and not self.paused:
                    self._broadcast(q.popleft())

    # -- reads --------------------------------------------------------------------------
    def read(self, st: Statement) -> None:
        if not self.galera.sync_wait:
            super().read(st)
            return
        # causal read: a round of group communication, then catch up with the cluster
        st.token += 1
        target = self.seqno
        later(self.env, self._gcs_delay() + self._rtt_extra, self._causal_wait, (st, target))
        self._causal.add(st, st.token)

    def _causal_wait(self, arg: tuple[Statement, int]) -> None:
        st, target = arg
        assert st.server is not None
        self.members[st.server.index].when_visible(target, self._causal_ready, (st, st.token))

    def _causal_ready(self, arg: tuple[Statement, int]) -> None:
        st, token = arg
        if st.token != token:
            return  # timed out
        st.token += 1
        super().read(st)

    def _causal_pending(self, st: Statement, token: int) -> bool:
        return st.token == token

    def _causal_expired(self, st: Statement, token: int) -> None:
        st.token += 1
        self._reply(st, ERR_LOCK_WAIT_TIMEOUT)

    def observe_read(self, st: Statement) -> None:
        assert st.server is not None
        here = st.server.index
        applied = self.members[here].visible()
        self.reads += 1
        issued = st.t_issue
        worst = 0.0
        stale = False
        # only writes acknowledged before the read was issued count: a later
        # one is concurrent with it, not missed by it; a node shows its own
        # commits (a remote write-set before them still under its
        # visibility_lag does not hide them)
        for k in st.keys:
            ok = self._key_ok.get(k)
            if ok is not None and ok[0] > applied and ok[1] <= issued and ok[2] != here:
                stale = True
                worst = max(worst, self.env._now - ok[1])
        if stale:
            self.stale_reads += 1
            self.staleness.add(worst)
        last = self._client_write.get(st.request.client)
        if last is not None and last[1] <= issued:
            self.raw_reads += 1
            if last[0] > applied and last[2] != here:
                self.raw_stale += 1

    # -- statistics ---------------------------------------------------------------------
    def integrals(self, now: float) -> dict[str, float]:
        out = super().integrals(now)
        for m in self.members:
            out[f"db.{m.server.name}.recv_queue"] = m.recv_tw.integral(now)
        out["galera.flow_control_paused"] = self.paused_tw.integral(now)
        return out

    def reset_stats(self, now: float) -> None:
        super().reset_stats(now)
        for m in self.members:
            m.reset_counters()
            m.recv_tw.reset(now)
        self.paused_tw.reset(now)
        self.reset_read_stats()

    def results(self, now: float) -> dict[str, Any]:
        out = super().results(now)
        paused = self.paused_tw.mean(now)
        nodes = {}
        for m in self.members:
            counters: dict[str, Any] = {f"wsrep_{k}": v for k, v in m.c.items()}
            counters.update(
                {
                    "wsrep_local_recv_queue_avg": m.recv_q_sum / m.recv_q_n if m.recv_q_n else 0.0,
                    "wsrep_local_send_queue_avg": m.send_q_sum / m.send_q_n if m.send_q_n else 0.0,
                    "wsrep_flow_control_paused": paused,
                    "wsrep_cert_deps_distance": m.deps_sum / m.certified_n
                    if m.certified_n
                    else 0.0,
                    "wsrep_cert_interval": m.interval_sum / m.certified_n if m.certified_n else 0.0,
                    "wsrep_last_committed": m.last_committed,
                    "recv_queue_time_avg": m.recv_tw.mean(now),
                }
            )
            nodes[m.server.name] = counters
        nan = math.nan
        out["galera"] = {
            "nodes": nodes,
            "stale_read_fraction": self.stale_reads / self.reads if self.reads else nan,
            "read_after_write_stale_fraction": (
                self.raw_stale / self.raw_reads if self.raw_reads else nan
            ),
            "staleness": self.staleness.summary(),
            "reads": self.reads,
            "flow_control": {"upper": self.fc_upper, "lower": self.fc_lower, "paused": paused},
        }
        return out
