"""Replaying a slow Galera node: its ``slowness`` and its ``latency`` on the real stack.

``slowness`` s multiplies every CPU cost on the node. The stack can only give
the container less CPU (a CFS quota), and that is not the same: a single
applier thread under a quota runs at full speed until the quota is spent,
then waits for the next period; only on average does the node do 1/s of the
work. So the replay and its prediction both run the *equivalent* scenario
(:func:`equivalent`): that node with ``cores: cores / s`` and ``slowness: 1``.
The model and the stack then agree by construction, and the report prints
what was replayed (:func:`replayed_lines`). Below one core a database
container's quota has a 10 ms period, not Docker's 100 ms
(:func:`lbsim.validation.compose.db_cpu_limit`), so its waits stay short.

``latency`` L is the model's extra one-way delay to the node: group
communication (every write-set's total-order round, a causal read's round)
waits ``2 L`` more, a round trip to the slowest member; queries from PHP are
not delayed. The stack delays what the node *sends* on Galera's group
communication port (4567, either end of a connection) by ``2 L`` with
``tc netem`` (:func:`netem_commands`; the container gets ``NET_ADMIN``, the
image has iproute2), so every round trip through the node is ``2 L`` longer
and nothing else is. :func:`apply_delays` installs it once the stack is up; a
container or kernel that cannot (no ``tc``, no ``sch_netem``, no capability)
makes the replay :class:`~lbsim.validation.policies.ReplayUnsupported`.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from lbsim.scenario.database import Galera, ResolvedGaleraNode
from lbsim.scenario.schema import Scenario
from lbsim.validation.docker import StackError
from lbsim.validation.policies import ReplayUnsupported

if TYPE_CHECKING:
    from lbsim.validation.lifecycle import StackHandle

#: Galera's group communication port (gmcast.listen_addr)
GCOMM_PORT = 4567
#: the container's interface on the compose network
INTERFACE = "eth0"


def _nodes(scenario: Scenario) -> tuple[ResolvedGaleraNode, ...]:
    db = scenario.database
    return db.resolved_nodes() if isinstance(db, Galera) else ()


def slow_nodes(scenario: Scenario) -> dict[str, tuple[float, float]]:
    """``{node: (cores, slowness)}`` of every Galera node with a slowness other than 1."""
    return {n.name: (n.cores, n.slowness) for n in _nodes(scenario) if n.slowness != 1.0}


def equivalent_cores(cores: float, slowness: float) -> float:
    """The cores a node of ``cores`` and ``slowness`` is replayed (and predicted) with."""
    return round(cores / slowness, 4)


def equivalent(raw: dict[str, Any], scenario: Scenario) -> dict[str, Any]:
    """The scenario file's data with every slow Galera node as ``cores / slowness``
    cores and slowness 1 (``scenario``: the same data, loaded). The node list is
    written out in full where it was a count; other keys are kept."""
    slow = slow_nodes(scenario)
    if not slow:
        return copy.deepcopy(raw)
    out = copy.deepcopy(raw)
    db = out["database"]
    specs = db["nodes"] if isinstance(db.get("nodes"), list) else []
    nodes = []
    for i, n in enumerate(_nodes(scenario)):
        spec = dict(specs[i]) if i < len(specs) else {}
        spec["name"] = n.name
        if n.name in slow:
            spec["cores"] = equivalent_cores(*slow[n.name])
            spec.pop("slowness", None)
        nodes.append(spec)
    db["nodes"] = nodes
    return out


def replayed_lines(scenario: Scenario) -> list[str]:
    """What the replay makes of the slow and the distant nodes, one line each."""
    out = [
        f"{name}: cores {c:g} x slowness {s:g} replayed as {equivalent_cores(c, s):g} cores, "
        "slowness 1 (in the model too)"
        for name, (c, s) in slow_nodes(scenario).items()
    ]
    out += [
        f"{name}: latency {d / 2:g} s replayed as tc netem delay {d * 1e3:g} ms on what it "
        f"sends on port {GCOMM_PORT} (a round trip through it {d * 1e3:g} ms longer)"
        for name, d in delays(scenario).items()
    ]
    return out


def delays(scenario: Scenario) -> dict[str, float]:
    """``{node: netem delay (s)}``: twice the latency of every Galera node that has one."""
    return {n.name: 2.0 * n.latency for n in _nodes(scenario) if n.latency > 0}


def netem_commands(delay: float, interface: str = INTERFACE) -> list[list[str]]:
    """The ``tc`` commands that delay the group communication a container sends
    by ``delay`` seconds: a prio qdisc whose every priority maps to band 1, the
    delay on band 3, and the Galera port (either end) filtered onto it."""
    dev = ["dev", interface]
    commands = [
        ["tc", "qdisc", "add", *dev, "root", "handle", "1:", "prio", "bands", "3",
         "priomap", *["0"] * 16],
        ["tc", "qdisc", "add", *dev, "parent", "1:3", "handle", "30:", "netem",
         "delay", f"{round(delay * 1e6)}us"],
    ]  # fmt: skip
    for end in ("dport", "sport"):
        commands.append(
            ["tc", "filter", "add", *dev, "parent", "1:", "protocol", "ip", "prio", "1",
             "u32", "match", "ip", end, str(GCOMM_PORT), "0xffff", "flowid", "1:3"]
        )  # fmt: skip
    return commands


def apply_delays(handle: StackHandle, scenario: Scenario) -> dict[str, str]:
    """Install every node's delay (:func:`netem_commands`) in its running container;
    ``{node: tc's view of the qdiscs}``. :class:`ReplayUnsupported` naming the
    node and tc's answer when a container cannot."""
    shown = {}
    for node, delay in delays(scenario).items():
        try:
            for argv in netem_commands(delay):
                handle.exec(node, argv)
            shown[node] = handle.exec(node, ["tc", "qdisc", "show", "dev", INTERFACE])
        except StackError as exc:
            raise ReplayUnsupported(
                f"galera node {node!r} has latency {delay / 2:g} s: the replay delays its "
                f"group communication with tc netem (iproute2 in the mariadb image, "
                f"cap_add NET_ADMIN, the host kernel's sch_netem) and its container "
                f"refused: {exc}"
            ) from None
        if "netem" not in shown[node]:
            raise ReplayUnsupported(
                f"galera node {node!r}: tc accepted the delay but shows no netem qdisc: "
                f"{shown[node].strip()}"
            )
    return shown
