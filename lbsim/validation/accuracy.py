"""How far the model's prediction is from the measurement, metric by metric.

The bounds are the issue's acceptance bounds: a relative bound for
throughput and latency, an absolute one (in fractions, i.e. percentage
points / 100) for utilisation, Galera flow control and stale reads
(:data:`BOUNDS`, every level up to capacity). An overload level (above 100 %
of capacity) is judged by :data:`OVERLOAD_BOUNDS`: throughput and the
failures of each kind within 15 %. A failure is a fraction of the requests
sent (``failures.<reason>``, :mod:`lbsim.validation.failures`), and its
relative error is taken against at least :data:`FAILURE_FLOOR` of them, so a
fraction near 0 on both sides is a small error, never a division by zero.
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
    #: a relative error's denominator is at least this (0: the measured value)
    floor: float = 0.0


#: metric (dotted key of the results; ``*`` = every app node) → bound, at
#: every level up to capacity
BOUNDS: tuple[Bound, ...] = (
    Bound("throughput", "relative", 0.03),
    Bound("latency.mean", "relative", 0.15),
    Bound("latency.p95", "relative", 0.25),
    Bound("utilisation.app.*.cpu", "absolute", 0.05),
    Bound("galera.flow_control.paused", "absolute", 0.05),
    Bound("galera.stale_read_fraction", "absolute", 0.02),
)

#: a failure fraction's relative error is taken against at least this share
#: of the requests sent: 15 % of it is 0.3 percentage points
FAILURE_FLOOR = 0.02

#: above capacity: throughput saturation and failures of each kind
#: (``failures.<reason>``: fractions of the requests sent, by the horizon)
OVERLOAD_BOUNDS: tuple[Bound, ...] = (
    Bound("throughput", "relative", 0.15),
    Bound("failures.*", "relative", 0.15, FAILURE_FLOOR),
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
    floor: float = 0.0  # see Bound.floor
    #: half-width of the measured value's own 95 % interval, when it is one
    #: sample's estimate (a probe's stale fraction from its reads): an error
    #: within the bound plus this is noise, not a miss
    noise: float = 0.0

    @property
    def ok(self) -> bool:
        return math.isfinite(self.error) and self.error <= self.bound + self.noise

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def error(predicted: float, measured: float, kind: Kind, floor: float = 0.0) -> float:
    """``|predicted − measured|``, relative to ``max(|measured|, floor)`` for a
    relative metric."""
    if not (math.isfinite(predicted) and math.isfinite(measured)):
        return math.nan
    if kind == "absolute":
        return abs(predicted - measured)
    scale = max(abs(measured), floor)
    if scale == 0:
        return 0.0 if predicted == 0 else math.inf
    return abs(predicted - measured) / scale


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
            err = error(pv, mv, b.kind, b.floor)
            out.append(MetricError(scenario, level, key, pv, mv, err, b.kind, b.limit, b.floor))
    return out


def proportion_half_width(successes: int, n: int, z: float = 1.96) -> float:
    """The larger side of the Wilson 95 % interval around ``successes / n`` (0
    when ``n`` is 0): how far a fraction measured on ``n`` trials can lie from
    the true one by chance (100 reads at 5 % stale: about 0.05)."""
    if n <= 0:
        return 0.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(centre + half - p, p - (centre - half))
