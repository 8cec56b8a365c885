"""HAProxy map-based balancing (``src/lb_map.c``): ``static-rr`` and map hashing.

Both read one table, the server map: ``tot_weight`` slots (sum of the
effective weights of the running servers) filled by ``recalc_server_map``.
``static-rr`` walks it in order; ``balance source|uri|hdr`` without
``hash-type consistent`` takes slot ``hash % tot_weight``. The map is
rebuilt whenever a server goes down or comes back, so a hash moves to
another server as soon as the set of running servers changes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.fwrr import c_div, haproxy_saturated
from lbsim.model.policies.options import HashHaproxyOptions

_U32 = 0xFFFFFFFF


def _gcd_weights(weights: Sequence[int]) -> int:
    """``init_server_map``'s ``wmult``: GCD of the user weights, zeros skipped."""
    g = 0
    for w in weights:
        a, b = g, w
        while b:
            a, b = b, a % b
        g = a
    return g or 1


def server_map(eweights: Sequence[int], running: Sequence[bool]) -> list[int]:
    """``recalc_server_map``: the slot table of server numbers.

    For each slot every running server gains its weight in ``wscore``; the
    first (in declaration order) with the largest ``(wscore + tot) / tot``
    takes the slot and pays back ``tot``. With weights 5, 1, 1 the map is
    ``a a a b a a c``. A single unit of total weight maps to the first
    running server directly (HAProxy avoids a division overflow there).
    """
    tot = sum(w for w, r in zip(eweights, running, strict=True) if r)
    if tot == 0:
        return []
    live = [i for i, r in enumerate(running) if r and eweights[i] > 0]
    if tot == 1:
        return [live[0]]
    wscore = [0] * len(eweights)
    table: list[int] = []
    for _ in range(tot):
        best = -1
        best_v = 0
        for i in live:
            wscore[i] += eweights[i]
            v = c_div(wscore[i] + tot, tot)
            if best < 0 or v > best_v:
                best, best_v = i, v
        table.append(best)
        wscore[best] -= tot
    return table


class _MapPolicy(Policy):
    """Keeps the server map in step with which servers are running."""

    products: ClassVar[frozenset[str]] = frozenset({"haproxy"})

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        n = max((b.index for b in self.backends), default=-1) + 1
        by_index: list[Backend | None] = [None] * n
        weights = [0] * n
        for b in self.backends:
            by_index[b.index] = b
            weights[b.index] = b.weight
        self._by_index = by_index
        # map-based algorithms use wdiv = 1 and wmult = GCD of the weights
        g = _gcd_weights(weights)
        self._eweights = [(w + g - 1) // g for w in weights]
        self._running = [b is not None for b in by_index]
        self.map: list[int] = []
        #: running servers with a weight (HAProxy's ``tot_used``)
        self.tot_used = 0
        self._rebuild()

    def _rebuild(self) -> None:
        self.map = server_map(self._eweights, self._running)
        self.tot_used = sum(
            1 for r, w in zip(self._running, self._eweights, strict=True) if r and w
        )

    def _sync(self, now: float) -> None:
        changed = False
        for b in self.backends:
            r = b.up and b.failed_until <= now
            if r != self._running[b.index]:
                self._running[b.index] = r
                changed = True
        if changed:
            self._rebuild()


class StaticRr(_MapPolicy):
    """HAProxy ``balance static-rr`` (``map_get_server_rr``).

    From ``rr_idx`` walk the map; the first server that is not saturated
    (at ``maxconn`` or with a queue, or already tried) takes the request
    and ``rr_idx`` moves past it. A full turn without one gives ``None``.
    ``rr_idx`` survives map rebuilds (reset to 0 when out of range).
    """

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        self.rr_idx = 0

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        self._sync(now)
        table = self.map
        tot = len(table)
        if tot == 0:
            return None
        if not 0 <= self.rr_idx < tot:
            self.rr_idx = 0
        idx = self.rr_idx
        for _ in range(tot):
            b = self._by_index[table[idx]]
            idx = idx + 1 if idx + 1 < tot else 0
            if b is not None and not haproxy_saturated(b, available):
                self.rr_idx = idx
                return b
        return None


def hash_sdbm(data: bytes) -> int:
    """HAProxy's default hash function (``hash_sdbm``), 32-bit."""
    h = 0
    for c in data:
        h = (c + (h << 6) + (h << 16) - h) & _U32
    return h


def hash_djb2(data: bytes) -> int:
    """``hash_djb2``: ``h * 33 + c`` from 5381, 32-bit."""
    h = 5381
    for c in data:
        h = (h * 33 + c) & _U32
    return h


def full_hash(a: int) -> int:
    """``full_hash``: Bob Jenkins' avalanche, times 3221225473 (``hash-type ... avalanche``)."""
    a = ((a + 0x7ED55D16) + (a << 12)) & _U32
    a = ((a ^ 0xC761C23C) ^ (a >> 19)) & _U32
    a = ((a + 0x165667B1) + (a << 5)) & _U32
    a = ((a + 0xD3A2646C) ^ (a << 9)) & _U32
    a = ((a + 0xFD7046C5) + (a << 3)) & _U32
    a = ((a ^ 0xB55A4F09) ^ (a >> 16)) & _U32
    return (a * 3221225473) & _U32


_FUNCTIONS: dict[str, Callable[[bytes], int]] = {
    "sdbm": hash_sdbm,
    "djb2": hash_djb2,
    "crc32": zlib.crc32,
}


class HashHaproxy(_MapPolicy):
    """HAProxy map-based hashing: slot ``hash % tot_weight`` of the running servers' map.

    ``source`` hashes the IPv4 address as one big-endian 32-bit word (the
    XOR of the address's words, ``get_server_sh``); ``hdr`` runs the hash
    function over the header value. With one server running no hash is
    taken. The request stays with its server: a full one makes it wait in
    that server's queue (``sticky``). A server already tried by this request
    gives ``None`` (HAProxy's map lookup ignores the server to avoid).
    """

    Options = HashHaproxyOptions
    sticky = True

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        assert isinstance(options, HashHaproxyOptions)
        self.opts = options
        self._fn = _FUNCTIONS[options.function]

    def key_hash(self, request: RequestView) -> int:
        """The 32-bit hash of the request's key, before the modulo."""
        if self.opts.key == "client_ip":
            a, b, c, d = request.client_ip
            h = (a << 24) | (b << 16) | (c << 8) | d
        else:
            h = self._fn(str(request.client).encode())
        return full_hash(h) if self.opts.avalanche else h

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        self._sync(now)
        table = self.map
        if not table:
            return None
        h = self.key_hash(request) if self.tot_used > 1 else 0
        b = self._by_index[table[h % len(table)]]
        return b if b is not None and available(b) else None


register("static_rr")(StaticRr)
register("hash_haproxy")(HashHaproxy)
