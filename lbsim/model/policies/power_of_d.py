"""Power of d choices: nginx ``random two least_conn`` and Envoy ``LEAST_REQUEST``."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lbsim.model.policies.base import (
    Backend,
    Eligibility,
    Policy,
    RequestView,
    Uniforms,
    register,
)
from lbsim.model.policies.edf import Edf
from lbsim.model.policies.random import MAX_TRIES, WeightedPeek
from lbsim.model.policies.smooth_wrr import smooth_wrr


class PowerOfDOptions(BaseModel):
    """Options of ``power_of_d``.

    ``flavour`` left out follows ``balancer.product``. With equal weights
    the flavours differ in sampling (nginx without replacement, HAProxy and
    Envoy with) and in the tie rule (nginx and HAProxy: the later draw wins;
    Envoy: the first). With unequal weights Envoy does not sample at all: it
    runs earliest-deadline-first on ``weight / (active + 1) ^ bias``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    choices: int = Field(
        default=2, ge=2, le=100, strict=True, description="d: backends sampled per request (≤ 100)"
    )
    flavour: Literal["nginx", "haproxy", "envoy"] | None = Field(
        default=None,
        description="whose sampling and tie rule to reproduce (default: balancer.product)",
    )
    active_request_bias: float = Field(
        default=1.0,
        ge=0,
        le=100,
        strict=True,
        allow_inf_nan=False,
        description="Envoy's bias of the weighted (EDF) variant",
    )


@register("power_of_d")
class PowerOfD(Policy):
    """Sample ``choices`` backends, send to the least loaded of them.

    - nginx (``random two least_conn``): weighted draws over all peers,
      rejecting unavailable and already-drawn ones, until ``choices``
      distinct available peers are found (``min(choices, available)``);
      keeps fewer ``conns / weight`` (cross-multiplied), a tie goes to the
      later draw. After 20 rejected draws, smooth WRR, as nginx does.
    - haproxy (``random(N)``, ``get_server_rnd``): ``choices`` draws with
      replacement ∝ weight among available servers; keeps fewer
      ``served / weight``, a tie goes to the later draw (HAProxy ≥ 2.9 then
      compares request rates, not modelled).
    - envoy (``LEAST_REQUEST``): equal weights: ``choices`` draws with
      replacement among available hosts, fewer ``conns`` wins, a tie goes
      to the first draw. Unequal weights: EDF (:class:`Edf`) on
      ``weight / (conns + 1) ^ active_request_bias``.
    """

    products = frozenset({"nginx", "haproxy", "envoy"})

    Options = PowerOfDOptions

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        assert isinstance(options, PowerOfDOptions)
        self._d = options.choices
        self._flavour = options.flavour
        self._u = Uniforms(rng)
        self._peek = WeightedPeek(self.backends, self._u)
        self._equal_weights = len({b.weight for b in self.backends}) <= 1
        bias = options.active_request_bias
        self._edf = Edf(self.backends, lambda b: b.weight * b.ramp / (b.conns + 1) ** bias)

    @property
    def flavour(self) -> str:
        """The product whose rule applies: the option, else the balancer's product."""
        return self._flavour or self.product

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        flavour = self.flavour
        if flavour == "envoy" and (
            not self._equal_weights or any(b.ramp < 1.0 for b in self.backends)
        ):
            return self._edf.pick(available)  # slow start makes the weights unequal
        avail = [b for b in self.backends if available(b)]
        if len(avail) <= 1:
            if not avail or flavour != "nginx":
                return avail[0] if avail else None
            # nginx ends in its round-robin fallback here; the step only
            # lets effective_weight recover.
            return smooth_wrr(avail)
        if flavour == "nginx":
            return self._nginx_pick(avail, available)
        return self._sampled_pick(avail, later_wins=flavour == "haproxy")

    def _nginx_pick(self, avail: list[Backend], available: Eligibility) -> Backend | None:
        if self._peek.total <= 0:
            return smooth_wrr(avail)
        want = min(self._d, len(avail))
        drawn: list[Backend] = []
        best: Backend | None = None
        tries = 0
        while True:
            b = self._peek.draw()
            if b not in drawn and available(b):
                drawn.append(b)
                # nginx keeps the earlier peer only if the later one is
                # strictly more loaded: ties go to the later draw.
                if best is None or not b.conns * best.weight > best.conns * b.weight:
                    best = b
                if len(drawn) == want:
                    return best
            # nginx counts every draw but the last, accepted ones included
            # (``++rp->tries`` after ``prev = peer``).
            tries += 1
            if tries > MAX_TRIES:
                return smooth_wrr(avail)

    def _sampled_pick(self, avail: list[Backend], later_wins: bool) -> Backend:
        u = self._u.next
        if self._equal_weights:
            n = len(avail)
            picks = [avail[int(u() * n)] for _ in range(self._d)]
        else:
            ends = list(accumulate(b.weight for b in avail))
            total = ends[-1]
            picks = [avail[bisect_right(ends, u() * total)] for _ in range(self._d)]
        best = picks[0]
        for b in picks[1:]:
            lhs, rhs = b.conns * best.weight, best.conns * b.weight
            # Envoy keeps the first on a tie, HAProxy the later draw
            if lhs < rhs or (later_wins and lhs == rhs):
                best = b
        return best
