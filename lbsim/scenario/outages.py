"""Node availability: an outage of a node, and the active health checks that notice it.

Shared by the app tier (``app.nodes[].outages``, ``balancer.health_check``)
and the Galera cluster (``database.nodes[].outages``,
``database.routing.health_check`` of the DB proxy). Times in seconds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from lbsim.scenario.numbers import NonNegFloat, PositiveFloat, PositiveInt


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HealthCheck(_Strict):
    """Active health checks (HAProxy ``inter``/``fall``/``rise``; a layer-4 connect)."""

    interval: PositiveFloat = 2.0
    fall: PositiveInt = 3
    rise: PositiveInt = 2


class Outage(_Strict):
    """The node is down (drops what it holds: the balancer sees resets) for ``duration`` s."""

    start: NonNegFloat
    duration: PositiveFloat
    #: what a new connection to the down node meets: ``refused`` at once (the
    #: process died on a live host: the kernel answers RST), or ``unanswered``
    #: (the host or container is gone, its address answers nothing: the
    #: balancer's connect attempt and its health checks time out)
    connections: Literal["refused", "unanswered"] = "refused"
