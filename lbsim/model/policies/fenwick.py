"""A Fenwick (binary indexed) tree of integer amounts by backend index.

Power of d under HAProxy and Envoy draws ``avail[int(u * n)]`` (equal
weights) or the first ``avail`` peer whose cumulative weight exceeds ``u *
total`` (``bisect_right``); with the amounts 1 (or ``weight``) for the
available peers and 0 for the others, :meth:`Fenwick.find` returns that peer
in O(log n) instead of building ``avail``.
"""

from __future__ import annotations


class Fenwick:
    __slots__ = ("_amount", "_top", "_tree", "n", "total")

    def __init__(self, n: int):
        self.n = n
        self._tree = [0] * (n + 1)
        self._amount = [0] * n
        self.total = 0
        top = 1
        while top * 2 <= n:
            top *= 2
        self._top = top

    def amount(self, i: int) -> int:
        return self._amount[i]

    def set(self, i: int, amount: int) -> None:
        """Set index ``i``'s amount."""
        delta = amount - self._amount[i]
        if not delta:
            return
        self._amount[i] = amount
        self.total += delta
        tree = self._tree
        n = self.n
        j = i + 1
        while j <= n:
            tree[j] += delta
            j += j & -j

    def find(self, x: float) -> int:
        """The smallest index whose cumulative amount (itself included) exceeds ``x``.

        ``x`` must be in ``[0, total)``. Sums are exact integers compared with
        ``x`` as ``bisect_right`` on the cumulative list would compare them.
        """
        tree = self._tree
        n = self.n
        pos = 0
        acc = 0
        step = self._top
        while step:
            nxt = pos + step
            if nxt <= n and acc + tree[nxt] <= x:
                pos = nxt
                acc += tree[nxt]
            step >>= 1
        return pos
