"""Which balancer product the real stack runs: the scenario's ``balancer.product``.

The model follows the rules of the scenario's product (nginx skips a full
peer and answers 502, HAProxy queues and answers 503 after ``timeout queue``,
Envoy overflows its circuit breaker); the stack runs that same product, so
replay and model agree by construction. A scenario that names no product
takes the one its policy implies (nginx, else HAProxy, else Envoy;
:func:`lbsim.scenario.products.implied_product`).

``--balancer`` (the :class:`~lbsim.validation.compose.StackOptions` field)
picks the product only for a *file* that names none: the file is then read
with ``balancer.product`` set (:func:`product_overrides`), so its default
policy and options are that product's and the model follows it too. Against
a product the file names it must agree.

Envoy cannot run on the stack: every image is built from Debian packages and
Debian (bookworm, the stack's base) has no Envoy package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lbsim.scenario.loader import read_scenario_file
from lbsim.scenario.overrides import apply_overrides
from lbsim.scenario.schema import Scenario
from lbsim.scenario.yamlio import parse_yaml
from lbsim.validation.policies import BALANCERS, BalancerKind, ReplayUnsupported

#: the products the simulator models
PRODUCTS = ("nginx", "haproxy", "envoy")

ENVOY_REFUSED = (
    "balancer.product envoy cannot run on the real stack: Debian (bookworm, the base of "
    "every stack image) has no Envoy package (`apt-cache policy envoy envoyproxy` finds "
    "none) and the stack installs Debian packages only. The simulator still models Envoy "
    "(lbsim run / compare); replay with balancer.product nginx or haproxy"
)


def model_product(scenario: Scenario) -> str:
    """The product whose rules the model follows for ``scenario``."""
    return str(scenario.balancer.product)


def _check_name(name: str | None) -> None:
    if name == "envoy":
        raise ReplayUnsupported(ENVOY_REFUSED)
    if name is not None and name not in BALANCERS:
        raise ReplayUnsupported(
            f"unknown balancer {name!r}; choose one of {', '.join(BALANCERS)} "
            "(the simulator also models envoy, which the stack cannot run)"
        )


def stack_balancer(scenario: Scenario, requested: str | None = None) -> BalancerKind:
    """The balancer the stack of ``scenario`` runs: its ``balancer.product``.

    ``requested`` is ``--balancer`` (None: not given); one that disagrees
    with the product is an error, as is Envoy (no Debian package) or an
    unknown name. (A file that names no product is read with the requested
    one first: :func:`product_overrides`.)
    """
    product = model_product(scenario)
    _check_name(requested)
    if product == "envoy":
        raise ReplayUnsupported(
            f"scenario {scenario.name!r} (policy {scenario.balancer.policy}): {ENVOY_REFUSED}"
        )
    if requested is not None and requested != product:
        raise ReplayUnsupported(
            f"scenario {scenario.name!r} is balancer.product {product}, but --balancer asks "
            f"for {requested}: the stack runs the product the model follows. Drop --balancer, "
            f"or change balancer.product (--set balancer.product={requested})"
        )
    return "haproxy" if product == "haproxy" else "nginx"


def names_product(path: Path | str, overrides: Sequence[str] = ()) -> bool:
    """Whether the scenario file (with ``overrides``) writes ``balancer.product``."""
    data, _ = parse_yaml(read_scenario_file(path), str(path))
    if not isinstance(data, dict):
        return False
    bal = apply_overrides(data, overrides, str(path)).get("balancer")
    return isinstance(bal, dict) and bal.get("product") is not None


def product_overrides(
    path: Path | str, requested: str | None, overrides: Sequence[str] = ()
) -> list[str]:
    """``--set`` overrides that read a file naming no product as ``requested``'s
    (``[]`` when nothing is requested or the file names its product)."""
    _check_name(requested)
    if requested is None or names_product(path, overrides):
        return []
    return [f"balancer.product={requested}"]
