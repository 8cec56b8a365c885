"""Capacity planning: the cheapest configuration that meets every SLO, and how sure we are.

The ``--vary`` grid is ordered by cost (:mod:`lbsim.experiment.cost`; ties
keep grid order) and evaluated cheapest first, a batch at a time (as many
points as the executor can run at once). The answer is the first
configuration whose every SLO is met at 95 % one-sided confidence
(:mod:`lbsim.experiment.slo`); the search stops at the first batch that
contains one, since every cheaper configuration has been evaluated by then.
The report gives each SLO's mean, bound, confidence and headroom, and the
joint confidence (Bonferroni lower bound) that all hold together.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbsim.experiment.cost import cost as cost_of
from lbsim.experiment.errors import ExperimentInputError
from lbsim.experiment.executors import Executor, ExecutorScope
from lbsim.experiment.metrics import check_metric, known_metrics, metric_value
from lbsim.experiment.session import ProgressHook, Session
from lbsim.experiment.slo import SLO, SLOCheck, check_slo, joint_confidence, parse_slo
from lbsim.experiment.stopping import Fixed, TargetHalfWidth, make_rule
from lbsim.experiment.store import PointResult
from lbsim.experiment.variants import Axis, Variant, format_value, open_space, parse_axes
from lbsim.report import atomic
from lbsim.report.jsonout import clean
from lbsim.scenario.schema import Scenario

#: replications per configuration unless told (intervals need at least 2)
DEFAULT_REPLICATIONS = 5


@dataclass
class Candidate:
    variant: Variant
    cost: float
    point: PointResult | None = None
    checks: list[SLOCheck] = field(default_factory=list)

    @property
    def evaluated(self) -> bool:
        return self.point is not None

    @property
    def met(self) -> bool:
        return self.evaluated and all(c.met for c in self.checks)

    @property
    def confidence(self) -> float:
        return joint_confidence(self.checks) if self.evaluated else math.nan


def evaluate(slos: Sequence[SLO], point: PointResult) -> list[SLOCheck]:
    runs = point.ordered_runs()
    return [check_slo(s, [metric_value(r, s.metric) for r in runs]) for s in slos]


@dataclass
class Plan:
    slos: list[SLO]
    axes: list[Axis]
    candidates: list[Candidate]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def chosen(self) -> Candidate | None:
        """The cheapest candidate meeting every SLO (candidates are in cost order)."""
        for c in self.candidates:
            if c.met:
                return c
        return None

    @property
    def frame(self) -> Any:
        """One row per candidate (cost order): cost, SLO means, bounds, confidences, headroom."""
        import pandas as pd

        rows = []
        for c in self.candidates:
            row: dict[str, Any] = {"label": c.variant.label}
            row.update({k: format_value(v) for k, v in c.variant.assignments.items()})
            row.update(
                {
                    "cost": c.cost,
                    "evaluated": c.evaluated,
                    "replications": len(c.point.ordered_runs()) if c.point else 0,
                    "met": c.met,
                    "confidence": c.confidence,
                }
            )
            for s, chk in zip(self.slos, c.checks, strict=False):
                row[f"{s.text} mean"] = chk.mean
                row[f"{s.text} bound"] = chk.bound
                row[f"{s.text} confidence"] = chk.confidence
                row[f"{s.text} headroom"] = chk.headroom
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        chosen = self.chosen

        def cand(c: Candidate) -> dict[str, Any]:
            return {
                "label": c.variant.label,
                "assignments": c.variant.assignments,
                "cost": c.cost,
                "evaluated": c.evaluated,
                "met": c.met,
                "confidence": c.confidence,
                "replications": len(c.point.ordered_runs()) if c.point else 0,
                "slos": [
                    {
                        "slo": chk.slo.text,
                        "metric": chk.slo.metric,
                        "threshold": chk.slo.threshold,
                        "mean": chk.mean,
                        "bound": chk.bound,
                        "confidence": chk.confidence,
                        "headroom": chk.headroom,
                        "met": chk.met,
                    }
                    for chk in c.checks
                ],
            }

        return {
            "slos": [s.text for s in self.slos],
            "chosen": cand(chosen) if chosen else None,
            "candidates": [cand(c) for c in self.candidates],
        }

    def save(self, out: Path | str) -> list[Path]:
        """``plan.json`` (the decision and every candidate) and ``candidates.csv``."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "plan.json", out / "candidates.csv"]
        atomic.write_text(paths[0], json.dumps(clean(self.to_dict()), indent=2) + "\n")
        with atomic.replacing(paths[1], newline="") as fh:
            self.frame.to_csv(fh, index=False)
        return paths


def order_by_cost(variants: Sequence[Variant]) -> list[Candidate]:
    indexed = sorted(enumerate(variants), key=lambda iv: (cost_of(iv[1].scenario), iv[0]))
    return [Candidate(v, cost_of(v.scenario)) for _, v in indexed]


def plan(
    scenario: Scenario | Path | str,
    slos: Sequence[str | SLO],
    vary: Sequence[str | Axis],
    *,
    overrides: Sequence[str] = (),
    replications: int | None = None,
    target: TargetHalfWidth | str | None = None,
    max_replications: int = 30,
    exhaustive: bool = False,
    executor: Executor | None = None,
    jobs: int = 0,
    out: Path | str | None = None,
    progress: ProgressHook | None = None,
    command: str | None = None,
    **fields: Any,
) -> Plan:
    """Search the ``vary`` grid, cheapest first, for a configuration meeting every SLO."""
    parsed = [s if isinstance(s, SLO) else parse_slo(s) for s in slos]
    if not parsed:
        raise ExperimentInputError("no SLO: give at least one --slo, e.g. --slo 'p95<0.3'")
    space = open_space(scenario, overrides, **fields)
    axes = parse_axes(vary)
    if not axes:
        raise ExperimentInputError(
            "nothing to plan over: give --vary key=values, e.g. app.nodes=1..8"
        )
    candidates = order_by_cost(space.grid(axes))
    known = known_metrics(space.base)
    parsed = [SLO(s.text, check_metric(s.metric, known), s.op, s.threshold) for s in parsed]
    default = max(DEFAULT_REPLICATIONS, space.base.replications)
    rule = make_rule(replications, target, default, max_replications)
    if isinstance(rule, Fixed) and rule.replications < 2:
        raise ExperimentInputError("plan needs at least 2 replications for its confidence (got 1)")
    if isinstance(rule, TargetHalfWidth):
        check_metric(rule.metric, known)
    per_point = rule.replications if isinstance(rule, Fixed) else getattr(rule, "initial", 2)
    spec = {
        "file": space.file,
        "axes": [{"key": a.key, "values": list(a.values)} for a in axes],
        "slos": [s.text for s in parsed],
        "exhaustive": exhaustive,
        "base": space.base.model_dump(mode="json"),
    }
    result = Plan(parsed, axes, candidates)
    with ExecutorScope(executor, jobs) as ex:
        batch = max(1, math.ceil(ex.workers / per_point))
        session = Session(
            "plan",
            ex,
            rule,
            out=Path(out) if out is not None else None,
            spec=spec,
            seed=space.base.seed,
            command=command,
            progress=progress,
        )
        with session:
            for start in range(0, len(candidates), batch):
                group = candidates[start : start + batch]
                points = session.run([c.variant for c in group])
                for c, p in zip(group, points, strict=True):
                    c.point = p
                    c.checks = evaluate(parsed, p)
                if not exhaustive and any(c.met for c in group):
                    break
            result.meta = session.meta
            chosen = result.chosen
            session.meta["chosen"] = chosen.variant.label if chosen else None
            if out is not None:
                result.save(out)
    return result
