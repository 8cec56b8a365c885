"""Which real balancer rule replays each lbsim policy (table: validation/README.md).

- round_robin: nginx default (smooth weighted RR) / HAProxy ``roundrobin``
- least_conn: ``least_conn`` / ``leastconn``; leastconn_haproxy: HAProxy only
- power_of_d: ``random two least_conn`` (d = 2, flavour nginx) / ``random(d)``
- random: ``random`` / ``random(1)``
- least_load: HAProxy only, ``roundrobin|leastconn`` with ``agent-check``
- ip_hash: ``ip_hash`` / ``balance source``
- consistent_hash: ``hash $remote_addr|$http_x_lbsim_client consistent`` /
  ``balance source|hdr(X-Lbsim-Client)`` with ``hash-type consistent``
- first: HAProxy only, ``balance first``
- peak_ewma: refused (Finagle/Linkerd only)

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


_NO_NGINX = {
    "least_load": "nginx (open source) has no agent-check to learn the servers' load; "
    "use --balancer haproxy (agent-check)",
    "first": "nginx has no 'first available' rule; use --balancer haproxy (balance first)",
    "leastconn_haproxy": "it is HAProxy's leastconn rule (queued requests count); "
    "use --balancer haproxy, or policy least_conn for nginx's rule",
}
_NO_COUNTERPART = {
    "peak_ewma": "it is Finagle/Linkerd's P2C + peak EWMA, which neither nginx nor HAProxy has",
}


def _options(policy: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The policy's options with its defaults filled in (validated by the policy's schema)."""
    return POLICIES[policy].Options.model_validate(dict(options or {})).model_dump()


def _check_known(policy: str) -> None:
    if policy not in POLICIES:
        raise ReplayUnsupported(
            f"unknown policy {policy!r}; valid policies: {', '.join(sorted(POLICIES))}"
        )
    if policy in _NO_COUNTERPART:
        raise ReplayUnsupported(
            f"policy {policy!r} cannot be replayed: {_NO_COUNTERPART[policy]}. "
            f"Replayable policies: nginx: {', '.join(replayable('nginx'))}; "
            f"haproxy: {', '.join(replayable('haproxy'))}"
        )


def nginx_rule(policy: str, options: Mapping[str, Any] | None = None) -> str:
    """The nginx ``upstream`` directive for ``policy`` ('' for the default round robin)."""
    _check_known(policy)
    if policy in _NO_NGINX:
        raise ReplayUnsupported(f"policy {policy!r} has no nginx counterpart: {_NO_NGINX[policy]}")
    opts = _options(policy, options)
    if policy == "round_robin":
        return ""
    if policy == "least_conn":
        return "least_conn;"
    if policy == "random":
        return "random;"
    if policy == "ip_hash":
        return "ip_hash;"
    if policy == "power_of_d":
        if opts["flavour"] != "nginx":
            raise ReplayUnsupported(
                f"power_of_d with flavour {opts['flavour']!r} reproduces Envoy, not nginx; "
                "use flavour nginx (random two least_conn)"
            )
        if opts["choices"] != 2:
            raise ReplayUnsupported(
                f"nginx samples exactly two peers ('random two least_conn'), the scenario asks "
                f"for choices={opts['choices']}; use choices 2 or --balancer haproxy (random(d))"
            )
        return "random two least_conn;"
    if policy == "consistent_hash":
        var = "$remote_addr" if opts["key"] == "client_ip" else "$http_x_lbsim_client"
        return f"hash {var} consistent;"
    raise ReplayUnsupported(f"policy {policy!r} has no nginx mapping yet")  # pragma: no cover


def haproxy_rule(policy: str, options: Mapping[str, Any] | None = None) -> HAProxyRule:
    """The HAProxy ``balance`` rule (and extras) for ``policy``."""
    _check_known(policy)
    opts = _options(policy, options)
    if policy == "round_robin":
        return HAProxyRule("roundrobin")
    if policy in ("least_conn", "leastconn_haproxy"):
        return HAProxyRule("leastconn")
    if policy == "random":
        return HAProxyRule("random(1)")
    if policy == "power_of_d":
        return HAProxyRule(f"random({opts['choices']})")
    if policy == "ip_hash":
        return HAProxyRule("source")
    if policy == "consistent_hash":
        by = "source" if opts["key"] == "client_ip" else f"hdr({CLIENT_HEADER})"
        return HAProxyRule(by, hash_type="consistent")
    if policy == "first":
        return HAProxyRule("first")
    if policy == "least_load":
        return HAProxyRule(str(opts["algorithm"]), agent=True)
    raise ReplayUnsupported(f"policy {policy!r} has no HAProxy mapping yet")  # pragma: no cover


def replayable(balancer: BalancerKind) -> list[str]:
    """Policies the given balancer can replay, sorted."""
    out = []
    for name in sorted(POLICIES):
        if name in _NO_COUNTERPART or (balancer == "nginx" and name in _NO_NGINX):
            continue
        out.append(name)
    return out
