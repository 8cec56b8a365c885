"""HAProxy ``balance leastconn`` (``src/lb_fwlc.c``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register

# include/haproxy/server-t.h and backend-t.h (HAProxy >= 1.5)
SRV_UWGHT_RANGE = 256
SRV_UWGHT_MAX = SRV_UWGHT_RANGE
BE_WEIGHT_SCALE = 16
SRV_EWGHT_RANGE = SRV_UWGHT_RANGE * BE_WEIGHT_SCALE
SRV_EWGHT_MAX = SRV_UWGHT_MAX * BE_WEIGHT_SCALE


def fwlc_key(inflight: int, eweight: int, ewght_max: int = SRV_EWGHT_MAX) -> int:
    """``fwlc_queue_srv``'s tree key: ``(inflight + 1) * SRV_EWGHT_MAX / eweight``.

    ``inflight`` = served + queued (requests); ``eweight`` = user weight ×
    ``BE_WEIGHT_SCALE`` (fwlc sets ``wdiv = 16``, ``wmult = 1``). Integer
    division as in C, so close ratios tie. A server with nothing in flight
    gets key 0 whatever its weight: HAProxy puts idle servers first "so that
    under low loads it's not always the single server with the highest
    weight that gets picked".
    """
    return (inflight + 1) * ewght_max // eweight if inflight else 0


class FwlcTree:
    """Which server HAProxy's leastconn tree yields: smallest key, then queue order.

    Servers sit in an eb32 tree keyed by :func:`fwlc_key`; equal keys come
    out in insertion order, and a server is re-inserted (so goes last among
    its equals) whenever it takes a connection (``server_take_conn``) or
    releases one (``server_drop_conn``). Tracking an insertion stamp per
    server reproduces that order: among equal keys the oldest stamp wins,
    which is round robin among servers that stay tied. Initial insertion
    is in server order.
    """

    __slots__ = ("_clock", "_stamp")

    def __init__(self, backends: Sequence[Backend]):
        n = max((b.index for b in backends), default=-1) + 1
        self._stamp = list(range(n))
        self._clock = n

    def requeue(self, backend: Backend) -> None:
        """The server was repositioned in the tree (took or dropped a connection)."""
        self._stamp[backend.index] = self._clock
        self._clock += 1

    def choose(
        self,
        backends: Sequence[Backend],
        available: Eligibility,
        eweights: Sequence[int],
        ewght_max: int = SRV_EWGHT_MAX,
    ) -> Backend | None:
        """Pick by (key, stamp) among available servers with ``eweight > 0``.

        ``eweights`` is indexed by ``Backend.index``; a zero weight takes the
        server out of the tree, as in HAProxy. The pick is requeued.
        """
        stamp = self._stamp
        best: Backend | None = None
        best_key = 0
        best_stamp = 0
        for b in backends:
            ew = eweights[b.index]
            if ew <= 0 or not available(b):
                continue
            inflight = b.conns + b.queued
            key = (inflight + 1) * ewght_max // ew if inflight else 0
            s = stamp[b.index]
            if best is None or key < best_key or (key == best_key and s < best_stamp):
                best, best_key, best_stamp = b, key, s
        if best is not None:
            self.requeue(best)
        return best


def ramped(backends: Sequence[Backend], eweights: list[int]) -> list[int]:
    """``eweights`` scaled by slow start (HAProxy: ``eweight = uweight × w``, w in
    sixteenths, at least 1 while the server has a weight); the list itself when
    no server ramps."""
    if all(b.ramp >= 1.0 for b in backends):
        return eweights
    out = list(eweights)
    for b in backends:
        if b.ramp < 1.0 and out[b.index] > 0:
            out[b.index] = max(1, int(out[b.index] * b.ramp))
    return out


class LeastConnHaproxy(Policy):
    """HAProxy leastconn: smallest ``(served + queued + 1) * 4096 // (16 * weight)``.

    Queued requests count (``queued`` = the server's own queue in the
    balancer). Idle servers have key 0. Ties go round robin in tree order
    (:class:`FwlcTree`); responses (``on_response``) requeue the server as
    HAProxy's ``server_drop_conn`` does.
    """

    products = frozenset({"haproxy"})

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        self._tree = FwlcTree(self.backends)
        n = max((b.index for b in self.backends), default=-1) + 1
        self._eweights = [0] * n
        for b in self.backends:
            self._eweights[b.index] = b.weight * BE_WEIGHT_SCALE

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        return self._tree.choose(self.backends, available, ramped(self.backends, self._eweights))

    def on_response(self, backend: Backend, rtt: float, now: float) -> None:
        self._tree.requeue(backend)

    def on_failure(self, backend: Backend, rtt: float, now: float) -> None:
        self._tree.requeue(backend)  # the connection dropped all the same


register("leastconn_haproxy")(LeastConnHaproxy)
