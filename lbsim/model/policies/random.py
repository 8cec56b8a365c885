"""nginx ``random``: a peer drawn with probability proportional to its weight."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
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
from lbsim.model.policies.smooth_wrr import smooth_wrr_available

#: nginx gives up drawing after this many rejected draws per request and
#: falls back to round robin (``rp->tries > 20``).
MAX_TRIES = 20


class WeightedPeek:
    """nginx ``ngx_http_upstream_peek_random_peer``: one weighted draw over ALL peers.

    ``x = random % total_weight`` located in the cumulative weight ranges by
    binary search; availability is checked by the caller, who redraws.
    """

    __slots__ = ("_backends", "_ends", "_u", "total")

    def __init__(self, backends: Sequence[Backend], uniforms: Uniforms):
        self._backends = list(backends)
        self._ends = list(accumulate(b.weight for b in backends))
        #: sum of all weights; 0 means nothing can be drawn
        self.total = self._ends[-1] if self._ends else 0
        self._u = uniforms

    def draw(self) -> Backend:
        x = int(self._u.next() * self.total)
        return self._backends[bisect_right(self._ends, x)]


class Random(Policy):
    """nginx ``random``: weighted draws, redrawn while the peer is unavailable.

    Draws over all backends with probability ∝ ``weight`` and rejects the
    unavailable, so the result is ∝ weight among the available ones; after
    20 rejections (or with fewer than two backends) it falls back to smooth
    WRR, as nginx does.
    """

    products = frozenset({"nginx", "haproxy", "envoy"})

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        self._peek = WeightedPeek(self.backends, Uniforms(rng))

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        if len(self.backends) >= 2 and self._peek.total > 0:
            draw = self._peek.draw
            for _ in range(MAX_TRIES + 1):
                b = draw()
                if available(b):
                    return b
        return smooth_wrr_available(self.backends, available)


register("random")(Random)
