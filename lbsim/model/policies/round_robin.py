"""nginx default balancing: smooth weighted round robin."""

from __future__ import annotations

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.smooth_wrr import smooth_wrr_available


@register("round_robin")
class RoundRobin(Policy):
    """nginx round robin: smooth WRR over the available backends.

    With equal weights this is plain rotation; with weights 5, 1, 1 it
    yields a a b a c a a (period = sum of weights). ``None`` when no
    backend is available.
    """

    products = frozenset({"nginx", "envoy"})

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        return smooth_wrr_available(self.backends, available)
