"""Log-bucketed histogram with bounded relative error for quantiles.

Bucket ``i`` holds values in (γ^(i-1), γ^i] with γ = (1+α)/(1-α); reporting a
bucket by 2γ^i/(γ+1) is within relative error α of every value in it (the
DDSketch construction, Masson et al., VLDB 2019). Values are added in numpy
batches, so the per-value cost in the simulation is one list append.
"""

from __future__ import annotations

import math

import numpy as np

MIN_VALUE = 1e-7  # s; smaller values are counted in the lowest bucket
MAX_VALUE = 1e6


class LogHistogram:
    def __init__(self, relative_error: float = 0.005):
        if not 0 < relative_error < 1:
            raise ValueError("relative_error must be in (0, 1)")
        self.alpha = relative_error
        self.gamma = (1 + relative_error) / (1 - relative_error)
        self._log_gamma = math.log(self.gamma)
        self._offset = math.floor(math.log(MIN_VALUE) / self._log_gamma)
        top = math.ceil(math.log(MAX_VALUE) / self._log_gamma)
        self.counts = np.zeros(top - self._offset + 1, dtype=np.int64)
        self.zeros = 0  # values <= 0
        self.count = 0

    def add_many(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        self.count += int(values.size)
        positive = values[values > 0]
        self.zeros += int(values.size - positive.size)
        if positive.size:
            idx = np.ceil(np.log(positive) / self._log_gamma).astype(np.int64) - self._offset
            np.clip(idx, 0, self.counts.size - 1, out=idx)
            self.counts += np.bincount(idx, minlength=self.counts.size)

    def merge(self, other: LogHistogram) -> None:
        if other.gamma != self.gamma:
            raise ValueError("cannot merge histograms of different precision")
        self.counts += other.counts
        self.zeros += other.zeros
        self.count += other.count

    def quantile(self, q: float) -> float:
        """The q-quantile (0 <= q <= 1), within relative error ``alpha``; NaN if empty."""
        if self.count == 0:
            return math.nan
        rank = q * (self.count - 1)
        if rank < self.zeros:
            return 0.0
        cum = np.cumsum(self.counts)
        i = int(np.searchsorted(cum, rank - self.zeros, side="right"))
        i = min(i, self.counts.size - 1)
        return 2.0 * self.gamma ** (i + self._offset) / (self.gamma + 1.0)

    def cdf_points(self) -> tuple[np.ndarray, np.ndarray]:
        """(value, cumulative fraction) at every non-empty bucket, for plotting."""
        nz = np.nonzero(self.counts)[0]
        if self.count == 0:
            return np.array([]), np.array([])
        values = 2.0 * self.gamma ** (nz + self._offset) / (self.gamma + 1.0)
        frac = (np.cumsum(self.counts)[nz] + self.zeros) / self.count
        return values, frac
