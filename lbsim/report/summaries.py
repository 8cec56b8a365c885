"""The tables of a run or an experiment, as plain data: the terminal (rich) and the
HTML report render the same tables."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from lbsim.experiment.compare import Comparison
from lbsim.experiment.metrics import resolve, unit
from lbsim.experiment.plan import Plan
from lbsim.experiment.result import Result
from lbsim.experiment.sweep import SUMMARY_METRICS, Sweep
from lbsim.experiment.variants import format_value, short_keys


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    #: rows to emphasise (the baseline, the chosen configuration)
    strong: set[int] = field(default_factory=set)
    note: str = ""


def num(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "∞"
    return f"{value:.{digits}g}"


def pm(mean: float, half: float, digits: int = 4) -> str:
    """``mean ± half`` (just the mean when the half-width is undefined)."""
    if math.isnan(mean):
        return "—"
    return num(mean, digits) if math.isnan(half) else f"{num(mean, digits)} ± {num(half, 2)}"


def pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{value * 100:.1f} %"


def comparison_tables(c: Comparison) -> list[Table]:
    table = c.table()
    labels = c.labels
    means = Table(
        f"Compare: mean ± 95 % CI ({c.points[0].result.replications} replications per "
        "variant, common random numbers)",
        ["metric", "unit", *labels],
        note=f"{labels[0]} is the baseline.",
    )
    diffs = Table(
        f"Paired difference against {labels[0]}: mean ± 95 % CI",
        ["metric", "unit", *(f"Δ {name}" for name in labels[1:])],
        note="* the interval excludes 0: a real difference at 95 % confidence.",
    )
    for metric in c.metrics:
        sub = list(table[table["metric"] == resolve(metric)].itertuples())
        head = [resolve(metric), unit(metric)]
        means.rows.append([*head, *(pm(r.mean, r.ci95) for r in sub)])
        cells = []
        for r in sub[1:]:
            sign = "+" if r.diff > 0 else ""
            cells.append(f"{sign}{pm(r.diff, r.diff_ci95)}{' *' if r.significant else ''}")
        diffs.rows.append([*head, *cells])
    return [means, diffs]


#: short column heads for the terminal
_COMPACT = {
    "latency.p50": "p50 (s)",
    "latency.p95": "p95 (s)",
    "latency.p99": "p99 (s)",
    "throughput": "throughput (req/s)",
    "failed": "failed",
    "cpu": "cpu",
    "workers": "workers",
}


def sweep_tables(s: Sweep, compact: bool = False) -> list[Table]:
    """With ``compact`` (the terminal) the point table shows means only."""
    keys = [a.key for a in s.axes]
    metrics = [m for m in SUMMARY_METRICS if m != "latency.mean"]
    short = short_keys(keys)
    points = Table(
        "Sweep: mean per point" if compact else "Sweep: mean ± 95 % CI per point",
        [
            *(short[k] for k in keys),
            *(_COMPACT[m] for m in metrics),
            "reps",
        ],
        note="failed: fraction of arrivals; cpu, workers: busiest app node, fraction busy."
        + (" 95 % intervals: summary.csv and lbsim report." if compact else ""),
    )
    knees = {k.index for _, k in s.knees() if k is not None}
    for i, p in enumerate(s.points):
        row = [format_value(p.assignments[k]) for k in keys]
        row += [num(s.mean(i, m)[0]) if compact else pm(*s.mean(i, m), digits=3) for m in metrics]
        row.append(str(len(p.ordered_runs())))
        points.rows.append(row)
        if i in knees:
            points.strong.add(i)
    knee = Table(
        f"Knee: first point where p95 > {s.knee_factor:g} × its value at the lowest {s.x_axis.key}",
        ["curve", s.x_axis.key, "p95 there (s)", "low-load p95 (s)"],
    )
    for curve, k in s.knees():
        if k is None:
            knee.rows.append([curve.label, "none in range", "—", "—"])
        else:
            x = s.points[k.index].assignments[s.x_axis.key]
            knee.rows.append([curve.label, format_value(x), num(k.y), num(k.baseline)])
    return [knee, points]


def plan_tables(p: Plan) -> list[Table]:
    out = []
    chosen = p.chosen
    if chosen is not None:
        t = Table(
            f"Chosen: {chosen.variant.label} — {chosen.cost:g} cores; joint confidence "
            f"≥ {pct(chosen.confidence)} that every SLO holds",
            ["SLO", "mean", "one-sided 95 % bound", "confidence", "headroom"],
            note="confidence: one-sided Student-t test of the mean against the threshold; "
            "headroom: distance of the bound from the threshold, as a fraction of it.",
        )
        for chk in chosen.checks:
            t.rows.append(
                [
                    chk.slo.text,
                    num(chk.mean),
                    num(chk.bound),
                    pct(chk.confidence),
                    pct(chk.headroom),
                ]
            )
        out.append(t)
    cands = Table(
        "Candidates, cheapest first (cost = cores of app nodes + database nodes)",
        ["configuration", "cores", "met", "confidence", *(s.text for s in p.slos)],
        note="SLO columns: mean (one-sided 95 % bound). Skipped: a cheaper "
        "configuration already met every SLO.",
    )
    for i, c in enumerate(p.candidates):
        if not c.evaluated:
            cands.rows.append([c.variant.label, num(c.cost), "skipped", "", *("" for _ in p.slos)])
            continue
        cells = [f"{num(k.mean)} ({num(k.bound)})" for k in c.checks]
        cands.rows.append(
            [c.variant.label, num(c.cost), "yes" if c.met else "no", pct(c.confidence), *cells]
        )
        if c is chosen:
            cands.strong.add(i)
    out.append(cands)
    return out


def run_tables(r: Result) -> list[Table]:
    ci = r.replications > 1

    def cell(key: str) -> str:
        try:
            return pm(r.value(key), r.ci95(key) if ci else math.nan)
        except KeyError:
            return "—"

    lat = Table(
        f"Latency (s) — {r.replications} replication(s)" + (", mean ± 95 % CI" if ci else ""),
        ["class", "throughput (requests/s)", "mean", "p50", "p95", "p99"],
    )
    for name in ["all", *r.scenario.workload.class_names]:
        base = "" if name == "all" else f"classes.{name}."
        tkey = "throughput" if name == "all" else f"classes.{name}.throughput"
        lat.rows.append(
            [name, cell(tkey), *(cell(f"{base}latency.{q}") for q in ("mean", "p50", "p95", "p99"))]
        )
    lat.strong.add(0)
    req = Table(
        "Requests (arrived after warm-up)", ["arrived", "completed", "failed", "failed fraction"]
    )
    req.rows.append(
        [
            cell("requests.arrived"),
            cell("requests.completed"),
            cell("requests.failed.total"),
            num(r.value("requests.failed.total") / r.value("requests.arrived"))
            if r.value("requests.arrived") > 0
            else "—",
        ]
    )
    util = Table("Utilisation (fraction busy)", ["app node", "workers", "cpu"])
    for node in r.scenario.app.resolved_nodes():
        util.rows.append(
            [
                node.name,
                cell(f"utilisation.app.{node.name}.workers"),
                cell(f"utilisation.app.{node.name}.cpu"),
            ]
        )
    return [lat, req, util]


def tables(obj: Result | Comparison | Sweep | Plan, compact: bool = False) -> list[Table]:
    if isinstance(obj, Comparison):
        return comparison_tables(obj)
    if isinstance(obj, Sweep):
        return sweep_tables(obj, compact)
    if isinstance(obj, Plan):
        return plan_tables(obj)
    return run_tables(obj)


def headline(obj: Result | Comparison | Sweep | Plan) -> str:
    """One sentence: what the results say."""
    if isinstance(obj, Plan):
        c = obj.chosen
        if c is None:
            return "No configuration in the grid meets every SLO at 95 % confidence."
        return (
            f"Cheapest configuration meeting every SLO ({', '.join(s.text for s in obj.slos)}): "
            f"{c.variant.label}, {c.cost:g} cores; joint confidence ≥ {pct(c.confidence)}."
        )
    if isinstance(obj, Sweep):
        parts = []
        for curve, k in obj.knees():
            where = f" ({curve.label})" if len(obj.curves()) > 1 else ""
            if k is None:
                parts.append(f"no knee in range{where}")
            else:
                x = obj.points[k.index].assignments[obj.x_axis.key]
                parts.append(f"knee at {obj.x_axis.key}={format_value(x)}{where}")
        return f"{len(obj.points)} points; " + "; ".join(parts) + "."
    if isinstance(obj, Comparison):
        table = obj.table(["latency.p95"])
        best = table.loc[table["mean"].idxmin()]
        return (
            f"{len(obj.points)} variants on common random numbers; lowest p95 latency: "
            f"{best['variant']} ({pm(best['mean'], best['ci95'])} s)."
        )
    return (
        f"{obj.scenario.name}: p95 latency {num(obj.value('latency.p95'))} s, "
        f"throughput {num(obj.value('throughput'))} requests/s."
    )


def print_tables(console: Console, items: list[Table]) -> None:
    """Render the tables in the terminal."""
    for t in items:
        rich_table = RichTable(title=t.title, title_justify="left")
        for i, col in enumerate(t.columns):
            rich_table.add_column(col, justify="left" if i == 0 else "right")
        for i, row in enumerate(t.rows):
            rich_table.add_row(*row, style="bold" if i in t.strong else "")
        console.print(rich_table)
        if t.note:
            console.print(f"[dim]{escape(t.note)}[/dim]")
