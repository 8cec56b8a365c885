"""Requests waiting at the balancer for a connection slot: HAProxy's backend
queue and per-server queues (``maxconn``, ``timeout queue`` → 503), Envoy's
pending requests (``max_pending_requests``, within the route timeout → 504).

A slot that frees (an answer, a failed try, a server back up) serves the
queues at once. A request sent from a queue may fail at once (a node that
refuses the connection: down, or its listen backlog full), which frees the
slot again while the queues are being served: that slot is offered in a new
event at the same instant, as HAProxy wakes the queued stream
(``process_srv_queue`` → ``task_wakeup``) rather than connecting it from
inside the failure. Without this, every queued request would be sent and
refused inside the previous one's refusal, one stack frame deeper each time,
until ``RecursionError``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence

import simpy

from lbsim.model.deadlines import Deadlines
from lbsim.model.engine import later
from lbsim.model.policies import Backend
from lbsim.model.policies.roster import Roster
from lbsim.model.request import Request
from lbsim.stats.timeweighted import TimeWeighted

Send = Callable[[Request, Backend], None]
Choose = Callable[[Request], "Backend | None"]
Fail = Callable[[Request, int], None]


class WaitingRoom:
    def __init__(
        self,
        env: simpy.Environment,
        backends: Sequence[Backend],
        roster: Roster,
        timeout: float,
        status: int,
        send: Send,
        choose: Choose,
        fail: Fail,
    ):
        self.env = env
        self.backends = list(backends)
        self.roster = roster
        #: HAProxy backend queue; per-server queues (HAProxy persistence, Envoy pending)
        self.queue: deque[Request] = deque()
        self.server_queues: list[deque[Request]] = [deque() for _ in self.backends]
        self.tw = TimeWeighted()
        #: requests waiting, all queues together
        self.count = 0
        self._status = status
        self._send = send
        self._choose = choose
        self._fail = fail
        #: the queues are being served (a :meth:`release` is on the stack)
        self._serving = False
        self._deadlines = Deadlines(env, timeout, self._pending, self._expired)

    def add(self, request: Request, b: Backend | None) -> None:
        """``request`` waits for ``b`` (None: for any server, HAProxy's backend queue)."""
        request.attempt += 1
        request.queued_at = self.env.now
        if b is None:
            self.queue.append(request)
        else:
            self.server_queues[b.index].append(request)
            b.queued += 1
        self.count += 1
        self.tw.set(self.env.now, self.count)
        self._deadlines.add(request, request.attempt)

    def _pending(self, request: Request, token: int) -> bool:
        return request.attempt == token  # sending or expiring bumps the attempt

    def _expired(self, request: Request, token: int) -> None:
        removed = False
        if request in self.queue:
            self.queue.remove(request)
            removed = True
        else:
            for i, q in enumerate(self.server_queues):
                if request in q:
                    q.remove(request)
                    self.backends[i].queued -= 1
                    removed = True
                    break
        if not removed:
            return
        self.count -= 1
        self.tw.set(self.env.now, self.count)
        request.attempt += 1
        self._fail(request, self._status)

    def release(self, b: Backend) -> None:
        """A connection slot on ``b`` freed (or ``b`` came back): serve the queues."""
        if not self.count:
            return
        if self._serving:
            # a request just sent from the queues failed at once: its slot
            # goes to the next one in an event of this instant, not deeper
            later(self.env, 0.0, self.release, b)
            return
        self._serving = True
        self._serve(b)
        self._serving = False

    def _serve(self, b: Backend) -> None:
        sq = self.server_queues[b.index]
        if sq and not b.full and b.up:
            request = sq.popleft()
            b.queued -= 1
            self._dequeued()
            self._send(request, b)
            return
        queue = self.queue
        self.roster.advance(self.env.now)
        while queue:
            request = queue[0]
            chosen = self._choose(request)
            if chosen is None or chosen.full:
                break
            queue.popleft()
            self._dequeued()
            self._send(request, chosen)

    def _dequeued(self) -> None:
        self.count -= 1
        self.tw.set(self.env.now, self.count)
