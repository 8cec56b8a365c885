"""nginx ``hash $key consistent`` (ketama ring, ``ngx_http_upstream_hash_module.c``)."""

from __future__ import annotations

import struct
import zlib
from bisect import bisect_left
from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.options import ConsistentHashOptions
from lbsim.model.policies.smooth_wrr import smooth_wrr, smooth_wrr_available

#: ring points per unit of weight
POINTS_PER_WEIGHT = 160
#: ring steps before nginx falls back to round robin (``hp->tries > 20``)
MAX_TRIES = 20


def ring_points(address: str, weight: int) -> list[int]:
    """The ``160 * weight`` point hashes of a server ``"host:port"``.

    nginx (compatible with Cache::Memcached::Fast): point j is
    ``crc32(HOST "\\0" PORT PREV_HASH)``, PREV_HASH being point j-1's hash as
    4 little-endian bytes (0 for the first). ``zlib.crc32(data, base)``
    continues a CRC exactly like ``ngx_crc32_update`` on the concatenation.
    """
    host, sep, port = address.rpartition(":")
    if not sep:  # no port: nginx hashes the whole name and an empty port
        host, port = address, ""
    base = zlib.crc32(host.encode() + b"\x00" + port.encode())
    points: list[int] = []
    prev = 0
    for _ in range(POINTS_PER_WEIGHT * weight):
        prev = zlib.crc32(struct.pack("<I", prev), base)
        points.append(prev)
    return points


class ConsistentHash(Policy):
    """Ketama ring: the first point at or after ``crc32(key)`` names the server.

    Points are sorted by hash and duplicates dropped (as nginx does). If
    the point's server is unavailable the next point is tried; after 21
    points, smooth WRR. When a point's server is available nginx still runs
    a smooth-WRR step among the peers of that name (one peer here), which
    lets its ``effective_weight`` recover; reproduced.
    """

    products = frozenset({"nginx", "haproxy"})

    Options = ConsistentHashOptions
    sticky = True

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        assert isinstance(options, ConsistentHashOptions)
        self._by_ip = options.key == "client_ip"
        points: list[tuple[int, str]] = []
        for b in self.backends:
            points.extend((h, b.address) for h in ring_points(b.address, b.weight))
        points.sort(key=lambda p: p[0])  # stable: equal hashes keep server order
        hashes: list[int] = []
        owners: list[str] = []
        for h, addr in points:
            if not hashes or hashes[-1] != h:
                hashes.append(h)
                owners.append(addr)
        #: sorted point hashes and the address owning each point
        self.ring_hashes = hashes
        self.ring_owners = owners
        # nginx matches a point to peers by server name
        self._peers: dict[str, list[Backend]] = {}
        for b in self.backends:
            self._peers.setdefault(b.address, []).append(b)

    def key_hash(self, request: RequestView) -> int:
        """CRC32 of the key string (``"10.1.2.3"`` or ``str(client)``)."""
        if self._by_ip:
            a, b, c, d = request.client_ip
            key = f"{a}.{b}.{c}.{d}"
        else:
            key = str(request.client)
        return zlib.crc32(key.encode())

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        hashes = self.ring_hashes
        n = len(hashes)
        if len(self.backends) >= 2 and n:
            pos = bisect_left(hashes, self.key_hash(request))
            for k in range(MAX_TRIES + 1):
                peers = self._peers[self.ring_owners[(pos + k) % n]]
                best = smooth_wrr(p for p in peers if available(p))
                if best is not None:
                    return best
        return smooth_wrr_available(self.backends, available)


register("consistent_hash")(ConsistentHash)
