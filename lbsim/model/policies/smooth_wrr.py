"""nginx smooth weighted round robin (``ngx_http_upstream_get_peer``).

Shared by every nginx policy: round robin itself, the tie-break of
least_conn, and the fallback of ip_hash, consistent hash and random after
20 unlucky tries. The state lives on the :class:`Backend` (``current_weight``,
``effective_weight``) exactly as on nginx's peer, so all users of one peer
list share it, as they do in nginx.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from lbsim.model.policies.base import Backend, Eligibility


def smooth_wrr(candidates: Iterable[Backend]) -> Backend | None:
    """One smooth-WRR step over ``candidates`` (already filtered, in peer order).

    Every candidate gains its ``effective_weight``; the largest
    ``current_weight`` wins (the first in order on equal values, because
    nginx replaces the best only on ``>``) and pays back the total.
    ``effective_weight`` climbs back by one per step towards ``weight``
    after failures lowered it.
    """
    best: Backend | None = None
    best_cw = 0
    total = 0
    for b in candidates:
        ew = b.effective_weight
        cw = b.current_weight + ew
        b.current_weight = cw
        total += ew
        if ew < b.weight:
            b.effective_weight = ew + 1
        if best is None or cw > best_cw:
            best = b
            best_cw = cw
    if best is not None:
        best.current_weight = best_cw - total
    return best


def smooth_wrr_available(backends: Sequence[Backend], available: Eligibility) -> Backend | None:
    """:func:`smooth_wrr` over the available ones of ``backends``.

    This is nginx's ``get_round_robin_peer``, the default policy's hot
    path, so the loop is repeated inline rather than fed a generator.
    """
    best: Backend | None = None
    best_cw = 0
    total = 0
    for b in backends:
        if not available(b):
            continue
        ew = b.effective_weight
        cw = b.current_weight + ew
        b.current_weight = cw
        total += ew
        if ew < b.weight:
            b.effective_weight = ew + 1
        if best is None or cw > best_cw:
            best = b
            best_cw = cw
    if best is not None:
        best.current_weight = best_cw - total
    return best


def smooth_wrr_weights(
    candidates: Iterable[Backend], weights: list[int], current: list[int]
) -> Backend | None:
    """Smooth WRR with weights held outside the backends (by ``Backend.index``).

    For weights that change at run time (HAProxy agent-check): ``weights``
    are the live weights, ``current`` the policy's own ``current_weight``
    state. No failure back-off here: the weights are set by the agent.
    """
    best: Backend | None = None
    best_cw = 0
    total = 0
    for b in candidates:
        i = b.index
        w = weights[i]
        cw = current[i] + w
        current[i] = cw
        total += w
        if best is None or cw > best_cw:
            best = b
            best_cw = cw
    if best is not None:
        current[best.index] = best_cw - total
    return best


def record_failure(backend: Backend, max_fails: int) -> None:
    """Lower ``effective_weight`` after a failed try, as nginx's free_peer does.

    Drops by ``weight // max_fails`` (integer division, as in C), not below
    0; with ``max_fails == 0`` (failure accounting off) nothing changes.
    Counting ``fails`` and timing ``fail_timeout`` is the balancer's job.
    """
    if max_fails > 0:
        backend.effective_weight = max(0, backend.effective_weight - backend.weight // max_fails)
