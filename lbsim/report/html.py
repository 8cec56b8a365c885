"""One self-contained HTML page for a results directory: headline, provenance
(version, seed, command, wall time), tables, figures embedded as base64 PNG,
and the scenario. No external resources: it opens offline and prints well."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import math
import tempfile
from pathlib import Path
from typing import Any

import yaml
from matplotlib.figure import Figure

from lbsim import __version__
from lbsim.experiment.compare import Comparison
from lbsim.experiment.plan import Plan
from lbsim.experiment.result import Result
from lbsim.experiment.sweep import Sweep
from lbsim.report import atomic
from lbsim.report.figures import figures
from lbsim.report.summaries import Table, headline, tables

CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #1b1b1b; background: #fff; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.25em; margin: 32px 0 10px; border-bottom: 2px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 1.02em; margin: 18px 0 6px; }
.kind { color: #5f5f5f; font-weight: normal; }
.headline { font-size: 1.12em; background: #eef4fb; border-left: 5px solid #006ba4;
            padding: 10px 14px; margin: 14px 0 8px; }
.wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 4px 0 6px; font-size: 0.92em; }
th, td { border: 1px solid #cfcfcf; padding: 4px 9px; text-align: right; white-space: nowrap; }
th { background: #f1f1f1; font-weight: 600; }
th:first-child, td:first-child { text-align: left; }
tr.strong td { font-weight: 700; background: #fff6e0; }
table.meta td { text-align: left; white-space: normal; }
table.meta td:first-child { color: #555; width: 11em; }
.note { color: #555; font-size: 0.88em; margin: 0 0 14px; }
figure { margin: 14px 0 26px; break-inside: avoid; page-break-inside: avoid; }
figure img { max-width: 100%; height: auto; border: 1px solid #e3e3e3; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; border: 1px solid #e3e3e3; padding: 10px 12px; font-size: 0.82em;
      overflow-x: auto; max-height: 60em; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
footer { color: #777; font-size: 0.85em; margin-top: 36px; }
@media print { main { max-width: none; padding: 0; } pre { max-height: none; }
               h2 { break-after: avoid; } }
"""

CAPTIONS = {
    "compare.png": "Mean of each metric per variant with its 95 % confidence interval.",
    "compare_diff.png": "Paired difference against the baseline (common random numbers) with "
    "its 95 % interval; an interval that excludes 0 is a real difference.",
    "compare_cdf.png": "Latency distribution of each variant (replication 0: same arrivals).",
    "sweep_latency.png": "Latency percentiles against the swept parameter; the star marks "
    "the knee.",
    "sweep_utilisation.png": "Utilisation of the busiest app node.",
    "sweep_failures.png": "Failed fraction and throughput.",
    "plan.png": "Each SLO's metric per evaluated candidate, cheapest first, with its one-sided "
    "95 % bound; the dashed line is the threshold, the shaded column the choice.",
    "overview.png": "Latency distribution per class and CPU utilisation over time.",
    "latency_cdf.png": "Latency CDF per class (replication 0).",
    "utilisation.png": "CPU and worker utilisation per interval.",
    "queues.png": "Queue lengths per interval.",
    "database.png": "Database CPU, connections, receive queues and flow control.",
}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=144)
    return buf.getvalue()


def _run_pngs(result: Result) -> dict[str, bytes]:
    """The run's own plots (drawn by lbsim.report.plots into a scratch directory)."""
    if not (result.timeseries and result.cdf):
        return {}
    from lbsim.report.plots import write_all

    with tempfile.TemporaryDirectory() as tmp:
        return {p.name: p.read_bytes() for p in write_all(result, Path(tmp))}


def _table_html(t: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = []
    for i, row in enumerate(t.rows):
        cls = ' class="strong"' if i in t.strong else ""
        cells = "".join(f"<td>{html.escape(c)}</td>" for c in row)
        body.append(f"<tr{cls}>{cells}</tr>")
    note = f'<p class="note">{html.escape(t.note)}</p>' if t.note else ""
    return (
        f"<h3>{html.escape(t.title)}</h3>"
        f'<div class="wrap"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{note}"
    )


def _meta_rows(meta: dict[str, Any], kind: str, scenario_name: str) -> list[tuple[str, str]]:
    rules = meta.get("spec", {}).get("replications", {})
    if rules.get("rule") == "target_ci":
        reps = (
            f"until the 95 % half-width of {rules['metric']} ≤ {rules['half_width']:g} "
            f"(at most {rules['maximum']})"
        )
    elif rules.get("rule") == "fixed":
        reps = f"{rules['replications']} per point"
    else:
        reps = str(meta.get("replications", ""))
    wall = meta.get("wall_time")
    rows = [
        ("kind", kind),
        ("scenario", scenario_name),
        ("file", str(meta.get("spec", {}).get("file") or "")),
        ("seed", str(meta.get("seed", ""))),
        ("replications", reps),
        ("lbsim version", str(meta.get("lbsim_version", ""))),
        ("lbsim build", str(meta.get("lbsim_build", ""))),
        ("command", str(meta.get("command") or "")),
        ("started", str(meta.get("started", ""))),
        (
            "wall time",
            f"{wall:.1f} s" if isinstance(wall, int | float) and math.isfinite(wall) else "",
        ),
        ("status", str(meta.get("status", ""))),
        ("executor", str(meta.get("executor", ""))),
    ]
    return [(k, v) for k, v in rows if v]


def _scenario(obj: Result | Comparison | Sweep | Plan) -> tuple[str, dict[str, Any]]:
    if isinstance(obj, Result):
        return obj.scenario.name, obj.scenario.model_dump(mode="json")
    base = obj.meta.get("spec", {}).get("base")
    if isinstance(obj, Plan):
        scenario = obj.candidates[0].variant.scenario
    else:
        scenario = obj.points[0].variant.scenario
    return scenario.name, base if isinstance(base, dict) else scenario.model_dump(mode="json")


def render(obj: Result | Comparison | Sweep | Plan, kind: str) -> str:
    """The HTML page of a run or experiment."""
    name, scenario = _scenario(obj)
    meta = obj.meta
    pngs = {k: _png(f) for k, f in figures(obj).items()}
    if isinstance(obj, Result):
        pngs.update(_run_pngs(obj))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>lbsim {html.escape(kind)} — {html.escape(name)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        f'<h1>{html.escape(name)} <span class="kind">· lbsim {html.escape(kind)}</span></h1>',
        f'<p class="headline">{html.escape(headline(obj))}</p>',
        "<h2>Provenance</h2>",
        '<table class="meta"><tbody>',
        *(
            f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(v)}</code></td></tr>"
            if k == "command"
            else f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
            for k, v in _meta_rows(meta, kind, name)
        ),
        "</tbody></table>",
        "<h2>Results</h2>",
        *(_table_html(t) for t in tables(obj)),
    ]
    if pngs:
        parts.append("<h2>Figures</h2>")
        for file, data in pngs.items():
            b64 = base64.b64encode(data).decode("ascii")
            caption = CAPTIONS.get(file, "")
            parts.append(
                f'<figure><img alt="{html.escape(caption or file)}" '
                f'src="data:image/png;base64,{b64}">'
                f"<figcaption>{html.escape(file)}: {html.escape(caption)}</figcaption></figure>"
            )
    text = yaml.safe_dump(scenario, sort_keys=False, allow_unicode=True, width=100)
    parts += [
        "<h2>Scenario</h2>",
        '<p class="note">The resolved base scenario (defaults filled in); variants change '
        "only the varied keys.</p>"
        if not isinstance(obj, Result)
        else "",
        f"<pre><code>{html.escape(text)}</code></pre>",
        f"<footer>Generated by lbsim {html.escape(__version__)} on "
        f"{dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def write_report(obj: Result | Comparison | Sweep | Plan, kind: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, render(obj, kind))
    return path
