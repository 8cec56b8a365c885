"""Reading a results directory back: a run (``lbsim run --out``), compare, sweep or plan.

``load_results(DIR)`` returns the same object the command built
(:class:`Result`, :class:`Comparison`, :class:`Sweep`, :class:`Plan`), so
``lbsim plot`` and ``lbsim report`` draw from saved results exactly what the
command drew.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, TypeAlias

from lbsim.experiment.compare import Comparison
from lbsim.experiment.plan import Plan, evaluate, order_by_cost
from lbsim.experiment.result import Result
from lbsim.experiment.slo import parse_slo
from lbsim.experiment.store import PointResult, StoreError, read_meta, read_points
from lbsim.experiment.sweep import Sweep
from lbsim.experiment.variants import Axis, VariantSpace
from lbsim.scenario.errors import ScenarioError
from lbsim.scenario.loader import scenario_from_data

Loaded: TypeAlias = Result | Comparison | Sweep | Plan


def kind_of(path: Path) -> str:
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"{path}: not a directory")
    if (path / "meta.json").exists():
        return str(read_meta(path).get("kind", "unknown"))
    if (path / "summary.json").exists():
        return "run"
    raise StoreError(
        f"{path}: not an lbsim results directory (no meta.json or summary.json); "
        "make one with lbsim run --out, compare, sweep or plan"
    )


def load_results(path: Path | str) -> Loaded:
    path = Path(path)
    kind = kind_of(path)
    try:
        if kind == "run":
            return load_run(path)
        meta = read_meta(path)
        spec = meta.get("spec", {})
        axes = [Axis(a["key"], tuple(a["values"])) for a in spec.get("axes", [])]
        points = read_points(path, list(meta.get("points", [])))
        if kind == "compare":
            return Comparison(points, tuple(spec.get("metrics", ())), meta)
        if kind == "sweep":
            return Sweep(axes, points, meta, float(spec.get("knee_factor", 2.0)))
        if kind == "plan":
            return _load_plan(spec, axes, points, meta)
    except (KeyError, TypeError, ValueError, ScenarioError) as exc:
        raise StoreError(f"{path}: damaged results ({type(exc).__name__}: {exc})") from None
    raise StoreError(f"{path}: unknown kind of results {kind!r}")


def _load_plan(
    spec: dict[str, Any], axes: list[Axis], points: list[PointResult], meta: dict[str, Any]
) -> Plan:
    slos = [parse_slo(s) for s in spec.get("slos", [])]
    space = VariantSpace(spec["base"], "<results>")
    candidates = order_by_cost(space.grid(axes))
    by_key = {p.variant.key: p for p in points}
    for c in candidates:
        p = by_key.get(c.variant.key)
        if p is not None and p.ordered_runs():
            c.point = p
            c.checks = evaluate(slos, p)
    return Plan(slos, axes, candidates, meta)


def load_run(path: Path) -> Result:
    """A run directory: summary.json, plus runs.json, cdf.json and timeseries.csv if present."""
    summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    scenario = scenario_from_data(summary["scenario"], str(path / "summary.json"))
    runs_file = path / "runs.json"
    if runs_file.exists():
        runs = json.loads(runs_file.read_text(encoding="utf-8"))
    else:  # an older directory: the means stand for one run
        runs = [
            {
                k: v
                for k, v in summary.items()
                if k not in ("scenario", "meta", "ci95", "replications")
            }
        ]
    runs = [_nan(r) for r in runs]
    cdf_file = path / "cdf.json"
    cdf: dict[str, tuple[list[float], list[float]]] = {}
    if cdf_file.exists():
        raw = json.loads(cdf_file.read_text(encoding="utf-8"))
        cdf = {k: (list(v[0]), list(v[1])) for k, v in raw.items()}
    series: list[dict[str, float]] = []
    ts = path / "timeseries.csv"
    if ts.exists() and ts.stat().st_size:
        with ts.open(encoding="utf-8", newline="") as f:
            series = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    meta = dict(summary.get("meta", {}))
    if (path / "meta.json").exists():
        meta.update(read_meta(path))
    return Result(scenario, runs, series, cdf, meta)


def _nan(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _nan(v) for k, v in tree.items()}
    return math.nan if tree is None else tree
