"""Power of d choices: nginx ``random two least_conn`` and Envoy ``LEAST_REQUEST``."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from itertools import accumulate

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
from lbsim.model.policies.edf import Edf
from lbsim.model.policies.fenwick import Fenwick
from lbsim.model.policies.options import PowerOfDOptions
from lbsim.model.policies.random import MAX_TRIES, WeightedPeek
from lbsim.model.policies.roster import Roster
from lbsim.model.policies.smooth_wrr import smooth_wrr


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

    Behind a balancer (:meth:`attach`) the available peers are not listed:
    nginx needs only their number (the roster's count), HAProxy and Envoy
    find the drawn one in a :class:`Fenwick` tree of the available peers'
    amounts (1, or the weight) by index.
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
        self._roster: Roster | None = None
        self._tree: Fenwick | None = None

    def attach(self, roster: Roster) -> None:
        """Count the available peers (nginx) or keep them in a tree (HAProxy, Envoy)."""
        self._roster = roster
        if self.flavour != "nginx":
            self._tree = Fenwick(len(self.backends))
            for b in self.backends:
                self._changed(b, roster.member[b.index])
            roster.listen(self._changed)

    def _changed(self, b: Backend, member: bool) -> None:
        assert self._tree is not None
        self._tree.set(b.index, (1 if self._equal_weights else b.weight) if member else 0)

    def _ramping(self) -> bool:
        if self._roster is not None:
            return self._roster.ramping()
        return any(b.ramp < 1.0 for b in self.backends)

    @property
    def flavour(self) -> str:
        """The product whose rule applies: the option, else the balancer's product."""
        return self._flavour or self.product

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        flavour = self.flavour
        if flavour == "envoy" and (not self._equal_weights or self._ramping()):
            return self._edf.pick(available)  # slow start makes the weights unequal
        if self._roster is not None:
            return self._counted_choice(self._roster, flavour, available)
        avail = [b for b in self.backends if available(b)]
        if len(avail) <= 1:
            if not avail or flavour != "nginx":
                return avail[0] if avail else None
            # nginx ends in its round-robin fallback here; the step only
            # lets effective_weight recover.
            return smooth_wrr(avail)
        if flavour == "nginx":
            if self._peek.total <= 0:
                return smooth_wrr(avail)
            return self._nginx_pick(len(avail), available, lambda: avail)
        return self._sampled_pick(avail, later_wins=flavour == "haproxy")

    def _counted_choice(
        self, roster: Roster, flavour: str, available: Eligibility
    ) -> Backend | None:
        """:meth:`choose` without listing the available peers (but where nginx falls back)."""
        excluded = roster.excluded()
        n = roster.count - len(excluded)
        if n <= 1:
            avail = roster.available()
            if not avail or flavour != "nginx":
                return avail[0] if avail else None
            return smooth_wrr(avail)
        if flavour == "nginx":
            if self._peek.total <= 0:
                return smooth_wrr(roster.available())
            return self._nginx_pick(n, available, roster.available)
        tree = self._tree
        assert tree is not None
        for i in excluded:
            tree.set(i, 0)  # tried already (HAProxy): not drawn
        u = self._u.next
        backends = self.backends
        if self._equal_weights:
            picks = [backends[tree.find(int(u() * n))] for _ in range(self._d)]
        else:
            total = tree.total
            picks = [backends[tree.find(u() * total)] for _ in range(self._d)]
        for i in excluded:
            self._changed(backends[i], True)
        return self._least(picks, later_wins=flavour == "haproxy")

    def _nginx_pick(
        self, n: int, available: Eligibility, listed: Callable[[], list[Backend]]
    ) -> Backend | None:
        want = min(self._d, n)
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
                return smooth_wrr(listed())

    def _sampled_pick(self, avail: list[Backend], later_wins: bool) -> Backend:
        u = self._u.next
        if self._equal_weights:
            n = len(avail)
            picks = [avail[int(u() * n)] for _ in range(self._d)]
        else:
            ends = list(accumulate(b.weight for b in avail))
            total = ends[-1]
            picks = [avail[bisect_right(ends, u() * total)] for _ in range(self._d)]
        return self._least(picks, later_wins)

    @staticmethod
    def _least(picks: list[Backend], later_wins: bool) -> Backend:
        best = picks[0]
        for b in picks[1:]:
            lhs, rhs = b.conns * best.weight, best.conns * b.weight
            # Envoy keeps the first on a tie, HAProxy the later draw
            if lhs < rhs or (later_wins and lhs == rhs):
                best = b
        return best


register("power_of_d")(PowerOfD)
