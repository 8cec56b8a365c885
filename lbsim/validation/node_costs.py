"""What a Galera node spends on each write-set it receives, measured at its own CPU.

``lbsim calibrate`` measures the apply cost once, with :func:`measure_node_costs`,
as the mean over the nodes that receive the writer's write-sets, on a stack
whose nodes have the same cores. A node squeezed
into a small CFS quota spends more CPU per write-set than that: measured on
the slow-galera-node story (db3 at 0.1 cores, 80 write-sets/s), db3 used 0.047
cores where the even stack's cost gave 0.021, and the model under-predicted
its receive queue threefold and flow control from 4-10 % to 0. Threads
throttled in the middle of their work (the applier, the group-communication
receiver, InnoDB's background threads) wake to cold caches and spin on the
mutexes the throttled ones hold.

:func:`measure_node_costs` measures it on the stack of the variant replayed:
each receiving node's CPU over ``n`` sequential single-row writes, less its
own idle rate (the lower of two quiet windows of ``idle`` s, before and after
the writes) over the same wall time, divided by ``n``, after waiting
``settle`` s for the slowest applier to drain its queue. :func:`cost_factors`
turns these into each node's ``write_set_cost`` against the calibrated mean
(the CPU of each write-set it receives scaled; its reads keep their cost),
which the story's model then uses for that variant.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lbsim.validation.calibration import (
    CalibrationError,
    Snapshot,
    _check,
    single_row_requests,
)
from lbsim.validation.loadgen import send_sequential

#: the least and the most a node's measured cost may be of the calibrated mean
#: before the measurement is refused as broken (a stalled node, a lost counter)
FACTOR_RANGE = (0.25, 20.0)

Clock = Callable[[], float]
Sleep = Callable[[float], None]


def measure_node_costs(
    url: str,
    cpu: Snapshot,
    nodes: Sequence[str],
    n: int = 300,
    *,
    warmup: int = 20,
    idle: float = 2.0,
    settle: float = 1.0,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
) -> dict[str, float]:
    """CPU seconds per write-set of each of ``nodes`` (see the module). The idle
    rate is the lower of two quiet windows, before and after the writes: a node
    just started may still be busy with its own start-up in the first (in CI a
    node's idle rate measured then swallowed its whole write-set CPU)."""
    if n < 1 or warmup < 0 or idle <= 0 or settle < 0:
        raise ValueError(
            f"n {n} must be >= 1, warmup {warmup} >= 0, idle {idle} > 0 and settle {settle} >= 0"
        )
    writes = single_row_requests("w", n)
    if warmup:
        _check(send_sequential(url, writes[:warmup]), "warm-up writes")
    sleep(settle)
    t0, a = clock(), cpu()
    sleep(idle)
    t1, b = clock(), cpu()
    done = send_sequential(url, writes)
    sleep(settle)
    t2, c = clock(), cpu()
    sleep(idle)
    t3, d = clock(), cpu()
    _check(done, "write-set cost measurement")
    out = {}
    for node in nodes:
        if any(node not in x for x in (a, b, c, d)):
            raise CalibrationError(f"no CPU counter for database node {node!r}")
        rate = min((b[node] - a[node]) / (t1 - t0), (d[node] - c[node]) / (t3 - t2))
        out[node] = max(c[node] - b[node] - rate * (t2 - t1), 0.0) / n
    return out


def cost_factors(costs: Mapping[str, float], calibrated: float) -> dict[str, float]:
    """Each node's measured cost over the calibrated mean apply cost, rounded to 3 digits."""
    if not (math.isfinite(calibrated) and calibrated > 0):
        raise CalibrationError(f"the calibrated apply cost {calibrated!r} is not above 0")
    out = {}
    low, high = FACTOR_RANGE
    for node, cost in costs.items():
        factor = cost / calibrated
        if not low <= factor <= high:
            raise CalibrationError(
                f"database node {node!r} spent {cost * 1e3:.3f} ms per write-set, "
                f"{factor:.2f}x the calibrated {calibrated * 1e3:.3f} ms: outside "
                f"{low:g}-{high:g}x, not a measurement of it"
            )
        out[node] = round(factor, 3)
    return out


def with_write_set_costs(data: dict[str, Any], factors: Mapping[str, float]) -> dict[str, Any]:
    """A calibrated scenario's data with each named database node's
    ``write_set_cost`` multiplied by its factor."""
    db = data.get("database")
    if not factors or not isinstance(db, dict):
        return data
    nodes = db.get("nodes")
    if not isinstance(nodes, list):
        count = int(nodes) if isinstance(nodes, int) else 0
        nodes = [{"name": f"db{i + 1}"} for i in range(count)]
        db["nodes"] = nodes
    for node in nodes:
        if isinstance(node, dict) and node.get("name") in factors:
            cost = float(node.get("write_set_cost", 1.0)) * factors[node["name"]]
            node["write_set_cost"] = round(cost, 6)
    return data
