"""InnoDB row locks of one server: exclusive locks on keys, FIFO waiters.

A transaction takes its keys in ascending order, so two ordinary
transactions never deadlock; it waits at most ``lock_wait_timeout``
(then error 1205). Galera appliers take locks with brute force: a local
transaction still executing that holds a key an applier needs is aborted
(error 1213, ``wsrep_local_bf_aborts``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

# transaction states that matter to locking
EXECUTING = 0  # local, running or waiting: brute-force abortable
ORDERED = 1  # certified local commit or applier: must be waited for
DONE = 2


class Holder:
    """Anything that holds row locks: a local transaction or an applier."""

    __slots__ = ("granted", "held", "keys", "next_key", "on_abort", "on_granted", "state")

    def __init__(self, keys: tuple[int, ...], state: int):
        self.keys = keys
        self.held: list[int] = []
        self.next_key = 0
        self.state = state
        self.on_granted: Callable[[Any], None] | None = None
        self.on_abort: Callable[[Any], None] | None = None
        self.granted = False


class RowLocks:
    def __init__(self) -> None:
        self.owner: dict[int, Holder] = {}
        self.waiters: dict[int, deque[Holder]] = {}
        self.waits = 0  # Innodb_row_lock_waits
        self.bf_aborts = 0

    def acquire(
        self,
        h: Holder,
        on_granted: Callable[[Holder], None],
        brute_force: bool = False,
        on_abort: Callable[[Holder], None] | None = None,
    ) -> None:
        """Take ``h.keys`` in order; call ``on_granted(h)`` once all are held."""
        h.on_granted = on_granted
        h.on_abort = on_abort
        h.next_key = 0
        self._continue(h, brute_force)

    def _continue(self, h: Holder, brute_force: bool) -> None:
        keys = h.keys
        owner = self.owner
        while h.next_key < len(keys):
            k = keys[h.next_key]
            cur = owner.get(k)
            if cur is None or cur is h:
                owner[k] = h
                h.held.append(k)
                h.next_key += 1
                continue
            if brute_force and cur.state == EXECUTING:
                self.bf_aborts += 1
                self._abort(cur)
                continue  # the key is free now
            q = self.waiters.get(k)
            if q is None:
                q = self.waiters[k] = deque()
            # appliers go ahead of local transactions waiting for the same row
            if brute_force:
                q.appendleft(h)
            else:
                q.append(h)
            self.waits += 1
            return
        h.granted = True
        cb = h.on_granted
        if cb is not None:
            cb(h)

    def _abort(self, victim: Holder) -> None:
        self.cancel(victim)
        if victim.on_abort is not None:
            victim.on_abort(victim)

    def cancel(self, h: Holder) -> None:
        """Give up: leave any wait queue and release what is held."""
        if not h.granted and h.next_key < len(h.keys):
            k = h.keys[h.next_key]
            q = self.waiters.get(k)
            if q is not None and h in q:
                q.remove(h)
                if not q:
                    del self.waiters[k]
        self.release(h)

    def release(self, h: Holder) -> None:
        held = h.held
        h.held = []
        h.state = DONE
        for k in held:
            if self.owner.get(k) is h:
                del self.owner[k]
                q = self.waiters.get(k)
                if q:
                    nxt = q.popleft()
                    if not q:
                        del self.waiters[k]
                    self._continue(nxt, nxt.state == ORDERED)
