"""The read-your-write story's report: ``story.json`` (everything) and ``story.md``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lbsim.report import atomic
from lbsim.validation.stories.harness import verdict_line
from lbsim.validation.stories.readback import BOUNDS, ReadbackResult

#: how each metric reads in the table, and its unit
LABELS = {
    "async.stale_fraction": ("stale fraction, without sync_wait", ""),
    "sync.stale_fraction": ("stale fraction, with sync_wait", ""),
    "async.cycle_mean": ("write → read mean, without", "ms"),
    "sync.cycle_mean": ("write → read mean, with", "ms"),
    "cost.mean": ("sync_wait's cost: read-back mean", "ms"),
    "cost.p95": ("sync_wait's cost: read-back p95", "ms"),
}


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def to_dict(result: ReadbackResult) -> dict[str, Any]:
    story = result.story
    return {
        "story": story.name,
        "title": story.title,
        "about": story.about,
        "scenario": story.file.name,
        "writer": story.writer,
        "reader": story.reader,
        "n": story.n,
        "polls": story.polls,
        "repetitions": len(result.repetitions),
        "passed": result.passed,
        "problems": result.problems,
        "machine": result.machine,
        "runs": [
            {
                "replication": r.replication,
                "measured": r.measured,
                "predicted": r.predicted,
                "visibility_lag_mean": r.lag_mean,
                "lags": r.lags,
                "notes": r.notes,
            }
            for r in result.repetitions
        ],
        "metrics": [
            {
                "metric": m.metric,
                "kind": m.kind,
                "bound": m.bound,
                "mean": _num(m.mean),
                "half": _num(m.half),
                "verdict": m.verdict,
                "predicted": m.predicted,
                "measured": m.measured,
                "errors": [_num(e) for e in m.errors],
            }
            for m in result.metrics
        ],
    }


def _value(x: float, unit: str) -> str:
    return f"{x * 1e3:.3f}" if unit == "ms" else f"{x:.4f}"


def _err(kind: str, x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:+.1%}" if kind == "relative" else f"{x:+.4f}"


def markdown(result: ReadbackResult) -> str:
    story = result.story
    lines = [
        f"# {story.title}",
        "",
        story.about,
        "",
        f"`lbsim story {story.name}`: scenario `scenarios/stories/{story.file.name}`, "
        f"{len(result.repetitions)} repetitions, each on a fresh stack: {story.polls} "
        f"polled writes on {story.writer} read back on {story.reader} (the visibility "
        f"lag, calibrated in the same run), {story.n} + {story.n} timing pairs without "
        f"and with wsrep_sync_wait (not judged: they calibrate the round trips), then "
        f"{story.n} judged write → read pairs without and {story.n} with wsrep_sync_wait "
        "(the order alternating). The model runs the probe's scenario on the calibrated "
        "cluster, the same replication. Calibrated in the same run: `visibility_lag` "
        "(commit + each write's lag past the writer's OK; the `apply` CPU moved to "
        "`receive`), `replication_delay` (the causal read's extra time: one group "
        "round), `commit` (the rest of the write's time) and the read's execution; "
        "`network.app_db` and the cores are the scenario file's.",
        "",
    ]
    if result.machine:
        box = result.machine
        lines += [
            f"Machine: {box.get('cpu', '?')}, {box.get('cores', '?')} cores, {box.get('when', '')}",
            "",
        ]
    lines += [
        "Mean over the repetitions, predicted vs measured; error: mean paired error "
        "± 95 % half-width (absolute for a fraction, relative for a time).",
        "",
        "| metric | predicted | measured | error | bound | verdict |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for m in result.metrics:
        label, unit = LABELS[m.metric]
        half = "" if not math.isfinite(m.half) else f" ± {_err(m.kind, m.half)[1:]}"
        bound = f"{m.bound:.0%}" if m.kind == "relative" else f"±{m.bound:g}"
        if m.floor > 0:  # relative to at least a read's time
            bound += f" (of ≥ {m.floor * 1e3:g} ms)"
        p = sum(m.predicted) / m.n
        q = sum(m.measured) / m.n
        name = f"{label} ({unit})" if unit else label
        lines.append(
            f"| {name} | {_value(p, unit)} | {_value(q, unit)} | "
            f"{_err(m.kind, m.mean)}{half} | {bound} | {m.verdict} |"
        )
    lines += ["", "## Every repetition (predicted/measured)", ""]
    for r in result.repetitions:
        pairs = ", ".join(
            f"{k} {_value(r.predicted[k], LABELS[k][1])}/{_value(r.measured[k], LABELS[k][1])}"
            for k in BOUNDS
        )
        lines.append(
            f"- replication {r.replication}: {pairs}; visibility lag mean "
            f"{r.lag_mean * 1e3:.3f} ms past the OK over {r.lags} writes"
        )
    lines += [f"- problem: {p}" for p in result.problems]
    lines += ["", verdict_line(result.passed, "no significant miss, sync_wait never stale")]
    return "\n".join(lines) + "\n"


def write(result: ReadbackResult, outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / "story.json", outdir / "story.md"]
    atomic.write_text(paths[0], json.dumps(to_dict(result), indent=2) + "\n")
    atomic.write_text(paths[1], markdown(result))
    return paths
