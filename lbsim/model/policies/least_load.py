"""HAProxy ``agent-check`` weights: route by the load the servers report."""

from __future__ import annotations

from collections.abc import Sequence
from math import floor
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.leastconn_haproxy import BE_WEIGHT_SCALE, SRV_EWGHT_MAX, FwlcTree
from lbsim.model.policies.smooth_wrr import smooth_wrr_weights


class LeastLoadOptions(BaseModel):
    """Options of ``least_load``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: float = Field(
        default=2.0,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="agent-inter, seconds between replies",
    )
    metric: Literal["workers", "cpu"] = Field(
        default="workers",
        description=(
            "what the agent reports as busy: the fraction of busy PHP workers "
            "(listen queue included), or CPU utilisation over the last interval"
        ),
    )
    algorithm: Literal["roundrobin", "leastconn"] = Field(
        default="roundrobin", description="HAProxy balance algorithm applied with the agent weights"
    )
    min_idle: float = Field(
        default=0.01, gt=0, le=1, strict=True, description="floor of the reported idle fraction"
    )


def idle_percent(load: float, min_idle: float) -> int:
    """The agent's reply ``N%``: idle share as a whole percent in [1, 100]."""
    idle = max(min_idle, 1.0 - load)
    return min(100, max(1, floor(idle * 100.0 + 0.5)))


@register("least_load")
class LeastLoad(Policy):
    """Weights set by agent replies ``N%`` with N = idle percent; stale by up to ``interval``.

    HAProxy sets the server's weight to ``N%`` of its configured weight at
    each reply. The policy keeps these agent weights in percent units
    (``weight * N``), so ratios are exact; HAProxy itself truncates
    ``weight * N / 100`` to an integer, which with small configured weights
    rounds to 0. Before the first reply the configured weights apply.

    ``roundrobin`` runs smooth WRR on the agent weights (HAProxy's own
    roundrobin is a different weighted scheduler with the same proportions
    per cycle); ``leastconn`` runs HAProxy's leastconn key with the agent
    weight as effective weight.
    """

    products = frozenset({"haproxy"})

    Options = LeastLoadOptions

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        assert isinstance(options, LeastLoadOptions)
        self.opts = options
        n = max((b.index for b in self.backends), default=-1) + 1
        #: agent weight per backend index, in hundredths of a configured weight unit
        self.weights = [0] * n
        for b in self.backends:
            self.weights[b.index] = b.weight * 100
        self._current = [0] * n
        self._leastconn = options.algorithm == "leastconn"
        self._tree = FwlcTree(self.backends)
        # HAProxy eweight = uweight * BE_WEIGHT_SCALE, uweight = weight * N / 100
        self._eweights = [w * BE_WEIGHT_SCALE for w in self.weights]

    @property
    def agent_interval(self) -> float:
        """Seconds between agent replies; the balancer starts its sampler with it."""
        return self.opts.interval

    @property
    def agent_metric(self) -> str:
        """What the agent reports: ``"workers"`` or ``"cpu"``."""
        return self.opts.metric

    def on_sample(self, backend: Backend, now: float) -> None:
        pct = idle_percent(backend.sampled_load, self.opts.min_idle)
        w = backend.weight * pct
        self.weights[backend.index] = w
        self._eweights[backend.index] = w * BE_WEIGHT_SCALE

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        if self._leastconn:
            # eweights are 100x HAProxy's, so is the numerator
            return self._tree.choose(self.backends, available, self._eweights, SRV_EWGHT_MAX * 100)
        return smooth_wrr_weights(
            (b for b in self.backends if available(b)), self.weights, self._current
        )

    def on_response(self, backend: Backend, rtt: float, now: float) -> None:
        if self._leastconn:
            self._tree.requeue(backend)
