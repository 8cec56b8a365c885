"""What a Galera target's nodes spend on the write-sets they receive.

On the built-in stack ``lbsim calibrate`` measures a node's CPU per received
write-set with lbsim's own single-row writes
(:func:`lbsim.validation.node_costs.measure_node_costs`). A user's stack gets
no writes but its application's, so the cost is read from the class
measurements themselves: while a class's requests run one at a time, each
database node's CPU (cgroups, less its idle rate) is what it spent *serving*
the requests that came to it plus what it spent on the write-sets the other
nodes sent it. Per request of the class, node *k*:

    cpu_k = s * served_k + a * received_k

``served_k``: the connections it accepted (``Connections``, less what reading
the status adds), ``received_k``: the write-sets it received
(``wsrep_received``). With at least two nodes whose (served, received) are not
proportional — a node that only replicates, or an app node pinned to each
database node — the least-squares fit gives ``a``, the CPU per received
write-set, and ``s``. The calibration's ``apply_cpu`` is the mean of ``a`` over
the classes that wrote, each weighted by how much its fit is worth (a class
that sent few write-sets measures ``a`` through the nodes' noise: in the
WordPress example the account page's 0.45 write-sets per request fitted
-2.3 ms where the comments' 4.1 fitted 0.37 ms); the classes'
database CPU then keeps only what the serving nodes spent
(:func:`lbsim.validation.calibration.calibrate_scenario` takes
``writes x replicas x apply_cpu`` off it; ``writes`` is the write-sets a
request replicated, ``wsrep_replicated``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lbsim.target.topology import counter_delta, node_counter_delta

#: the status counters a Galera target's class measurement reads besides the
#: statements': write-sets a node replicated (its own) and received (others')
WSREP_COUNTERS = ("wsrep_replicated", "wsrep_received")
#: a fit whose two columns are this close to proportional (the normal
#: equations' determinant over the product of their diagonals) cannot tell
#: serving from receiving apart
_SINGULAR = 1e-6


@dataclass(frozen=True)
class NodeLoad:
    """One database node during one class's requests, per request."""

    node: str
    cpu: float  # CPU seconds it spent (idle rate taken off)
    served: float  # connections it accepted
    received: float  # write-sets it received from the others


@dataclass(frozen=True)
class Fit:
    """``cpu = serve * served + apply * received`` over one class's nodes."""

    serve: float
    apply: float
    #: how much ``apply`` is worth: the received column's sum of squares left
    #: once the served column is projected out (its variance is the nodes'
    #: noise over this, so classes are averaged with these weights)
    weight: float


def fit_node_loads(loads: Sequence[NodeLoad]) -> Fit | None:
    """The least-squares fit ``cpu = serve * served + apply * received`` over
    the nodes; None when the nodes cannot separate the two (fewer than two, or
    served and received proportional)."""
    if len(loads) < 2:
        return None
    sxx = sum(x.served * x.served for x in loads)
    syy = sum(x.received * x.received for x in loads)
    sxy = sum(x.served * x.received for x in loads)
    det = sxx * syy - sxy * sxy
    if sxx <= 0 or syy <= 0 or det <= _SINGULAR * sxx * syy:
        return None
    bx = sum(x.served * x.cpu for x in loads)
    by = sum(x.received * x.cpu for x in loads)
    return Fit((bx * syy - by * sxy) / det, (by * sxx - bx * sxy) / det, det / sxx)


@dataclass
class WriteSetCosts:
    """The fit of every class that wrote, and the cost the model takes."""

    #: CPU per received write-set (s), ≥ 0; 0 when no class could be fitted
    apply_cpu: float = 0.0
    #: per fitted class: its fit and the write-sets received per request (all nodes)
    per_class: dict[str, tuple[Fit, float]] = field(default_factory=dict)
    #: one line per class that wrote but could not be fitted, and why
    notes: list[str] = field(default_factory=list)


def write_set_costs(loads: Mapping[str, Sequence[NodeLoad]]) -> WriteSetCosts:
    """The CPU per received write-set from each class's node loads (classes
    whose requests sent no write-set are left out)."""
    out = WriteSetCosts()
    for name, nodes in loads.items():
        received = sum(x.received for x in nodes)
        if received <= 0:
            continue
        fit = fit_node_loads(nodes)
        if fit is None:
            out.notes.append(
                f"class {name}: its {received:.2f} write-sets per request went to nodes that "
                "also served it in the same proportion: serving and receiving cannot be told "
                "apart, its database CPU stays on the serving node"
            )
            continue
        out.per_class[name] = (fit, received)
    total = sum(f.weight for f, _ in out.per_class.values())
    if total > 0:
        mean = sum(f.apply * f.weight for f, _ in out.per_class.values()) / total
        out.apply_cpu = max(mean, 0.0)
    return out


def node_loads(
    n: int,
    cpu: Mapping[str, float],
    before: Mapping[str, Mapping[str, str]],
    after: Mapping[str, Mapping[str, str]],
    own: Mapping[str, float],
) -> list[NodeLoad]:
    """Each node's load per request over a class's ``n`` requests: ``cpu`` its
    CPU seconds per request, ``before``/``after`` its status counters, ``own``
    what one status reading adds to a counter."""
    return [
        NodeLoad(
            node,
            cpu.get(node, 0.0),
            node_counter_delta(b, after[node], "connections", own) / n,
            node_counter_delta(b, after[node], "wsrep_received", own) / n,
        )
        for node, b in before.items()
        if node in after
    ]


def replicated_per_request(
    n: int, before: Mapping[str, Mapping[str, str]], after: Mapping[str, Mapping[str, str]]
) -> float:
    """Write-sets the class's requests replicated, per request (every node's
    ``wsrep_replicated``: the serving nodes')."""
    return counter_delta(before, after, "wsrep_replicated") / n
