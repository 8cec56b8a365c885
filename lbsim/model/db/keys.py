"""Which rows a query touches: hot rows (Zipf-skewed) or a large key space."""

from __future__ import annotations

import bisect
import itertools
from array import array

import numpy as np


class KeyPicker:
    def __init__(self, key_space: int, skew: float, rng: np.random.Generator):
        self.key_space = key_space
        self.skew = skew
        self._rng = rng
        self._buf: list[float] = []
        self._i = 0
        self._cdfs: dict[int, array[float]] = {}

    def _u(self) -> float:
        if self._i >= len(self._buf):
            self._buf = self._rng.random(4096).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v

    def _hot(self, hot: int) -> int:
        if self.skew == 0:
            return min(int(self._u() * hot), hot - 1)
        cdf = self._cdfs.get(hot)
        if cdf is None:
            # an array of doubles (8 bytes a row, not a list of float objects): 10⁷ hot
            # rows cost 80 MB; the same sums in the same order as before, so the same draws
            skew = self.skew
            total = sum(1.0 / (k**skew) for k in range(1, hot + 1))
            weights = (1.0 / (k**skew) for k in range(1, hot + 1))
            cdf = array("d", (c / total for c in itertools.accumulate(weights)))
            self._cdfs[hot] = cdf
        return min(bisect.bisect_left(cdf, self._u()), hot - 1)

    def pick(self, n: int, hot: int) -> tuple[int, ...]:
        """``n`` distinct row keys (sorted: locks are taken in key order)."""
        if n == 1:  # the common case: no set needed
            if hot > 0:
                return (self._hot(hot),)
            space = self.key_space
            return (min(int(self._u() * space), space - 1),)
        space = hot if hot > 0 else self.key_space
        n = min(n, space)
        keys: set[int] = set()
        while len(keys) < n:
            keys.add(self._hot(hot) if hot > 0 else min(int(self._u() * space), space - 1))
        return tuple(sorted(keys))
