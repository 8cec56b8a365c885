"""The overload levels of a calibration report: failures of each kind and the
latency growth, predicted against measured.

An overload level (above capacity, :func:`lbsim.validation.levels.is_overload`)
is judged by its throughput and its failures of each kind
(:data:`lbsim.validation.accuracy.OVERLOAD_BOUNDS`; the paired rows of its
table). Here: the counts behind the failure fractions (requests of the window
answered by the horizon, mean over the valid replays) and the latency growth
against the lowest level — reported, not judged: above capacity the backlog
grows through the whole window, so latency depends on the window's length.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lbsim.validation.accuracy import FAILURE_FLOOR, OVERLOAD_BOUNDS
from lbsim.validation.failures import REASONS
from lbsim.validation.levels import is_overload, mean_results

if TYPE_CHECKING:
    from lbsim.validation.campaign import CampaignResult, LevelResult

#: the counts' columns, in order
COUNTS = ("arrived", "completed", "in_flight", *REASONS)
LATENCY = ("mean", "p95")


def _counts(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The mean ``answered`` counts over ``results``, ``other`` failures included."""
    if not results:
        return {}
    mean = mean_results([{"answered": r.get("answered", {})} for r in results]).get("answered", {})
    out = {k: float(mean.get(k, 0.0)) for k in COUNTS}
    named = set(COUNTS)
    out["other"] = float(sum(v for k, v in mean.items() if k not in named))
    return out


def _latency(results: dict[str, Any], key: str) -> float:
    try:
        return float(results["latency"][key])
    except (KeyError, TypeError, ValueError):
        return math.nan


def _growth(value: float, base: float) -> float:
    return value / base if math.isfinite(value) and math.isfinite(base) and base > 0 else math.nan


def overload_summary(result: CampaignResult) -> list[dict[str, Any]]:
    """Per overload level (``errors.json``: ``overload``): the counts answered by
    the horizon and the latency against the lowest level's, predicted and measured."""
    levels = sorted(result.levels, key=lambda lv: lv.level)
    if not levels:
        return []
    low = levels[0]
    out = []
    for lv in levels:
        if not is_overload(lv.level):
            continue
        use = [r for r in lv.replays if r.valid] or lv.replays
        entry: dict[str, Any] = {"level": lv.level, "rate": lv.rate, "replays": len(use)}
        for side in ("predicted", "measured"):
            runs = [getattr(r, side) for r in use]
            mean = getattr(lv, side)
            entry[side] = {
                "answered": _counts(runs),
                "failures": dict(mean.get("failures", {})),
                "latency": {
                    k: {
                        "value": _latency(mean, k),
                        "lowest_level": _latency(getattr(low, side), k),
                        "growth": _growth(_latency(mean, k), _latency(getattr(low, side), k)),
                    }
                    for k in LATENCY
                },
            }
        out.append(entry)
    return out


def _ms(value: float) -> str:
    return f"{value * 1e3:.0f} ms" if math.isfinite(value) else "–"


def _x(value: float) -> str:
    return f"×{value:.1f}" if math.isfinite(value) else "–"


def overload_lines(result: CampaignResult, lv: LevelResult) -> list[str]:
    """The markdown of one overload level, after its paired table."""
    entry = next((e for e in overload_summary(result) if e["level"] == lv.level), None)
    if entry is None:
        return []
    limits = {b.metric.removesuffix(".*"): b.limit for b in OVERLOAD_BOUNDS}
    lines = [
        f"Overload: judged by throughput (within {limits['throughput']:.0%}) and each kind of "
        f"failure (within {limits['failures']:.0%}). A failure is a fraction of the requests "
        "that arrived in the window and were answered before its end (a later answer is in "
        "flight, as in the model, which stops at the horizon); its error is relative to the "
        f"measured fraction, but never to less than {FAILURE_FLOOR:.0%} of the requests, so no "
        "failure on either side is no error.",
        "",
        "| requests (mean per replay) | "
        + " | ".join(c.replace("_", " ") for c in COUNTS)
        + " | other |",
        "|---" * (len(COUNTS) + 2) + "|",
    ]
    for side in ("predicted", "measured"):
        counts = entry[side]["answered"]
        cells = [f"{counts.get(c, 0.0):.1f}" for c in (*COUNTS, "other")]
        lines.append(f"| {side} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| latency (reported, not judged) | predicted | measured | predicted growth "
        "| measured growth |",
        "|---|---|---|---|---|",
    ]
    for k in LATENCY:
        p, m = entry["predicted"]["latency"][k], entry["measured"]["latency"][k]
        lines.append(
            f"| {k} (× the lowest level's) | {_ms(p['value'])} | {_ms(m['value'])} | "
            f"{_x(p['growth'])} | {_x(m['growth'])} |"
        )
    return [*lines, ""]
