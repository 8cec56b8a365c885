"""Balancer policies: one module per real balancer rule, all in :data:`POLICIES`.

Importing this package imports every policy module, which registers it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies import (
    consistent_hash,
    envoy_hash,
    first,
    fwrr,
    haproxy_map,
    ip_hash,
    least_conn,
    least_load,
    least_time,
    leastconn_haproxy,
    nginx_hash,
    peak_ewma,
    power_of_d,
    random,
    round_robin,
)
from lbsim.model.policies.base import POLICIES, Backend, Policy, register
from lbsim.model.policies.options import NoOptions

__all__ = [
    "POLICIES",
    "Backend",
    "NoOptions",
    "Policy",
    "consistent_hash",
    "envoy_hash",
    "first",
    "fwrr",
    "haproxy_map",
    "ip_hash",
    "least_conn",
    "least_load",
    "least_time",
    "leastconn_haproxy",
    "make_policy",
    "nginx_hash",
    "peak_ewma",
    "power_of_d",
    "random",
    "register",
    "round_robin",
]


def make_policy(
    name: str,
    backends: Sequence[Backend],
    options: Mapping[str, Any] | BaseModel | None,
    rng: np.random.Generator,
    product: str = "nginx",
) -> Policy:
    """Build policy ``name`` over ``backends``, validating ``options`` with its ``Options``.

    ``options`` may be a mapping, any pydantic model (re-validated through
    its dump, so a model of the wrong policy is rejected) or ``None`` for
    the defaults. ``product`` is the balancer's (``balancer.product``), for
    the rules that differ by product. Raises ``ValueError`` for an unknown name and
    ``pydantic.ValidationError`` for bad options (unknown keys included).
    """
    try:
        cls = POLICIES[name]
    except KeyError:
        raise ValueError(
            f"unknown policy {name!r}; valid policies: {', '.join(sorted(POLICIES))}"
        ) from None
    model = cls.Options
    if options is None:
        opts = model()
    elif isinstance(options, model):
        opts = options
    elif isinstance(options, BaseModel):
        opts = model.model_validate(options.model_dump())
    else:
        opts = model.model_validate(dict(options))
    policy = cls(backends, opts, rng)
    policy.product = product
    return policy
