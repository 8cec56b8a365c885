"""Which balancer product the real stack runs: the scenario's ``balancer.product``.

The model follows the rules of the product the scenario names (nginx skips a
full peer and answers 502, HAProxy queues and answers 503 after ``timeout
queue``, Envoy overflows its circuit breaker); the stack runs that same
product, so replay and model agree by construction. ``--balancer`` (the
:class:`~lbsim.validation.compose.StackOptions` field) still picks the stack's
balancer for a scenario that does not say, and must agree with one that does.

Envoy cannot run on the stack: every image is built from Debian packages and
Debian (bookworm, the stack's base) has no Envoy package.
"""

from __future__ import annotations

from typing import Any

from lbsim.scenario.schema import Scenario
from lbsim.validation.policies import BALANCERS, BalancerKind, ReplayUnsupported

#: the products the simulator models
PRODUCTS = ("nginx", "haproxy", "envoy")

ENVOY_REFUSED = (
    "balancer.product envoy cannot run on the real stack: Debian (bookworm, the base of "
    "every stack image) has no Envoy package (`apt-cache policy envoy envoyproxy` finds "
    "none) and the stack installs Debian packages only. The simulator still models Envoy "
    "(lbsim run / compare); replay with balancer.product nginx or haproxy"
)


def scenario_product(scenario: Scenario) -> str | None:
    """The product the scenario names (``balancer.product`` written in the file or
    set with ``--set``), None when it leaves the default."""
    bal = scenario.balancer
    if "product" not in bal.model_fields_set:
        return None
    return str(getattr(bal, "product", "nginx"))


def model_product(scenario: Scenario) -> str:
    """The product whose rules the model follows for ``scenario`` (default nginx)."""
    return str(getattr(scenario.balancer, "product", "nginx"))


def stack_balancer(scenario: Scenario, requested: str | None = None) -> BalancerKind:
    """The balancer the stack of ``scenario`` runs.

    ``requested`` is ``--balancer`` (None: not given). The scenario's
    ``balancer.product`` wins; a ``requested`` one that disagrees is an error,
    as is Envoy (no Debian package) or an unknown name.
    """
    said = scenario_product(scenario)
    for name in (said, requested):
        if name == "envoy":
            raise ReplayUnsupported(ENVOY_REFUSED)
        if name is not None and name not in BALANCERS:
            raise ReplayUnsupported(
                f"unknown balancer {name!r}; choose one of {', '.join(BALANCERS)} "
                f"(the simulator also models envoy, which the stack cannot run)"
            )
    if said is None:
        return _kind(requested or "nginx")
    if requested is not None and requested != said:
        raise ReplayUnsupported(
            f"scenario {scenario.name!r} says balancer.product: {said}, but --balancer asks "
            f"for {requested}: the stack runs the product the model follows. Drop --balancer, "
            f"or change balancer.product (--set balancer.product={requested})"
        )
    return _kind(said)


def _kind(name: str) -> BalancerKind:
    return "haproxy" if name == "haproxy" else "nginx"


def model_overrides(scenario: Scenario, balancer: BalancerKind) -> list[str]:
    """``--set`` overrides that make a scenario silent about its product model the
    stack's ``balancer`` (empty when it names one, or the schema has no product key)."""
    if (
        scenario_product(scenario) is not None
        or "product" not in type(scenario.balancer).model_fields
    ):
        return []
    return [f"balancer.product={balancer}"]


def with_product(raw: dict[str, Any], scenario: Scenario, balancer: BalancerKind) -> dict[str, Any]:
    """The scenario file's data (``raw``) naming the stack's product when it was silent."""
    if model_overrides(scenario, balancer):
        bal = raw.get("balancer")
        raw["balancer"] = {**(bal if isinstance(bal, dict) else {}), "product": balancer}
    return raw
