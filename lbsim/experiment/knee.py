"""The knee of a latency curve.

Definition used everywhere in lbsim: along the swept parameter ``x`` (in
increasing order), the knee is the **first point whose p95 latency is more
than** ``factor`` **times (default 2) its value at the lowest swept value**.
At low load the p95 is mostly service time; twice that means requests now
spend as long queueing as being served, which is where the curve turns up
and where capacity planning draws the line. It is a threshold rule rather
than a curvature estimate on purpose: it is stable with noisy replications
and coarse grids, and it answers "up to what load does latency stay near its
floor?". When no point crosses the threshold the sweep has no knee (``None``);
when the lowest point is itself saturated the rule cannot see a knee either.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_FACTOR = 2.0


@dataclass(frozen=True)
class Knee:
    #: index into the sequence as given (not the sorted order)
    index: int
    x: float
    y: float
    #: the latency at the lowest x, and the threshold ``factor × baseline``
    baseline: float
    threshold: float


def find_knee(
    x: Sequence[float], y: Sequence[float], factor: float = DEFAULT_FACTOR
) -> Knee | None:
    """The first point (by increasing ``x``) with ``y > factor × y(min x)``, or ``None``."""
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length ({len(x)} and {len(y)})")
    if factor <= 1:
        raise ValueError(f"the knee factor must be > 1 (got {factor:g})")
    order = sorted(range(len(x)), key=lambda i: x[i])
    valid = [i for i in order if not math.isnan(y[i])]
    if len(valid) < 2:
        return None
    baseline = y[valid[0]]
    if not baseline > 0:
        return None
    threshold = factor * baseline
    for i in valid[1:]:
        if y[i] > threshold:
            return Knee(i, float(x[i]), float(y[i]), float(baseline), float(threshold))
    return None
