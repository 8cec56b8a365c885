"""The slow-Galera-node story's report: ``story.json`` and ``story.md``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lbsim.report import atomic
from lbsim.validation.paired import PairedMetric
from lbsim.validation.stories.galera import PAUSED, GaleraResult
from lbsim.validation.stories.harness import verdict_line


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    return x


def _nodes(result: GaleraResult) -> list[str]:
    names: set[str] = set()
    for reps in result.replays.values():
        for r in reps:
            for side in (r.predicted, r.measured):
                names |= set((side.get("galera") or {}).get("nodes", {}))
    return sorted(names)


def summary(result: GaleraResult) -> dict[str, dict[str, dict[str, float]]]:
    """Per variant, per side: the paused fraction, every node's FC_STOP count and
    receive queue, the model's commit latency, means over the replays."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for variant in result.replays:
        out[variant] = {}
        for side in ("predicted", "measured"):
            row = {"paused": result.mean(variant, side, PAUSED)}
            for node in _nodes(result):
                key = f"galera.nodes.{node}."
                row[f"{node}.fc_sent"] = result.mean(variant, side, key + "wsrep_flow_control_sent")
                row[f"{node}.recv_queue"] = result.mean(
                    variant, side, key + "wsrep_local_recv_queue_avg"
                )
            row["commit_latency.mean"] = result.mean(variant, side, "database.commit_latency.mean")
            row["latency.mean"] = result.mean(variant, side, "latency.mean")
            row["latency.p95"] = result.mean(variant, side, "latency.p95")
            out[variant][side] = row
    return out


def to_dict(result: GaleraResult) -> dict[str, Any]:
    story = result.story
    out: dict[str, Any] = _clean(
        {
            "story": story.name,
            "title": story.title,
            "about": story.about,
            "scenario": story.file.name,
            "rate": result.rate,
            "capacity": result.capacity,
            "level": result.level,
            "warmup": result.horizon[0],
            "duration": result.horizon[1],
            "on_applier": story.on_applier,
            "calibrated_on": story.calibrate_on,
            "repetitions": len(next(iter(result.replays.values()), [])),
            "passed": result.passed,
            "not_valid": result.not_valid(),
            "machine": result.machine,
            "replayed": result.replayed,
            "variants": {v.name: list(v.overrides) for v in story.variants},
            "summary": summary(result),
            "appliers": result.appliers,
            "cost_factors": result.cost_factors,
            "metrics": {v: [m.to_dict() for m in ms] for v, ms in result.metrics.items()},
            "replays": {
                v: [
                    {
                        "repetition": r.repetition,
                        "seed": r.seed,
                        "speed": r.background.speed,
                        "background": r.background.cores,
                        "problems": r.problems,
                    }
                    for r in reps
                ]
                for v, reps in result.replays.items()
            },
        }
    )
    return out


def _fmt(m: PairedMetric, x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    if "latency" in m.metric:
        return f"{x * 1e3:.1f} ms"
    return f"{x:.3f}" if abs(x) < 10 else f"{x:.0f}"


def _err(m: PairedMetric) -> str:
    if not math.isfinite(m.mean):
        return "n/a"
    rel = m.kind == "relative"
    e = f"{m.mean:+.1%}" if rel else f"{m.mean:+.3g}"
    if math.isfinite(m.half):
        e += f" ± {m.half:.1%}" if rel else f" ± {m.half:.3g}"
    return e


def row(m: PairedMetric) -> str:
    p = sum(m.predicted) / len(m.predicted) if m.predicted else math.nan
    q = sum(m.measured) / len(m.measured) if m.measured else math.nan
    bound = f"{m.bound:.0%}" if m.kind == "relative" else f"±{m.bound:g}"
    more = f" (R={m.r_needed} would decide)" if m.r_needed else ""
    return (
        f"| {m.level} | {m.metric} | {_fmt(m, p)} | {_fmt(m, q)} | {_err(m)} | {bound} | "
        f"{m.verdict}{more} |"
    )


def _n(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "n/a"


def markdown(result: GaleraResult) -> str:
    story = result.story
    reps = len(next(iter(result.replays.values()), []))
    lines = [
        f"# {story.title}",
        "",
        story.about,
        "",
        f"`lbsim story {story.name}`: scenario `scenarios/stories/{story.file.name}`, "
        f"calibrated once on the {story.calibrate_on} stack at low load; every variant "
        f"replayed {reps} times at {result.rate:g} requests/s ({result.level:.0%} of the "
        f"calibrated capacity {result.capacity:.2f}/s), {result.horizon[1]:g} s measured "
        f"after {result.horizon[0]:g} s, the same seeds in every variant, a fresh stack per "
        "replay, each simulated with its own seed, CPU speed and background.",
        "",
    ]
    if story.on_applier:
        lines += [
            "Model assumption: the CPU the other nodes spend per write-set (calibrated "
            "`receive`) is spent by their applier thread (certification, row apply, commit), "
            "after the receive queue (`apply` in the model, `receive` 0).",
            "",
        ]
    if result.machine:
        box = result.machine
        lines += [
            f"Machine: {box.get('cpu', '?')}, {box.get('cores', '?')} cores, {box.get('when', '')}",
            "",
        ]
    lines += ["## What was replayed", ""]
    for v in story.variants:
        if v.name not in result.replays:
            continue
        sets = ", ".join(f"`{o}`" for o in v.overrides) or "as shipped"
        lines.append(f"- **{v.name}** ({sets}): {v.about}")
        lines += [f"  - {line}" for line in result.replayed.get(v.name, [])]
        factors = result.cost_factors.get(v.name, {})
        if factors:
            said = ", ".join(f"{n} x{f:g}" for n, f in factors.items())
            lines.append(
                "  - CPU per write-set measured on this variant's stack, against the "
                f"calibrated apply cost (the model's write_set_cost): {said}"
            )
        busy = result.appliers.get(v.name, {})
        if busy:
            shares = ", ".join(f"{n} {b:.0%}" for n, b in busy.items())
            lines.append(f"  - the appliers' busy share in the calibrated model, about: {shares}")
    nodes = _nodes(result)
    lines += [
        "",
        "## Flow control (means over the replays, predicted / measured)",
        "",
        "| variant | paused | "
        + " | ".join(f"{n} FC_STOP sent | {n} recv queue" for n in nodes)
        + " | commit latency (model) | latency mean | latency p95 |",
        "|---|---:|" + "---:|" * (2 * len(nodes)) + "---:|---:|---:|",
    ]
    for variant, sides in summary(result).items():
        p, m = sides["predicted"], sides["measured"]
        cells = [f"{_n(p['paused'])} / {_n(m['paused'])}"]
        for n in nodes:
            cells.append(f"{_n(p[n + '.fc_sent'], 1)} / {_n(m[n + '.fc_sent'], 1)}")
            cells.append(f"{_n(p[n + '.recv_queue'], 2)} / {_n(m[n + '.recv_queue'], 2)}")
        cells.append(f"{_n(p['commit_latency.mean'] * 1e3, 1)} ms / —")
        for k in ("latency.mean", "latency.p95"):
            cells.append(f"{_n(p[k] * 1e3, 1)} / {_n(m[k] * 1e3, 1)} ms")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The server keeps no commit timer: the writing class's latency below is the "
        "commit latency as its clients see it.",
        "",
        "## Every metric: predicted vs measured (mean paired error ± 95 %)",
        "",
        "| variant | metric | predicted | measured | error ± 95 % | bound | verdict |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for ms in result.metrics.values():
        lines += [row(m) for m in ms]
    lines += ["", "## Replays", ""]
    for variant, rs in result.replays.items():
        for r in rs:
            state = "valid" if r.valid else "NOT VALID: " + "; ".join(r.problems)
            lines.append(
                f"- {variant} r{r.repetition + 1} (seed {r.seed}): background "
                f"{r.background.cores:.2f} cores, CPU work ×{r.background.speed:.3f}, {state}"
            )
    lines += ["", verdict_line(result.passed, "no significant miss, every replay valid")]
    return "\n".join(lines) + "\n"


def write(result: GaleraResult, outdir: Path) -> list[Path]:
    outdir.mkdir(parents=True, exist_ok=True)
    paths = [outdir / "story.json", outdir / "story.md"]
    atomic.write_text(paths[0], json.dumps(to_dict(result), indent=2) + "\n")
    atomic.write_text(paths[1], markdown(result))
    return paths
