"""nginx ``ip_hash`` (``ngx_http_upstream_ip_hash_module.c``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.smooth_wrr import smooth_wrr_available

#: rehashes before nginx gives up and uses round robin (``iphp->tries > 20``)
MAX_TRIES = 20


class IpHash(Policy):
    """nginx ip_hash: the client's /24 picks a peer by weight-slot.

    ``hash`` starts at 89 per request; each round folds in the three
    octets, then ``w = hash % total_weight`` (total of ALL peers, up or
    down) selects the peer whose cumulative weight range holds ``w``. An
    unavailable peer makes the hash evolve one more round from its current
    value. After 21 unlucky rounds (or with a single peer), smooth WRR.

    nginx keeps the hash and the try count across retries of one request;
    here each call starts afresh at 89, which revisits the same sequence of
    peers (the tried ones now unavailable) and so lands on the same peer,
    except that the 20-round budget is per call.
    """

    products = frozenset({"nginx"})

    sticky = True

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        self._total = sum(b.weight for b in self.backends)

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        backends = self.backends
        total = self._total
        if len(backends) >= 2 and total > 0:
            o0, o1, o2, _ = request.client_ip
            h = 89
            for _ in range(MAX_TRIES + 1):
                # hash = (hash * 113 + octet) % 6271 over octets 0..2
                h = (((((h * 113 + o0) % 6271) * 113 + o1) % 6271) * 113 + o2) % 6271
                w = h % total
                i = 0
                peer = backends[0]
                while w >= peer.weight:
                    w -= peer.weight
                    i += 1
                    peer = backends[i]
                if available(peer):
                    return peer
        return smooth_wrr_available(backends, available)


register("ip_hash")(IpHash)
