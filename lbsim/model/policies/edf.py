"""Envoy's earliest-deadline-first scheduler (``source/common/upstream/edf_scheduler.h``).

Envoy's weighted round robin and its least_request with unequal weights pick
hosts from this scheduler: every host waits in a priority queue keyed by a
deadline; the earliest is picked (ties: the one added first) and added back
with deadline ``picked deadline + 1 / weight``, its weight computed when it is
added back. So a host of weight w is picked w times per unit of "time".
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence

from lbsim.model.policies.base import Backend, Eligibility

Weight = Callable[[Backend], float]


class Edf:
    """EDF over ``backends`` with weights from ``weight(b)`` (> 0)."""

    __slots__ = ("_by_index", "_heap", "_now", "_order", "_weight")

    def __init__(self, backends: Sequence[Backend], weight: Weight):
        self._weight = weight
        self._by_index = {b.index: b for b in backends}
        self._heap: list[tuple[float, int, int]] = []
        self._now = 0.0
        self._order = 0
        for b in backends:
            self._add(b)

    def _add(self, b: Backend) -> None:
        w = self._weight(b)
        heapq.heappush(self._heap, (self._now + 1.0 / w, self._order, b.index))
        self._order += 1

    def pick(self, available: Eligibility) -> Backend | None:
        """``pickAndAdd``: the earliest-deadline available host, re-added with its weight now.

        An unavailable host popped on the way is re-added too (Envoy rebuilds
        its scheduler without the unhealthy hosts; here they step aside).
        """
        for _ in range(len(self._heap)):
            deadline, _, i = heapq.heappop(self._heap)
            self._now = deadline
            b = self._by_index[i]
            self._add(b)
            if available(b):
                return b
        return None
