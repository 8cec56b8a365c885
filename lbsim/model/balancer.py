"""The load balancer: picks an upstream with its policy, forwards, retries, queues,
checks health, and answers the client (200, or 502/503/504 as nginx/HAProxy do).

- **Passive checks** (nginx ``max_fails``/``fail_timeout``): a refused
  connection, a reset or an upstream timeout counts a failure; ``max_fails``
  failures take the server out for ``fail_timeout`` seconds; a success clears
  the count. Failures also lower nginx's ``effective_weight``.
- **Retries** (``proxy_next_upstream error``): a refused connection is retried
  on another upstream, at most ``next_upstream_tries`` tries (0: each once);
  when all tried upstreams refused, 502. Timeouts and resets are not retried
  (the request may have had effects).
- **max_conns**: when every usable server is at its limit the request waits in
  the backend queue (per server for hashing policies, as HAProxy does with
  persistence) for at most ``queue_timeout``, then 503. With no usable server
  at all: 503.
- **Active checks** (``inter``/``fall``/``rise``): a layer-4 probe every
  ``interval``; ``fall`` failures in a row mark a server down, ``rise``
  successes up again.
- **Agent** (least_load): every ``interval`` each server reports its load,
  which the policy uses until the next report (stale by design).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import simpy

from lbsim.model.app import RESET, AppNode
from lbsim.model.deadlines import Deadlines
from lbsim.model.distributions import Sampler
from lbsim.model.engine import every, later
from lbsim.model.policies import Backend, Policy
from lbsim.model.policies.smooth_wrr import record_failure
from lbsim.model.request import Request
from lbsim.scenario import schema
from lbsim.stats.timeweighted import TimeWeighted

NO_SERVER = 503
ALL_FAILED = 502
UPSTREAM_TIMEOUT = 504
QUEUE_TIMEOUT = 503

ClientAnswer = Callable[[Request, int], None]


class Balancer:
    def __init__(
        self,
        env: simpy.Environment,
        spec: schema.Balancer,
        backends: Sequence[Backend],
        nodes: Sequence[AppNode],
        policy: Policy,
        processing: Sampler,
        lb_app: Sampler,
        rng: np.random.Generator,
    ):
        self.env = env
        self.spec = spec
        self.backends = list(backends)
        self.nodes = list(nodes)
        self.policy = policy
        self._processing = processing
        self._lb_app = lb_app
        self._rng = rng
        self.max_tries = spec.next_upstream_tries or len(self.backends)
        self.answer_client: ClientAnswer = _unwired
        self._current: Request | None = None
        self._available = self._make_available()
        self.queue: deque[Request] = deque()
        self.server_queues: list[deque[Request]] = [deque() for _ in self.backends]
        self.queue_tw = TimeWeighted()
        self._queued = 0
        self._upstream_deadlines = Deadlines(
            env, spec.upstream_timeout, self._upstream_pending, self._upstream_expired
        )
        self._queue_deadlines = Deadlines(
            env, spec.queue_timeout, self._queue_pending, self._queue_expired
        )
        # a zero-delay hop calls straight through instead of via the calendar
        respond = self._upstream_answer if lb_app.constant == 0.0 else self._from_upstream
        for node in self.nodes:
            node.respond = respond
        self._hc_ok = [0] * len(self.backends)
        self._hc_bad = [0] * len(self.backends)
        self._cpu_marks = [0.0] * len(self.backends)
        if spec.health_check is not None:
            hc = spec.health_check
            for b in self.backends:
                every(env, hc.interval, self._checker(b), first=float(rng.uniform(0, hc.interval)))
        agent_interval = getattr(policy, "agent_interval", None)
        if agent_interval is not None:
            for b in self.backends:
                every(
                    env, agent_interval, self._agent(b), first=float(rng.uniform(0, agent_interval))
                )

    # -- entry ------------------------------------------------------------------------
    def receive(self, request: Request, in_transit: float = 0.0) -> None:
        """A client sends a request that reaches the balancer in ``in_transit`` seconds.

        The network delay and the balancer's processing make one event: nothing
        observes the request between the two.
        """
        proc = self._processing
        delay = in_transit if proc.constant == 0.0 else in_transit + proc()
        if delay == 0.0:
            self._dispatch(request)
        else:
            later(self.env, delay, self._dispatch, request)

    # -- choosing -----------------------------------------------------------------------
    def _make_available(self) -> Callable[[Backend], bool]:
        env = self.env
        sticky = self.policy.sticky

        def available(b: Backend) -> bool:
            if not b.up or b.failed_until > env.now:
                return False
            if b.max_conns and not sticky and b.conns >= b.max_conns:
                return False
            req = self._current
            return req is None or not (req.tried >> b.index) & 1

        return available

    def _usable_but_full(self, request: Request) -> bool:
        now = self.env.now
        return any(
            b.up and b.failed_until <= now and b.full and not (request.tried >> b.index) & 1
            for b in self.backends
        )

    def _dispatch(self, request: Request) -> None:
        self._current = request
        backend = self.policy.choose(request, self._available, self.env.now)
        self._current = None
        if backend is None:
            if self._usable_but_full(request):
                self._enqueue(request, None)
            else:
                self._fail(request, ALL_FAILED if request.tries else NO_SERVER)
            return
        if backend.full:  # only for sticky policies: wait for this server
            self._enqueue(request, backend)
            return
        self._send(request, backend)

    def _send(self, request: Request, b: Backend) -> None:
        now = self.env.now
        b.conns += 1
        request.tries += 1
        request.tried |= 1 << b.index
        request.attempt += 1
        request.backend = b
        request.sent_to_backend = now
        request.upstream_done = False
        self._upstream_deadlines.add(request, request.attempt)
        delay = self._lb_app
        if delay.constant == 0.0:
            self._connect((request, request.attempt))
        else:
            later(self.env, delay(), self._connect, (request, request.attempt))

    def _connect(self, arg: tuple[Request, int]) -> None:
        request, attempt = arg
        if request.attempt != attempt or request.upstream_done:
            return  # timed out while the connection was on its way
        b = request.backend
        if not self.nodes[b.index].accept(request, attempt):
            self._return(arg, self._refused)

    # -- answers from upstream ----------------------------------------------------------
    def _return(self, arg: Any, then: Callable[[Any], None]) -> None:
        delay = self._lb_app
        if delay.constant == 0.0:
            then(arg)
        else:
            later(self.env, delay(), then, arg)

    def _from_upstream(self, arg: tuple[Request, int, int]) -> None:
        self._return(arg, self._upstream_answer)

    def _upstream_answer(self, arg: tuple[Request, int, int]) -> None:
        request, attempt, status = arg
        if request.attempt != attempt or request.upstream_done:
            return  # the balancer already answered 504 for this try
        now = self.env.now
        b: Backend = request.backend
        request.upstream_done = True
        b.conns -= 1
        if status == RESET:
            self._failure(b, now)
        else:
            b.fails = 0
            self.policy.on_response(b, now - request.sent_to_backend, now)
        self._release(b)
        self.answer_client(request, status)

    def _refused(self, arg: tuple[Request, int]) -> None:
        request, attempt = arg
        if request.attempt != attempt or request.upstream_done:
            return
        request.upstream_done = True
        b: Backend = request.backend
        b.conns -= 1
        self._failure(b, self.env.now)
        self._release(b)
        if request.tries < self.max_tries:
            self._dispatch(request)
        else:
            self._fail(request, ALL_FAILED)

    def _upstream_pending(self, request: Request, attempt: int) -> bool:
        return request.attempt == attempt and not request.upstream_done

    def _upstream_expired(self, request: Request, attempt: int) -> None:
        request.upstream_done = True
        b: Backend = request.backend
        b.conns -= 1
        self._failure(b, self.env.now)
        self._release(b)
        self._fail(request, UPSTREAM_TIMEOUT)

    def _failure(self, b: Backend, now: float) -> None:
        max_fails = self.spec.max_fails
        if not max_fails:
            return
        b.fails += 1
        record_failure(b, max_fails)
        if b.fails >= max_fails:
            b.failed_until = now + self.spec.fail_timeout

    def _fail(self, request: Request, status: int) -> None:
        self.answer_client(request, status)

    # -- queues -------------------------------------------------------------------------
    def _enqueue(self, request: Request, b: Backend | None) -> None:
        request.attempt += 1
        request.queued_at = self.env.now
        if b is None:
            self.queue.append(request)
        else:
            self.server_queues[b.index].append(request)
            b.queued += 1
        self._queued += 1
        self.queue_tw.set(self.env.now, self._queued)
        self._queue_deadlines.add(request, request.attempt)

    def _queue_pending(self, request: Request, token: int) -> bool:
        return request.attempt == token  # sending or expiring bumps the attempt

    def _queue_expired(self, request: Request, token: int) -> None:
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
        self._queued -= 1
        self.queue_tw.set(self.env.now, self._queued)
        request.attempt += 1
        self._fail(request, QUEUE_TIMEOUT)

    def _release(self, b: Backend) -> None:
        """A connection slot on ``b`` freed: serve the queues."""
        if not self._queued:
            return
        sq = self.server_queues[b.index]
        if sq and not b.full and b.up:
            request = sq.popleft()
            b.queued -= 1
            self._dequeued()
            self._send(request, b)
            return
        queue = self.queue
        while queue:
            request = queue[0]
            self._current = request
            chosen = self.policy.choose(request, self._available, self.env.now)
            self._current = None
            if chosen is None or chosen.full:
                break
            queue.popleft()
            self._dequeued()
            self._send(request, chosen)

    def _dequeued(self) -> None:
        self._queued -= 1
        self.queue_tw.set(self.env.now, self._queued)

    # -- health -------------------------------------------------------------------------
    def _checker(self, b: Backend) -> Callable[[float], None]:
        hc = self.spec.health_check
        assert hc is not None
        node = self.nodes[b.index]

        def check(now: float) -> None:
            i = b.index
            if node.check_ok():
                self._hc_ok[i] += 1
                self._hc_bad[i] = 0
                if not b.up and self._hc_ok[i] >= hc.rise:
                    b.up = True
                    self._release(b)
            else:
                self._hc_bad[i] += 1
                self._hc_ok[i] = 0
                if b.up and self._hc_bad[i] >= hc.fall:
                    b.up = False

        return check

    def _agent(self, b: Backend) -> Callable[[float], None]:
        node = self.nodes[b.index]
        metric = getattr(self.policy, "agent_metric", "workers")
        interval = float(self.policy.agent_interval)  # type: ignore[attr-defined]

        def report(now: float) -> None:
            if metric == "cpu":
                area = node.cpu.busy.integral(now)
                load = (area - self._cpu_marks[b.index]) / (interval * node.cpu.cores)
                self._cpu_marks[b.index] = area
            else:
                load = node.load()
            b.sampled_load = min(1.0, max(0.0, load)) if node.up else 1.0
            self.policy.on_sample(b, now)

        return report


def _unwired(request: Request, status: int) -> None:
    raise RuntimeError("balancer not wired to the clients")
