"""When a write-set applied on a Galera node becomes visible to reads there.

A node's applier commits a write-set in seqno order (``GaleraNode.advance``);
with ``database.visibility_lag`` its rows become visible to reads on that
node only that long afterwards: the receiving node's own commit path (commit
order, InnoDB's commit, thread wake-ups on a busy host) as a pure delay — it
holds neither the applier nor a core. Commits are visible in seqno order: a
write-set is visible once its lag has passed *and* every earlier one is
visible, so the node's visible seqno is a watermark below ``last_committed``
(the node's own commits and certification failures add no lag but wait
behind a hidden predecessor, as InnoDB's commit order would have them).

Reads in the window are stale; causal reads (``sync_wait``) wait for the
watermark, so they never are. Without ``visibility_lag`` none of this runs
and the node's visible seqno is ``last_committed``.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

from lbsim.model.engine import later


class Visibility:
    """The visible-seqno watermark of one node."""

    __slots__ = ("_env", "_hidden", "_seq", "_waiting", "committed")

    def __init__(self, env: simpy.Environment, committed: Callable[[], int]):
        self._env = env
        #: the node's last committed seqno (visible once nothing before it is hidden)
        self.committed = committed
        #: [seqno, revealed] of applied write-sets whose lag has not passed, in seqno order
        self._hidden: deque[list[Any]] = deque()
        self._waiting: list[tuple[int, int, Callable[[Any], None], Any]] = []
        self._seq = 0

    def seqno(self) -> int:
        """Everything up to this seqno is visible to reads on the node."""
        hidden = self._hidden
        return int(hidden[0][0]) - 1 if hidden else self.committed()

    def hide(self, seqno: int, lag: float) -> None:
        """``seqno`` is about to be committed; its rows show ``lag`` seconds later.

        Call it before the commit advances ``last_committed`` (so nothing
        woken by that commit sees the rows early)."""
        if lag <= 0:
            return
        entry = [seqno, False]
        self._hidden.append(entry)
        later(self._env, lag, self._reveal, entry)

    def _reveal(self, entry: list[Any]) -> None:
        entry[1] = True
        hidden = self._hidden
        while hidden and hidden[0][1]:
            hidden.popleft()
        waiting = self._waiting
        if waiting:
            visible = self.seqno()
            while waiting and waiting[0][0] <= visible:
                _, _, fn, arg = heapq.heappop(waiting)
                fn(arg)

    def when_visible(self, target: int, fn: Callable[[Any], None], arg: Any) -> None:
        """Call ``fn(arg)`` once everything up to ``target`` is visible (the caller
        has made sure it is committed: the watermark only waits for lags)."""
        if self.seqno() >= target:
            fn(arg)
        else:
            self._seq += 1
            heapq.heappush(self._waiting, (target, self._seq, fn, arg))
