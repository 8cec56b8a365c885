"""The heavy-users story's report: ``story.json`` and ``story.md``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lbsim.report import atomic
from lbsim.validation.paired import PairedMetric
from lbsim.validation.stories.harness import verdict_line
from lbsim.validation.stories.policies import PoliciesResult


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, list):
        return [_clean(v) for v in x]
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    return x


def to_dict(result: PoliciesResult, story: str) -> dict[str, Any]:
    out: dict[str, Any] = _clean(
        {
            "story": story,
            "scenario": result.scenario.name,
            "policies": list(result.policies),
            "level": result.level,
            "rate": result.rate,
            "capacity": result.capacity,
            "repetitions": len(next(iter(result.replays.values()), [])),
            "passed": result.passed,
            "not_valid": result.not_valid(),
            "machine": result.machine,
            "ranking": {
                f"{side}.{m}": result.ranking(side, m)
                for side in ("predicted", "measured")
                for m in ("latency.mean", "latency.p95")
            },
            "metrics": {p: [m.to_dict() for m in ms] for p, ms in result.metrics.items()},
            "differences": [m.to_dict() for m in result.differences],
            "replays": {
                p: [
                    {
                        "repetition": r.repetition,
                        "seed": r.seed,
                        "speed": r.background.speed,
                        "background": r.background.cores,
                        "problems": r.problems,
                    }
                    for r in reps
                ]
                for p, reps in result.replays.items()
            },
        }
    )
    return out


def _fmt(m: PairedMetric, x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    if m.kind == "absolute":
        return f"{x:.3f}"
    return f"{x * 1e3:.0f} ms" if "latency" in m.metric else f"{x:.3g}"


def _err(m: PairedMetric) -> str:
    if not math.isfinite(m.mean):
        return "n/a"
    e = f"{m.mean:+.1%}" if m.kind == "relative" else f"{m.mean:+.3f}"
    if math.isfinite(m.half):
        e += f" ± {m.half:.1%}" if m.kind == "relative" else f" ± {m.half:.3f}"
    return e


def _row(label: str, m: PairedMetric) -> str:
    p = sum(m.predicted) / len(m.predicted) if m.predicted else math.nan
    q = sum(m.measured) / len(m.measured) if m.measured else math.nan
    bound = f"{m.bound:.0%}" if m.kind == "relative" else f"{m.bound:g}"
    more = f" (R={m.r_needed} would decide)" if m.r_needed else ""
    return (
        f"| {label} | {m.metric} | {_fmt(m, p)} | {_fmt(m, q)} | {_err(m)} | {bound} | "
        f"{m.verdict}{more} |"
    )


def markdown(result: PoliciesResult, story: str, title: str, about: str) -> str:
    reps = len(next(iter(result.replays.values()), []))
    lines = [
        f"# {title}",
        "",
        about,
        "",
        f"`lbsim story {story}`: {len(result.policies)} policies × {reps} paired replays at "
        f"{result.rate:g} requests/s ({result.level:.0%} of the calibrated capacity "
        f"{result.capacity:.2f}/s), the same seeds under every policy, a fresh stack per "
        "replay, calibrated once at low load.",
        "",
    ]
    if result.machine:
        box = result.machine
        lines += [f"Machine: {box.get('cpu', '?')}, {box.get('cores', '?')} cores, "
                  f"{box.get('when', '')}", ""]  # fmt: skip
    lines += [
        "## Ranking (best first; means over the replays)",
        "",
        "| by | predicted | measured |",
        "|---|---|---|",
    ]
    for m in ("latency.mean", "latency.p95"):
        pred = " < ".join(result.ranking("predicted", m))
        meas = " < ".join(result.ranking("measured", m))
        lines.append(f"| {m} | {pred} | {meas} |")
    lines += [
        "",
        "## Difference from the first policy (predicted vs measured, paired)",
        "",
        "| policies | metric | Δ predicted | Δ measured | error ± 95 % | bound | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    lines += [_row(m.level, m) for m in result.differences]
    lines += [
        "",
        "## Every policy: predicted vs measured (mean paired error ± 95 %)",
        "",
        "| policy | metric | predicted | measured | error ± 95 % | bound | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for p, ms in result.metrics.items():
        lines += [_row(p, m) for m in ms]
    lines += ["", "## Replays", ""]
    for p, rs in result.replays.items():
        for r in rs:
            state = "valid" if r.valid else "NOT VALID: " + "; ".join(r.problems)
            lines.append(
                f"- {p} r{r.repetition + 1} (seed {r.seed}): background "
                f"{r.background.cores:.2f} cores, CPU work ×{r.background.speed:.3f}, {state}"
            )
    lines += ["", verdict_line(result.passed, "no significant miss, every replay valid")]
    return "\n".join(lines) + "\n"


def write(result: PoliciesResult, outdir: Path, story: str, title: str, about: str) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / "story.json", outdir / "story.md"]
    atomic.write_text(paths[0], json.dumps(to_dict(result, story), indent=2) + "\n")
    atomic.write_text(paths[1], markdown(result, story, title, about))
    return paths
