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

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        avail = [b for b in self.backends if available(b)]
        best: Backend | None = None
        pos = 0
        many = False
        for i, b in enumerate(avail):
            if best is None or b.conns * best.weight < best.conns * b.weight:
                best, pos, many = b, i, False
            elif b.conns * best.weight == best.conns * b.weight:
                many = True
        if best is None or not many:
            return best
        # nginx's second pass starts at the first tied peer and visits only
        # peers with the same ratio.
        bc, bw = best.conns, best.weight
        return smooth_wrr(b for b in avail[pos:] if b.conns * bw == bc * b.weight)
