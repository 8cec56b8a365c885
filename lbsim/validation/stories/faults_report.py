"""A fault story's report: the story's own (``story.json``/``story.md``, counts
and the paired burst, dip and recovery metrics) and ``timeline.json`` /
``timeline.md``: every second, predicted vs measured, and what docker did."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lbsim.report import atomic
from lbsim.validation import timeline
from lbsim.validation.stories import report
from lbsim.validation.stories.faults import FaultResult, Timeline


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def _mean_series(timelines: list[Timeline], key: str) -> list[float]:
    if not timelines:
        return []
    rows = [getattr(t.series, key) for t in timelines]
    n = min(len(r) for r in rows)
    return [sum(r[k] for r in rows) / len(rows) for k in range(n)]


def to_dict(result: FaultResult) -> dict[str, Any]:
    out: dict[str, Any] = {"story": result.story.story.name, "variants": {}}
    for vr in result.story.variants:
        name = vr.variant.name
        sides = {
            "predicted": result.predicted.get(name, []),
            "measured": result.measured.get(name, []),
        }
        out["variants"][name] = {
            side: [
                {
                    "summary": {
                        k: (_num(v) if isinstance(v, float) else v)
                        for k, v in t.summary.to_dict().items()
                    },
                    "series": t.series.to_dict(),
                }
                for t in ts
            ]
            for side, ts in sides.items()
        } | {"faults": [r.notes.get("faults", []) for r in vr.repetitions]}
    return out


def _fmt(x: float) -> str:
    return f"{x:.1f}" if math.isfinite(x) else "—"


def _when(event: dict[str, Any]) -> str:
    """When docker says the container died or started (the model's time for
    it, :func:`lbsim.validation.faults.as_injected`), if it was read."""
    at = float(event.get("at", math.nan))
    if not math.isfinite(at):
        return ""
    return f"{'died' if event.get('action') == 'kill' else 'started'} at {at:.3f} s, "


def markdown(result: FaultResult) -> str:
    story = result.story.story
    lines = [
        f"# {story.title}: second by second",
        "",
        "Answers by the second they reached the client, mean over the repetitions, "
        "predicted / measured: completed, failed. Definitions (burst, dip, recovery): "
        "`lbsim/validation/timeline.py`.",
        "",
        f"Bursts: failing seconds at most {timeline.JOIN} s apart; recovery: the first "
        f"{timeline.HOLD} s averaging within {timeline.TOLERANCE:.0%} of the pre-fault mean, "
        "from the restart.",
        "",
    ]
    for vr in result.story.variants:
        name = vr.variant.name
        pred = result.predicted.get(name, [])
        meas = result.measured.get(name, [])
        lines += [f"## {name}", ""]
        lines += [
            "| replication | side | pre-fault /s | bursts | duration s | first failure s "
            "| failures | dip min | recovery s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r, (p, m) in enumerate(zip(pred, meas, strict=False)):
            for side, t in (("predicted", p), ("measured", m)):
                s = t.summary
                lines.append(
                    f"| {r} | {side} | {_fmt(s.pre_fault)} | {s.burst_count} | "
                    f"{_fmt(s.burst_duration)} | {_fmt(s.first_failure)} | {s.failures} | "
                    f"{_fmt(s.dip_min)} | {'' if s.recovered else '≥ '}{_fmt(s.recovery)} |"
                )
        for reps in (r.notes.get("faults", []) for r in vr.repetitions):
            for e in reps:
                state = "ok" if e.get("ok") else f"FAILED: {e.get('error', '')}"
                lines.append(
                    f"- docker {e.get('action')} {e.get('node')}: due {e.get('due', 0):g} s, "
                    f"done {e.get('done', float('nan')):.2f} s, {_when(e)}{state}, "
                    f"address {e.get('address', '')}"
                )
        pc, pf = _mean_series(pred, "completed"), _mean_series(pred, "failed")
        mc, mf = _mean_series(meas, "completed"), _mean_series(meas, "failed")
        lines += ["", "| second | completed pred/meas | failed pred/meas |", "|---:|---:|---:|"]
        for k in range(min(len(pc), len(mc))):
            lines.append(f"| {k} | {pc[k]:.1f} / {mc[k]:.1f} | {pf[k]:.1f} / {mf[k]:.1f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def write(result: FaultResult, outdir: Path) -> list[Path]:
    """The story's report and the timeline beside it."""
    paths = report.write(result.story, outdir)
    js, md = outdir / "timeline.json", outdir / "timeline.md"
    atomic.write_text(js, json.dumps(to_dict(result), indent=2) + "\n")
    atomic.write_text(md, markdown(result))
    return [*paths, js, md]
