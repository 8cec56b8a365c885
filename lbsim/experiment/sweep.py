"""Sweep a grid of parameters; tidy results, summaries and the knee.

The first ``--param`` is the x axis of curves and plots; the other
parameters split the points into one curve per combination of their values.
All points use the scenario's seed and the same replication indices, so the
curves are smooth (common random numbers along x). The knee is defined in
:mod:`lbsim.experiment.knee`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbsim.experiment.errors import ExperimentInputError
from lbsim.experiment.executors import Executor, ExecutorScope
from lbsim.experiment.knee import DEFAULT_FACTOR, Knee, find_knee
from lbsim.experiment.metrics import flat_metrics, metric_value, resolve, validate
from lbsim.experiment.session import ProgressHook, Session
from lbsim.experiment.stopping import TargetHalfWidth, make_rule
from lbsim.experiment.store import PointResult
from lbsim.experiment.variants import Axis, format_value, open_space, parse_axes, short_keys
from lbsim.report import atomic
from lbsim.report.jsonout import clean
from lbsim.scenario.schema import Scenario
from lbsim.stats.replications import t_half_width

#: metrics summarised by default (and plotted)
SUMMARY_METRICS = (
    "latency.mean",
    "latency.p50",
    "latency.p95",
    "latency.p99",
    "throughput",
    "failed",
    "cpu",
    "workers",
)


@dataclass(frozen=True)
class Curve:
    """Points that differ only in the x parameter, in increasing x."""

    label: str
    fixed: dict[str, Any]
    indices: tuple[int, ...]


@dataclass
class Sweep:
    axes: list[Axis]
    points: list[PointResult]
    meta: dict[str, Any] = field(default_factory=dict)
    knee_factor: float = DEFAULT_FACTOR

    @property
    def x_axis(self) -> Axis:
        return self.axes[0]

    def x(self, index: int) -> float:
        """The x value of a point (its position along x when x is not numeric)."""
        value = self.points[index].assignments[self.x_axis.key]
        if self.x_axis.numeric:
            return float(value)
        return float(self.x_axis.values.index(value))

    def curves(self) -> list[Curve]:
        others = self.axes[1:]
        names = short_keys([a.key for a in others])
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, p in enumerate(self.points):
            key = tuple(format_value(p.assignments[a.key]) for a in others)
            groups.setdefault(key, []).append(i)
        out = []
        for key, idx in groups.items():
            fixed = {a.key: self.points[idx[0]].assignments[a.key] for a in others}
            label = ", ".join(f"{names[a.key]}={v}" for a, v in zip(others, key, strict=True))
            out.append(Curve(label or "all", fixed, tuple(sorted(idx, key=self.x))))
        return out

    def mean(self, index: int, metric: str) -> tuple[float, float]:
        """Mean and 95 % half-width of a metric at a point."""
        vals = [metric_value(r, metric) for r in self.points[index].ordered_runs()]
        vals = [v for v in vals if not math.isnan(v)]
        return (sum(vals) / len(vals) if vals else math.nan), t_half_width(vals)

    def knees(
        self, metric: str = "latency.p95", factor: float | None = None
    ) -> list[tuple[Curve, Knee | None]]:
        out = []
        for curve in self.curves():
            xs = [self.x(i) for i in curve.indices]
            ys = [self.mean(i, metric)[0] for i in curve.indices]
            knee = find_knee(xs, ys, factor or self.knee_factor)
            if knee is not None:  # index into the curve → index into the sweep
                knee = Knee(
                    curve.indices[knee.index], knee.x, knee.y, knee.baseline, knee.threshold
                )
            out.append((curve, knee))
        return out

    def _axis_columns(self) -> dict[str, list[Any]]:
        cols: dict[str, list[Any]] = {}
        for a in self.axes:
            values = [p.assignments[a.key] for p in self.points]
            if a.numeric:
                integral = all(isinstance(v, int) for v in values)
                cols[a.key] = [int(v) if integral else float(v) for v in values]
            else:
                cols[a.key] = [format_value(v) for v in values]
        return cols

    @property
    def frame(self) -> Any:
        """Tidy: one row per point × replication × metric (every metric, derived ones too)."""
        import pandas as pd

        cols = self._axis_columns()
        rows = []
        for i, p in enumerate(self.points):
            params = {k: v[i] for k, v in cols.items()}
            for r, run in enumerate(p.ordered_runs()):
                for metric, value in flat_metrics(run).items():
                    rows.append(
                        {"point": i, **params, "replication": r, "metric": metric, "value": value}
                    )
        return pd.DataFrame(rows, columns=["point", *cols, "replication", "metric", "value"])

    def summary(self, metrics: Sequence[str] = SUMMARY_METRICS) -> Any:
        """One row per point × metric: mean, 95 % half-width, replications."""
        import pandas as pd

        cols = self._axis_columns()
        rows = []
        for i, p in enumerate(self.points):
            for metric in metrics:
                mean, half = self.mean(i, metric)
                rows.append(
                    {
                        "point": i,
                        **{k: v[i] for k, v in cols.items()},
                        "metric": resolve(metric),
                        "mean": mean,
                        "ci95": half,
                        "replications": len(p.ordered_runs()),
                    }
                )
        return pd.DataFrame(rows)

    def knee_json(self) -> list[dict[str, Any]]:
        out = []
        for curve, knee in self.knees():
            out.append(
                {
                    "curve": curve.label,
                    "fixed": curve.fixed,
                    "metric": "latency.p95",
                    "factor": self.knee_factor,
                    "knee": None
                    if knee is None
                    else {
                        "point": knee.index,
                        self.x_axis.key: self.points[knee.index].assignments[self.x_axis.key],
                        "p95": knee.y,
                        "baseline": knee.baseline,
                        "threshold": knee.threshold,
                    },
                }
            )
        return out

    def save(self, out: Path | str) -> list[Path]:
        """``results.csv`` and ``results.parquet`` (tidy), ``summary.csv``, ``knee.json``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        frame = self.frame
        paths = [out / "results.csv", out / "results.parquet", out / "summary.csv"]
        with atomic.replacing(paths[0], newline="") as fh:
            frame.to_csv(fh, index=False)
        with atomic.replacing(paths[1], "wb") as fh:
            frame.to_parquet(fh, index=False)
        with atomic.replacing(paths[2], newline="") as fh:
            self.summary().to_csv(fh, index=False)
        knee = out / "knee.json"
        atomic.write_text(knee, json.dumps(clean(self.knee_json()), indent=2) + "\n")
        return [*paths, knee]


def sweep(
    scenario: Scenario | Path | str,
    params: Sequence[str | Axis],
    *,
    overrides: Sequence[str] = (),
    replications: int | None = None,
    target: TargetHalfWidth | str | None = None,
    max_replications: int = 30,
    knee_factor: float = DEFAULT_FACTOR,
    executor: Executor | None = None,
    jobs: int = 0,
    out: Path | str | None = None,
    progress: ProgressHook | None = None,
    command: str | None = None,
    **fields: Any,
) -> Sweep:
    """Run every point of the grid of ``params`` (``key=50:400:25``, ``key=2,3,4``...)."""
    if knee_factor <= 1:
        raise ExperimentInputError(f"--knee-factor must be > 1 (got {knee_factor:g})")
    space = open_space(scenario, overrides, **fields)
    axes = parse_axes(params, "--param")
    if not axes:
        raise ExperimentInputError(
            "nothing to sweep: give --param key=start:stop:step (or key=v1,v2)"
        )
    variants = space.grid(axes)
    rule = make_rule(replications, target, space.base.replications, max_replications)
    if isinstance(rule, TargetHalfWidth):
        validate([rule.metric], space.base)
    spec = {
        "file": space.file,
        "axes": [{"key": a.key, "values": list(a.values)} for a in axes],
        "knee_factor": knee_factor,
        "base": space.base.model_dump(mode="json"),
    }
    with ExecutorScope(executor, jobs) as ex:
        session = Session(
            "sweep",
            ex,
            rule,
            out=Path(out) if out is not None else None,
            spec=spec,
            seed=space.base.seed,
            command=command,
            progress=progress,
        )
        with session:
            points = session.run(variants)
            result = Sweep(axes, points, session.meta, knee_factor)
            if out is not None:
                result.save(out)
    return result
