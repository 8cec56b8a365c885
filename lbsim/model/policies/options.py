"""The options of every balancer policy: pydantic models, one per policy that takes any.

They live apart from the policies' rules so that the rules (the hot path of
every simulated request) can be compiled with mypyc (``LBSIM_MYPYC=1 pip
install .``) while the option models stay ordinary Python classes: pydantic
builds its validators from the class body at import time, which a compiled
class body does not give it. Each policy module imports its model from here
(``power_of_d.PowerOfDOptions`` and the like still resolve).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Envoy's ``DefaultMinRingSize`` and ``DefaultMaxRingSize`` (ring_hash_lb.h)
MIN_RING_SIZE = 1024
MAX_RING_SIZE = 1024 * 1024 * 8
#: Envoy's ``MaglevTable::DefaultTableSize`` (a prime, per the Maglev paper)
MAGLEV_TABLE_SIZE = 65537
#: largest table accepted here, to bound memory (a prime)
MAGLEV_MAX_TABLE_SIZE = 5000011


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    k = 2
    while k * k <= n:
        if n % k == 0:
            return False
        k += 1
    return True


class NoOptions(BaseModel):
    """Options of a policy that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NginxHashOptions(BaseModel):
    """Options of ``hash_nginx``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Literal["client_ip", "client"] = Field(
        default="client_ip",
        description="hashed key: dotted client IPv4 address ($remote_addr) or the client id",
    )


class ConsistentHashOptions(BaseModel):
    """Options of ``consistent_hash``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Literal["client_ip", "client"] = Field(
        default="client_ip",
        description="hashed key: dotted client IPv4 address ($remote_addr) or the client id",
    )


class HashHaproxyOptions(BaseModel):
    """Options of ``hash_haproxy``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Literal["client_ip", "client"] = Field(
        default="client_ip",
        description=(
            "client_ip: `balance source` (the IPv4 address as a 32-bit number); "
            "client: `balance hdr(...)` on a header carrying the client id"
        ),
    )
    function: Literal["sdbm", "djb2", "crc32"] = Field(
        default="sdbm",
        description="`hash-type map-based <function>` for hdr/uri (source ignores it)",
    )
    avalanche: bool = Field(default=False, description="`hash-type map-based avalanche`")


class LeastLoadOptions(BaseModel):
    """Options of ``least_load``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: float = Field(
        default=2.0,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="agent-inter, seconds between replies",
    )
    metric: Literal["workers", "cpu"] = Field(
        default="workers",
        description=(
            "what the agent reports as busy: the fraction of busy PHP workers "
            "(listen queue included), or CPU utilisation over the last interval"
        ),
    )
    algorithm: Literal["roundrobin", "leastconn"] = Field(
        default="roundrobin", description="HAProxy balance algorithm applied with the agent weights"
    )
    min_idle: float = Field(
        default=0.01, gt=0, le=1, strict=True, description="floor of the reported idle fraction"
    )
    agent_status: Literal["listener", "pool"] = Field(
        default="listener",
        description=(
            "where a workers agent reads php-fpm's status page: on a listener of its own "
            "(pm.status_listen: answered while every worker is busy), or through the pool "
            "(its request waits behind the queued ones; a reply later than the interval is "
            "lost and HAProxy keeps the node's last weight)"
        ),
    )

    @model_validator(mode="after")
    def _pool_reads_workers(self) -> LeastLoadOptions:
        if self.agent_status == "pool" and self.metric != "workers":
            raise ValueError(
                "agent_status pool is where a workers agent reads php-fpm's status; "
                "a cpu agent reads its cgroup and needs no worker"
            )
        return self


class LeastTimeOptions(BaseModel):
    """Options of ``least_time``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["header", "last_byte"] = Field(
        default="header",
        description=(
            "which time is averaged: to the response header or to its last byte; "
            "the model delivers a response in one piece, so both see the same sample"
        ),
    )
    factor: float = Field(
        default=0.9,
        ge=0.0,
        lt=1.0,
        strict=True,
        allow_inf_nan=False,
        description="weight of the previous average in each update (0: the last sample only)",
    )


class PeakEwmaOptions(BaseModel):
    """Options of ``peak_ewma``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decay_time: float = Field(
        default=10.0,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="τ, seconds: mean lifetime of a latency peak in `cost`",
    )


class PowerOfDOptions(BaseModel):
    """Options of ``power_of_d``.

    ``flavour`` left out follows ``balancer.product``. With equal weights
    the flavours differ in sampling (nginx without replacement, HAProxy and
    Envoy with) and in the tie rule (nginx and HAProxy: the later draw wins;
    Envoy: the first). With unequal weights Envoy does not sample at all: it
    runs earliest-deadline-first on ``weight / (active + 1) ^ bias``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    choices: int = Field(
        default=2, ge=2, le=100, strict=True, description="d: backends sampled per request (≤ 100)"
    )
    flavour: Literal["nginx", "haproxy", "envoy"] | None = Field(
        default=None,
        description="whose sampling and tie rule to reproduce (default: balancer.product)",
    )
    active_request_bias: float = Field(
        default=1.0,
        ge=0,
        le=100,
        strict=True,
        allow_inf_nan=False,
        description="Envoy's bias of the weighted (EDF) variant",
    )


class EnvoyHashOptions(BaseModel):
    """What ``ring_hash`` and ``maglev`` share: the hashed key and the panic threshold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: Literal["source_ip", "header"] = Field(
        default="source_ip",
        description="hash_policy: connection_properties.source_ip, or a header with the client id",
    )
    panic_threshold: float = Field(
        default=50.0,
        ge=0,
        le=100,
        strict=True,
        allow_inf_nan=False,
        description="healthy_panic_threshold, percent of hosts",
    )


class RingHashOptions(EnvoyHashOptions):
    """Options of ``ring_hash``."""

    minimum_ring_size: int = Field(default=MIN_RING_SIZE, ge=1, le=MAX_RING_SIZE, strict=True)
    maximum_ring_size: int = Field(
        default=MAX_RING_SIZE,
        ge=1,
        le=MAX_RING_SIZE,
        strict=True,
        description="cap on ring points (Envoy's default and limit, 8M: about 100 MB here)",
    )

    @model_validator(mode="after")
    def _min_le_max(self) -> RingHashOptions:
        if self.minimum_ring_size > self.maximum_ring_size:
            raise ValueError(
                f"minimum_ring_size ({self.minimum_ring_size}) > "
                f"maximum_ring_size ({self.maximum_ring_size})"
            )
        return self


class MaglevOptions(EnvoyHashOptions):
    """Options of ``maglev``."""

    table_size: int = Field(default=MAGLEV_TABLE_SIZE, ge=2, le=MAGLEV_MAX_TABLE_SIZE, strict=True)

    @field_validator("table_size")
    @classmethod
    def _prime(cls, v: int) -> int:
        if not is_prime(v):
            raise ValueError("the maglev table size must be a prime number")
        return v
