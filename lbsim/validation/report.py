"""The calibration report: what was measured, predicted, and how far apart they are.

Files (in the campaign's output directory):

* ``report.md`` — the machine, the calibration, the background and CPU speed
  of every phase, one table per load level with every bounded metric (mean
  predicted and measured over the replays, mean paired error ± its 95 %
  interval, bound, verdict; an overload level: throughput and failures of
  each kind, their counts and the latency growth,
  :mod:`lbsim.validation.overload_report`), the stale-read probe, the plots;
* ``errors.json`` — ``paired``: one entry per scenario × level × metric (the
  replays' predicted, measured and signed errors, mean, ``ci95``, verdict,
  ``r_needed``); ``errors``: one entry per replay × metric; ``phases``: each
  phase's background, speed, attempt and problems; ``overload``: per overload
  level the counts answered by the horizon and the latency growth, predicted
  and measured; machine-readable;
* ``calibration.json`` — the measured costs and the machine;
* ``measurements.csv`` — measured values in the tidy format of
  :mod:`lbsim.report.calibration` (``param,value,metric,measured,measured_ci95``);
* ``latency.png``, ``throughput.png``, ``utilisation.png``, ``galera.png``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lbsim.report import atomic
from lbsim.stats.replications import flatten, t_half_width
from lbsim.validation.knee import knee_line
from lbsim.validation.levels import is_overload, judged_replays
from lbsim.validation.overload_report import overload_lines, overload_summary
from lbsim.validation.path_times import level_path, path_lines
from lbsim.validation.runqueue import level_runqueue, runqueue_lines

if TYPE_CHECKING:
    from lbsim.validation.campaign import CampaignResult

PARAM = "workload.open.rate"


def _flat(results: dict[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in flatten(
        {k: v for k, v in results.items() if k not in ("scenario", "meta")}
    ).items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _fmt(value: float, metric: str) -> str:
    if not math.isfinite(value):
        return "–"
    if metric.startswith("failures."):
        return f"{value:.2%}"
    if metric.startswith("latency") or "latency." in metric:
        return f"{value * 1e3:.1f} ms"
    if metric == "throughput" or metric.endswith(".throughput"):
        return f"{value:.2f}/s"
    return f"{value:.3f}"


def _err(e: Any) -> str:
    if not math.isfinite(e.error):
        return "–"
    shown = f"{e.error:.1%}" if e.kind == "relative" else f"{e.error * 100:.1f} pp"
    noise = getattr(e, "noise", 0.0)
    if noise > 0:  # a one-sample estimate: its own 95 % interval
        shown += f" ± {noise:.1%}" if e.kind == "relative" else f" ± {noise * 100:.1f} pp"
    return shown


def _bound(e: Any) -> str:
    if e.kind != "relative":
        return f"{e.bound * 100:.0f} pp"
    floor = getattr(e, "floor", 0.0)
    return f"{e.bound:.0%}" + (f" (of ≥ {floor:.0%})" if floor else "")


def write_report(result: CampaignResult) -> list[Path]:
    out = result.outdir
    out.mkdir(parents=True, exist_ok=True)
    written = []
    errors = [
        {
            **e.to_dict(),
            "rate": lv.rate,
            "repetition": r.repetition + 1,
            "seed": r.seed,
            "speed": r.speed,
            "background": r.background.cores,
            "valid": r.valid,
        }
        for lv in result.levels
        for r in lv.replays
        for e in r.errors
    ]
    errors += [e.to_dict() for e in result.probe]
    doc = {
        "machine": result.machine,
        "passed": result.passed,
        "not_valid": result.not_valid(),
        "paired": [p.to_dict() for p in result.paired()],
        "errors": errors,
        "phases": phases(result),
        "knee": result.knee,
        "overload": overload_summary(result),
    }
    atomic.write_text(out / "errors.json", json.dumps(doc, indent=2, default=_nan) + "\n")
    written.append(out / "errors.json")
    cal = result.calibration.to_dict()
    cal["machine"] = result.machine
    cal["capacity"] = result.capacity
    cal["calibrated_scenario"] = str(result.calibrated_file)
    if result.target:
        cal["target"] = result.target
    atomic.write_text(out / "calibration.json", json.dumps(cal, indent=2) + "\n")
    written.append(out / "calibration.json")
    written.append(_measurements_csv(result, out / "measurements.csv"))
    written.extend(_plots(result, out))
    written.append(_markdown(result, out / "report.md"))
    return written


def _meta(replay: Any, key: str) -> dict[str, Any]:
    """A mapping of the replay's measured ``meta``: ``path`` (where its time
    went; empty for a target's), ``runqueue`` (its waits for a core; empty
    before they were measured)."""
    value = replay.measured.get("meta", {}).get(key, {})
    return value if isinstance(value, dict) else {}


def _nan(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else str(value)


def phases(result: CampaignResult) -> list[dict[str, Any]]:
    """Every phase's background and speed: the low-load ones, then each replay."""
    out = [dict(p) for p in result.calibration.phases]
    for lv in result.levels:
        for r in lv.replays:
            out.append({**r.background.to_dict(), "rate": r.rate, "seed": r.seed})
    return out


_VERDICT = {"within": "✓ within", "miss": "✗ miss", "inconclusive": "? inconclusive"}


def _verdict(result: CampaignResult) -> str:
    paired = result.paired()
    miss = sum(p.verdict == "miss" for p in paired)
    unsure = sum(p.verdict == "inconclusive" for p in paired)
    within = len(paired) - miss - unsure
    text = f"{within} of {len(paired)} metrics within their bounds, {miss} significant misses, "
    text += f"{unsure} inconclusive"
    bad = result.not_valid()
    return text + (f"; {len(bad)} phases NOT VALID" if bad else "; every phase valid")


def _pm(mean: float, half: float, kind: str) -> str:
    if not math.isfinite(mean):
        return "–"
    if kind == "relative":
        return f"{mean:+.1%} ± {half:.1%}" if math.isfinite(half) else f"{mean:+.1%}"
    return f"{mean * 100:+.1f} ± {half * 100:.1f} pp" if math.isfinite(half) else f"{mean:+.3f}"


def _phase_table(result: CampaignResult) -> list[str]:
    rows = phases(result)
    probed = any(math.isfinite(p.get("machine", math.nan)) for p in rows)
    lines = [
        "",
        "## Background and CPU speed per phase",
        "",
        "Background: cores busy outside the stack's containers and the load generator "
        "(other programs), less what the phase's own requests caused there; start and end: "
        "its first and last part. Speed: a PHP work unit's cost over the calibration's"
        + (
            " (a target: its app CPU per request over the calibration's); machine: the speed "
            "probe's cost over the calibration's, and how far it moved from the phase's "
            "first quarter to its last"
            if probed
            else ""
        )
        + ".",
        "",
        "| phase | attempt | background | start → end | speed |"
        + (" machine | moved |" if probed else "")
        + " valid |",
        "|---|---|---|---|---|" + ("---|---|" if probed else "") + "---|",
    ]
    for p in rows:
        ok = "✓" if p["valid"] else "✗ " + "; ".join(p["problems"])
        machine = (
            f" {_times(p.get('machine', math.nan))} | {_signed(p.get('machine_moved', math.nan))} |"
            if probed
            else ""
        )
        lines.append(
            f"| {p['phase']} | {p['attempt']} | {p['cores']:.3f} | {p['start']:.3f} → "
            f"{p['end']:.3f} | ×{p['speed']:.3f} |{machine} {ok} |"
        )
    return lines


def _times(x: float) -> str:
    return f"×{x:.3f}" if math.isfinite(x) else "–"


def _signed(x: float) -> str:
    return f"{x:+.1%}" if math.isfinite(x) else "–"


def _measurements_csv(result: CampaignResult, path: Path) -> Path:
    lines = [
        f"# measured by lbsim calibrate on {result.machine.get('cpu', '?')} "
        f"({result.machine.get('cores', '?')} cores); one row per load level x metric",
        "param,value,metric,measured,measured_ci95",
    ]
    for lv in result.levels:
        runs = [_flat(r.measured) for r in lv.replays if r.valid] or [_flat(lv.measured)]
        for metric, value in sorted(_flat(lv.measured).items()):
            ci = t_half_width([run[metric] for run in runs if metric in run])
            lines.append(
                f"{PARAM},{lv.rate:g},{metric},{value:.9g},{ci:.9g}"
                if math.isfinite(ci)
                else f"{PARAM},{lv.rate:g},{metric},{value:.9g},"
            )
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


def _series(result: CampaignResult, metric: str) -> tuple[list[float], list[float], list[float]]:
    rates, pred, meas = [], [], []
    for lv in result.levels:
        p, m = _flat(lv.predicted), _flat(lv.measured)
        rates.append(lv.rate)
        pred.append(p.get(metric, math.nan))
        meas.append(m.get(metric, math.nan))
    return rates, pred, meas


def _plot(
    result: CampaignResult,
    path: Path,
    metrics: list[tuple[str, str]],
    ylabel: str,
    scale: float = 1.0,
) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (metric, label) in enumerate(metrics):
        rates, pred, meas = _series(result, metric)
        c = colors[i % len(colors)]
        ax.plot(rates, [v * scale for v in pred], "-", color=c, label=f"{label} predicted")
        ax.plot(rates, [v * scale for v in meas], "o", color=c, label=f"{label} measured")
    ax.set_xlabel("arrival rate (requests/s)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{result.scenario.name}: predicted (lines) vs measured (dots)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    atomic.save_figure(fig, path)
    plt.close(fig)
    return path


def _plots(result: CampaignResult, out: Path) -> list[Path]:
    paths = [
        _plot(
            result,
            out / "latency.png",
            [
                ("latency.mean", "mean"),
                ("latency.p50", "p50"),
                ("latency.p95", "p95"),
                ("latency.p99", "p99"),
            ],
            "latency (ms)",
            1e3,
        ),
        _plot(result, out / "throughput.png", [("throughput", "throughput")], "requests/s"),
    ]
    nodes = [n.name for n in result.scenario.app.resolved_nodes()]
    util = [(f"utilisation.app.{n}.cpu", f"{n} cpu") for n in nodes]
    util += [(f"utilisation.db.{n}.cpu", f"{n} cpu") for n in _db_nodes(result)]
    paths.append(_plot(result, out / "utilisation.png", util, "busy fraction of the node's cores"))
    if result.levels and "galera" in result.levels[0].measured:
        gal = [("galera.flow_control.paused", "flow control paused")]
        gal += [
            (f"galera.nodes.{n}.wsrep_local_cert_failures", f"{n} cert failures")
            for n in _db_nodes(result)[:1]
        ]
        paths.append(_plot(result, out / "galera.png", gal, "fraction / count"))
    return paths


def _db_nodes(result: CampaignResult) -> list[str]:
    if not result.levels:
        return []
    return sorted(result.levels[0].measured.get("utilisation", {}).get("db", {}))


def _unit_lines(cal: Any) -> list[str]:
    return [
        f"- PHP work unit: {cal.costs.unit_seconds * 1e6:.3f} µs; BENCHMARK() iteration: "
        f"{cal.costs.db_iteration_seconds * 1e9:.2f} ns",
    ]


def _target_lines(target: dict[str, Any]) -> list[str]:
    """The user's stack (``lbsim calibrate --target``): where, which containers,
    what the model took from them; the speed is the app's CPU per request."""
    topo = target.get("topology", {})

    def shape(s: dict[str, Any]) -> str:
        bits = [f"{s['cores']:g} cores" if s.get("cores") else "no CPU limit"]
        if s.get("workers"):
            bits.append(f"{s['workers']} workers")
        if s.get("max_connections"):
            bits.append(f"max_connections {s['max_connections']}")
        return f"{s['name']} ({', '.join(bits)})"

    out = [
        f"- target `{target.get('name')}` ({target.get('file')}) at {target.get('url')}: app "
        + ", ".join(shape(s) for s in topo.get("app", []))
        + "; database "
        + (", ".join(shape(s) for s in topo.get("db", [])) or "none"),
        "- the application reports no work units: a replay's speed is its app containers' "
        "CPU per request of each class over the CPU measured here",
    ]
    out += [f"- {line}" for line in target.get("notes", [])]
    stmts = target.get("statements", [])
    if stmts:
        out += [
            "",
            "| class | reads per request | writes per request | connections per request |",
            "|---|---|---|---|",
        ]
        out += [
            f"| {s['name']} | {s['reads']:.1f} | {s['writes']:.2f} | {s['connections']:.2f} |"
            for s in stmts
        ]
        out.append("")
    return out


def _markdown(result: CampaignResult, path: Path) -> Path:
    m, cal = result.machine, result.calibration
    lines = [
        f"# Calibration of `{result.scenario.name}` against the real stack",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, "
        f"{m.get('memory_gib', '?')} GiB, Linux {m.get('kernel', '?')}, Docker "
        f"{m.get('docker', '?')}, lbsim {m.get('lbsim', '?')}. Every container and the "
        "load generator share this machine.",
        "",
        "Verdict: **" + _verdict(result) + "**.",
        "",
        "Each level was replayed R times with different seeds (interleaved across levels) "
        "and each replay simulated with its seed, its CPU speed and the background measured "
        "while it ran, so errors are paired. Per metric: the mean paired error (signed: "
        "predicted − measured, relative to measured for throughput and latency) and its "
        "Student-t 95 % interval. *within*: |mean| ≤ bound; *miss* (model error): the whole "
        "interval lies beyond the bound; *inconclusive* (noise): |mean| > bound but the "
        "interval reaches back inside it — R needed says how many replays would decide.",
        "",
        "## What was measured at low load",
        "",
        *(_target_lines(result.target) if result.target else _unit_lines(cal)),
        f"- idle stack: {cal.idle_cores:.3f} cores busy in its containers; other programs: "
        f"{cal.background:.3f} cores while the classes were measured; balancer + network latency "
        f"{cal.balancer_latency * 1e3:.2f} ms"
        + (
            ", the database round trips included (a target's application is not timed from inside)"
            if result.target
            else f"; database round trip (one way) {cal.app_db * 1e3:.3f} ms"
        ),
    ]
    # a target's write path is not probed with lbsim's own writes (its Galera
    # write-set cost is fitted from the classes: the target's notes above)
    if not result.target and (cal.apply_cpu or cal.write_commit):
        lines.append(
            f"- writes: an empty write takes {cal.write_commit * 1e3:.3f} ms longer than a "
            f"read (the commit path), of which the log flush {cal.log_flush * 1e3:.3f} ms; "
            f"Galera: {cal.apply_cpu * 1e3:.3f} ms CPU per write-set on each other node "
            "(`receive`)"
        )
    lines += [
        f"- capacity: {result.capacity:.1f} requests/s "
        f"({cal.cpu_per_request(result.scenario) * 1e3:.1f} ms of CPU per request of the mix)",
        f"- calibrated scenario: `{result.calibrated_file}`",
        "",
        "| class | n | PHP CPU planned | PHP CPU measured | DB planned | DB CPU measured "
        "| other CPU | latency |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cal.classes:
        lines.append(
            f"| {c.name} | {c.n} | {c.planned_cpu * 1e3:.2f} ms | {c.app_cpu * 1e3:.2f} ms | "
            f"{c.planned_db * 1e3:.2f} ms | {c.db_cpu * 1e3:.2f} ms | "
            f"{c.other_cpu * 1e3:.2f} ms | {c.latency * 1e3:.1f} ms |"
        )
    lines += _phase_table(result)
    lines += ["", "## Predicted against measured", ""]
    for lv in result.levels:
        n = sum(r.valid for r in lv.replays)
        lines += [
            f"### {lv.level:.0%} of capacity{' (overload)' if is_overload(lv.level) else ''}: "
            f"{lv.rate:g} requests/s, {n} valid replays of {len(lv.replays)}",
            "",
        ]
        if not lv.valid:
            lines += [f"**Not valid**: {'; '.join(lv.problems)}", ""]
        lines += [
            "| metric | predicted | measured | mean paired error ± 95 % CI | bound | verdict "
            "| R needed |",
            "|---|---|---|---|---|---|---|",
        ]
        for pm in lv.paired:
            d = pm.to_dict()
            lines.append(
                f"| {pm.metric} | {_fmt(d['predicted_mean'], pm.metric)} | "
                f"{_fmt(d['measured_mean'], pm.metric)} | {_pm(pm.mean, pm.half, pm.kind)} | "
                f"{_bound(pm)} | {_VERDICT[pm.verdict]} | {pm.r_needed or ''} |"
            )
        lines.append("")
        if is_overload(lv.level):
            lines += overload_lines(result, lv)
    lines += path_lines(
        [
            (f"{lv.level:.0%}", level_path([_meta(r, "path") for r in judged_replays(lv.replays)]))
            for lv in result.levels
        ],
        cal.balancer_latency,
        cal.connect,
    )
    lines += runqueue_lines(
        [
            (
                f"{lv.level:.0%}",
                level_runqueue([_meta(r, "runqueue") for r in judged_replays(lv.replays)]),
            )
            for lv in result.levels
        ]
    )
    if result.knee:
        lines += [
            "## The knee",
            "",
            "The rate where p95 first exceeds 3× its value at the lowest level; predicted from "
            "a sweep of the calibrated model (the replays' mean speed and background), "
            "measured between the levels (interpolated: as fine as the levels are).",
            "",
            knee_line(result.knee),
            "",
        ]
    if result.probe:
        lines += [
            "## Stale reads (write on one node, read at once on another)",
            "",
            "| probe | predicted | measured | error | bound | |",
            "|---|---|---|---|---|---|",
        ]
        for e in result.probe:
            lines.append(
                f"| {e.level} | {e.predicted:.3f} | {e.measured:.3f} | {_err(e)} | {_bound(e)} "
                f"| {'✓' if e.ok else '✗'} |"
            )
        lines.append("")
    lines += ["## Plots", ""]
    for name in ("latency", "throughput", "utilisation", "galera"):
        if (path.parent / f"{name}.png").exists():
            lines.append(f"![{name}]({name}.png)")
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path
