"""The load balancer: picks an upstream with its policy, forwards, retries, queues,
and answers the client, by the rules of its product (``balancer.product``).

shared/reference/balancers.md, last section, is the source of each rule:

============  ==========================  ===========================  ==========================
rule          nginx                       HAProxy                      Envoy
============  ==========================  ===========================  ==========================
full peer     skipped (hashing moves on); queued (per server for       host's pending queue;
              none usable → 502 at once   hashing) until queue_timeout  beyond max_pending_requests
                                          → 503                         or max_requests → 503
no server     502 (no live upstreams)     503                          503
retries       next peer on error/timeout  same server after 1 s,       retry_policy only, any
              (next_upstream), ≤ tries    ``retries`` times; last one   host, jittered back-off
              and next_upstream_timeout   elsewhere with redispatch
refused       502 when out of tries       503 after the retries        503
reset         502                         502                          503
timeout       504                         504                          504
passive       max_fails / fail_timeout    observe only                 outlier_detection only
============  ==========================  ===========================  ==========================

Active checks and the agent are in :mod:`lbsim.model.health`, passive checks
in :mod:`lbsim.model.passive`, retry decisions in :mod:`lbsim.model.retries`,
slow start in :mod:`lbsim.model.slow_start`, the queues (HAProxy's, Envoy's
pending requests) in :mod:`lbsim.model.waiting`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import simpy

from lbsim.model.app import RESET, AppNode
from lbsim.model.deadlines import Deadlines
from lbsim.model.distributions import Sampler
from lbsim.model.engine import later
from lbsim.model.health import ActiveChecks, start_agent
from lbsim.model.passive import passive_checks
from lbsim.model.policies import Backend, Policy
from lbsim.model.policies.roster import Roster
from lbsim.model.request import Request
from lbsim.model.retries import CONNECT_TIMEOUT, SYN_AGAIN, Kind, after_failure
from lbsim.model.slow_start import SlowStart
from lbsim.model.waiting import WaitingRoom
from lbsim.scenario import schema

BAD_GATEWAY = 502
UNAVAILABLE = 503
GATEWAY_TIMEOUT = 504
#: Envoy: the share of healthy hosts is scaled by the overprovisioning factor 1.4
OVERPROVISIONING = 1.4

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
        self.rules = rules = spec.rules
        self.product = rules.product
        self._nginx = rules.product == "nginx"
        self._haproxy = rules.product == "haproxy"
        self._envoy = rules.product == "envoy"
        self.backends = list(backends)
        self.nodes = list(nodes)
        self.policy = policy
        self._processing = processing
        self._lb_app = lb_app
        self._rng = rng
        self.max_tries = rules.next_upstream_tries or len(self.backends)
        self.answer_client: ClientAnswer = _unwired
        self._current: Request | None = None
        self._panic = False
        self._available = self._make_available()
        #: the available test's request-independent part per backend, kept for
        #: the policies that choose without testing every peer
        self.roster = Roster(
            self.backends, envoy=self._envoy, skip_full=self._nginx or not policy.sticky
        )
        #: requests sent to a server and not answered (Envoy max_requests)
        self._sent = 0
        self._upstream_deadlines = Deadlines(
            env, spec.upstream_timeout, self._upstream_pending, self._upstream_expired
        )
        # HAProxy: timeout queue → 503; Envoy: pending requests wait within the route timeout
        self.waiting = WaitingRoom(
            env,
            self.backends,
            self.roster,
            rules.queue_timeout if self._haproxy else spec.upstream_timeout,
            UNAVAILABLE if self._haproxy else GATEWAY_TIMEOUT,
            self._send,
            self._choose,
            self._fail,
        )
        self.queue_tw = self.waiting.tw
        self._max_pending = rules.circuit_breaker.max_pending_requests
        #: a request whose try was refused inside its own dispatch, to choose again
        #: when that dispatch's send returns (nginx's next peer, as a loop)
        self._sending: Request | None = None
        self._again: Request | None = None
        # a zero-delay hop calls straight through instead of via the calendar
        respond = self._upstream_answer if lb_app.constant == 0.0 else self._from_upstream
        for node in self.nodes:
            node.respond = respond
        self.slow_start = (
            SlowStart(rules.product, rules.slow_start, self.backends) if rules.slow_start else None
        )
        self.checks = (
            ActiveChecks(
                env,
                spec.health_check,
                self.backends,
                self.nodes,
                rng,
                self._revived,
                self._checked if self.slow_start is not None and self._haproxy else None,
                self._went_down,
            )
            if spec.health_check is not None
            else None
        )
        if self.slow_start is not None:
            self.roster.ramping = self.slow_start.ramping
        policy.attach(self.roster)
        agent_interval = getattr(policy, "agent_interval", None)
        if agent_interval is not None:
            start_agent(env, policy, float(agent_interval), self.backends, self.nodes, rng)
        self.passive = passive_checks(rules, self.backends, self.checks)

    def _revived(self, b: Backend) -> None:
        if self.slow_start is not None:
            self.slow_start.began(b, self.env.now)
        self.roster.sync(b, self.env.now)
        self.waiting.release(b)

    def _went_down(self, b: Backend) -> None:
        self.roster.sync(b, self.env.now)

    def _checked(self, b: Backend) -> None:
        assert self.slow_start is not None
        self.slow_start.update(b, self.env.now)  # HAProxy: the ramp moves at checks

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
        if self._envoy:
            # Envoy's balancer does not see connection limits (a full host
            # queues the request as pending) and may pick a host again on a
            # retry; in panic it balances over all hosts, healthy or not.
            def envoy_available(b: Backend) -> bool:
                return self._panic or (b.up and b.failed_until <= env.now)

            return envoy_available
        # nginx skips a full peer, hashing included; HAProxy queues a hashed
        # request for its full server (persistence) and skips it otherwise
        skip_full_sticky = self._nginx or not self.policy.sticky

        def available(b: Backend) -> bool:
            if not b.up or b.failed_until > env.now:
                return False
            if b.max_conns and skip_full_sticky and b.conns >= b.max_conns:
                return False
            req = self._current
            return req is None or not (req.tried >> b.index) & 1

        return available

    def _in_panic(self) -> bool:
        # the roster counts the healthy hosts (up, not ejected) as of now
        share = min(100.0, OVERPROVISIONING * 100.0 * self.roster.healthy / len(self.backends))
        return share < self.rules.panic_threshold

    def _usable_but_full(self, request: Request) -> bool:
        now = self.env.now
        return any(
            b.up and b.failed_until <= now and b.full and not (request.tried >> b.index) & 1
            for b in self.backends
        )

    def _dispatch(self, request: Request) -> None:
        """Choose a server for ``request`` and send it, queue it, or answer.

        nginx's next peer after a refusal inside this send comes back here
        (``_again``) and goes round the loop, instead of a dispatch one stack
        frame deeper per refusing peer (RecursionError with hundreds of them).
        """
        roster = self.roster
        while True:
            roster.advance(self.env.now)
            if self._envoy:
                if self._sent >= self.rules.circuit_breaker.max_requests:
                    self._fail(request, UNAVAILABLE)  # circuit breaker overflow
                    return
                self._panic = self._in_panic()
                roster.set_panic(self._panic, self.env.now)
                if self.slow_start is not None:
                    self.slow_start.update_all(self.env.now)  # Envoy: at every pick
            backend = self._choose(request)
            if backend is None:
                if self._haproxy and self._usable_but_full(request):
                    self.waiting.add(request, None)
                else:
                    # nginx: "no live upstreams"; HAProxy/Envoy: no server available
                    self._fail(request, BAD_GATEWAY if self._nginx else UNAVAILABLE)
                return
            if backend.full:  # HAProxy hashing (wait for this server) or Envoy (pending)
                if self._envoy and self.waiting.count >= self._max_pending:
                    self._fail(request, UNAVAILABLE)
                    return
                self.waiting.add(request, backend)
                return
            outer = self._sending
            self._sending = request
            self._send(request, backend)
            self._sending = outer
            if self._again is None:
                return
            self._again = None  # it is ``request``: refused, to the next peer

    def _send(self, request: Request, b: Backend) -> None:
        now = self.env.now
        self.passive.selected(b, now)
        b.conns += 1
        self._sent += 1
        if not request.tries:
            request.first_try = now
        request.tries += 1
        request.tried |= 1 << b.index
        request.attempt += 1
        request.backend = b
        request.sent_to_backend = now
        request.upstream_done = False
        self.roster.sync(b, now)
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
        node = self.nodes[b.index]
        if not node.accept(request, attempt):
            if node.answers():
                self._return(arg, self._refused)
            else:  # nothing answers the SYN: sent again until the connect timeout
                self._syn_unanswered(request, attempt, 0.0)

    def _syn_unanswered(self, request: Request, attempt: int, sent: float) -> None:
        """The SYN sent ``sent`` s into the connect got no answer: TCP sends it
        again (:data:`SYN_AGAIN`) until the product's connect timeout."""
        limit = CONNECT_TIMEOUT[self.product]
        again = next((t for t in SYN_AGAIN if sent < t < limit), None)
        if again is None:
            later(self.env, limit - sent, self._unreachable, (request, attempt))
        else:
            later(self.env, again - sent, self._syn, (request, attempt, again))

    def _syn(self, arg: tuple[Request, int, float]) -> None:
        request, attempt, sent = arg
        if request.attempt != attempt or request.upstream_done:
            return
        node = self.nodes[request.backend.index]
        if not node.answers():
            self._syn_unanswered(request, attempt, sent)
        elif not node.accept(request, attempt):  # back, but full
            self._return((request, attempt), self._refused)

    def _unreachable(self, arg: tuple[Request, int]) -> None:
        request, attempt = arg
        if request.attempt != attempt or request.upstream_done:
            return
        self._try_failed(request, "unreachable")

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
            return  # the balancer already gave up on this try
        if status == RESET:
            self._try_failed(request, "reset")
            return
        now = self.env.now
        b: Backend = request.backend
        request.upstream_done = True
        b.conns -= 1
        self._sent -= 1
        if status >= 1000 and not self._nginx:
            # a database error is PHP's HTTP 500: an error to HAProxy's
            # layer-7 observe and a 5xx to Envoy's outlier detection
            self.passive.failed(b, now)
        else:
            self.passive.succeeded(b, now)
        self.policy.on_response(b, now - request.sent_to_backend, now)
        self.roster.sync(b, now)
        self.waiting.release(b)
        self.answer_client(request, status)

    def _refused(self, arg: tuple[Request, int]) -> None:
        request, attempt = arg
        if request.attempt != attempt or request.upstream_done:
            return
        self._try_failed(request, "refused")

    def _upstream_pending(self, request: Request, attempt: int) -> bool:
        return request.attempt == attempt and not request.upstream_done

    def _upstream_expired(self, request: Request, attempt: int) -> None:
        self._try_failed(request, "timeout")

    # -- failed tries and retries ---------------------------------------------------------
    def _try_failed(self, request: Request, kind: Kind) -> None:
        """The try in progress was refused, reset, or timed out: retry or answer."""
        now = self.env.now
        request.upstream_done = True
        b: Backend = request.backend
        b.conns -= 1
        self._sent -= 1
        self.passive.failed(b, now)
        self.policy.on_failure(b, now - request.sent_to_backend, now)
        self.roster.sync(b, now)
        self.waiting.release(b)
        d = after_failure(
            self.rules, request, kind, now, self.max_tries, len(self.backends), self._rng
        )
        if d.action == "answer":
            self._fail(request, d.status)
        elif d.action == "next":  # the tried peers are excluded
            if self._sending is request:
                self._again = request  # refused inside its own dispatch: see _dispatch
            else:
                self._dispatch(request)
        elif d.action == "same":
            request.tried = 0
            later(self.env, d.delay, self._resend, (request, b))
        else:
            # HAProxy redispatch: any server but this one; Envoy: any host
            request.tried = 1 << b.index if d.action == "other" else 0
            later(self.env, d.delay, self._dispatch, request)

    def _resend(self, arg: tuple[Request, Backend]) -> None:
        request, b = arg
        if b.full:
            self.waiting.add(request, b)
        else:
            self._send(request, b)

    def _fail(self, request: Request, status: int) -> None:
        self.answer_client(request, status)

    def _choose(self, request: Request) -> Backend | None:
        """The policy's choice for ``request`` (the roster is up to date)."""
        self._current = request
        if not self._envoy:
            self.roster.tried = request.tried  # Envoy may pick a tried host again
        backend = self.policy.choose(request, self._available, self.env.now)
        self._current = None
        self.roster.tried = 0
        return backend


def _unwired(request: Request, status: int) -> None:
    raise RuntimeError("balancer not wired to the clients")
