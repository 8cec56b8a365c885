"""Time-weighted averages of piecewise-constant quantities (busy workers, queue length)."""

from __future__ import annotations


class TimeWeighted:
    """Integral of a piecewise-constant value over simulated time.

    ``set`` is called whenever the value changes; memory is constant. The
    integral is kept from time 0 so that interval series can difference it;
    ``reset`` marks where the measured window starts (end of warm-up).
    """

    __slots__ = ("_area", "_mark_area", "_mark_t", "_t", "value")

    def __init__(self, value: float = 0.0, now: float = 0.0):
        #: a count (busy workers, queue length) stays an int, as it was set
        self.value: int | float = value
        self._t = now
        self._area = 0.0
        self._mark_t = now
        self._mark_area = 0.0

    def set(self, now: float, value: int | float) -> None:
        self._area += self.value * (now - self._t)
        self._t = now
        self.value = value

    def add(self, now: float, delta: float) -> None:
        self.set(now, self.value + delta)

    def integral(self, now: float) -> float:
        """∫ value dt from 0 to ``now``."""
        return self._area + self.value * (now - self._t)

    def reset(self, now: float) -> None:
        self._mark_area = self.integral(now)
        self._mark_t = now

    def mean(self, now: float) -> float:
        """Time average since the last ``reset``."""
        span = now - self._mark_t
        if span <= 0:
            return self.value
        return (self.integral(now) - self._mark_area) / span
