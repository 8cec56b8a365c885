"""nginx smooth weighted round robin over changing sets of peers, without a scan.

:func:`~lbsim.model.policies.smooth_wrr.smooth_wrr` visits every candidate:
each gains its ``effective_weight``, the largest ``current_weight`` wins
(the lowest index on equal values) and pays back the total. A peer whose
``effective_weight`` equals its ``weight`` (no failure is being recovered)
gains the same amount at every step of the set it is in, so its current
weight is ``key + offset``: ``key`` fixed while it stays, ``offset`` one
counter per weight in the set, advanced by that weight at each step. The
largest current weight of a weight class is the top of a heap on ``(-key,
index)``; a step compares the tops of the classes (usually one), and only
the winner's key changes. Peers still recovering (``effective_weight <
weight``, which moves at each step) are visited one by one, as in nginx.

:class:`WrrState` holds the current weights of a peer list (by
``Backend.index``); a peer is in at most one :class:`WrrSet` of it at a time,
and its current weight outside any set is kept as a plain number. Every
step gives the same winner, the same current weights and the same effective
weights as :func:`smooth_wrr` over the set's members in index order
(tests/test_node_scaling.py drives both through random sequences).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from lbsim.model.policies.base import Backend


class _Class:
    """The members of one set with one weight, none of them recovering."""

    __slots__ = ("count", "heap", "offset", "weight")

    def __init__(self, weight: int):
        self.weight = weight
        self.offset = 0
        self.count = 0
        #: (-key, index, version); an entry is stale when the version moved on
        self.heap: list[tuple[int, int, int]] = []


class WrrState:
    """Current weights of ``backends``: plain for peers outside a set or recovering,
    ``key + offset`` of its class for the others."""

    __slots__ = ("_class", "_key", "_set", "_version", "backends", "current")

    def __init__(self, backends: Sequence[Backend]):
        self.backends = list(backends)
        n = len(self.backends)
        self.current = [b.current_weight for b in self.backends]
        self._key = [0] * n
        self._version = [0] * n
        self._class: list[_Class | None] = [None] * n
        self._set: list[WrrSet | None] = [None] * n

    def set_of(self, b: Backend) -> WrrSet | None:
        return self._set[b.index]

    def current_weight(self, b: Backend) -> int:
        """``b``'s current weight, as nginx would hold it now."""
        c = self._class[b.index]
        return self._key[b.index] + c.offset if c is not None else self.current[b.index]

    def settled(self, b: Backend) -> bool:
        """Whether ``b`` sits in a weight class (not recovering) of its set."""
        return self._class[b.index] is not None


class WrrSet:
    """A set of peers stepped together by smooth WRR (see the module docstring)."""

    __slots__ = ("_classes", "_recovering", "_state", "_total", "size")

    def __init__(self, state: WrrState):
        self._state = state
        self._classes: dict[int, _Class] = {}
        self._recovering: set[int] = set()
        #: sum of the weights of the members in classes
        self._total = 0
        self.size = 0

    def add(self, b: Backend) -> None:
        st = self._state
        i = b.index
        assert st._set[i] is None
        st._set[i] = self
        self.size += 1
        if b.effective_weight == b.weight:
            self._settle(i, st.current[i], b.weight)
        else:
            self._recovering.add(i)

    def _settle(self, i: int, current: int, weight: int) -> None:
        st = self._state
        c = self._classes.get(weight)
        if c is None:
            c = self._classes[weight] = _Class(weight)
        key = current - c.offset
        st._key[i] = key
        v = st._version[i] + 1
        st._version[i] = v
        st._class[i] = c
        heapq.heappush(c.heap, (-key, i, v))
        c.count += 1
        self._total += weight

    def discard(self, b: Backend) -> None:
        st = self._state
        i = b.index
        assert st._set[i] is self
        st._set[i] = None
        self.size -= 1
        c = st._class[i]
        if c is None:
            self._recovering.remove(i)
            return
        st.current[i] = st._key[i] + c.offset
        st._class[i] = None
        st._version[i] += 1
        c.count -= 1
        self._total -= c.weight
        if not c.count:
            c.heap.clear()
        elif len(c.heap) > 2 * c.count + 16:
            ver = st._version
            c.heap = [e for e in c.heap if ver[e[1]] == e[2]]
            heapq.heapify(c.heap)

    def first(self) -> Backend:
        """The member of a one-member set."""
        assert self.size == 1
        if self._recovering:
            return self._state.backends[next(iter(self._recovering))]
        ver = self._state._version
        for c in self._classes.values():
            if c.count:
                heap = c.heap
                while ver[heap[0][1]] != heap[0][2]:
                    heapq.heappop(heap)
                return self._state.backends[heap[0][1]]
        raise AssertionError("empty set")

    def step(self) -> Backend | None:
        """One smooth-WRR step over the members; ``None`` for an empty set."""
        if not self.size:
            return None
        st = self._state
        ver = st._version
        total = self._total
        best_i = -1
        best_cw = 0
        best_c: _Class | None = None
        for c in self._classes.values():
            if not c.count:
                continue
            c.offset += c.weight
            heap = c.heap
            while ver[heap[0][1]] != heap[0][2]:
                heapq.heappop(heap)
            neg, i, _ = heap[0]
            cw = c.offset - neg
            if best_i < 0 or cw > best_cw or (cw == best_cw and i < best_i):
                best_i, best_cw, best_c = i, cw, c
        promote: list[int] = []
        if self._recovering:
            backends = st.backends
            current = st.current
            for i in self._recovering:
                b = backends[i]
                ew = b.effective_weight
                cw = current[i] + ew
                current[i] = cw
                total += ew
                if ew < b.weight:
                    b.effective_weight = ew = ew + 1
                if ew == b.weight:
                    promote.append(i)
                if best_i < 0 or cw > best_cw or (cw == best_cw and i < best_i):
                    best_i, best_cw, best_c = i, cw, None
        if best_c is None:
            st.current[best_i] = best_cw - total
        else:
            key = best_cw - total - best_c.offset
            st._key[best_i] = key
            heapq.heapreplace(best_c.heap, (-key, best_i, ver[best_i]))
        backends = st.backends
        for i in promote:
            self._recovering.remove(i)
            self._settle(i, st.current[i], backends[i].weight)
        return backends[best_i]
