"""nginx ``least_conn`` (``ngx_http_upstream_get_least_conn_peer``)."""

from __future__ import annotations

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.smooth_wrr import smooth_wrr


@register("least_conn")
class LeastConn(Policy):
    """Fewest ``conns / weight``; smooth WRR among the tied.

    ``conns`` is requests in flight from this balancer. Ratios are compared
    by cross-multiplication (``b.conns * best.weight < best.conns *
    b.weight``) on the configured weights, as nginx does, so no rounding.
    When several peers tie, only the tied ones take part in the smooth-WRR
    step (only their ``current_weight`` moves); when one peer is strictly
    best, no WRR state changes at all.
    """

    products = frozenset({"nginx"})

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
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
