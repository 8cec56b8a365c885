"""XXH64, the hash Envoy uses for ring_hash and maglev (``HashUtil::xxHash64``).

Written from the XXH64 specification (xxhash.h, ``XXH64_round``,
``XXH64_finalize``, ``XXH64_avalanche``) so that rings and tables are
Envoy's own without a compiled dependency; the tests pin it against values
of the reference C library. :func:`xxh64` hashes one key; :func:`xxh64_rows`
hashes many keys of one length at once with numpy (a ring of millions of
points is built in seconds, not minutes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

_M = (1 << 64) - 1
P1 = 11400714785074694791
P2 = 14029467366897019727
P3 = 1609587929392839161
P4 = 9650029242287828579
P5 = 2870177450012600261


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _round(acc: int, lane: int) -> int:
    return (_rotl((acc + lane * P2) & _M, 31) * P1) & _M


def _merge(h: int, v: int) -> int:
    return ((h ^ _round(0, v)) * P1 + P4) & _M


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 of ``data`` with ``seed``, as an unsigned 64-bit int."""
    n = len(data)
    p = 0
    if n >= 32:
        v1 = (seed + P1 + P2) & _M
        v2 = (seed + P2) & _M
        v3 = seed & _M
        v4 = (seed - P1) & _M
        while p + 32 <= n:
            v1 = _round(v1, int.from_bytes(data[p : p + 8], "little"))
            v2 = _round(v2, int.from_bytes(data[p + 8 : p + 16], "little"))
            v3 = _round(v3, int.from_bytes(data[p + 16 : p + 24], "little"))
            v4 = _round(v4, int.from_bytes(data[p + 24 : p + 32], "little"))
            p += 32
        h = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _M
        for v in (v1, v2, v3, v4):
            h = _merge(h, v)
    else:
        h = (seed + P5) & _M
    h = (h + n) & _M
    while p + 8 <= n:
        h ^= _round(0, int.from_bytes(data[p : p + 8], "little"))
        h = (_rotl(h, 27) * P1 + P4) & _M
        p += 8
    if p + 4 <= n:
        h ^= (int.from_bytes(data[p : p + 4], "little") * P1) & _M
        h = (_rotl(h, 23) * P2 + P3) & _M
        p += 4
    while p < n:
        h ^= (data[p] * P5) & _M
        h = (_rotl(h, 11) * P1) & _M
        p += 1
    h ^= h >> 33
    h = (h * P2) & _M
    h ^= h >> 29
    h = (h * P3) & _M
    return h ^ (h >> 32)


U64 = np.ndarray[Any, np.dtype[np.uint64]]


def _u(c: int) -> np.uint64:
    return np.uint64(c & _M)


def _vrotl(x: U64, r: int) -> U64:
    return (x << _u(r)) | (x >> _u(64 - r))


def _vround(acc: U64, lane: U64) -> U64:
    return _vrotl(acc + lane * _u(P2), 31) * _u(P1)


def xxh64_rows(rows: np.ndarray[Any, np.dtype[np.uint8]], seed: int = 0) -> U64:
    """XXH64 of each row of an ``(N, L)`` uint8 array (N keys of length L)."""
    count, n = rows.shape
    rows = np.ascontiguousarray(rows)

    def lanes(p: int, width: int) -> U64:
        dtype = "<u8" if width == 8 else "<u4"
        return rows[:, p : p + width].copy().view(dtype).reshape(count).astype(np.uint64)

    p = 0
    with np.errstate(over="ignore"):
        if n >= 32:
            v = [
                np.full(count, _u(s), dtype=np.uint64)
                for s in (seed + P1 + P2, seed + P2, seed, seed - P1)
            ]
            while p + 32 <= n:
                for k in range(4):
                    v[k] = _vround(v[k], lanes(p + 8 * k, 8))
                p += 32
            h = _vrotl(v[0], 1) + _vrotl(v[1], 7) + _vrotl(v[2], 12) + _vrotl(v[3], 18)
            zero = np.zeros(count, dtype=np.uint64)
            for k in range(4):
                h = (h ^ _vround(zero, v[k])) * _u(P1) + _u(P4)
        else:
            h = np.full(count, _u(seed + P5), dtype=np.uint64)
        h = h + _u(n)
        while p + 8 <= n:
            h ^= _vround(np.zeros(count, dtype=np.uint64), lanes(p, 8))
            h = _vrotl(h, 27) * _u(P1) + _u(P4)
            p += 8
        if p + 4 <= n:
            h ^= lanes(p, 4) * _u(P1)
            h = _vrotl(h, 23) * _u(P2) + _u(P3)
            p += 4
        while p < n:
            h ^= rows[:, p].astype(np.uint64) * _u(P5)
            h = _vrotl(h, 11) * _u(P1)
            p += 1
        h ^= h >> _u(33)
        h = h * _u(P2)
        h ^= h >> _u(29)
        h = h * _u(P3)
        h ^= h >> _u(32)
    return h
