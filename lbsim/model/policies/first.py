"""HAProxy ``balance first``."""

from __future__ import annotations

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register


class First(Policy):
    """The first backend in index (server id) order that is available.

    HAProxy fills servers in id order up to their ``maxconn``; ``available``
    already excludes servers at ``max_conns``, so the first available one
    is the first with a free slot.
    """

    products = frozenset({"haproxy"})

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        for b in self.backends:
            if available(b):
                return b
        return None


register("first")(First)
