"""The states of a Galera node through an outage, the errors clients see,
and what the DB proxy's checks see of a node (:mod:`lbsim.model.db.membership`)."""

from __future__ import annotations

from typing import Protocol

from lbsim.model.retries import CONNECT_TIMEOUT

#: client error codes (MySQL client library, mysqli's exception code)
ERR_CANT_CONNECT = 2002
ERR_GONE_AWAY = 2006
ERR_LOST = 2013
#: server error: ER_UNKNOWN_COM_ERROR, what a non-synced Galera node answers
ERR_NOT_READY = 1047

#: the stack's DB proxy (HAProxy defaults: retries 3, timeout connect 5 s)
PROXY_RETRIES = 3
PROXY_CONNECT_TIMEOUT = CONNECT_TIMEOUT["haproxy"]

SYNCED, DOWN, STARTING, JOINER = "synced", "down", "starting", "joiner"


class Cluster(Protocol):
    """What a probe reads of the cluster: each node's state and whether its address is gone."""

    state: list[str]
    unanswered: list[bool]


class NodeProbe:
    """What the proxy's layer-4 check sees of one node."""

    def __init__(self, tier: Cluster, index: int):
        self.tier = tier
        self.index = index

    def answers(self) -> bool:
        """The address answers (accepted or refused), not gone with the container."""
        t = self.tier
        return t.state[self.index] != DOWN or not t.unanswered[self.index]

    def check_ok(self) -> bool:
        """mysqld listens: a TCP connect succeeds (joiner or synced)."""
        return self.tier.state[self.index] in (SYNCED, JOINER)
