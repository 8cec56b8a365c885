"""A Galera node killed and started again: leaving the cluster, rejoining, IST.

``database.nodes[].outages`` schedule the loss. At the kill (``docker kill``:
mysqld and its address vanish):

* the node leaves the primary view: the others keep certifying and committing
  (the schema refuses outages that cost quorum), flow control is recomputed
  for the members left (``upper`` uses √N) and ignores the lost node;
* what it was doing is gone (:meth:`DbServer.crash`): a statement on it fails
  with **2013** (lost connection during query); a write-set it had sent but
  that was not yet ordered is lost, one already ordered commits everywhere
  else (its client still gets 2013);
* connections to it are dead: the next statement on one fails with **2006**
  (server has gone away); pooled persistent ones are dropped (the next
  request connects again);
* a new connection: ``pinned`` (and a ``read_write_split`` writer), the app
  connects to the node itself and fails at once with **2002** (can't
  connect; a stopped container's name does not resolve). ``proxy``: the
  proxy's layer-4 checks (``routing.health_check``, the stack's HAProxy
  ``check inter 2s fall 3 rise 2``) take ``fall`` failures to mark it down,
  each probe of an address that answers nothing timing out after the
  interval (:class:`lbsim.model.health.ActiveChecks`). Until then the proxy
  still sends connections to it: an unanswered SYN is sent again at 1, 3 s
  until HAProxy's ``timeout connect`` (5 s), retried at once ``retries`` (3)
  times to the same node (the stack's DB proxy has no ``option
  redispatch``), a refused one after a 1 s turn-around; then the proxy
  closes the client's connection before the server's greeting: PHP's mysqlnd
  reports **2006** ("Error while reading greeting packet", then "MySQL server
  has gone away"; measured so on the stack, story galera-node-crash). No node
  up: 2006 at once.

At the restart the node is ``starting`` for ``Galera.rejoin`` s (connections
refused), then joins: it is back in the view, takes connections (its port is
open: the proxy's check passes ``rise`` probes later), but answers every
query with **1047** (WSREP has not yet prepared node for application use)
until it is SYNCED. Catch-up is IST: every write-set ordered since it left
(the cluster's gcache) enters its receive queue ahead of new ones and its
``applier_threads`` apply each at its apply cost; the donor (the first synced
member) spends ``ist_send`` × the apply cost of each on its CPU. A joiner
sends no FC_STOP. It is SYNCED once it has applied everything ordered before
it joined and its receive queue is at or below the lower flow-control limit
(gcs sends SYNC then).

Scenarios without outages never build this class: their runs are unchanged.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from typing import Any

import simpy

from lbsim.model.cpu import Host
from lbsim.model.db.galera import GaleraTier, WriteSet, flow_control_limits
from lbsim.model.db.node_state import (
    DOWN,
    ERR_CANT_CONNECT,
    ERR_GONE_AWAY,
    ERR_LOST,
    ERR_NOT_READY,
    JOINER,
    PROXY_CONNECT_TIMEOUT,
    PROXY_RETRIES,
    STARTING,
    SYNCED,
    NodeProbe,
)
from lbsim.model.db.server import ERR_TOO_MANY_CONNECTIONS
from lbsim.model.db.tier import Session, Statement
from lbsim.model.engine import later
from lbsim.model.health import ActiveChecks
from lbsim.model.policies import Backend
from lbsim.model.retries import SYN_AGAIN, TURN_AROUND
from lbsim.model.streams import RandomStreams
from lbsim.scenario import schema
from lbsim.scenario.database import Galera

#: the gcache is trimmed (to what every node has committed) past this many write-sets
GCACHE_TRIM = 256


class FaultyGaleraTier(GaleraTier):
    """A Galera cluster whose nodes have outages (module doc)."""

    def __init__(
        self,
        env: simpy.Environment,
        scenario: schema.Scenario,
        spec: Galera,
        streams: RandomStreams,
        hosts: Mapping[str, Host] | None = None,
    ):
        super().__init__(env, scenario, spec, streams, hosts)
        n = len(self.members)
        self.state = [SYNCED] * n
        self.unanswered = [False] * n
        self.receivers = list(self.members)
        #: recent write-sets, back to the least last_committed of any node (gcache)
        self.gcache = deque()
        #: statements sent to a server and not answered yet
        self.active: dict[Statement, None] = {}
        #: statements the crash of their server answered already (2013)
        self.lost: set[Statement] = set()
        #: sessions holding a connection to each server
        self.sessions: list[set[Session]] = [set() for _ in range(n)]
        #: the seqno a joiner must reach to be SYNCED
        self._target = [0] * n
        #: per node, one record per outage: lost, joined, ist, synced
        self.events: list[list[dict[str, dict[str, Any]]]] = [[] for _ in range(n)]
        self.checks: ActiveChecks | None = None
        if self.router.policy is not None:
            self.checks = ActiveChecks(
                env,
                spec.routing.health_check,
                self.router.backends,
                [NodeProbe(self, i) for i in range(n)],
                streams.generator("db-proxy-health"),
                revived=_noop,
            )
        for i, node in enumerate(spec.resolved_nodes()):
            for o in node.outages:
                later(env, o.start, self.lose, (i, o.connections == "unanswered"))
                later(env, o.start + o.duration, self.restart, i)

    # -- the app side ------------------------------------------------------------------
    def _arrive(self, st: Statement) -> None:
        self.active[st] = None
        session: Session = st.request.db
        router = self.router
        role = ("write" if st.kind == "write" else "read") if router.split else "rw"
        idx = session.conns.get(role)
        if idx is None:
            self._open(st, session, role)
        elif idx < 0:  # its server crashed since the connection was opened
            del session.conns[role]
            self._reply(st, ERR_GONE_AWAY)
        else:
            st.server = self.servers[idx]
            self._issue(st)

    def _issue(self, st: Statement) -> None:
        if st in self.lost:
            return  # answered by its server's crash
        assert st.server is not None
        if self.state[st.server.index] != SYNCED:
            self._reply(st, ERR_NOT_READY)
            return
        super()._issue(st)

    def _reply(self, st: Statement, error: int | None) -> None:
        self.active.pop(st, None)
        super()._reply(st, error)

    def _close(self, session: Session) -> None:
        for idx in session.conns.values():
            if idx >= 0:
                self.sessions[idx].discard(session)
        if self._persistent:
            for role, idx in session.conns.items():
                if idx >= 0:
                    self._pools[(session.app.index, session.worker, role)] = idx
        else:
            for idx in session.conns.values():
                if idx >= 0:
                    self.servers[idx].disconnect()
        session.conns = {}

    # -- opening a connection ----------------------------------------------------------
    def _open(self, st: Statement, session: Session, role: str) -> None:
        if self._persistent:
            kept = self._pools.pop((session.app.index, session.worker, role), None)
            if kept is not None:
                self._connected(st, session, role, kept, new=False)
                return
        via_proxy = self.router.policy is not None and role != "write"
        if not via_proxy:
            idx = self.router.route(st.request, role, session.app.index)
            if self.state[idx] in (SYNCED, JOINER):
                self._connected(st, session, role, idx, new=True)
            else:
                self._reply(st, ERR_CANT_CONNECT)
            return
        chosen = self._proxy_choice(st)
        if chosen is None:
            self._reply(st, ERR_GONE_AWAY)  # no server: HAProxy closes before the greeting
            return
        self._proxy_try(st, session, role, chosen.index, 0)

    def _proxy_choice(self, st: Statement) -> Backend | None:
        router = self.router
        assert router.policy is not None
        for b, s in zip(router.backends, self.servers, strict=True):
            b.conns = s.connections
        request: Any = st.request  # an app request (a RequestView)
        return router.policy.choose(request, _up, 0.0)

    def _proxy_try(
        self, st: Statement, session: Session, role: str, idx: int, retried: int
    ) -> None:
        """One connect attempt of the proxy to node ``idx`` (``retried`` before it)."""
        state = self.state[idx]
        if state in (SYNCED, JOINER):
            self._connected(st, session, role, idx, new=True)
        elif state == DOWN and self.unanswered[idx]:
            self._syn(st, session, role, idx, retried, 0.0)
        else:  # refused: the next try after HAProxy's turn-around
            self._proxy_failed(st, session, role, idx, retried, TURN_AROUND)

    def _syn(
        self, st: Statement, session: Session, role: str, idx: int, retried: int, sent: float
    ) -> None:
        """The SYN sent ``sent`` s into the attempt got no answer."""
        again = next((t for t in SYN_AGAIN if sent < t < PROXY_CONNECT_TIMEOUT), None)
        if again is None:
            later(
                self.env,
                PROXY_CONNECT_TIMEOUT - sent,
                lambda _: self._proxy_failed(st, session, role, idx, retried, 0.0),
            )
            return

        def resend(_: Any) -> None:
            if self.state[idx] == DOWN and self.unanswered[idx]:
                self._syn(st, session, role, idx, retried, again)
            elif self.state[idx] in (SYNCED, JOINER):
                self._connected(st, session, role, idx, new=True)
            else:
                self._proxy_failed(st, session, role, idx, retried, TURN_AROUND)

        later(self.env, again - sent, resend)

    def _proxy_failed(
        self, st: Statement, session: Session, role: str, idx: int, retried: int, wait: float
    ) -> None:
        if retried >= PROXY_RETRIES:  # HAProxy closes before the greeting (mysqlnd: 2006)
            self._reply(st, ERR_GONE_AWAY)
        elif wait > 0:
            later(self.env, wait, lambda _: self._proxy_try(st, session, role, idx, retried + 1))
        else:
            self._proxy_try(st, session, role, idx, retried + 1)

    def _connected(self, st: Statement, session: Session, role: str, idx: int, new: bool) -> None:
        server = self.servers[idx]
        if new and not server.connect():
            self._reply(st, ERR_TOO_MANY_CONNECTIONS)
            return
        session.conns[role] = idx
        self.sessions[idx].add(session)
        st.server = server
        if new and self._handshake is not None:
            server.cpu.submit(self._handshake() * server.slowness, self._shaken, st)
            return
        self._issue(st)

    # -- the write path: what a crash left behind --------------------------------------
    def _deliver_ws(self, st: Statement) -> None:
        if st in self.lost:
            return  # sent by a node that died before it was ordered
        super()._deliver_ws(st)
        g = self.gcache
        if g is not None and len(g) > GCACHE_TRIM:
            floor = min(m.last_committed for m in self.members)
            while g and g[0].seqno <= floor:
                g.popleft()

    def _local_committed(self, ws: WriteSet) -> None:
        if ws.statement in self.lost:
            return  # ordered, committed elsewhere; its node died (IST brings it back)
        super()._local_committed(ws)

    def _causal_wait(self, arg: tuple[Statement, int]) -> None:
        if arg[0] not in self.lost:
            super()._causal_wait(arg)

    # -- membership --------------------------------------------------------------------
    def lose(self, arg: tuple[int, bool]) -> None:
        """Node ``i`` is killed."""
        i, unanswered = arg
        now = self.env._now
        self.state[i] = DOWN
        self.unanswered[i] = unanswered
        lost = {"time": now, "last_committed": self.members[i].last_committed}
        self.events[i].append({"lost": lost, "joined": {}, "synced": {}, "ist": {}})
        server = self.servers[i]
        for st in [s for s in self.active if s.server is server]:
            self.lost.add(st)
            st.token += 1  # its lock wait or causal read deadline is void
            st.job = None
            self._reply(st, ERR_LOST)
        server.crash()
        for session in self.sessions[i]:
            for role, idx in list(session.conns.items()):
                if idx == i:
                    session.conns[role] = -1 - i
        self.sessions[i] = set()
        for key in [k for k, v in self._pools.items() if v == i]:
            del self._pools[key]
        node = self.members[i]
        node.epoch += 1
        node.recv_queue.clear()
        node.recv_tw.set(now, 0)
        for st in node.send_queue:
            self.lost.add(st)
        node.send_queue.clear()
        node.free_appliers = node.appliers
        node._waiting.clear()
        node._noop.clear()
        node.fc_enabled = False
        self._view_changed()
        if node.fc_stop:
            node.fc_stop = False
            self.flow_control_changed(stop=False)

    def restart(self, i: int) -> None:
        """Node ``i``'s container starts again: mysqld starts, then joins."""
        self.state[i] = STARTING
        self.unanswered[i] = False
        later(self.env, self.galera.rejoin, self.join, i)

    def join(self, i: int) -> None:
        """Node ``i`` joins the view and receives the write-sets it missed by IST."""
        if self.state[i] != STARTING:
            return
        node = self.members[i]
        self.state[i] = JOINER
        self._view_changed()
        missed = [ws for ws in self.gcache or () if ws.seqno > node.last_committed]
        self._target[i] = self.seqno
        donor = next(
            (m for k, m in enumerate(self.members) if k != i and self.state[k] == SYNCED), None
        )
        work = sum(ws.apply_work for ws in missed if ws.ok)
        if donor is not None and work > 0 and self.galera.ist_send > 0:
            donor.server.cpu.submit(
                self.galera.ist_send * work * donor.server.slowness, _noop, None
            )
        self.events[i][-1]["joined"] = {"time": self.env._now, "from": node.last_committed}
        self.events[i][-1]["ist"] = {
            "writesets": sum(1 for ws in missed if ws.ok),
            "donor": donor.server.name if donor is not None else None,
            "donor_cpu": self.galera.ist_send * work,
        }
        for ws in missed:
            if ws.ok:
                node.recv_queue.append(ws)
            else:
                node.skip(ws.seqno)
        node.recv_tw.set(self.env._now, len(node.recv_queue))
        self._watch_sync(i)
        node._start_appliers()

    def _watch_sync(self, i: int) -> None:
        node = self.members[i]
        if self.state[i] != JOINER:
            return
        if node.last_committed >= self._target[i] and len(node.recv_queue) <= self.fc_lower:
            self.state[i] = SYNCED
            node.fc_enabled = True
            self.events[i][-1]["synced"] = {"time": self.env._now, "at": node.last_committed}
            return
        node.when_committed(node.last_committed + 1, lambda _: self._watch_sync(i), None)

    def _view_changed(self) -> None:
        """The primary view changed: who receives write-sets, the FC limits."""
        self.receivers = [
            m for k, m in enumerate(self.members) if self.state[k] in (SYNCED, JOINER)
        ]
        g = self.galera
        self.fc_upper, self.fc_lower = flow_control_limits(
            g.fc_limit, g.fc_factor, g.fc_single_primary, len(self.receivers)
        )

    # -- statistics --------------------------------------------------------------------
    def results(self, now: float) -> dict[str, Any]:
        out = super().results(now)
        nodes: dict[str, Any] = {}
        for m, records in zip(self.members, self.events, strict=True):
            if not records:
                continue
            # by outage, "1" first (the results hold mappings, not lists)
            nodes[m.server.name] = {
                str(k): ev | {"catch_up": _catch_up(ev)} for k, ev in enumerate(records, 1)
            }
        out["galera"]["membership"] = nodes
        return out


def _catch_up(ev: dict[str, dict[str, Any]]) -> float:
    """Seconds from joining to SYNCED (NaN: not synced by the horizon)."""
    joined, synced = ev["joined"].get("time"), ev["synced"].get("time")
    return float(synced - joined) if joined is not None and synced is not None else math.nan


def _up(b: Backend, /) -> bool:
    return b.up


def _noop(_: Any) -> None:
    """Nothing waits for it."""
