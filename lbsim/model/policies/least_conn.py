"""nginx ``least_conn`` (``ngx_http_upstream_get_least_conn_peer``)."""

from __future__ import annotations

import heapq
from fractions import Fraction

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.roster import Roster
from lbsim.model.policies.smooth_wrr import smooth_wrr
from lbsim.model.policies.wrr_sets import WrrSet, WrrState

#: a peer's ``conns / weight``: an int when all weights are equal, else exact
Ratio = int | Fraction


class LeastConn(Policy):
    """Fewest ``conns / weight``; smooth WRR among the tied.

    ``conns`` is requests in flight from this balancer. Ratios are compared
    by cross-multiplication (``b.conns * best.weight < best.conns *
    b.weight``) on the configured weights, as nginx does, so no rounding.
    When several peers tie, only the tied ones take part in the smooth-WRR
    step (only their ``current_weight`` moves); when one peer is strictly
    best, no WRR state changes at all.

    Behind a balancer (:meth:`attach`) the available peers are grouped by
    their ratio (an exact :class:`~fractions.Fraction`, or ``conns`` itself
    when all weights are equal), each group a :class:`WrrSet`, the ratios in
    a heap: the choice takes the lowest group, its one member or one WRR
    step over it, without visiting every peer.
    """

    products = frozenset({"nginx"})

    _roster: Roster | None = None

    def attach(self, roster: Roster) -> None:
        """Group the roster's members by ratio, and keep them grouped as it changes."""
        self._roster = roster
        self._equal = len({b.weight for b in self.backends}) <= 1
        self._wrr = WrrState(self.backends)
        self._groups: dict[Ratio, WrrSet] = {}
        #: ratios of groups that may be non-empty (a lazy heap: empty ones are skipped)
        self._ratios: list[Ratio] = []
        self._listed: set[Ratio] = set()
        self._ratio_of: list[Ratio | None] = [None] * len(self.backends)
        for b in self.backends:
            self._changed(b, roster.member[b.index])
        roster.listen(self._changed)

    def _ratio(self, b: Backend) -> Ratio:
        return b.conns if self._equal else Fraction(b.conns, b.weight)

    def _changed(self, b: Backend, member: bool) -> None:
        i = b.index
        old = self._ratio_of[i]
        new = self._ratio(b) if member else None
        if old is not None:
            if old == new and not (self._wrr.settled(b) and b.effective_weight != b.weight):
                return
            self._groups[old].discard(b)
        self._ratio_of[i] = new
        if new is not None:
            self._join(b, new)

    def _join(self, b: Backend, ratio: Ratio) -> None:
        group = self._groups.get(ratio)
        if group is None:
            group = self._groups[ratio] = WrrSet(self._wrr)
        group.add(b)
        if ratio not in self._listed:
            self._listed.add(ratio)
            heapq.heappush(self._ratios, ratio)

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        if self._roster is not None:
            return self._grouped_choice(self._roster)
        avail = [b for b in self.backends if available(b)]
        if not avail:
            return None
        best = avail[0]
        bc, bw = best.conns, best.weight
        pos = 0
        many = False
        for i in range(1, len(avail)):
            b = avail[i]
            lhs, rhs = b.conns * bw, bc * b.weight
            if lhs < rhs:
                best, bc, bw, pos, many = b, b.conns, b.weight, i, False
            elif lhs == rhs:
                many = True
        if not many:
            return best
        # nginx's second pass starts at the first tied peer and visits only
        # peers with the same ratio.
        return smooth_wrr(b for b in avail[pos:] if b.conns * bw == bc * b.weight)

    def _grouped_choice(self, roster: Roster) -> Backend | None:
        backends = self.backends
        excluded = roster.excluded()
        ratio_of = self._ratio_of
        for i in excluded:  # tried already: out of its group for this choice
            self._groups[ratio_of[i]].discard(backends[i])  # type: ignore[index]
        groups = self._groups
        ratios = self._ratios
        chosen: Backend | None = None
        # the lowest ratio whose group has a member; the emptied ones leave the heap
        while ratios:
            group = groups[ratios[0]]
            if group.size:
                chosen = group.first() if group.size == 1 else group.step()
                break
            self._listed.discard(heapq.heappop(ratios))
        for i in excluded:
            ratio = ratio_of[i]
            assert ratio is not None
            self._join(backends[i], ratio)
        return chosen


register("least_conn")(LeastConn)
