"""The balancer policy interface and its registry.

A policy is a strategy object with one decision, ``choose``: given the
request and the balancer's backends, return the backend to try, or ``None``
when no backend may take the request now. Every policy reproduces one rule of
a real balancer (shared/reference/balancers.md), including its tie-breaking
and the *view* of load it uses; the view is read from :class:`Backend` fields
the balancer maintains.

Adding a policy is adding one module in this package that defines the class
and registers it after the class body, ``register("name")(Cls)``, with its
options model (if it takes any) in :mod:`~lbsim.model.policies.options`. Not
a class decorator, and no pydantic model here: the policies are compiled by
mypyc in the compiled build (setup.py), which keeps a decorated class, or a
pydantic model, as a slow ordinary Python class (or cannot build it at all).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.options import NoOptions

if TYPE_CHECKING:
    from lbsim.model.policies.roster import Roster

#: the balancer products a scenario may name (``balancer.product``); nginx,
#: the seed's balancer, is the default
PRODUCTS: tuple[str, ...] = ("nginx", "haproxy", "envoy")


@dataclass(eq=False, slots=True)
class Backend:
    """The balancer's view of one upstream server (an app node).

    Fields the policies read:

    - ``weight``: configured weight; ``effective_weight`` and
      ``current_weight`` are nginx's smooth-WRR state.
    - ``conns``: requests in flight from the balancer to this server (sent
      and not yet answered, including those waiting in the server's listen
      backlog) — nginx's ``conns`` and HAProxy's ``served``.
    - ``queued``: requests waiting in the balancer's own queue for this
      server (HAProxy per-server queue, only with ``max_conns``).
    - ``max_conns``: 0 means unlimited.
    - ``sampled_load``: the load last reported by the health check / agent,
      in [0, 1] (stale by up to one check interval).
    - ``address``: ``"ip:port"`` used by consistent hashing.
    - ``ramp``: slow start's factor on the weight, in (0, 1].
    """

    index: int
    name: str
    address: str
    weight: int = 1
    max_conns: int = 0
    effective_weight: int = 0
    current_weight: int = 0
    conns: int = 0
    queued: int = 0
    sampled_load: float = 0.0
    # health state maintained by the balancer
    up: bool = True
    fails: int = 0
    failed_until: float = -1.0
    #: slow start: share of the weight in use after coming back (1 = all)
    ramp: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.effective_weight = self.weight

    @property
    def full(self) -> bool:
        return self.max_conns > 0 and self.conns >= self.max_conns


class RequestView(Protocol):
    """What a policy may read of a request."""

    client: int
    client_ip: tuple[int, int, int, int]


class Eligibility(Protocol):
    def __call__(self, backend: Backend, /) -> bool: ...


class Policy:
    """Base class; subclasses set ``name`` and ``Options`` and implement ``choose``.

    ``available(b)`` tells whether ``b`` may be tried now (up, not failed
    passively, not at ``max_conns``, not excluded by an earlier try of the
    same request). Policies that hash over all servers (ip_hash,
    consistent_hash) need the full list; others just skip the unavailable.
    """

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: the products (:data:`PRODUCTS`) that have this rule; a scenario naming
    #: the policy under another product is refused
    products: ClassVar[frozenset[str]]
    #: the product the balancer runs as; ``make_policy`` sets it, for the
    #: few rules that differ by product (Envoy's weighted round robin)
    product: str = "nginx"
    #: True when the policy maps a request to a fixed server (hashing): a
    #: request whose server is full then waits in that server's queue
    #: instead of the backend queue (HAProxy persistence semantics).
    sticky: ClassVar[bool] = False

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        self.backends = list(backends)
        self.options = options
        self.rng = rng

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        raise NotImplementedError

    # Hooks the balancer calls; most policies ignore them.
    def on_response(self, backend: Backend, rtt: float, now: float) -> None:
        """A response arrived from ``backend`` after ``rtt`` seconds."""

    def on_failure(self, backend: Backend, rtt: float, now: float) -> None:
        """A try of ``backend`` failed after ``rtt`` seconds (refused, reset, timed out)."""

    def on_sample(self, backend: Backend, now: float) -> None:
        """The health check / agent just refreshed ``backend.sampled_load``."""

    def attach(self, roster: Roster) -> None:
        """The balancer hands over its roster before the first choice; a policy with a
        fast path (round_robin, least_conn, power_of_d) keeps it."""


POLICIES: dict[str, type[Policy]] = {}


def register(name: str) -> Callable[[type[Policy]], type[Policy]]:
    """``register("name")(Cls)``: add policy ``Cls`` to :data:`POLICIES` under ``name``
    (its ``products`` checked). Usable as a decorator outside the compiled modules."""

    def deco(cls: type[Policy]) -> type[Policy]:
        if name in POLICIES:
            raise ValueError(f"policy {name!r} registered twice")
        products: frozenset[str] = getattr(cls, "products", frozenset())
        if not products or not products <= set(PRODUCTS):
            raise ValueError(
                f"policy {name!r} must declare products, a non-empty subset of {PRODUCTS}"
            )
        cls.name = name
        POLICIES[name] = cls
        return cls

    return deco


class Uniforms:
    """Uniform draws in [0, 1) from a policy's ``rng``, pre-drawn in batches.

    A scalar ``Generator.random()`` call costs about a microsecond, a list
    index a few tens of nanoseconds; policies draw once or twice per request,
    so batching keeps a choice within the ~1-3 µs budget. The draws are the
    generator's own sequence, consumed in blocks of ``batch``.
    """

    __slots__ = ("_batch", "_buf", "_i", "_n", "_rng")

    def __init__(self, rng: np.random.Generator, batch: int = 4096):
        self._rng = rng
        self._batch = batch
        self._buf: list[float] = []
        self._i = 0
        self._n = 0

    def next(self) -> float:
        """The next uniform in [0, 1)."""
        i = self._i
        if i >= self._n:
            self._buf = self._rng.random(self._batch).tolist()
            self._n = len(self._buf)
            i = 0
        self._i = i + 1
        return self._buf[i]
