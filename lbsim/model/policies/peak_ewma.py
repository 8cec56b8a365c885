"""Finagle ``P2CPeakEwma``: power of two choices on a peak-sensitive latency EWMA."""

from __future__ import annotations

from collections.abc import Sequence
from math import exp

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import (
    Backend,
    Eligibility,
    Policy,
    RequestView,
    Uniforms,
    register,
)
from lbsim.model.policies.options import PeakEwmaOptions

#: Finagle's ``Long.MaxValue >> 16`` (2**47 - 1): load of a backend with
#: requests pending but no latency observed yet.
PENALTY = float(((1 << 63) - 1) >> 16)
#: Finagle's ``maxEffort``: pairs drawn before giving up on finding a healthy node
MAX_EFFORT = 5


class PeakEwma(Policy):
    """Two distinct backends drawn uniformly from ALL; the healthier, else the lower load wins.

    A tie in load keeps the first draw. When the winner is not healthy
    (not available) the pair is drawn again, up to ``MAX_EFFORT`` times,
    then Finagle sends to the last winner anyway. Failed requests update
    the cost too (``on_failure``).

    Per backend, ``cost`` (seconds) follows Finagle's ``PeakEwma.Metric``:
    ``observe(rtt)`` at time t with ``w = exp(-(t - stamp) / τ)`` sets
    ``cost = rtt`` if ``rtt > cost`` (peaks are taken at once) else
    ``cost = cost * w + rtt * (1 - w)``, then ``stamp = t``. Reading the
    load also calls ``observe(0)`` (Finagle's ``get``), so an idle
    backend's cost decays towards 0 and the stamp moves. Load is
    ``cost * (pending + 1)``, or ``PENALTY + pending`` when nothing has been
    observed yet but requests are pending; ``pending`` is ``conns``.
    """

    products = frozenset({"envoy"})

    Options = PeakEwmaOptions

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        assert isinstance(options, PeakEwmaOptions)
        self.tau = options.decay_time
        n = max((b.index for b in self.backends), default=-1) + 1
        #: ``cost`` per backend index, seconds
        self.cost = [0.0] * n
        #: time of the last observe per backend index, seconds (epoch 0)
        self.stamp = [0.0] * n
        self._u = Uniforms(rng)

    def _observe(self, i: int, rtt: float, now: float) -> None:
        w = exp(-max(now - self.stamp[i], 0.0) / self.tau)
        c = self.cost[i]
        self.cost[i] = rtt if rtt > c else c * w + rtt * (1.0 - w)
        self.stamp[i] = now

    def load(self, backend: Backend, now: float) -> float:
        """Finagle ``Metric.get``: decay ``cost`` to ``now``, then weigh by pending."""
        i = backend.index
        self._observe(i, 0.0, now)
        c = self.cost[i]
        pending = backend.conns
        if c == 0.0 and pending != 0:
            return PENALTY + pending
        return c * (pending + 1)

    def on_response(self, backend: Backend, rtt: float, now: float) -> None:
        self._observe(backend.index, rtt, now)

    def on_failure(self, backend: Backend, rtt: float, now: float) -> None:
        # Finagle observes the latency of every response, failures included
        self._observe(backend.index, rtt, now)

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        nodes = self.backends
        n = len(nodes)
        if n <= 1:
            return nodes[0] if nodes and available(nodes[0]) else None
        # Balancer.pick: up to MAX_EFFORT pairs until a healthy node; then
        # Finagle gives up on health and uses the last pick anyway
        node = nodes[0]
        for _ in range(MAX_EFFORT):
            node = self._pick2(available, now)
            if available(node):
                return node
        return node

    def _pick2(self, available: Eligibility, now: float) -> Backend:
        """P2C over ALL nodes: the healthier of the pair, else the lower load (tie: first)."""
        nodes = self.backends
        n = len(nodes)
        # P2CPick: a uniform in [0, n), b uniform in [0, n-1) shifted past a
        a = int(self._u.next() * n)
        b = int(self._u.next() * (n - 1))
        if b >= a:
            b += 1
        na, nb = nodes[a], nodes[b]
        ha, hb = available(na), available(nb)
        if ha != hb:
            return na if ha else nb
        return na if self.load(na, now) <= self.load(nb, now) else nb


register("peak_ewma")(PeakEwma)
