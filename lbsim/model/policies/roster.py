"""Which backends may take a request: the balancer's availability test, kept up to date.

The balancer's test (``Balancer._make_available``) has a request-independent
part — the server is up, not taken out by passive checks (``failed_until``),
and, where the product skips a full server, below ``max_conns``; Envoy in
panic takes every host — and one part per request: the peers it already
tried (nginx and HAProxy). A :class:`Roster` keeps the first part per
backend as a *member* flag, updated whenever the balancer changes a
backend's state (:meth:`Roster.sync`) and when a ``failed_until`` passes
(:meth:`Roster.advance`, before every choice); the second is the request's
bitmask in :attr:`Roster.tried`. Policies subscribe with :meth:`Roster.listen`
and keep their own structures (counts, heaps, trees) in step, so a choice
does not test every peer. Without a roster (the database proxy's router)
policies scan, as before.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence

from lbsim.model.policies.base import Backend

Listener = Callable[[Backend, bool], None]


def _never() -> bool:
    return False


def bits(mask: int) -> Iterator[int]:
    """The indices of the set bits of ``mask``, lowest first."""
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


class Roster:
    """Member flags of ``backends`` (by ``Backend.index``) and their listeners.

    ``envoy``: membership is ``panic or healthy`` (Envoy's balancer ignores
    connection limits and tried hosts); otherwise ``healthy and not (skip_full
    and full)``. *Healthy* is ``up and failed_until <= now``.
    """

    __slots__ = (
        "_expiry",
        "_expiry_at",
        "_healthy",
        "_listeners",
        "backends",
        "count",
        "envoy",
        "healthy",
        "member",
        "members",
        "panic",
        "ramping",
        "skip_full",
        "tried",
    )

    def __init__(
        self, backends: Sequence[Backend], *, envoy: bool, skip_full: bool, now: float = 0.0
    ):
        self.backends = list(backends)
        self.envoy = envoy
        self.skip_full = skip_full
        n = len(self.backends)
        self.member = [False] * n
        #: the member indices (unordered)
        self.members: set[int] = set()
        self.count = 0
        self._healthy = [False] * n
        #: how many backends are up and not taken out (Envoy's panic test)
        self.healthy = 0
        self.panic = False
        #: the request being placed: bitmask of the backends it already tried
        self.tried = 0
        #: whether slow start is ramping any server (set by the balancer)
        self.ramping: Callable[[], bool] = _never
        self._expiry: list[tuple[float, int]] = []
        self._expiry_at = [-1.0] * n
        self._listeners: list[Listener] = []
        for b in self.backends:
            self.sync(b, now)

    def listen(self, listener: Listener) -> None:
        """Call ``listener(b, member)`` at every :meth:`sync` of ``b``."""
        self._listeners.append(listener)

    def sync(self, b: Backend, now: float) -> None:
        """``b``'s state may have changed: recompute its flags and tell the listeners."""
        i = b.index
        fu = b.failed_until
        healthy = b.up and fu <= now
        if fu > now and self._expiry_at[i] != fu:
            self._expiry_at[i] = fu
            heapq.heappush(self._expiry, (fu, i))
        if healthy != self._healthy[i]:
            self._healthy[i] = healthy
            self.healthy += 1 if healthy else -1
        if self.envoy:
            member = self.panic or healthy
        else:
            member = healthy and not (self.skip_full and b.max_conns and b.conns >= b.max_conns)
        if member != self.member[i]:
            self.member[i] = member
            if member:
                self.members.add(i)
                self.count += 1
            else:
                self.members.discard(i)
                self.count -= 1
        for listener in self._listeners:
            listener(b, member)

    def advance(self, now: float) -> None:
        """Bring back the backends whose ``failed_until`` is now past."""
        expiry = self._expiry
        while expiry and expiry[0][0] <= now:
            fu, i = heapq.heappop(expiry)
            if self._expiry_at[i] == fu:
                self._expiry_at[i] = -1.0
            self.sync(self.backends[i], now)

    def set_panic(self, panic: bool, now: float) -> None:
        """Envoy's panic mode began or ended: every host's membership may change."""
        if panic != self.panic:
            self.panic = panic
            for b in self.backends:
                self.sync(b, now)

    def excluded(self) -> list[int]:
        """The members this request may not take (already tried), in index order."""
        if not self.tried:
            return []
        member = self.member
        n = len(member)
        return [i for i in bits(self.tried) if i < n and member[i]]

    def available(self) -> list[Backend]:
        """The backends this request may take, in index order (a scan of the members)."""
        tried = self.tried
        backends = self.backends
        return [backends[i] for i in sorted(self.members) if not (tried >> i) & 1]
