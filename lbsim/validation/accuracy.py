"""How far the model's prediction is from the measurement, metric by metric.

The bounds are the issue's acceptance bounds: a relative bound for
throughput and latency, an absolute one (in fractions, i.e. percentage
points / 100) for utilisation, Galera flow control and stale reads.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from lbsim.stats.replications import flatten

Kind = Literal["relative", "absolute"]


@dataclass(frozen=True)
class Bound:
    metric: str
    kind: Kind
    limit: float


#: metric (dotted key of the results; ``*`` = every app node) → bound
BOUNDS: tuple[Bound, ...] = (
    Bound("throughput", "relative", 0.05),
    Bound("latency.mean", "relative", 0.20),
    Bound("latency.p95", "relative", 0.30),
    Bound("utilisation.app.*.cpu", "absolute", 0.07),
    Bound("galera.flow_control.paused", "absolute", 0.10),
    Bound("galera.stale_read_fraction", "absolute", 0.10),
)


@dataclass(frozen=True)
class MetricError:
    scenario: str
    level: str
    metric: str
    predicted: float
    measured: float
    error: float
    kind: Kind
    bound: float

    @property
    def ok(self) -> bool:
        return math.isfinite(self.error) and self.error <= self.bound

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def error(predicted: float, measured: float, kind: Kind) -> float:
    if not (math.isfinite(predicted) and math.isfinite(measured)):
        return math.nan
    if kind == "absolute":
        return abs(predicted - measured)
    if measured == 0:
        return 0.0 if predicted == 0 else math.inf
    return abs(predicted - measured) / abs(measured)


def _expand(pattern: str, keys: Mapping[str, float]) -> list[str]:
    if "*" not in pattern:
        return [pattern]
    head, _, tail = pattern.partition("*")
    return sorted(k for k in keys if k.startswith(head) and k.endswith(tail) and k != head + tail)


def compare(
    scenario: str,
    level: str,
    predicted: Mapping[str, Any],
    measured: Mapping[str, Any],
    bounds: tuple[Bound, ...] = BOUNDS,
) -> list[MetricError]:
    """One :class:`MetricError` per bounded metric present in both results."""
    p, m = flatten(dict(predicted)), flatten(dict(measured))
    out = []
    for b in bounds:
        for key in _expand(b.metric, m):
            if key not in p or key not in m:
                continue
            pv, mv = float(p[key]), float(m[key])
            out.append(
                MetricError(scenario, level, key, pv, mv, error(pv, mv, b.kind), b.kind, b.limit)
            )
    return out
