"""Which real balancer rule replays each lbsim policy (table: validation/README.md).

Each policy declares the products that have its rule
(``POLICIES[name].products``); the stack runs the scenario's
``balancer.product`` (:mod:`lbsim.validation.products`) and replays a policy
only under a product that has it:

- nginx: round_robin (default smooth WRR), least_conn, ip_hash, random,
  power_of_d (``random two least_conn``), consistent_hash
  (``hash $remote_addr|$http_x_lbsim_client consistent``), hash_nginx
  (``hash ...`` without ``consistent``); least_time is NGINX Plus only: refused
- HAProxy: roundrobin_haproxy (``roundrobin``), static_rr (``static-rr``),
  leastconn_haproxy (``leastconn``), first, random (``random(1)``),
  power_of_d (``random(d)``), consistent_hash (``source|hdr(X-Lbsim-Client)``
  with ``hash-type consistent``), hash_haproxy (the same, ``hash-type
  map-based``), least_load (``roundrobin|leastconn`` with ``agent-check``)
- Envoy policies (peak_ewma, ring_hash, maglev): refused, the stack cannot
  run Envoy

The Galera proxy (HAProxy in TCP mode) takes the HAProxy rule nearest to
``routing.policy`` (``exact=False``): the model routes database connections
by the policy's own rule, whatever the product.

The client address a hash sees is the replayed client's, sent in
``X-Forwarded-For`` (nginx ``real_ip_header``, HAProxy ``http-request set-src``);
the client id is sent in ``X-Lbsim-Client``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lbsim.model.policies import POLICIES

BalancerKind = Literal["nginx", "haproxy"]
BALANCERS: tuple[BalancerKind, ...] = ("nginx", "haproxy")

#: header carrying the replayed client's id (consistent_hash key ``client``)
CLIENT_HEADER = "X-Lbsim-Client"


class ReplayUnsupported(ValueError):
    """The scenario asks for something the real stack cannot reproduce."""


@dataclass(frozen=True)
class HAProxyRule:
    """What goes into an HAProxy backend for a policy."""

    #: the ``balance`` line's argument
    balance: str
    #: ``hash-type`` (None: HAProxy's default, map-based)
    hash_type: str | None = None
    #: servers run the agent-check (policy least_load)
    agent: bool = False


#: policies a product has whose rule the stack's build of that product lacks
_NOT_IN_STACK = {
    "least_time": "least_time is a rule of the commercial NGINX Plus; the stack runs Debian's "
    "open-source nginx, which has no least_time (the simulator still models it)",
}
#: the rule of the other product that comes nearest (refusal hints)
_NEAREST = {
    "round_robin": "roundrobin_haproxy",
    "least_conn": "leastconn_haproxy",
    "ip_hash": "hash_haproxy",
    "hash_nginx": "hash_haproxy",
    "roundrobin_haproxy": "round_robin",
    "static_rr": "round_robin",
    "leastconn_haproxy": "least_conn",
    "hash_haproxy": "hash_nginx",
}
#: the HAProxy rule the Galera proxy uses for an nginx routing policy (``exact=False``)
_DB_PROXY = {
    "round_robin": "roundrobin_haproxy",
    "least_conn": "leastconn_haproxy",
    "ip_hash": "hash_haproxy",
    "hash_nginx": "hash_haproxy",
}


#: whose sampling a power_of_d flavour reproduces
_FLAVOURS = {"nginx": "nginx", "haproxy": "HAProxy", "envoy": "Envoy"}


def products(policy: str) -> frozenset[str]:
    """The products that have ``policy``'s rule."""
    return frozenset(getattr(POLICIES[policy], "products", frozenset(BALANCERS)))


def _options(policy: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The policy's options with its defaults filled in (validated by the policy's schema)."""
    return POLICIES[policy].Options.model_validate(dict(options or {})).model_dump()


def _check(policy: str, balancer: BalancerKind) -> None:
    """``policy`` is known and ``balancer`` (the stack's product) replays it."""
    if policy not in POLICIES:
        raise ReplayUnsupported(
            f"unknown policy {policy!r}; valid policies: {', '.join(sorted(POLICIES))}"
        )
    if policy in _NOT_IN_STACK:
        raise ReplayUnsupported(f"policy {policy!r} cannot be replayed: {_NOT_IN_STACK[policy]}")
    have = products(policy)
    if balancer in have:
        return
    owners = " and ".join(sorted(have))
    if not have & set(BALANCERS):
        why = f"it is {owners}'s rule, and the stack cannot run {owners}"
    else:
        why = f"it is {owners}'s rule, not {balancer}'s (balancer.product: {owners})"
    near = _NEAREST.get(policy)
    hint = f"; {balancer}'s nearest rule is {near}" if near and balancer in products(near) else ""
    raise ReplayUnsupported(
        f"policy {policy!r} cannot be replayed by {balancer}: {why}{hint}. "
        f"Replayable policies: nginx: {', '.join(replayable('nginx'))}; "
        f"haproxy: {', '.join(replayable('haproxy'))}"
    )


def _hash_key_nginx(opts: Mapping[str, Any]) -> str:
    return "$remote_addr" if opts["key"] == "client_ip" else "$http_x_lbsim_client"


def _hash_key_haproxy(opts: Mapping[str, Any]) -> str:
    return "source" if opts["key"] == "client_ip" else f"hdr({CLIENT_HEADER})"


def nginx_rule(policy: str, options: Mapping[str, Any] | None = None) -> str:
    """The nginx ``upstream`` directive for ``policy`` ('' for the default round robin)."""
    _check(policy, "nginx")
    opts = _options(policy, options)
    if policy == "round_robin":
        return ""
    if policy in ("least_conn", "random", "ip_hash"):
        return f"{policy};"
    if policy == "power_of_d":
        if opts["flavour"] not in (None, "nginx"):
            raise ReplayUnsupported(
                f"power_of_d with flavour {opts['flavour']!r} reproduces "
                f"{_FLAVOURS[opts['flavour']]}, not nginx; leave flavour out or use nginx "
                "(random two least_conn)"
            )
        if opts["choices"] != 2:
            raise ReplayUnsupported(
                f"nginx samples exactly two peers ('random two least_conn'), the scenario asks "
                f"for choices={opts['choices']}; use choices 2 or balancer.product haproxy "
                "(random(d))"
            )
        return "random two least_conn;"
    if policy == "consistent_hash":
        return f"hash {_hash_key_nginx(opts)} consistent;"
    if policy == "hash_nginx":
        return f"hash {_hash_key_nginx(opts)};"
    raise ReplayUnsupported(f"policy {policy!r} has no nginx mapping yet")  # pragma: no cover


def haproxy_rule(
    policy: str, options: Mapping[str, Any] | None = None, exact: bool = True
) -> HAProxyRule:
    """The HAProxy ``balance`` rule (and extras) for ``policy``.

    ``exact=False`` (the Galera proxy): an nginx policy takes its nearest
    HAProxy rule instead of being refused.
    """
    if not exact and policy in _DB_PROXY:
        return haproxy_rule(_DB_PROXY[policy], None, exact=True)
    _check(policy, "haproxy")
    opts = _options(policy, options)
    if policy == "roundrobin_haproxy":
        return HAProxyRule("roundrobin")
    if policy == "static_rr":
        return HAProxyRule("static-rr")
    if policy == "leastconn_haproxy":
        return HAProxyRule("leastconn")
    if policy == "random":
        return HAProxyRule("random(1)")
    if policy == "power_of_d":
        if opts["flavour"] not in (None, "haproxy"):
            raise ReplayUnsupported(
                f"power_of_d with flavour {opts['flavour']!r} reproduces "
                f"{_FLAVOURS[opts['flavour']]}, not HAProxy's random(d); leave flavour out "
                "or use haproxy"
            )
        return HAProxyRule(f"random({opts['choices']})")
    if policy == "consistent_hash":
        return HAProxyRule(_hash_key_haproxy(opts), hash_type="consistent")
    if policy == "hash_haproxy":
        kind = f"map-based {opts['function']}" + (" avalanche" if opts["avalanche"] else "")
        return HAProxyRule(_hash_key_haproxy(opts), hash_type=kind)
    if policy == "first":
        return HAProxyRule("first")
    if policy == "least_load":
        return HAProxyRule(str(opts["algorithm"]), agent=True)
    raise ReplayUnsupported(f"policy {policy!r} has no HAProxy mapping yet")  # pragma: no cover


def replayable(balancer: BalancerKind) -> list[str]:
    """Policies the given balancer can replay, sorted."""
    return [
        name
        for name in sorted(POLICIES)
        if balancer in products(name) and name not in _NOT_IN_STACK
    ]
