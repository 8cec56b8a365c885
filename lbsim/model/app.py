"""A PHP-FPM node: ``workers`` (pm.max_children) take connections from a listen
backlog; each runs one request's phases — CPU bursts on the node's shared CPU
and database queries, during which the worker holds no CPU."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import simpy

from lbsim.model.cpu import Cpu
from lbsim.model.deadlines import Deadlines
from lbsim.model.request import Request, Try, Work
from lbsim.stats.timeweighted import TimeWeighted

if TYPE_CHECKING:
    from lbsim.model.database import DatabaseTier

#: what the node answers the balancer with
OK = 200
RESET = 502  # worker killed or node crashed: nginx/HAProxy answer 502

Respond = Callable[[tuple[Request, int, int]], None]
#: the answer to a status request: the node's load, or None (refused, node down)
StatusAnswer = Callable[[float | None], None]


class AppNode:
    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        name: str,
        workers: int,
        backlog: int,
        cpu: Cpu,
        request_timeout: float | None,
        database: DatabaseTier,
    ):
        self.env = env
        self.index = index
        self.name = name
        self.workers = workers
        self.backlog_limit = backlog
        self.cpu = cpu
        self.request_timeout = request_timeout
        self.database = database
        self.up = True
        #: down and unreachable: connections to it get no answer (they time out)
        self.unanswered = False
        self.busy = 0
        self.backlog: deque[tuple[Request, int]] = deque()
        self.running: dict[Work, int] = {}  # try -> balancer attempt
        # idle workers in the order they will accept: php-fpm workers block in
        # accept() and the kernel wakes them first come, first served
        self.idle: deque[int] = deque(range(workers))
        self.respond: Respond = _unwired
        self.busy_tw = TimeWeighted()
        self.backlog_tw = TimeWeighted()
        self.refused = 0
        self.killed = 0
        self._kills = (
            Deadlines(env, request_timeout, self._running, self._terminate)
            if request_timeout is not None
            else None
        )
        self.served = 0
        #: a status request queued in the listen backlog (an agent reading
        #: php-fpm's status through the pool): connections still ahead of it, answer
        self.status_wait: tuple[int, StatusAnswer] | None = None
        #: agent checks whose reply HAProxy did not get (None: no agent)
        self.agent_lost: int | None = None
        # bound once: one burst or more, and a query or more, per request
        self._cpu_done_cb = self._cpu_done
        self._query_done_cb = self._query_done

    # -- the balancer side ------------------------------------------------------------
    def accept(self, request: Request, attempt: int) -> bool:
        """A connection from the balancer arrives; False means refused."""
        if not self.up:
            self.refused += 1
            return False
        backlog = self.backlog
        if self.busy < self.workers and not backlog:
            self._start(request, attempt)
            return True
        # A free worker with a non-empty backlog only happens inside _finish:
        # the node answered the balancer, which at once sent the next
        # connection before the freed worker took the backlog's head. The
        # new connection queues behind the others (the kernel's accept queue
        # is FIFO), and the head is about to leave, so it counts as free room.
        room = self.backlog_limit + (self.workers - self.busy)
        if len(backlog) < room:
            backlog.append((request, attempt))
            self.backlog_tw.set(self.env.now, len(backlog))
            return True
        self.refused += 1
        return False

    def check_ok(self) -> bool:
        """A layer-4 health check: the node is up and its listen queue has room."""
        return self.up and (self.busy < self.workers or len(self.backlog) < self.backlog_limit)

    def load(self) -> float:
        """Busy workers plus queued connections, as a fraction of workers (capped at 1)."""
        return min(1.0, (self.busy + len(self.backlog)) / self.workers)

    def ask_status(self, answer: StatusAnswer) -> None:
        """php-fpm's status page requested through the pool's own listener.

        A free worker answers at once; otherwise the request joins the listen
        backlog behind the connections queued there and is answered when a
        worker takes it (a status page costs a worker next to nothing, so it is
        served in no time), with the load that worker sees (itself not
        counted). A full backlog refuses it and a node going down resets it:
        ``answer(None)``. One at a time: the agent asks again only once answered.
        """
        if not self.up:
            answer(None)
        elif self.busy < self.workers and not self.backlog:
            answer(self.load())
        elif len(self.backlog) >= self.backlog_limit + (self.workers - self.busy):
            answer(None)
        else:
            self.status_wait = (len(self.backlog) + 1, answer)

    def _status_turn(self) -> None:
        """A worker was freed: the queued status request moves up, or takes it."""
        assert self.status_wait is not None
        ahead, answer = self.status_wait
        if ahead > 1:
            self.status_wait = (ahead - 1, answer)
        else:
            self.status_wait = None
            answer(self.load())

    # -- a worker's life ----------------------------------------------------------------
    def _start(self, request: Work, attempt: int) -> None:
        if request.node is not None:  # an earlier try still runs: this one is separate
            request = Try(request.origin)
        now: float = self.env._now
        busy = self.busy + 1
        self.busy = busy
        tw = self.busy_tw  # busy_tw.set(now, busy), inlined
        tw._area += tw.value * (now - tw._t)
        tw._t = now
        tw.value = busy
        self.running[request] = attempt
        request.node = self
        request.worker = self.idle.popleft()
        request.phase = 0
        request.worker_token += 1
        if self._kills is not None:
            self._kills.add(request, request.worker_token)
        self._next_phase(request)

    def _next_phase(self, request: Work) -> None:
        phases = request.phases
        i = request.phase
        if i >= len(phases):
            self._finish(request, OK)
            return
        request.phase = i + 1
        step = phases[i]
        if step.__class__ is float:
            request.job = self.cpu.submit(step, self._cpu_done_cb, request)
        else:
            self.database.execute(request, step, self, self._query_done_cb)

    def _cpu_done(self, request: Work) -> None:
        request.job = None
        # _next_phase(request), inlined: a burst ends a request or starts its next phase
        phases = request.phases
        i = request.phase
        if i >= len(phases):
            self._finish(request, OK)
            return
        request.phase = i + 1
        step = phases[i]
        if step.__class__ is float:
            request.job = self.cpu.submit(step, self._cpu_done_cb, request)
        else:
            self.database.execute(request, step, self, self._query_done_cb)

    def _query_done(self, request: Work, error: int | None) -> None:
        if request.node is not self or request not in self.running:
            return  # the worker was killed meanwhile
        if error is not None:
            self._finish(request, error)
        else:
            self._next_phase(request)

    def _finish(self, request: Work, status: int) -> None:
        attempt = self.running.pop(request)
        request.node = None
        self.idle.append(request.worker)
        if request.db is not None:
            self.database.finish(request)
        now = self.env._now
        self.busy -= 1
        if status == OK:
            self.served += 1
        if self.status_wait is not None and self.up:
            self._status_turn()
        self.respond((request.origin, attempt, status))
        backlog = self.backlog
        # the answer may have brought new connections at once (the balancer's
        # queue drains into the freed slot): one may already hold the worker
        if backlog and self.up and self.busy < self.workers:
            nxt, nxt_attempt = backlog.popleft()
            self.backlog_tw.set(now, len(backlog))
            self._start(nxt, nxt_attempt)
        else:
            tw = self.busy_tw  # busy_tw.set(now, self.busy), inlined
            tw._area += tw.value * (now - tw._t)
            tw._t = now
            tw.value = self.busy

    def _running(self, request: Work, token: int) -> bool:
        return request.node is self and request.worker_token == token

    def _terminate(self, request: Work, token: int) -> None:
        """request_terminate_timeout: php-fpm kills the worker; the balancer sees a reset."""
        self.killed += 1
        self._abort(request)
        self._finish(request, RESET)

    def _abort(self, request: Work) -> None:
        if request.job is not None:
            self.cpu.cancel(request.job)
            request.job = None
        self.database.abandon(request)

    # -- outages ------------------------------------------------------------------------
    def go_down(self, unanswered: Any = False) -> None:
        """The node crashes: running and queued connections are reset (php-fpm's
        sockets close with it). ``unanswered``: its address is gone too, so new
        connections get no answer instead of a refusal."""
        now = self.env.now
        self.up = False
        self.unanswered = bool(unanswered)
        if self.status_wait is not None:
            answer = self.status_wait[1]
            self.status_wait = None
            answer(None)
        for request in list(self.running):
            self._abort(request)
            self._finish(request, RESET)
        while self.backlog:
            request, attempt = self.backlog.popleft()
            self.respond((request, attempt, RESET))
        self.backlog_tw.set(now, 0)

    def come_up(self, _: Any = None) -> None:
        self.up = True
        self.unanswered = False

    def answers(self) -> bool:
        """A connection attempt gets an answer (accepted, or refused at once)."""
        return self.up or not self.unanswered


def _unwired(_: tuple[Request, int, int]) -> None:
    raise RuntimeError("app node not wired to a balancer")
