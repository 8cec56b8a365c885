"""Envoy ``RING_HASH`` and ``MAGLEV`` (``source/extensions/load_balancing_policies/``).

Both are Envoy "thread aware" balancers (``thread_aware_lb_impl.cc``): a
table is built from the healthy hosts, their weights normalised to sum 1,
and rebuilt whenever a host's health changes; when fewer than
``panic_threshold`` % of the hosts are healthy, the table is built from all
of them (panic mode). The request key is hashed with XXH64: the client
address string for ``source_ip``, the header value for ``header``.

Healthy here means ``up`` and not ejected (``failed_until``). The host the
table names is returned when the balancer may try it, whether full or not
(``sticky``: Envoy does not look at load here; its circuit breakers decide
what happens to an overflow). A host the balancer may not try (tried by this
request, or down in panic mode) gives ``None``: Envoy only moves off it with
a retry host predicate, which is not modelled.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from functools import lru_cache
from math import ceil
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.options import (
    EnvoyHashOptions,
    MaglevOptions,
    RingHashOptions,
)
from lbsim.model.policies.xxhash64 import U64, xxh64, xxh64_rows

#: tables kept per policy, by host set, so a flapping host does not rebuild each time
_CACHE = 8
_ROWS = 1 << 20  # ring points hashed per numpy batch


@lru_cache(maxsize=1 << 16)
def key_hash(key: str) -> int:
    """XXH64 (seed 0) of a request key; cached, as clients repeat."""
    return xxh64(key.encode())


def request_key(request: RequestView, key: str) -> str:
    """``source_ip``: the dotted client address; ``header``: the client id as text."""
    if key == "source_ip":
        a, b, c, d = request.client_ip
        return f"{a}.{b}.{c}.{d}"
    return str(request.client)


def normalized_weights(weights: Sequence[int]) -> list[float]:
    """``normalizeHostWeights``: each weight over the sum (which must fit in 32 bits)."""
    total = sum(weights)
    if total > 0xFFFFFFFF:
        raise ValueError(f"the sum of host weights exceeds {0xFFFFFFFF} (Envoy refuses it)")
    return [w * 1.0 / total for w in weights]


def ring_size(weights: Sequence[int], min_size: int, max_size: int) -> tuple[float, int]:
    """``(scale, ring size)``: the lightest host gets ``ceil(w_min * min_size)`` points.

    ``scale = min(ceil(w_min * min_size) / w_min, max_size)``; the cap is what
    keeps a weight of 10**9 next to a weight of 1 from asking for 10**9 points.
    """
    norm = normalized_weights(weights)
    w_min = min(norm)
    scale = min(ceil(w_min * min_size) / w_min, float(max_size))
    return scale, ceil(scale)


def _point_hashes(address: str, count: int) -> U64:
    """XXH64 of ``"<address>_0"`` .. ``"<address>_<count-1>"``, batched by key length."""
    prefix = np.frombuffer(address.encode() + b"_", dtype=np.uint8)
    out = np.empty(count, dtype=np.uint64)
    lo, digits = 0, 1
    while lo < count:
        hi = min(count, 10**digits)
        for start in range(lo, hi, _ROWS):
            stop = min(hi, start + _ROWS)
            idx = np.arange(start, stop, dtype=np.int64)
            rows = np.empty((stop - start, len(prefix) + digits), dtype=np.uint8)
            rows[:, : len(prefix)] = prefix
            for k in range(digits - 1, -1, -1):
                rows[:, len(prefix) + k] = 48 + idx % 10
                idx //= 10
            out[start:stop] = xxh64_rows(rows)
        lo, digits = hi, digits + 1
    return out


def build_ring(
    hosts: Sequence[Backend], min_size: int, max_size: int
) -> tuple[U64, np.ndarray[Any, np.dtype[np.int32]]]:
    """``RingHashLoadBalancer::Ring``: sorted point hashes and the host index of each.

    Hosts are walked in order with running sums ``current`` and ``target``
    (``target += scale * weight``); a host gets points while ``current <
    target``, so fractional shares carry over to the next host.
    """
    if not hosts:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int32)
    weights = [h.weight for h in hosts]
    scale, _ = ring_size(weights, min_size, max_size)
    hashes: list[U64] = []
    owners: list[np.ndarray[Any, np.dtype[np.int32]]] = []
    current = target = 0.0
    for h, w in zip(hosts, normalized_weights(weights), strict=True):
        target += scale * w
        # Envoy steps ``current`` by 1.0 while it is below ``target``: it ends
        # at ceil(target) (integers are exact in a double up to 2**53)
        n = max(0, ceil(target) - int(current))
        current += n
        hashes.append(_point_hashes(h.address, n))
        owners.append(np.full(n, h.index, dtype=np.int32))
    all_hashes = np.concatenate(hashes)
    # std::sort is not stable either; equal 64-bit points are vanishingly rare
    order = np.argsort(all_hashes)
    return all_hashes[order], np.concatenate(owners)[order]


def build_maglev(hosts: Sequence[Backend], size: int) -> list[int]:
    """Maglev table (``OriginalMaglevTable``): ``size`` slots of host indices.

    Hosts sorted by address; each has ``offset = xxh64(addr) % size`` and
    ``skip = xxh64(addr, seed 1) % (size - 1) + 1`` and fills its next free
    slot along ``(offset + skip * next) % size``. In iteration ``k`` (from
    1) a host takes a turn when ``k * weight >= target``, then ``target +=
    max weight``: the heaviest host takes one slot per iteration, one of
    a third of its weight one every third.
    """
    if not hosts:
        return []
    ordered = sorted(hosts, key=lambda h: h.address)
    norm = normalized_weights([h.weight for h in ordered])
    max_w = max(norm)
    offsets = [xxh64(h.address.encode()) % size for h in ordered]
    skips = [xxh64(h.address.encode(), 1) % (size - 1) + 1 for h in ordered]
    nexts = [0] * len(ordered)
    targets = [0.0] * len(ordered)
    table = [-1] * size
    filled = 0
    iteration = 1
    while filled < size:
        for i, h in enumerate(ordered):
            if filled >= size:
                break
            if iteration * norm[i] < targets[i]:
                continue
            targets[i] += max_w
            off, skip, nxt = offsets[i], skips[i], nexts[i]
            c = (off + skip * nxt) % size
            while table[c] >= 0:
                nxt += 1
                c = (off + skip * nxt) % size
            table[c] = h.index
            nexts[i] = nxt + 1
            filled += 1
        iteration += 1
    return table


class _EnvoyHash(Policy):
    """Host set tracking (healthy or, in panic, all) and the table cache."""

    products: ClassVar[frozenset[str]] = frozenset({"envoy"})
    sticky = True

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        assert isinstance(options, EnvoyHashOptions)
        self._key = options.key
        self._panic = options.panic_threshold
        n = max((b.index for b in self.backends), default=-1) + 1
        self._by_index: list[Backend | None] = [None] * n
        for b in self.backends:
            self._by_index[b.index] = b
        self._tables: dict[tuple[int, ...], Any] = {}
        self._hosts: tuple[int, ...] | None = None
        self.table: Any = None

    def host_set(self, now: float) -> tuple[int, ...]:
        """Indices of the hosts the table is built from (healthy, or all in panic)."""
        healthy = tuple(b.index for b in self.backends if b.up and b.failed_until <= now)
        total = len(self.backends)
        if total and 100.0 * len(healthy) / total < self._panic:
            return tuple(b.index for b in self.backends)
        return healthy

    def _build(self, hosts: Sequence[Backend]) -> Any:
        raise NotImplementedError

    def lookup(self, h: int) -> int:
        """The backend index the current table gives the 64-bit hash ``h`` (-1: empty)."""
        raise NotImplementedError

    def refresh(self, now: float) -> None:
        """Rebuild (or take from the cache) the table when the host set changed."""
        hosts = self.host_set(now)
        if hosts == self._hosts:
            return
        self._hosts = hosts
        table = self._tables.get(hosts)
        if table is None:
            if len(self._tables) >= _CACHE:
                self._tables.pop(next(iter(self._tables)))
            table = self._build([b for b in self.backends if b.index in hosts])
            self._tables[hosts] = table
        self.table = table

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        self.refresh(now)
        i = self.lookup(key_hash(request_key(request, self._key)))
        b = self._by_index[i] if i >= 0 else None
        return b if b is not None and available(b) else None


class RingHash(_EnvoyHash):
    """Envoy ring hash (ketama): XXH64 points ``"<ip:port>_<i>"``; first point at or after the key.

    The ring has ``ceil(scale)`` points, ``scale = min(ceil(w_min * 1024) /
    w_min, maximum_ring_size)`` with normalised weights ``w``; a key past the
    last point wraps to the first.
    """

    Options = RingHashOptions

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        assert isinstance(options, RingHashOptions)
        self._min, self._max = options.minimum_ring_size, options.maximum_ring_size
        super().__init__(backends, options, rng)

    def _build(self, hosts: Sequence[Backend]) -> Any:
        hashes, owners = build_ring(hosts, self._min, self._max)
        if len(hashes) <= 1 << 16:  # small rings: bisect on lists beats numpy per call
            return hashes.tolist(), owners.tolist()
        return hashes, owners

    def lookup(self, h: int) -> int:
        hashes, owners = self.table
        n = len(hashes)
        if n == 0:
            return -1
        if isinstance(hashes, list):
            pos = bisect_left(hashes, h)
        else:
            pos = int(np.searchsorted(hashes, np.uint64(h), side="left"))
        return int(owners[pos if pos < n else 0])


class Maglev(_EnvoyHash):
    """Envoy Maglev: slot ``xxh64(key) % table_size`` of the permutation-filled table."""

    Options = MaglevOptions

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        assert isinstance(options, MaglevOptions)
        self._size = options.table_size
        super().__init__(backends, options, rng)

    def _build(self, hosts: Sequence[Backend]) -> Any:
        return build_maglev(hosts, self._size)

    def lookup(self, h: int) -> int:
        table: list[int] = self.table
        return table[h % len(table)] if table else -1


register("ring_hash")(RingHash)
register("maglev")(Maglev)
