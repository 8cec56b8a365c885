"""Paired errors over repeated replays, their confidence interval, and a verdict.

Each load level is replayed R times with different seeds, and the model
simulates each replay's seed: the same arrival times, classes, clients and
demands. The error of one metric in replay ``i`` is *paired*:

* relative metrics (throughput, latency): ``e_i = (predicted_i − measured_i) / measured_i``
  (failure fractions: over ``max(measured_i, floor)``, so none near 0 divides by 0)
* absolute metrics (utilisation, flow control, stale reads): ``e_i = predicted_i − measured_i``

so the noise the replay and the model share (the trace) cancels, and what
is left varies only with the machine and the percentile estimates. Over the
R pairs: the mean ``ē``, the sample standard deviation ``s`` and the Student-t
95 % half-width ``h = t(0.975, R−1) · s / √R``. The bound ``b`` applies to
``|ē|``. The verdict, precisely:

* ``within``: ``|ē| ≤ b`` — the mean paired error meets the bound;
* ``miss`` (model error): ``|ē| − h > b`` — the whole 95 % interval lies
  beyond the bound on the side of the mean, so the miss is not the
  replays' noise: the model is off by more than the bound;
* ``inconclusive`` (noise): ``|ē| > b`` but ``|ē| − h ≤ b`` (or R < 2, where
  there is no interval): the interval straddles the bound — the noise is
  larger than the distance to the bound. ``r_needed`` is the smallest R
  whose half-width, with the same ``s``, would be below ``|ē| − b``
  (None with R < 2).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lbsim.validation.accuracy import Kind, MetricError

Verdict = Literal["within", "miss", "inconclusive"]

#: the most repetitions :func:`repetitions_needed` proposes
MAX_R = 200


def signed_error(predicted: float, measured: float, kind: Kind, floor: float = 0.0) -> float:
    """``predicted − measured``, relative to ``max(|measured|, floor)`` for a relative metric."""
    if not (math.isfinite(predicted) and math.isfinite(measured)):
        return math.nan
    if kind == "absolute":
        return predicted - measured
    scale = max(abs(measured), floor)
    if scale == 0:
        return 0.0 if predicted == 0 else math.copysign(math.inf, predicted)
    return (predicted - measured) / scale


def t_quantile(df: int, confidence: float = 0.95) -> float:
    """The two-sided Student-t quantile for ``df`` degrees of freedom."""
    from scipy import stats  # imported here: scipy.stats alone costs ~60 MB and 0.7 s

    return float(stats.t.ppf(0.5 + confidence / 2, df))


def half_width(values: Sequence[float], confidence: float = 0.95) -> float:
    """Student-t half-width of the mean of ``values`` (NaN with fewer than 2)."""
    n = len(values)
    if n < 2:
        return math.nan
    return t_quantile(n - 1, confidence) * _sd(values) / math.sqrt(n)


def _sd(values: Sequence[float]) -> float:
    n = len(values)
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def repetitions_needed(sd: float, distance: float, confidence: float = 0.95) -> int | None:
    """The smallest R (≥ 2) with ``t(R−1) · sd / √R ≤ distance``; None beyond :data:`MAX_R`."""
    if not (math.isfinite(sd) and math.isfinite(distance)) or distance <= 0:
        return None
    for r in range(2, MAX_R + 1):
        if t_quantile(r - 1, confidence) * sd / math.sqrt(r) <= distance:
            return r
    return None


def verdict(mean: float, half: float, bound: float) -> Verdict:
    """See the module's docstring."""
    if math.isfinite(mean) and abs(mean) <= bound:
        return "within"
    if math.isfinite(mean) and math.isfinite(half) and abs(mean) - half > bound:
        return "miss"
    if math.isinf(mean) and math.isfinite(half):
        return "miss"
    return "inconclusive"


@dataclass
class PairedMetric:
    """One metric of one level over its R paired replays."""

    scenario: str
    level: str
    metric: str
    kind: Kind
    bound: float
    floor: float = 0.0  # a relative error's least denominator (failure fractions)
    predicted: list[float] = field(default_factory=list)
    measured: list[float] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)  # signed, per replay

    @property
    def n(self) -> int:
        return len(self.errors)

    @property
    def mean(self) -> float:
        vals = [e for e in self.errors if not math.isnan(e)]
        return sum(vals) / len(vals) if vals else math.nan

    @property
    def half(self) -> float:
        vals = [e for e in self.errors if math.isfinite(e)]
        return half_width(vals) if len(vals) == len(self.errors) else math.nan

    @property
    def verdict(self) -> Verdict:
        return verdict(self.mean, self.half, self.bound)

    @property
    def r_needed(self) -> int | None:
        if self.verdict != "inconclusive" or self.n < 2:
            return None
        return repetitions_needed(_sd(self.errors), abs(self.mean) - self.bound)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            n=self.n,
            mean_error=self.mean,
            ci95=self.half,
            verdict=self.verdict,
            r_needed=self.r_needed,
            predicted_mean=_avg(self.predicted),
            measured_mean=_avg(self.measured),
        )
        return out


def _avg(values: Sequence[float]) -> float:
    vals = [v for v in values if math.isfinite(v)]
    return sum(vals) / len(vals) if vals else math.nan


def pair(replays: Sequence[Sequence[MetricError]]) -> list[PairedMetric]:
    """The paired metrics of one level from its replays' errors (one list per
    replay, as :func:`lbsim.validation.accuracy.compare` gives them), in the
    order the metrics first appear."""
    out: dict[str, PairedMetric] = {}
    for errors in replays:
        for e in errors:
            pm = out.get(e.metric)
            if pm is None:
                pm = out[e.metric] = PairedMetric(
                    e.scenario, e.level, e.metric, e.kind, e.bound, e.floor
                )
            pm.predicted.append(e.predicted)
            pm.measured.append(e.measured)
            pm.errors.append(signed_error(e.predicted, e.measured, e.kind, e.floor))
    return list(out.values())
