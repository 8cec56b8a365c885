"""nginx default balancing: smooth weighted round robin."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.edf import Edf
from lbsim.model.policies.roster import Roster
from lbsim.model.policies.smooth_wrr import smooth_wrr_available
from lbsim.model.policies.wrr_sets import WrrSet, WrrState


class RoundRobin(Policy):
    """nginx round robin: smooth WRR over the available backends.

    With equal weights this is plain rotation; with weights 5, 1, 1 it
    yields a a b a c a a (period = sum of weights). ``None`` when no
    backend is available. Under Envoy, equal weights rotate the same way;
    unequal weights use Envoy's EDF scheduler (weights 5, 1, 1 give
    a a a a b c a: same counts per period, another order).

    Behind a balancer (:meth:`attach`) the smooth-WRR step runs on a
    :class:`WrrSet` of the roster's members: the same picks and weights
    without visiting every peer.
    """

    products = frozenset({"nginx", "envoy"})

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        self._weighted = len({b.weight for b in self.backends}) > 1
        self._edf: Edf | None = None
        self._roster: Roster | None = None
        self._wrr: WrrState | None = None
        self._set: WrrSet | None = None

    def attach(self, roster: Roster) -> None:
        """Keep the available peers in a :class:`WrrSet` as the roster changes."""
        self._roster = roster
        self._wrr = WrrState(self.backends)
        self._set = WrrSet(self._wrr)
        for b in self.backends:
            self._changed(b, roster.member[b.index])
        roster.listen(self._changed)

    def _changed(self, b: Backend, member: bool) -> None:
        wrr, peers = self._wrr, self._set
        assert wrr is not None and peers is not None
        inside = wrr.set_of(b) is not None
        # out, or a failure lowered its effective weight (it recovers step by step)
        if inside and (not member or (wrr.settled(b) and b.effective_weight != b.weight)):
            peers.discard(b)
            inside = False
        if member and not inside:
            peers.add(b)

    def _ramping(self) -> bool:
        if self._roster is not None:
            return self._roster.ramping()
        return any(b.ramp < 1.0 for b in self.backends)

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        if self.product == "envoy" and (self._weighted or self._edf is not None or self._ramping()):
            # Envoy's ROUND_ROBIN with unequal weights (slow start included):
            # EDF on the weights; once started it stays on EDF
            if self._edf is None:
                self._edf = Edf(self.backends, lambda b: b.weight * b.ramp)
            return self._edf.pick(available)
        if self._set is None:
            return smooth_wrr_available(self.backends, available)
        assert self._roster is not None
        excluded = self._roster.excluded()
        backends = self.backends
        for i in excluded:
            self._set.discard(backends[i])  # tried already: takes no part in this step
        chosen = self._set.step()
        for i in excluded:
            self._set.add(backends[i])
        return chosen


register("round_robin")(RoundRobin)
