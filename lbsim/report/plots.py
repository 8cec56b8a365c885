"""PNG figures of a run: latency CDF per class, utilisation and queues over time.

Colour-blind-safe palette (tableau-colorblind10), labelled axes with units.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from lbsim.experiment.result import Result
from lbsim.report import atomic

STYLE = "tableau-colorblind10"


def latency_cdf(result: Result, path: Path) -> None:
    with plt.style.context(STYLE):
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
        for name, (values, frac) in result.cdf.items():
            if not values:
                continue
            ax.step(
                values,
                frac,
                where="post",
                label=name,
                linewidth=2.2 if name == "all" else 1.4,
                linestyle="-" if name == "all" else "--",
            )
        ax.set_xscale("log")
        ax.set_xlabel("latency (s, log scale)")
        ax.set_ylabel("fraction of requests ≤ latency")
        ax.set_ylim(0, 1.01)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(title="class")
        ax.set_title(f"Latency CDF — {result.scenario.name} (replication 0, after warm-up)")
        fig.tight_layout()
        atomic.save_figure(fig, path)
        plt.close(fig)


def _series(result: Result, suffix: str) -> dict[str, tuple[list[float], list[float]]]:
    rows = result.timeseries
    times = [r["time"] for r in rows]
    out = {}
    for node in result.scenario.app.resolved_nodes():
        key = f"{node.name}.{suffix}"
        out[node.name] = (times, [r.get(key, float("nan")) for r in rows])
    return out


def utilisation(result: Result, path: Path) -> None:
    with plt.style.context(STYLE):
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), dpi=110, sharex=True)
        for name, (t, v) in _series(result, "cpu").items():
            ax1.plot(t, [x * 100 for x in v], label=name)
        for name, (t, v) in _series(result, "workers").items():
            ax2.plot(t, [x * 100 for x in v], label=name)
        ax1.set_ylabel("CPU busy (% of cores)")
        ax2.set_ylabel("workers busy (%)")
        ax2.set_xlabel("simulated time (s)")
        for ax in (ax1, ax2):
            ax.set_ylim(0, 125)  # room for the legend above the 100 % line
            ax.grid(True, alpha=0.3)
            _mark_warmup(ax, result)
            ax.legend(
                title="app node", loc="upper right", ncols=4, fontsize="small", framealpha=0.9
            )
        ax1.set_title(f"Utilisation per interval — {result.scenario.name}")
        fig.tight_layout()
        atomic.save_figure(fig, path)
        plt.close(fig)


def queues(result: Result, path: Path) -> None:
    with plt.style.context(STYLE):
        fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
        for name, (t, v) in _series(result, "backlog").items():
            ax.plot(t, v, label=f"{name} listen backlog")
        rows = result.timeseries
        if rows and "balancer_queue" in rows[0]:
            ax.plot(
                [r["time"] for r in rows],
                [r["balancer_queue"] for r in rows],
                label="balancer queue",
                linestyle="--",
            )
        ax.set_xlabel("simulated time (s)")
        ax.set_ylabel("requests waiting (time average)")
        ax.grid(True, alpha=0.3)
        _mark_warmup(ax, result)
        ax.legend(fontsize="small")
        ax.set_title(f"Queue length per interval — {result.scenario.name}")
        fig.tight_layout()
        atomic.save_figure(fig, path)
        plt.close(fig)


def database(result: Result, path: Path) -> bool:
    """Database CPU, connections and (Galera) receive queues and flow control over time.
    Returns False (and writes nothing) when the scenario has no database."""
    rows = result.timeseries
    if not rows:
        return False
    names = sorted({k.split(".")[1] for k in rows[0] if k.startswith("db.")})
    if not names:
        return False
    galera = any(k.endswith(".recv_queue") for k in rows[0])
    times = [r["time"] for r in rows]
    panels = 3 if galera else 2
    with plt.style.context(STYLE):
        fig, axes = plt.subplots(panels, 1, figsize=(9.5, 2.6 * panels + 0.8), dpi=110, sharex=True)
        for n in names:
            axes[0].plot(times, [r[f"db.{n}.cpu"] * 100 for r in rows], label=n)
            axes[1].plot(times, [r[f"db.{n}.connections"] for r in rows], label=n)
            if galera:
                axes[2].plot(times, [r[f"db.{n}.recv_queue"] for r in rows], label=n)
        axes[0].set_ylabel("CPU busy (% of cores)")
        axes[1].set_ylabel("connections open")
        if galera:
            axes[2].set_ylabel("receive queue (write-sets)")
            paused = [r["galera.flow_control_paused"] for r in rows]
            twin = axes[2].twinx()
            twin.fill_between(
                times,
                [p * 100 for p in paused],
                step="mid",
                color="0.6",
                alpha=0.35,
                label="flow control paused",
            )
            twin.set_ylabel("flow control paused (%)")
            twin.set_ylim(0, 105)
            twin.legend(loc="lower left", bbox_to_anchor=(1.12, 0.0), fontsize="small")
        axes[-1].set_xlabel("simulated time (s)")
        for ax in axes:
            ax.grid(True, alpha=0.3)
            _mark_warmup(ax, result)
            ax.legend(
                title="db node", loc="upper left", bbox_to_anchor=(1.12, 1.0), fontsize="small"
            )
        axes[0].set_title(f"Database per interval — {result.scenario.name}")
        fig.tight_layout()
        atomic.save_figure(fig, path)
        plt.close(fig)
    return True


def _mark_warmup(ax: Any, result: Result) -> None:
    if result.scenario.warmup > 0:
        ax.axvspan(0, result.scenario.warmup, color="0.85", alpha=0.5, label="warm-up")


def write_all(result: Result, out_dir: Path) -> list[Path]:
    paths = [out_dir / "latency_cdf.png", out_dir / "utilisation.png", out_dir / "queues.png"]
    latency_cdf(result, paths[0])
    utilisation(result, paths[1])
    queues(result, paths[2])
    if database(result, out_dir / "database.png"):
        paths.append(out_dir / "database.png")
    return paths
