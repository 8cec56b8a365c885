"""Compare variants of a scenario on common random numbers.

Every variant runs the same seed and replication indices, so replication
``r`` of each variant sees the same arrivals, classes and service demands
(the streams are keyed by seed and index). The difference of a metric
against the first variant is therefore computed *paired*: per replication
``d_r = x_r(variant) - x_r(first)``, with the Student-t 95 % interval of the
mean of the ``d_r``. Common random numbers make these intervals much
narrower than the difference of two independent intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbsim.experiment.errors import ExperimentInputError
from lbsim.experiment.executors import Executor, ExecutorScope
from lbsim.experiment.metrics import flat_metrics, metric_value, resolve, validate
from lbsim.experiment.result import Result
from lbsim.experiment.session import ProgressHook, Session
from lbsim.experiment.stopping import TargetHalfWidth, make_rule
from lbsim.experiment.store import PointResult
from lbsim.experiment.variants import Axis, open_space, parse_axes
from lbsim.report import atomic
from lbsim.scenario.schema import Scenario
from lbsim.stats.replications import t_half_width

DEFAULT_METRICS = (
    "latency.mean",
    "latency.p95",
    "latency.p99",
    "throughput",
    "failed",
    "cpu",
    "workers",
)


def paired_difference(base: Sequence[float], other: Sequence[float]) -> tuple[float, float]:
    """Mean of ``other[r] - base[r]`` and the Student-t 95 % half-width (NaN with one pair)."""
    if len(base) != len(other):
        raise ExperimentInputError(f"paired samples differ in size ({len(base)} and {len(other)})")
    diffs = [o - b for b, o in zip(base, other, strict=True)]
    diffs = [d for d in diffs if not math.isnan(d)]
    if not diffs:
        return math.nan, math.nan
    return sum(diffs) / len(diffs), t_half_width(diffs)


@dataclass
class Comparison:
    """Variants of one scenario on common random numbers; the first is the baseline."""

    points: list[PointResult]
    metrics: tuple[str, ...] = DEFAULT_METRICS
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [p.label for p in self.points]

    def result(self, label: str) -> Result:
        for p in self.points:
            if p.label == label:
                return p.result
        raise KeyError(f"no variant {label!r} (variants: {', '.join(self.labels)})")

    def values(self, index: int, metric: str) -> list[float]:
        return [metric_value(r, metric) for r in self.points[index].ordered_runs()]

    def table(self, metrics: Sequence[str] | None = None) -> Any:
        """One row per variant × metric: mean and 95 % half-width, and the paired
        difference against the first variant with its 95 % half-width."""
        import pandas as pd

        rows = []
        for metric in metrics or self.metrics:
            base = self.values(0, metric)
            for i, p in enumerate(self.points):
                vals = self.values(i, metric)
                present = [v for v in vals if not math.isnan(v)]
                n = min(len(base), len(vals))
                diff, diff_half = (0.0, 0.0) if i == 0 else paired_difference(base[:n], vals[:n])
                rows.append(
                    {
                        "metric": resolve(metric),
                        "variant": p.label,
                        "replications": len(vals),
                        "mean": sum(present) / len(present) if present else math.nan,
                        "ci95": t_half_width(present),
                        "diff": diff,
                        "diff_ci95": diff_half,
                        "significant": bool(i > 0 and abs(diff) > diff_half),
                    }
                )
        return pd.DataFrame(rows)

    @property
    def frame(self) -> Any:
        """Tidy: one row per variant × replication × metric."""
        import pandas as pd

        rows = []
        for p in self.points:
            for r, run in enumerate(p.ordered_runs()):
                for metric, value in flat_metrics(run).items():
                    rows.append(
                        {"variant": p.label, "replication": r, "metric": metric, "value": value}
                    )
        return pd.DataFrame(rows, columns=["variant", "replication", "metric", "value"])

    def save(self, out: Path | str) -> list[Path]:
        """``compare.csv`` (the table) and ``results.csv`` (tidy, every metric)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "compare.csv", out / "results.csv"]
        with atomic.replacing(paths[0], newline="") as fh:
            self.table().to_csv(fh, index=False)
        with atomic.replacing(paths[1], newline="") as fh:
            self.frame.to_csv(fh, index=False)
        return paths


def compare(
    scenario: Scenario | Path | str,
    vary: Sequence[str | Axis] = (),
    *,
    policies: Sequence[str] = (),
    overrides: Sequence[str] = (),
    replications: int | None = None,
    target: TargetHalfWidth | str | None = None,
    max_replications: int = 30,
    metrics: Sequence[str] | None = None,
    executor: Executor | None = None,
    jobs: int = 0,
    out: Path | str | None = None,
    progress: ProgressHook | None = None,
    command: str | None = None,
    **fields: Any,
) -> Comparison:
    """Run every variant (``--vary`` axes, or ``policies`` as ``balancer.policy``) on common
    random numbers. Replications: ``replications``, the sequential ``target`` rule, or the
    scenario's own count (at least 2, for intervals)."""
    space = open_space(scenario, overrides, **fields)
    axes_list = parse_axes(
        [*([Axis("balancer.policy", tuple(policies))] if policies else []), *vary]
    )
    if not axes_list:
        raise ExperimentInputError("nothing to compare: give --policy a,b or --vary key=v1,v2")
    variants = space.grid(axes_list)
    if len(variants) < 2:
        raise ExperimentInputError("nothing to compare: give at least two values")
    rule = make_rule(replications, target, max(2, space.base.replications), max_replications)
    checked = [*(metrics or []), *([rule.metric] if isinstance(rule, TargetHalfWidth) else [])]
    validate(checked, space.base)
    spec = {
        "file": space.file,
        "axes": [{"key": a.key, "values": list(a.values)} for a in axes_list],
        "metrics": [resolve(m) for m in (metrics or DEFAULT_METRICS)],
        "labels": [v.label for v in variants],
        "base": space.base.model_dump(mode="json"),
    }
    with ExecutorScope(executor, jobs) as ex:
        session = Session(
            "compare",
            ex,
            rule,
            out=Path(out) if out is not None else None,
            spec=spec,
            seed=space.base.seed,
            command=command,
            paired=True,
            progress=progress,
        )
        with session:
            points = session.run(variants)
            comparison = Comparison(points, tuple(metrics or DEFAULT_METRICS), session.meta)
            if out is not None:
                comparison.save(out)
    return comparison
