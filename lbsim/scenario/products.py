"""``balancer.product``: which balancer's rules apply on overload and failure.

nginx (the default, the seed's balancer), HAProxy and Envoy choose a backend
by similar rules but differ when a node is full, slow or gone
(shared/reference/balancers.md, last section). Each product has its own
options; a scenario that sets an option of another product is refused, and an
option left out takes the product's default here, so that a dumped scenario
(options of other products ``null``) switches product cleanly.

:class:`Rules` is the resolved view the model reads: every option with its
product's value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict

from lbsim.model.policies import POLICIES
from lbsim.model.policies.base import PRODUCTS
from lbsim.scenario.errors import AtKey
from lbsim.scenario.numbers import NonNegInt, PositiveFloat, PositiveInt

#: a share of hosts, in percent
Percent = Annotated[float, Strict(), Field(ge=0, le=100, allow_inf_nan=False)]

Product = Literal["nginx", "haproxy", "envoy"]

#: nginx ``*_next_upstream`` conditions the model can meet
NextUpstream = Literal["error", "timeout", "http_502", "http_503", "http_504"]
#: Envoy ``retry_on`` conditions the model can meet
RetryOn = Literal["5xx", "connect-failure", "reset"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Observe(_Strict):
    """HAProxy ``observe layer7`` + ``error-limit`` + ``on-error`` (passive checks)."""

    #: consecutive errors (resets, refused connections, timeouts) that trigger on_error
    error_limit: PositiveInt = 10
    #: ``fail-check``: count one failed health check; ``mark-down``: down at once
    #: (until ``rise`` successful checks)
    on_error: Literal["fail-check", "mark-down"] = "fail-check"


class CircuitBreaker(_Strict):
    """Envoy cluster circuit breaker thresholds (defaults as Envoy's)."""

    #: requests outstanding to the cluster; beyond → 503 (overflow)
    max_requests: PositiveInt = 1024
    #: requests waiting for a connection (a host at ``max_conns``); beyond → 503
    max_pending_requests: NonNegInt = 1024


class OutlierDetection(_Strict):
    """Envoy outlier detection (consecutive 5xx only; defaults as Envoy's)."""

    consecutive_5xx: PositiveInt = 5
    #: seconds between sweeps that bring ejected hosts back
    interval: PositiveFloat = 10.0
    #: a host is ejected for base_ejection_time × its number of ejections (s)
    base_ejection_time: PositiveFloat = 30.0
    #: cap of the ejection time (s)
    max_ejection_time: PositiveFloat = 300.0
    #: at most this share of hosts ejected at once (percent); one host always may be
    max_ejection_percent: Percent = 10.0


class RetryPolicy(_Strict):
    """Envoy route retry policy."""

    num_retries: NonNegInt = 1
    retry_on: tuple[RetryOn, ...] = ("5xx", "connect-failure", "reset")
    #: exponential back-off base (s): a retry waits U(0, (2^n - 1) × base), capped at 10 × base
    base_interval: PositiveFloat = 0.025


#: options of exactly one product (or two), with the product's default;
#: the keys every product has (policy, latency, health_check, upstream_timeout)
#: are plain schema fields
OPTIONS: dict[str, dict[str, Any]] = {
    "nginx": {
        "max_fails": 1,
        "fail_timeout": 10.0,
        "next_upstream_tries": 0,
        "next_upstream_timeout": 0.0,
        "next_upstream": ("error", "timeout"),
    },
    "haproxy": {
        "queue_timeout": 30.0,
        "retries": 3,
        "redispatch": False,
        "observe": None,
        "slow_start": None,
    },
    "envoy": {
        "circuit_breaker": {},
        "outlier_detection": None,
        "retry_policy": None,
        "panic_threshold": 50.0,
        "slow_start": None,
    },
}

#: the policy a product uses when the scenario names none
DEFAULT_POLICY = {"nginx": "round_robin", "haproxy": "roundrobin_haproxy", "envoy": "round_robin"}

#: an option that some product lacks on purpose, and why
_WHY_NOT = {("slow_start", "nginx"): "slow_start is in the commercial nginx (NGINX Plus) only"}


def owners(key: str) -> list[str]:
    return [p for p in PRODUCTS if key in OPTIONS[p]]


def implied_product(policy: Any) -> str:
    """The product of a scenario that names none: nginx, unless the policy is not
    nginx's; then the first product (HAProxy before Envoy) that has it, so that
    ``policy: least_load`` alone means HAProxy's agent-check."""
    cls = POLICIES.get(policy) if isinstance(policy, str) else None
    if cls is None or "nginx" in cls.products:
        return "nginx"
    return next(p for p in PRODUCTS if p in cls.products)


def product_defaults(data: Any) -> Any:
    """Before validation: refuse another product's options, fill in the product's defaults.

    ``None`` counts as unset (a dumped scenario holds the other products'
    options as ``null``); a product left out is :func:`implied_product`.
    Input that is not a mapping, or a product that is not valid, is left for
    the field validators to report.
    """
    if not isinstance(data, dict):
        return data
    product = data.get("product")
    out = dict(data)
    if product is None:
        product = out["product"] = implied_product(data.get("policy"))
    if product not in PRODUCTS:
        return data
    for key, value in data.items():
        if value is None or not isinstance(key, str):
            continue
        products = owners(key)
        if products and product not in products:
            why = _WHY_NOT.get((key, product))
            raise AtKey(
                key,
                (f"{why}; " if why else "")
                + f"{key} is an option of {' and '.join(products)}, not of {product} "
                f"(balancer.product); {product}'s options: {', '.join(OPTIONS[product])}",
            )
    for key, default in OPTIONS[product].items():
        if out.get(key) is None:
            out[key] = default
    if out.get("policy") is None:
        out["policy"] = DEFAULT_POLICY[product]
    return out


def check_policy(product: str, policy: str) -> None:
    """The product must have the policy's rule."""
    if product not in POLICIES[policy].products:
        have = sorted(n for n, c in POLICIES.items() if product in c.products)
        raise AtKey(
            "policy",
            f"policy {policy!r} is not a rule of {product} (balancer.product); it is "
            f"{' and '.join(sorted(POLICIES[policy].products))}'s. "
            f"{product}'s policies: {', '.join(have)}",
        )


@dataclass(frozen=True, slots=True)
class Rules:
    """Every product option resolved (the model's view of ``balancer``)."""

    product: str
    max_fails: int
    fail_timeout: float
    next_upstream_tries: int
    next_upstream_timeout: float
    next_upstream: frozenset[str]
    queue_timeout: float
    retries: int
    redispatch: bool
    observe: Observe | None
    circuit_breaker: CircuitBreaker
    outlier_detection: OutlierDetection | None
    retry_policy: RetryPolicy | None
    panic_threshold: float
    slow_start: float


def resolve(b: Any) -> Rules:
    """The rules of a validated ``schema.Balancer`` ``b``; other products' options inert."""

    def get(key: str, inert: Any) -> Any:
        v = getattr(b, key)
        return inert if v is None else v

    return Rules(
        product=b.product,
        max_fails=get("max_fails", 0),
        fail_timeout=get("fail_timeout", 10.0),
        next_upstream_tries=get("next_upstream_tries", 0),
        next_upstream_timeout=get("next_upstream_timeout", 0.0),
        next_upstream=frozenset(get("next_upstream", ())),
        queue_timeout=get("queue_timeout", 30.0),
        retries=get("retries", 0),
        redispatch=get("redispatch", False),
        observe=b.observe,
        circuit_breaker=get("circuit_breaker", CircuitBreaker()),
        outlier_detection=b.outlier_detection,
        retry_policy=b.retry_policy,
        panic_threshold=get("panic_threshold", 0.0),
        slow_start=get("slow_start", 0.0),
    )


__all__ = [
    "DEFAULT_POLICY",
    "OPTIONS",
    "CircuitBreaker",
    "NextUpstream",
    "Observe",
    "OutlierDetection",
    "Percent",
    "Product",
    "RetryOn",
    "RetryPolicy",
    "Rules",
    "check_policy",
    "product_defaults",
    "resolve",
]
