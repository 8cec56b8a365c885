"""The knee: the arrival rate where p95 latency first exceeds ``factor`` times its
value at the lowest load — the question users ask most ("where is the knee?").

:func:`knee_rate` finds it in a series of (rate, p95) points by linear
interpolation between the last point below and the first above the
threshold. The predicted knee comes from a fine sweep of the calibrated
model (:func:`predicted_knee`, cheap: simulations only); the measured one
from the campaign's levels (their mean p95 over the replays), so it is as
fine as the levels are — the report says between which levels it lies.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lbsim.scenario.schema import Scenario
from lbsim.validation.calibration import Calibration

if TYPE_CHECKING:
    from lbsim.validation.campaign import LevelResult

#: the knee is where p95 exceeds this many times its value at the lowest rate
FACTOR = 3.0
#: the predicted knee's rate within this fraction of the measured one
KNEE_BOUND = 0.10


@dataclass(frozen=True)
class Knee:
    rate: float  # requests/s; NaN: not reached within the rates tried
    base_p95: float  # p95 at the lowest rate (s)
    below: float  # the highest rate tried below the threshold
    above: float  # the lowest rate tried above it (NaN: none)

    @property
    def reached(self) -> bool:
        return math.isfinite(self.rate)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reached": self.reached}


def knee_rate(points: Sequence[tuple[float, float]], factor: float = FACTOR) -> Knee:
    """The knee of ``points`` (rate, p95), sorted by rate; p95 NaN points are skipped."""
    pts = sorted((r, p) for r, p in points if math.isfinite(p))
    if not pts:
        return Knee(math.nan, math.nan, math.nan, math.nan)
    base = pts[0][1]
    threshold = factor * base
    prev = pts[0]
    for rate, p95 in pts[1:]:
        if p95 > threshold:
            r0, p0 = prev
            frac = (threshold - p0) / (p95 - p0) if p95 != p0 else 1.0
            return Knee(r0 + frac * (rate - r0), base, r0, rate)
        prev = (rate, p95)
    return Knee(math.nan, base, prev[0], math.nan)


def sweep_rates(low: float, capacity: float, top: float = 1.2, steps: int = 24) -> list[float]:
    """``steps + 1`` rates from ``low`` to ``top`` × ``capacity``, evenly spaced."""
    high = max(top * capacity, low)
    return [round(low + (high - low) * i / steps, 4) for i in range(steps + 1)]


def predicted_knee(
    p95_at: Callable[[float], float], rates: Sequence[float], factor: float = FACTOR
) -> tuple[Knee, list[tuple[float, float]]]:
    """The model's knee over ``rates`` (``p95_at(rate)``: one simulation), and its points."""
    points = [(r, p95_at(r)) for r in rates]
    return knee_rate(points, factor), points


def knee_error(predicted: Knee, measured: Knee) -> float:
    """``|predicted − measured| / measured`` (NaN unless both were reached)."""
    if not (predicted.reached and measured.reached) or measured.rate == 0:
        return math.nan
    return abs(predicted.rate - measured.rate) / measured.rate


def campaign_knee(
    file: Path,
    raw: dict[str, Any],
    base: Scenario,
    cal: Calibration,
    levels: Sequence[LevelResult],
    capacity: float,
    horizon: Callable[[float], tuple[float, float]],
    outdir: Path,
    adjust: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Predicted (a sweep of the calibrated model from the lowest level to 120 %
    of capacity, at the replays' mean speed and background, each rate with the
    warm-up and window ``horizon(rate)`` a replay at that rate gets) against
    measured (the levels' mean p95) knee, and their relative error (``adjust``:
    the replays' change to the calibrated data, :func:`level_model`)."""
    from lbsim.experiment.run import simulate
    from lbsim.validation.levels import level_model

    replays = [r for lv in levels for r in lv.replays if r.valid] or [
        r for lv in levels for r in lv.replays
    ]
    if not replays:
        return {}
    speed = statistics.fmean(r.speed for r in replays)
    finite = [r.background.cores for r in replays if math.isfinite(r.background.cores)]
    background = statistics.fmean(finite) if finite else cal.background
    fast = cal.at_speed(speed)
    path = outdir / "knee-sweep.calibrated.yaml"

    def p95_at(rate: float) -> float:
        model = level_model(
            file, raw, base, fast, rate, background, base.seed, horizon(rate), path, None, adjust
        )
        return float(simulate(model, replications=1).to_dict()["latency"]["p95"])

    low = min(lv.rate for lv in levels)
    predicted, points = predicted_knee(p95_at, sweep_rates(low, capacity))
    measured = knee_rate([(lv.rate, _p95(lv.measured)) for lv in levels])
    return {
        "factor": FACTOR,
        "predicted": predicted.to_dict(),
        "measured": measured.to_dict(),
        "error": knee_error(predicted, measured),
        "bound": KNEE_BOUND,
        "sweep": [{"rate": r, "p95": p} for r, p in points],
        "speed": speed,
        "background": background,
    }


def _p95(results: dict[str, Any]) -> float:
    try:
        return float(results["latency"]["p95"])
    except (KeyError, TypeError, ValueError):
        return math.nan


def knee_line(knee: dict[str, Any]) -> str:
    """One line for the user: the predicted and the measured knee."""
    if not knee:
        return "knee: no replays"

    def where(k: dict[str, Any]) -> str:
        if k["reached"]:
            return f"{k['rate']:.2f} requests/s (between {k['below']:g} and {k['above']:g})"
        return f"not reached up to {k['below']:g} requests/s"

    err = knee["error"]
    tail = f"; error {err:.1%} (bound {knee['bound']:.0%})" if math.isfinite(err) else ""
    return f"knee: predicted {where(knee['predicted'])}, measured {where(knee['measured'])}{tail}"
