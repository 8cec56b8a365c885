"""nginx default balancing: smooth weighted round robin."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.edf import Edf
from lbsim.model.policies.smooth_wrr import smooth_wrr_available


@register("round_robin")
class RoundRobin(Policy):
    """nginx round robin: smooth WRR over the available backends.

    With equal weights this is plain rotation; with weights 5, 1, 1 it
    yields a a b a c a a (period = sum of weights). ``None`` when no
    backend is available. Under Envoy, equal weights rotate the same way;
    unequal weights use Envoy's EDF scheduler (weights 5, 1, 1 give
    a a a a b c a: same counts per period, another order).
    """

    products = frozenset({"nginx", "envoy"})

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        self._weighted = len({b.weight for b in self.backends}) > 1
        self._edf: Edf | None = None

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        if self.product == "envoy" and (
            self._weighted or self._edf is not None or any(b.ramp < 1.0 for b in self.backends)
        ):
            # Envoy's ROUND_ROBIN with unequal weights (slow start included):
            # EDF on the weights; once started it stays on EDF
            if self._edf is None:
                self._edf = Edf(self.backends, lambda b: b.weight * b.ramp)
            return self._edf.pick(available)
        return smooth_wrr_available(self.backends, available)
