"""Which database server a PHP connection goes to.

Single server: always it. Galera: each app node pinned to one node, or a
proxy choosing per connection with a balancer policy from the registry
(``first`` = single writer); with read/write split, writes go to the writer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lbsim.model.db.server import DbServer
from lbsim.model.policies import Backend, make_policy
from lbsim.model.request import Work
from lbsim.scenario.database import GaleraRouting


class Router:
    def __init__(
        self,
        servers: Sequence[DbServer],
        spec: GaleraRouting | None,
        rng: np.random.Generator,
    ):
        self.servers = list(servers)
        self.spec = spec
        self.split = spec is not None and spec.read_write_split
        self.backends = [
            Backend(index=i, name=s.name, address=f"10.0.2.{i + 1}:3306")
            for i, s in enumerate(self.servers)
        ]
        self.policy = (
            make_policy(spec.policy, self.backends, {}, rng)
            if spec is not None and spec.mode == "proxy"
            else None
        )

    def role(self, kind: str) -> str:
        if not self.split:
            return "rw"
        return "write" if kind == "write" else "read"

    def route(self, request: Work, role: str, app_index: int) -> int:
        """The server a new connection of ``role`` goes to."""
        if len(self.servers) == 1:
            return 0
        assert self.spec is not None
        if role == "write":
            return self.spec.writer
        if self.policy is None:
            return app_index % len(self.servers)
        for b, s in zip(self.backends, self.servers, strict=True):
            b.conns = s.connections  # the proxy sees open connections
        chosen = self.policy.choose(request.origin, _always, 0.0)
        assert chosen is not None
        return chosen.index


def _always(_: Backend, /) -> bool:
    return True
