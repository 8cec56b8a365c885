"""nginx ``hash $key`` without ``consistent`` (``ngx_http_upstream_get_hash_peer``)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.options import NginxHashOptions
from lbsim.model.policies.smooth_wrr import smooth_wrr_available

#: rehashes before nginx gives up and uses round robin (``++hp->tries > 20``)
MAX_TRIES = 20


def rehash_value(key: bytes, rehash: int) -> int:
    """One round's addend: ``(crc32([REHASH] KEY) >> 16) & 0x7fff`` (Cache::Memcached).

    ``REHASH`` is the decimal round number, omitted in round 0.
    """
    prefix = str(rehash).encode() if rehash > 0 else b""
    return (zlib.crc32(prefix + key) >> 16) & 0x7FFF


class NginxHash(Policy):
    """nginx ``hash $key``: accumulated CRC32 rounds modulo the total weight.

    Round r adds :func:`rehash_value` to a 32-bit sum; ``sum %
    total_weight`` (all peers, down ones included) picks the peer whose
    cumulative weight range holds it. A peer that is tried, down, failed or
    at ``max_conns`` makes nginx hash again; after 21 rounds (or with fewer
    than two peers) it falls back to smooth weighted round robin. Not
    sticky: nginx moves on from a full peer instead of waiting for it.

    nginx keeps the sum and round count across retries of one request;
    here each call starts again at round 0, which revisits the same peers
    (the tried ones now unavailable) and so lands on the same one, except
    that the 21-round budget is per call (as in ``ip_hash``).
    """

    Options = NginxHashOptions
    products: ClassVar[frozenset[str]] = frozenset({"nginx"})

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        assert isinstance(options, NginxHashOptions)
        self._by_ip = options.key == "client_ip"
        self._total = sum(b.weight for b in self.backends)

    def key(self, request: RequestView) -> bytes:
        """The key string nginx hashes (``"10.1.2.3"`` or ``str(client)``)."""
        if self._by_ip:
            a, b, c, d = request.client_ip
            return f"{a}.{b}.{c}.{d}".encode()
        return str(request.client).encode()

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        backends = self.backends
        total = self._total
        if len(backends) >= 2 and total > 0:
            key = self.key(request)
            acc = 0
            for rehash in range(MAX_TRIES + 1):
                acc = (acc + rehash_value(key, rehash)) & 0xFFFFFFFF
                w = acc % total
                i = 0
                peer = backends[0]
                while w >= peer.weight:
                    w -= peer.weight
                    i += 1
                    peer = backends[i]
                if available(peer):
                    return peer
        return smooth_wrr_available(backends, available)


register("hash_nginx")(NginxHash)
