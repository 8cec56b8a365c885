"""Predicted against measured: join a sweep with measurements of the same points and
report the error.

Measurements are a tidy CSV (``#`` lines are comments)::

    param,value,metric,measured,measured_ci95
    workload.open.rate,30,latency.p95,0.271,0.012

one row per load point × metric, in the units of lbsim's result keys
(seconds, fractions, requests/s). ``param`` must be the swept key.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from lbsim.experiment.metrics import label, resolve
from lbsim.experiment.sweep import Sweep
from lbsim.report.figures import MARKERS, STYLE, new_figure

COLUMNS = ("param", "value", "metric", "measured", "measured_ci95")


def load_measurements(path: Path | str) -> Any:
    """The measurements as a DataFrame (columns :data:`COLUMNS`)."""
    import pandas as pd

    frame = pd.read_csv(path, comment="#")
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    frame["metric"] = [resolve(m) for m in frame["metric"]]
    return frame


def join(sweep: Sweep, measured: Any) -> Any:
    """One row per measured point × metric with the prediction (mean ± 95 % CI) beside it,
    the error ``predicted - measured`` and the relative error."""
    import pandas as pd

    key = sweep.x_axis.key
    rows = []
    for m in measured.itertuples():
        if m.param != key:
            raise ValueError(f"measurement of {m.param!r}, but the sweep varies {key!r}")
        index = next(
            (
                i
                for i, p in enumerate(sweep.points)
                if math.isclose(float(p.assignments[key]), float(m.value))
            ),
            None,
        )
        if index is None:
            raise ValueError(f"no swept point at {key}={m.value}")
        predicted, half = sweep.mean(index, m.metric)
        rows.append(
            {
                key: m.value,
                "metric": m.metric,
                "predicted": predicted,
                "predicted_ci95": half,
                "measured": m.measured,
                "measured_ci95": m.measured_ci95,
                "error": predicted - m.measured,
                "relative_error": (predicted - m.measured) / m.measured if m.measured else math.nan,
            }
        )
    return pd.DataFrame(rows)


def errors(joined: Any) -> Any:
    """Per metric: mean absolute relative error and the worst point."""
    out = joined.assign(abs_relative_error=joined["relative_error"].abs())
    return (
        out.groupby("metric", sort=False)["abs_relative_error"]
        .agg(mean_abs_relative_error="mean", worst="max", points="count")
        .reset_index()
    )


def predicted_vs_measured_figure(joined: Any) -> Figure:
    """One panel per metric: predicted (± 95 % CI) and measured (± CI) against the load."""
    metrics = list(dict.fromkeys(joined["metric"]))
    key = joined.columns[0]
    with plt.style.context(STYLE):
        fig, axes = new_figure(1, len(metrics), figsize=(4.6 * len(metrics), 4.0))
        for ax, metric in zip(axes[0], metrics, strict=True):
            sub = joined[joined["metric"] == metric].sort_values(key)
            ax.errorbar(
                sub[key],
                sub["predicted"],
                yerr=sub["predicted_ci95"].fillna(0),
                label="predicted (lbsim)",
                marker=MARKERS[0],
                capsize=4,
            )
            ax.errorbar(
                sub[key],
                sub["measured"],
                yerr=sub["measured_ci95"].fillna(0),
                label="measured",
                marker=MARKERS[1],
                linestyle="--",
                capsize=4,
            )
            ax.set_xlabel(f"{key} (requests/s)" if key.endswith(".rate") else key)
            ax.set_ylabel(label(metric))
            ax.set_title(metric)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize="small")
        fig.suptitle("Predicted against measured (95 % intervals)")
        fig.tight_layout()
    return fig
