"""Service-level objectives (``p95<0.3``, ``failed<0.001``, ``cpu<0.8``) and how sure we are.

An SLO bounds the *mean over replications* of one metric (see
:mod:`lbsim.experiment.metrics` for the names). It is **met** when the
one-sided 95 % Student-t confidence bound of that mean is on the right side
of the threshold: for ``metric < t``, ``mean + t₀.₉₅,ₙ₋₁ · s/√n < t``. This
is the one-sided t-test of H₀: mean ≥ t at the 5 % level. The
**confidence** reported is that test's ``1 - p``: the Student-t probability
``F((t - mean) / (s/√n))`` with ``n - 1`` degrees of freedom, i.e. how sure
the replications make us that the true mean is within the bound. With zero
spread (e.g. no failure in any replication) it is 1 or 0.

**Headroom** is how far the conservative bound is from the threshold, as a
fraction of the threshold: ``(t - bound) / |t|`` for an upper limit (0.25:
the metric could grow by a quarter of the threshold before the SLO is
violated); in the metric's units when the threshold is 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from lbsim.experiment.errors import ExperimentInputError
from lbsim.experiment.metrics import resolve

CONFIDENCE = 0.95

_SLO = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(<=|>=|<|>)\s*(\S+)\s*$")


class SLOError(ExperimentInputError):
    """An SLO that cannot be parsed; the message names it."""


@dataclass(frozen=True)
class SLO:
    text: str
    metric: str
    op: str
    threshold: float

    @property
    def upper(self) -> bool:
        """True for a ceiling (``<``, ``<=``), false for a floor (``>``, ``>=``)."""
        return self.op in ("<", "<=")


def parse_slo(text: str) -> SLO:
    """``metric<threshold`` (also ``<=``, ``>``, ``>=``), e.g. ``p95<0.3``."""
    m = _SLO.match(text)
    if m is None:
        raise SLOError(
            f"--slo {text!r}: expected metric<threshold, e.g. p95<0.3, failed<0.001, cpu<0.8"
        )
    name, op, raw = m.groups()
    try:
        threshold = float(raw)
    except ValueError:
        raise SLOError(f"--slo {text!r}: the threshold {raw!r} is not a number") from None
    if not math.isfinite(threshold):
        raise SLOError(f"--slo {text!r}: the threshold must be finite")
    return SLO(text.strip(), resolve(name), op, threshold)


@dataclass(frozen=True)
class SLOCheck:
    slo: SLO
    n: int
    mean: float
    #: one-sided 95 % bound on the mean (upper for a ceiling, lower for a floor)
    bound: float
    #: confidence that the true mean is within the threshold (0..1)
    confidence: float
    headroom: float

    @property
    def met(self) -> bool:
        return self.confidence >= CONFIDENCE


def check_slo(slo: SLO, values: Sequence[float]) -> SLOCheck:
    """Test the SLO on per-replication values (NaNs, e.g. no completed request, fail it)."""
    n = len(values)
    if n == 0 or any(math.isnan(v) for v in values):
        return SLOCheck(slo, n, math.nan, math.nan, 0.0, math.nan)
    mean = sum(values) / n
    sign = 1.0 if slo.upper else -1.0  # floors are ceilings of -metric
    margin = sign * (slo.threshold - mean)
    if n < 2:
        return SLOCheck(slo, n, mean, math.nan, math.nan, math.nan)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    se = sd / math.sqrt(n)
    from scipy import stats

    if se == 0:
        confidence = 1.0 if margin > 0 or (margin == 0 and slo.op in ("<=", ">=")) else 0.0
        bound = mean
    else:
        confidence = float(stats.t.cdf(margin / se, n - 1))
        bound = mean + sign * float(stats.t.ppf(CONFIDENCE, n - 1)) * se
    room = sign * (slo.threshold - bound)
    headroom = room / abs(slo.threshold) if slo.threshold != 0 else room
    return SLOCheck(slo, n, mean, bound, confidence, headroom)


def joint_confidence(checks: Sequence[SLOCheck]) -> float:
    """Lower bound on the confidence that *every* SLO holds (Bonferroni:
    ``1 - Σ(1 - cᵢ)``, valid whatever the correlation between metrics)."""
    if not checks:
        return 1.0
    if any(math.isnan(c.confidence) for c in checks):
        return math.nan
    return max(0.0, 1.0 - sum(1.0 - c.confidence for c in checks))
