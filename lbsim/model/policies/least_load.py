"""HAProxy ``agent-check`` weights: route by the load the servers report."""

from __future__ import annotations

from collections.abc import Sequence
from math import floor

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.fwrr import BE_WEIGHT_SCALE, SRV_UWGHT_MAX, Fwrr, haproxy_saturated
from lbsim.model.policies.leastconn_haproxy import FwlcTree, ramped
from lbsim.model.policies.options import LeastLoadOptions


def idle_percent(load: float, min_idle: float) -> int:
    """The agent's reply ``N%``: idle share as a whole percent in [1, 100]."""
    idle = max(min_idle, 1.0 - load)
    return min(100, max(1, floor(idle * 100.0 + 0.5)))


def agent_weight(weight: int, percent: int) -> int:
    """HAProxy's user weight after an agent reply ``percent%``.

    ``configured weight * percent / 100``, truncated, at most 256: with the
    default weight 1 any reply below 100 % gives 0, which takes the server
    out of the farm — hence agent-check setups configure weights like 100.
    """
    return min(SRV_UWGHT_MAX, weight * percent // 100)


class LeastLoad(Policy):
    """HAProxy agent-check: each reply ``N%`` (N = idle percent) sets the server's weight.

    The weight is :func:`agent_weight` (an integer; 0 removes the server
    until a later reply raises it), stale by up to ``interval``; before the
    first reply the configured weights apply, and an agent that cannot be
    reached (node down) leaves the weight as it was (the balancer does not
    call :meth:`on_sample` then). ``roundrobin`` is HAProxy's own weighted
    round robin (lb_fwrr, :class:`~lbsim.model.policies.fwrr.Fwrr`) on these
    weights, ``leastconn`` HAProxy's leastconn key with them.
    """

    Options = LeastLoadOptions
    products = frozenset({"haproxy"})

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        assert isinstance(options, LeastLoadOptions)
        self.opts = options
        n = max((b.index for b in self.backends), default=-1) + 1
        #: HAProxy user weight per backend index (0..256)
        self.weights = [0] * n
        self._by_index: list[Backend | None] = [None] * n
        for b in self.backends:
            self.weights[b.index] = min(SRV_UWGHT_MAX, b.weight)
            self._by_index[b.index] = b
        self._leastconn = options.algorithm == "leastconn"
        self._tree = FwlcTree(self.backends)
        self._eweights = [w * BE_WEIGHT_SCALE for w in self.weights]
        self._up = [True] * n
        self.fwrr = Fwrr(self.weights)

    @property
    def agent_interval(self) -> float:
        """Seconds between agent replies; the balancer starts its sampler with it."""
        return self.opts.interval

    @property
    def agent_metric(self) -> str:
        """What the agent reports: ``"workers"`` or ``"cpu"``."""
        return self.opts.metric

    @property
    def agent_status(self) -> str:
        """Where a workers agent reads php-fpm's status: ``"listener"`` or ``"pool"``."""
        return self.opts.agent_status

    def on_sample(self, backend: Backend, now: float) -> None:
        pct = idle_percent(backend.sampled_load, self.opts.min_idle)
        i = backend.index
        w = agent_weight(backend.weight, pct)
        self.weights[i] = w
        self._eweights[i] = w * BE_WEIGHT_SCALE
        self.fwrr.set_server(i, self._up[i], w)

    def _sync(self, now: float) -> None:
        up = self._up
        for b in self.backends:
            u = b.up and b.failed_until <= now
            if u != up[b.index]:
                up[b.index] = u
                self.fwrr.set_server(b.index, u)

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        if self._leastconn:
            return self._tree.choose(
                self.backends, available, ramped(self.backends, self._eweights)
            )
        self._sync(now)
        by_index = self._by_index

        def saturated(i: int) -> bool:
            b = by_index[i]
            return b is None or haproxy_saturated(b, available)

        i = self.fwrr.next(saturated)
        return None if i is None else by_index[i]

    def on_response(self, backend: Backend, rtt: float, now: float) -> None:
        if self._leastconn:
            self._tree.requeue(backend)

    def on_failure(self, backend: Backend, rtt: float, now: float) -> None:
        self.on_response(backend, rtt, now)


register("least_load")(LeastLoad)
