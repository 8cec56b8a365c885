"""From log order to arrival order, in bounded memory.

A log is written in *completion* order: nginx writes a line when the request
ends, HAProxy too (with the date it was received). The arrival of a request is
its end minus its response time when the log knows that time, so arrivals come
slightly out of order. :class:`SecondSpreader` first spreads the requests of
one whole-second timestamp evenly inside that second (deterministically: the
j-th of k at ``second + (j + 0.5) / k``); :class:`ReorderBuffer` then holds the
arrivals in a heap and lets one go once it is older than the newest end seen
minus a window, so memory holds about ``rate x window`` requests, never the log.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: the default reorder window is at least this (s): the longest response time
#: is not known at the start of a log
MIN_DEFAULT_WINDOW = 2.0
#: the default reorder window never exceeds this (s): memory is rate x window
MAX_DEFAULT_WINDOW = 60.0
#: a one-second group larger than this is spread as it stands (memory bound)
MAX_GROUP = 200_000


class SecondSpreader(Generic[T]):
    """Spreads the items of one whole second evenly inside it, in log order.

    ``push(second, item)`` takes items whose timestamp has whole-second
    resolution; a group ends when the next item has another second. ``emit``
    receives ``(time, item)``.
    """

    def __init__(self, emit: Callable[[float, T], None]):
        self._emit = emit
        self._second = 0.0
        self._group: list[T] = []

    def push(self, second: float, item: T) -> None:
        if self._group and (second != self._second or len(self._group) >= MAX_GROUP):
            self.flush()
        self._second = second
        self._group.append(item)

    def flush(self) -> None:
        group, self._group = self._group, []
        k = len(group)
        for j, item in enumerate(group):
            self._emit(self._second + (j + 0.5) / k, item)


class ReorderBuffer(Generic[T]):
    """Arrivals in time order from requests logged in completion order.

    ``push(arrival, end, item)``; ``emit(arrival, item)`` is called in
    non-decreasing arrival order. An arrival is let go once it is older than
    the newest end seen minus the window: ``window`` seconds when given, else
    the largest response time seen so far plus ``resolution`` (the timestamps'
    own), at least :data:`MIN_DEFAULT_WINDOW` and at most :data:`MAX_DEFAULT_WINDOW`.
    An arrival earlier than one already let go (it came later than the window
    allowed) is clamped to that time and counted in ``late``.
    """

    def __init__(
        self,
        emit: Callable[[float, T], None],
        *,
        window: float | None = None,
        resolution: float = 0.0,
    ):
        self._emit = emit
        self._fixed = window
        self.resolution = resolution
        self._heap: list[tuple[float, int, T]] = []
        self._seq = 0
        self._newest_end = float("-inf")
        self._last = float("-inf")
        self.longest = 0.0
        self.late = 0
        self.most_held = 0

    @property
    def window(self) -> float:
        if self._fixed is not None:
            return self._fixed
        return min(max(self.longest + self.resolution, MIN_DEFAULT_WINDOW), MAX_DEFAULT_WINDOW)

    def push(self, arrival: float, end: float, item: T) -> None:
        if end - arrival > self.longest:
            self.longest = end - arrival
        if arrival < self._last:
            arrival = self._last
            self.late += 1
        heap = self._heap
        heapq.heappush(heap, (arrival, self._seq, item))
        self._seq += 1
        if len(heap) > self.most_held:
            self.most_held = len(heap)
        if end > self._newest_end:
            self._newest_end = end
        horizon = self._newest_end - self.window
        while heap and heap[0][0] < horizon:
            t, _, it = heapq.heappop(heap)
            self._last = t
            self._emit(t, it)

    def flush(self) -> None:
        heap = self._heap
        while heap:
            t, _, it = heapq.heappop(heap)
            self._last = t
            self._emit(t, it)
