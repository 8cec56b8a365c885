"""Active health checks and the HAProxy agent: what the balancer learns by probing.

- **Checks** (``inter``/``fall``/``rise``, every product): a layer-4 probe of
  each server every ``interval`` (first at a random phase); ``fall`` failures
  in a row mark it down, ``rise`` successes up again. A probe of a node
  whose address answers nothing (an ``unanswered`` outage) fails only at
  the check timeout, ``interval`` (HAProxy without ``timeout check``), and
  the next probe starts ``interval`` after that: such a node fails a check
  every two intervals.
- **Agent** (HAProxy ``agent-check``, policy least_load): every agent
  interval each server reports its load, which the policy turns into a
  weight. An agent that cannot be reached (node down) leaves the weight as
  it was, as HAProxy does. An agent that reads php-fpm's status through the
  pool (``agent_status: pool``) answers one check at a time, each once a
  worker takes its status request (:meth:`AppNode.ask_status`); a reply
  later than the check timeout (``agent-inter``: the stack sets no
  ``timeout check``) is lost and the weight stays too. So a full node, the
  one whose weight most needs to fall, keeps it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import simpy

from lbsim.model.app import AppNode
from lbsim.model.engine import every
from lbsim.model.policies import Backend, Policy
from lbsim.scenario.outages import HealthCheck

Revived = Callable[[Backend], None]


class Probed(Protocol):
    """What a check sees of a server (an app node, a database node)."""

    def answers(self) -> bool: ...

    def check_ok(self) -> bool: ...


class ActiveChecks:
    """Probes every server; calls ``revived(b)`` when a server is marked up again,
    ``checked(b)`` after every check of ``b``, ``went_down(b)`` when it is marked down."""

    def __init__(
        self,
        env: simpy.Environment,
        spec: HealthCheck,
        backends: Sequence[Backend],
        nodes: Sequence[Probed],
        rng: np.random.Generator,
        revived: Revived,
        checked: Revived | None = None,
        went_down: Revived | None = None,
    ):
        self.spec = spec
        self._nodes = list(nodes)
        self._revived = revived
        self._checked = checked
        self._went_down = went_down
        n = len(backends)
        #: consecutive successful / failed checks per server
        self.ok = [0] * n
        self.bad = [0] * n
        for b in backends:
            every(env, spec.interval, self._checker(b), first=float(rng.uniform(0, spec.interval)))

    def _checker(self, b: Backend) -> Callable[[float], None]:
        node = self._nodes[b.index]
        pending = False

        def check(now: float) -> None:
            nonlocal pending
            if pending:  # the probe sent an interval ago got no answer: it timed out
                pending = False
                self.failed(b)
            elif not node.answers():
                pending = True  # fails at the check timeout; the next starts an interval after
                return
            elif node.check_ok():
                self.passed(b)
            else:
                self.failed(b)
            if self._checked is not None:
                self._checked(b)

        return check

    def passed(self, b: Backend) -> None:
        i = b.index
        self.ok[i] += 1
        self.bad[i] = 0
        if not b.up and self.ok[i] >= self.spec.rise:
            b.up = True
            self._revived(b)

    def failed(self, b: Backend) -> None:
        """One failed check (a probe, or HAProxy ``on-error fail-check``)."""
        i = b.index
        self.bad[i] += 1
        self.ok[i] = 0
        if b.up and self.bad[i] >= self.spec.fall:
            b.up = False
            if self._went_down is not None:
                self._went_down(b)

    def mark_down(self, b: Backend) -> None:
        """HAProxy ``on-error mark-down``: down now, up again after ``rise`` good checks."""
        i = b.index
        self.ok[i] = 0
        self.bad[i] = self.spec.fall
        b.up = False
        if self._went_down is not None:
            self._went_down(b)


def start_agent(
    env: simpy.Environment,
    policy: Policy,
    interval: float,
    backends: Sequence[Backend],
    nodes: Sequence[AppNode],
    rng: np.random.Generator,
) -> None:
    """Every ``interval`` each reachable server reports its load to ``policy.on_sample``."""
    metric = getattr(policy, "agent_metric", "workers")
    marks = [0.0] * len(backends)

    def agent(b: Backend) -> Callable[[float], None]:
        node = nodes[b.index]

        def report(now: float) -> None:
            if metric == "cpu":
                area = node.cpu.busy.integral(now)
                load = (area - marks[b.index]) / (interval * node.cpu.cores)
                marks[b.index] = area
            else:
                load = node.load()
            if not node.up:
                node.agent_lost = (node.agent_lost or 0) + 1
                return  # the agent cannot be reached: HAProxy keeps the last weight
            b.sampled_load = min(1.0, max(0.0, load))
            policy.on_sample(b, now)

        return report

    status = getattr(policy, "agent_status", "listener")
    for b in backends:
        nodes[b.index].agent_lost = 0
        tick = agent(b) if status == "listener" else PoolAgent(policy, b, nodes[b.index], interval)
        every(env, interval, tick, first=float(rng.uniform(0, interval)))


class PoolAgent:
    """One server's agent reading php-fpm's status through the pool (workers metric).

    Called at every agent check. The agent serves its connections one at a
    time: a check that comes while a status request is still queued waits,
    and asks only once that one is answered. The reply counts only within
    ``timeout`` of the check's start; later, HAProxy has given up on it.
    """

    def __init__(self, policy: Policy, backend: Backend, node: AppNode, timeout: float):
        self.policy = policy
        self.backend = backend
        self.node = node
        self.timeout = timeout
        self.waiting: deque[float] = deque()  # start times of checks not yet asked
        self.asked: float | None = None  # start of the check whose request is queued

    def __call__(self, now: float) -> None:
        if not self.node.up:
            self._lose(1)
            return  # the agent cannot be reached: HAProxy keeps the last weight
        if self.asked is not None:
            self.waiting.append(now)
        else:
            self._ask(now)

    def _ask(self, start: float) -> None:
        self.asked = start
        self.node.ask_status(self._answered)

    def _answered(self, load: float | None) -> None:
        start = self.asked
        assert start is not None
        self.asked = None
        now = self.node.env.now
        if load is None or now - start > self.timeout:
            self._lose(1)
        else:
            b = self.backend
            b.sampled_load = min(1.0, max(0.0, load))
            self.policy.on_sample(b, now)
        if self.waiting and self.node.up:
            self._ask(self.waiting.popleft())
        else:
            self._lose(len(self.waiting))
            self.waiting.clear()

    def _lose(self, checks: int) -> None:
        self.node.agent_lost = (self.node.agent_lost or 0) + checks
