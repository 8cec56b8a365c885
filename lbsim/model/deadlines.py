"""Many timeouts of one fixed length, with one pending event instead of one per request.

Because every entry has the same timeout, deadlines expire in the order the
entries were added: a FIFO. Only the oldest entry that is still pending needs
a wake-up; entries that finished in time are dropped lazily when reached. When
answers come well before the timeout there is about one event per timeout
length, not one per request.

Memory: an entry whose item finished stays in the FIFO until the wake-up
reaches it, so a busy site would hold rate × timeout entries (and their
requests): 600,000 at 10,000 requests/s with a 60 s timeout. Whenever the FIFO
has doubled since the last look, finished entries are dropped from all of
it, not only its head (an entry that is no longer pending never becomes
pending again), so it holds about the requests in flight even while one old
request stays pending: with a head-only drop, one slow request kept every
request after it alive (33,000 of them on a 1,000-node site, which made each
request slower through the memory it touched). Which entries expire, and when the
wake-ups fire, do not change.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

from lbsim.model.engine import later

COMPACT_MIN = 64  # entries before the first look at the head


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
        self._compact_at = COMPACT_MIN

    def add(self, item: Any, token: int) -> None:
        fifo = self._fifo
        fifo.append((self.env._now + self.timeout, item, token))
        if not self._armed:
            self._arm()
        elif len(fifo) > self._compact_at:
            self._compact()

    def _compact(self) -> None:
        fifo = self._fifo
        pending = self._pending
        # in place: a _fire in progress (an expiry that retries) holds this deque
        keep = [e for e in fifo if pending(e[1], e[2])]
        fifo.clear()
        fifo.extend(keep)
        self._compact_at = max(COMPACT_MIN, 2 * len(fifo))

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
