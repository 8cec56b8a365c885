"""Streaming summary of a stream of latencies: count, mean, variance, max, quantiles."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from lbsim.stats.histogram import LogHistogram

FLUSH_EVERY = 8192


class LatencySummary:
    """Buffers values and folds them in batches into a histogram and
    running moments (Chan et al.'s parallel form of Welford's update), so
    memory is bounded whatever the number of values."""

    __slots__ = ("_buf", "count", "hist", "m2", "max", "mean")

    def __init__(self, relative_error: float = 0.005):
        self._buf: list[float] = []
        self.hist = LogHistogram(relative_error)
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.max = -math.inf

    def add(self, value: float) -> None:
        buf = self._buf
        buf.append(value)
        if len(buf) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        arr = np.asarray(self._buf, dtype=float)
        self._buf.clear()
        n_b = arr.size
        mean_b = float(arr.mean())
        m2_b = float(((arr - mean_b) ** 2).sum())
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * n_a * n_b / n
        self.count = n
        self.max = max(self.max, float(arr.max()))
        self.hist.add_many(arr)

    def reset(self) -> None:
        """Forget everything (end of warm-up)."""
        self._buf.clear()
        self.hist = LogHistogram(self.hist.alpha)
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0
        self.max = -math.inf

    @property
    def std(self) -> float:
        self.flush()
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else math.nan

    def quantile(self, q: float) -> float:
        self.flush()
        return self.hist.quantile(q)

    def summary(self) -> dict[str, Any]:
        self.flush()
        if self.count == 0:
            nan = math.nan
            return {"mean": nan, "p50": nan, "p95": nan, "p99": nan, "max": nan}
        return {
            "mean": self.mean,
            "p50": self.hist.quantile(0.50),
            "p95": self.hist.quantile(0.95),
            "p99": self.hist.quantile(0.99),
            "max": self.max,
        }
