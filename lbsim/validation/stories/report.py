"""A story's report: ``story.json`` (everything) and ``story.md`` (the table)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lbsim.report import atomic
from lbsim.validation.stories.harness import StoryResult, verdict_line


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def to_dict(result: StoryResult) -> dict[str, Any]:
    story = result.story
    return {
        "story": story.name,
        "title": story.title,
        "about": story.about,
        "scenario": str(story.file.name),
        "repetitions": result.repetitions,
        "duration": result.duration,
        "passed": result.passed,
        "machine": result.machine,
        "variants": [
            {
                "name": v.variant.name,
                "overrides": list(v.variant.overrides),
                "about": v.variant.about,
                "problems": v.problems,
                "repetitions": [
                    {
                        "replication": r.replication,
                        "measured": r.measured,
                        "predicted": r.predicted,
                        "notes": r.notes,
                    }
                    for r in v.repetitions
                ],
                "metrics": [
                    {
                        k: (_num(x) if isinstance(x, float) else x)
                        for k, x in m.to_dict().items()
                        if k not in ("predicted", "measured", "errors")
                    }
                    | {
                        "predicted": m.predicted,
                        "measured": m.measured,
                        "errors": [_num(e) for e in m.errors],
                    }
                    for m in v.metrics
                ],
            }
            for v in result.variants
        ],
    }


def _err(kind: str, x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:+.1%}" if kind == "relative" else f"{x:+.1f}"


def markdown(result: StoryResult) -> str:
    story = result.story
    lines = [
        f"# {story.title}",
        "",
        story.about,
        "",
        f"`lbsim story {story.name}`: scenario `scenarios/stories/{story.file.name}`, "
        f"{result.repetitions} paired repetitions per variant (replication r = the same "
        f"trace live and in the model, a fresh stack each), {result.duration:g} s measured "
        "each, interleaved across variants.",
        "",
    ]
    if result.machine:
        box = result.machine
        lines += [
            f"Machine: {box.get('cpu', '?')}, {box.get('cores', '?')} cores, {box.get('when', '')}",
            "",
        ]
    lines += [
        "Counts of the requests that arrived in the measured window, by how they were "
        "answered before the horizon; mean over the repetitions, predicted vs measured. "
        "Error: mean paired error ± 95 % half-width; bound 25 % (relative) when the "
        "measured count averages 40 or more, else ±10 requests.",
        "",
        "| variant | count | predicted | measured | error | bound | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for v in result.variants:
        for m in v.metrics:
            half = "" if not math.isfinite(m.half) else f" ± {_err(m.kind, m.half)[1:]}"
            bound = f"{m.bound:.0%}" if m.kind == "relative" else f"±{m.bound:g}"
            p = sum(m.predicted) / len(m.predicted)
            q = sum(m.measured) / len(m.measured)
            lines.append(
                f"| {v.variant.name} | {m.metric.removeprefix('requests.')} | {p:.1f} | "
                f"{q:.1f} | {_err(m.kind, m.mean)}{half} | {bound} | {m.verdict} |"
            )
    lines += ["", "## Variants", ""]
    for v in result.variants:
        sets = ", ".join(f"`{o}`" for o in v.variant.overrides) or "as shipped"
        lines.append(f"- **{v.variant.name}** ({sets}): {v.variant.about}")
        lines += [f"  - problem: {p}" for p in v.problems]
    lines += ["", "## Every repetition (predicted/measured)", ""]
    for v in result.variants:
        for r in v.repetitions:
            keys = sorted(set(r.measured) | set(r.predicted))
            pairs = ", ".join(f"{k} {r.predicted.get(k, 0)}/{r.measured.get(k, 0)}" for k in keys)
            lines.append(f"- {v.variant.name}, replication {r.replication}: {pairs}")
    lines += ["", verdict_line(result.passed, "no significant miss, every fix at 0")]
    return "\n".join(lines) + "\n"


def write(result: StoryResult, outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / "story.json", outdir / "story.md"]
    atomic.write_text(paths[0], json.dumps(to_dict(result), indent=2) + "\n")
    atomic.write_text(paths[1], markdown(result))
    return paths
