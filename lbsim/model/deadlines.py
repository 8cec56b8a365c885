"""Many timeouts of one fixed length, with one pending event instead of one per request.

Because every entry has the same timeout, deadlines expire in the order the
entries were added: a FIFO. Only the oldest entry that is still pending needs
a wake-up; entries that finished in time are dropped lazily when reached. When
answers come well before the timeout there is about one event per timeout
length, not one per request.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

from lbsim.model.engine import later


class Deadlines:
    def __init__(
        self,
        env: simpy.Environment,
        timeout: float,
        pending: Callable[[Any, int], bool],
        expire: Callable[[Any, int], None],
    ):
        self.env = env
        self.timeout = timeout
        self._pending = pending
        self._expire = expire
        self._fifo: deque[tuple[float, Any, int]] = deque()
        self._armed = False

    def add(self, item: Any, token: int) -> None:
        self._fifo.append((self.env._now + self.timeout, item, token))
        if not self._armed:
            self._arm()

    def __len__(self) -> int:
        return len(self._fifo)

    def _arm(self) -> None:
        fifo = self._fifo
        pending = self._pending
        while fifo and not pending(fifo[0][1], fifo[0][2]):
            fifo.popleft()
        if fifo:
            self._armed = True
            later(self.env, max(fifo[0][0] - self.env._now, 0.0), self._fire)
        else:
            self._armed = False

    def _fire(self, _: Any) -> None:
        now = self.env._now
        fifo = self._fifo
        while fifo and fifo[0][0] <= now + 1e-9:  # tolerate rounding of now + delay
            _, item, token = fifo.popleft()
            if self._pending(item, token):
                self._expire(item, token)
        self._arm()
