"""Figures of experiments (compare, sweep, plan) and a one-figure overview of a run.

Every function returns a matplotlib :class:`Figure` built outside pyplot's
global state: it shows inline in Jupyter, and :func:`save` writes it as PNG.
Colour-blind-safe palette (tableau-colorblind10), and markers and line
styles that keep series apart in grey print; axes labelled with units.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from lbsim.experiment.compare import Comparison
from lbsim.experiment.metrics import label, resolve
from lbsim.experiment.plan import Plan
from lbsim.experiment.result import Result
from lbsim.experiment.sweep import Sweep
from lbsim.report import atomic

STYLE = "tableau-colorblind10"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
LINES = ("-", "--", ":", "-.")

#: metrics of the comparison figures
COMPARE_PANELS = ("latency.mean", "latency.p95", "latency.p99", "throughput", "cpu", "failed")


class InlineFigure(Figure):
    """A figure that shows itself in Jupyter (as PNG) without pyplot's inline backend."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png")
        return buf.getvalue()


def new_figure(rows: int = 1, cols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """A figure and its axes, outside pyplot (nothing to close)."""
    fig = InlineFigure(figsize=kwargs.pop("figsize", (8, 4.5)), dpi=kwargs.pop("dpi", 110))
    return fig, fig.subplots(rows, cols, squeeze=False, **kwargs)


def save(fig: Figure, path: Path) -> Path:
    atomic.save_figure(fig, path)
    return path


def _colours() -> list[str]:
    with plt.style.context(STYLE):
        return list(plt.rcParams["axes.prop_cycle"].by_key()["color"])


def _finite(v: float) -> float:
    return v if math.isfinite(v) else 0.0


# ----------------------------------------------------------------------- compare


def compare_figure(comparison: Comparison, metrics: Sequence[str] = COMPARE_PANELS) -> Figure:
    """Each metric's mean per variant with its 95 % interval (error bars)."""
    table = comparison.table(metrics)
    labels = comparison.labels
    colours = _colours()
    cols = 3 if len(metrics) > 4 else max(1, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    with plt.style.context(STYLE):
        fig, axes = new_figure(rows, cols, figsize=(4.0 * cols, 3.3 * rows + 0.6))
        for n, metric in enumerate(metrics):
            ax = axes[n // cols][n % cols]
            sub = table[table["metric"] == resolve(metric)]
            for i, row in enumerate(sub.itertuples()):
                ax.errorbar(
                    [i],
                    [row.mean],
                    yerr=[[_finite(row.ci95)], [_finite(row.ci95)]],
                    fmt=MARKERS[i % len(MARKERS)],
                    color=colours[i % len(colours)],
                    capsize=5,
                    markersize=8,
                    elinewidth=1.6,
                )
            ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize="small")
            ax.set_xlim(-0.6, len(labels) - 0.4)
            ax.set_ylabel(label(metric), fontsize="small")
            ax.set_title(resolve(metric), fontsize="medium")
            ax.grid(True, axis="y", alpha=0.3)
        for n in range(len(metrics), rows * cols):
            axes[n // cols][n % cols].set_visible(False)
        fig.suptitle(
            f"Compare — {comparison.points[0].variant.scenario.name}: mean ± 95 % CI "
            f"({comparison.points[0].result.replications} replications, common random numbers)",
            fontsize="medium",
        )
        fig.tight_layout()
    return fig


def compare_diff_figure(comparison: Comparison, metrics: Sequence[str] = COMPARE_PANELS) -> Figure:
    """Paired differences against the first variant with their 95 % intervals."""
    table = comparison.table(metrics)
    others = comparison.labels[1:]
    colours = _colours()
    cols = 3 if len(metrics) > 4 else max(1, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    with plt.style.context(STYLE):
        fig, axes = new_figure(rows, cols, figsize=(4.0 * cols, 3.3 * rows + 0.6))
        for n, metric in enumerate(metrics):
            ax = axes[n // cols][n % cols]
            sub = table[table["metric"] == resolve(metric)].iloc[1:]
            for i, row in enumerate(sub.itertuples()):
                ax.errorbar(
                    [i],
                    [row.diff],
                    yerr=[[_finite(row.diff_ci95)], [_finite(row.diff_ci95)]],
                    fmt=MARKERS[(i + 1) % len(MARKERS)],
                    color=colours[(i + 1) % len(colours)],
                    capsize=5,
                    markersize=8,
                )
            ax.axhline(0, color="0.3", linewidth=1)
            ax.set_xticks(range(len(others)), others, rotation=20, ha="right", fontsize="small")
            ax.set_xlim(-0.6, len(others) - 0.4)
            ax.set_ylabel(f"Δ {label(metric)}", fontsize="small")
            ax.set_title(resolve(metric), fontsize="medium")
            ax.grid(True, axis="y", alpha=0.3)
        for n in range(len(metrics), rows * cols):
            axes[n // cols][n % cols].set_visible(False)
        fig.suptitle(
            f"Paired difference against {comparison.labels[0]} (± 95 % CI; "
            "an interval clear of 0 is a real difference)",
            fontsize="medium",
        )
        fig.tight_layout()
    return fig


def compare_cdf_figure(comparison: Comparison) -> Figure:
    """Latency CDF of every variant (replication 0, all requests)."""
    with plt.style.context(STYLE):
        fig, axes = new_figure(figsize=(8, 4.5))
        ax = axes[0][0]
        for i, p in enumerate(comparison.points):
            cdf = (p.extras or {}).get("cdf", {}).get("all")
            if not cdf or not cdf[0]:
                continue
            ax.step(cdf[0], cdf[1], where="post", label=p.label, linestyle=LINES[i % len(LINES)])
        ax.set_xscale("log")
        ax.set_xlabel("latency (s, log scale)")
        ax.set_ylabel("fraction of requests ≤ latency")
        ax.set_ylim(0, 1.01)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(title="variant", fontsize="small")
        ax.set_title("Latency CDF per variant (replication 0, same arrivals)")
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------- sweep


#: units of swept keys, by their last part
X_UNITS = {
    "rate": "requests/s",
    "users": "clients",
    "cores": "cores",
    "nodes": "nodes",
    "workers": "workers",
    "interval": "s",
    "duration": "s",
    "warmup": "s",
    "timeout": "s",
    "request_timeout": "s",
    "upstream_timeout": "s",
    "latency": "s",
    "backlog": "requests",
}


def _x_label(sweep: Sweep) -> str:
    key = sweep.x_axis.key
    unit = X_UNITS.get(key.rsplit(".", 1)[-1])
    return f"{key} ({unit})" if unit else key


def _set_x(ax: Any, sweep: Sweep) -> None:
    ax.set_xlabel(_x_label(sweep))
    if not sweep.x_axis.numeric:
        ax.set_xticks(range(len(sweep.x_axis.values)), [str(v) for v in sweep.x_axis.values])


def _sweep_lines(
    ax: Any, sweep: Sweep, metrics: Sequence[str], scale: float = 1.0, log: bool = False
) -> None:
    """One line per curve × metric: colour and marker by curve, line style by metric.

    On a log axis the lower error bar stops at a tenth of the mean (an interval
    reaching below 0 cannot be drawn there)."""
    colours = _colours()
    curves = sweep.curves()
    for c, curve in enumerate(curves):
        for m, metric in enumerate(metrics):
            xs = [sweep.x(i) for i in curve.indices]
            stats = [sweep.mean(i, metric) for i in curve.indices]
            means = [s[0] * scale for s in stats]
            halves = [_finite(s[1]) * scale for s in stats]
            lower = [min(h, 0.9 * y) if log else h for y, h in zip(means, halves, strict=True)]
            name = metric.rsplit(".", 1)[-1]
            ax.errorbar(
                xs,
                means,
                yerr=[lower, halves],
                label=f"{name}, {curve.label}" if len(curves) > 1 else name,
                color=colours[(c if len(curves) > 1 else m) % len(colours)],
                linestyle=LINES[m % len(LINES)],
                marker=MARKERS[c % len(MARKERS)],
                markersize=5,
                capsize=3,
                elinewidth=0.9,
            )


def sweep_latency_figure(sweep: Sweep) -> Figure:
    """p50, p95, p99 against the swept parameter, one line group per curve; knees marked."""
    with plt.style.context(STYLE):
        fig, axes = new_figure(figsize=(9, 5))
        ax = axes[0][0]
        _sweep_lines(ax, sweep, ("latency.p50", "latency.p95", "latency.p99"), log=True)
        for curve, knee in sweep.knees():
            if knee is None:
                continue
            ax.axvline(knee.x, color="0.25", linestyle=":", linewidth=1.2)
            ax.plot([knee.x], [knee.y], marker="*", markersize=16, color="black", zorder=5)
            where = f" ({curve.label})" if len(sweep.curves()) > 1 else ""
            ax.annotate(
                f"knee{where}: {format(knee.x, 'g')}\np95 > {sweep.knee_factor:g}× low-load",
                (knee.x, knee.y),
                textcoords="offset points",
                xytext=(-20, 28),
                ha="right",
                arrowprops={"arrowstyle": "->", "color": "0.3"},
                fontsize="small",
                bbox={"boxstyle": "round", "fc": "white", "ec": "0.5", "alpha": 0.9},
            )
        ax.set_yscale("log")
        _set_x(ax, sweep)
        ax.set_ylabel("latency (s, log scale)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small", ncol=2 if len(sweep.curves()) > 1 else 1)
        ax.set_title(
            f"Latency percentiles — {sweep.points[0].variant.scenario.name} (mean ± 95 % CI)"
        )
        fig.tight_layout()
    return fig


def sweep_utilisation_figure(sweep: Sweep) -> Figure:
    """Busiest app node's CPU and worker utilisation against the swept parameter."""
    with plt.style.context(STYLE):
        fig, axes = new_figure(figsize=(9, 4.5))
        ax = axes[0][0]
        _sweep_lines(ax, sweep, ("cpu", "workers"), scale=100)
        ax.axhline(100, color="0.5", linewidth=1)
        _set_x(ax, sweep)
        ax.set_ylabel("busiest app node (% busy)")
        ax.set_ylim(0, 105)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small", title="cpu: of cores; workers: of max_children")
        ax.set_title("Utilisation (mean ± 95 % CI)")
        fig.tight_layout()
    return fig


def sweep_failures_figure(sweep: Sweep) -> Figure:
    """Failed fraction and throughput against the swept parameter."""
    with plt.style.context(STYLE):
        fig, axes = new_figure(2, 1, figsize=(9, 6), sharex=True)
        _sweep_lines(axes[0][0], sweep, ("failed",), scale=100)
        axes[0][0].set_ylabel("failed (% of arrivals)")
        _sweep_lines(axes[1][0], sweep, ("throughput",))
        axes[1][0].set_ylabel("throughput (requests/s)")
        _set_x(axes[1][0], sweep)
        for row in axes:
            row[0].grid(True, alpha=0.3)
            row[0].legend(fontsize="small")
        axes[0][0].set_title("Failures and throughput (mean ± 95 % CI)")
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------- plan


def plan_figure(plan: Plan) -> Figure:
    """Each SLO's metric per evaluated candidate (cost order) with its one-sided 95 % bound."""
    done = [c for c in plan.candidates if c.evaluated]
    chosen = plan.chosen
    colours = _colours()
    n = len(plan.slos)
    with plt.style.context(STYLE):
        fig, axes = new_figure(n, 1, figsize=(max(6.0, 1.1 * len(done) + 3), 2.9 * n + 0.8))
        ticks = [f"{c.variant.label}\n{c.cost:g} cores" for c in done]
        for k, slo in enumerate(plan.slos):
            ax = axes[k][0]
            for i, c in enumerate(done):
                chk = c.checks[k]
                ok = chk.met
                bound = chk.bound if math.isfinite(chk.bound) else chk.mean
                lower = max(0.0, chk.mean - bound) if not slo.upper else 0.0
                upper = max(0.0, bound - chk.mean) if slo.upper else 0.0
                ax.errorbar(
                    [i],
                    [chk.mean],
                    yerr=[[lower], [upper]],
                    fmt="o" if ok else "X",
                    color=colours[0] if ok else colours[1],
                    markersize=12 if c is chosen else 7,
                    capsize=5,
                    mec="black" if c is chosen else None,
                )
            ax.axhline(slo.threshold, color="black", linestyle="--", linewidth=1.2)
            ax.text(
                1.0,
                slo.threshold,
                f" {slo.op} {slo.threshold:g}",
                transform=ax.get_yaxis_transform(),
                va="center",
                fontsize="small",
            )
            if chosen is not None and chosen in done:
                ax.axvspan(done.index(chosen) - 0.4, done.index(chosen) + 0.4, color="0.9")
            ax.set_xticks(range(len(done)), ticks, fontsize="small")
            ax.set_xlim(-0.6, len(done) - 0.4)
            means = [c.checks[k].mean for c in done if math.isfinite(c.checks[k].mean)]
            if means and min(means) > 0 and max(max(means), slo.threshold) > 20 * min(means):
                ax.set_yscale("log")  # one overloaded candidate would flatten the rest
            ax.set_ylabel(
                label(slo.metric) + (", log scale" if ax.get_yscale() == "log" else ""),
                fontsize="small",
            )
            ax.set_title(f"SLO {slo.text}: mean and one-sided 95 % bound", fontsize="medium")
            ax.grid(True, axis="y", alpha=0.3)
        head = f"chosen: {chosen.variant.label}" if chosen else "no configuration met every SLO"
        fig.suptitle(f"Plan — candidates cheapest first (o met, X not); {head}", fontsize="medium")
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------- run


def result_figure(result: Result) -> Figure:
    """A run at a glance: latency CDF per class and CPU utilisation per app node over time."""
    with plt.style.context(STYLE):
        fig, axes = new_figure(1, 2, figsize=(12, 4.2))
        ax1, ax2 = axes[0]
        for i, (name, (values, frac)) in enumerate(result.cdf.items()):
            if values:
                ax1.step(values, frac, where="post", label=name, linestyle=LINES[i % len(LINES)])
        ax1.set_xscale("log")
        ax1.set_xlabel("latency (s, log scale)")
        ax1.set_ylabel("fraction of requests ≤ latency")
        ax1.set_ylim(0, 1.01)
        ax1.grid(True, which="both", alpha=0.3)
        ax1.legend(title="class", fontsize="small")
        ax1.set_title("Latency CDF (replication 0)")
        rows = result.timeseries
        times = [r["time"] for r in rows]
        for i, node in enumerate(result.scenario.app.resolved_nodes()):
            key = f"{node.name}.cpu"
            if rows and key in rows[0]:
                ax2.plot(
                    times,
                    [r[key] * 100 for r in rows],
                    label=node.name,
                    linestyle=LINES[i % len(LINES)],
                )
        if result.scenario.warmup > 0:
            ax2.axvspan(0, result.scenario.warmup, color="0.85", alpha=0.5, label="warm-up")
        ax2.set_xlabel("simulated time (s)")
        ax2.set_ylabel("CPU busy (% of cores)")
        ax2.set_ylim(0, 105)
        ax2.grid(True, alpha=0.3)
        ax2.legend(title="app node", fontsize="small")
        ax2.set_title("CPU utilisation per interval")
        fig.suptitle(f"{result.scenario.name}: {result.replications} replication(s)")
        fig.tight_layout()
    return fig


# ----------------------------------------------------------------------- dispatch


def figures(obj: Result | Comparison | Sweep | Plan) -> dict[str, Figure]:
    """The figures of a run or an experiment, by PNG file name."""
    if isinstance(obj, Comparison):
        return {
            "compare.png": compare_figure(obj),
            "compare_diff.png": compare_diff_figure(obj),
            "compare_cdf.png": compare_cdf_figure(obj),
        }
    if isinstance(obj, Sweep):
        return {
            "sweep_latency.png": sweep_latency_figure(obj),
            "sweep_utilisation.png": sweep_utilisation_figure(obj),
            "sweep_failures.png": sweep_failures_figure(obj),
        }
    if isinstance(obj, Plan):
        return {"plan.png": plan_figure(obj)} if any(c.evaluated for c in obj.candidates) else {}
    return {"overview.png": result_figure(obj)}


def write_figures(obj: Result | Comparison | Sweep | Plan, out: Path) -> list[Path]:
    """Write the figures as PNG files into ``out``; a run also gets its usual plots."""
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(obj, Result):
        from lbsim.report.plots import write_all

        paths = write_all(obj, out) if obj.timeseries and obj.cdf else []
        return [*paths, *(save(fig, out / name) for name, fig in figures(obj).items())]
    return [save(fig, out / name) for name, fig in figures(obj).items()]
