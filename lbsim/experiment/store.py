"""A results directory: the experiment's meta and one file per point, saved as replications finish.

Layout::

    DIR/meta.json              kind, command line, lbsim version, seed, wall time, status,
                               the experiment's spec and its points (in order)
    DIR/points/<key>.json      one point: label, assignments, resolved scenario,
                               replications by index, wall times, extras (replication 0)

A point file is named by the fingerprint of its scenario (replication count
aside), so re-running the same command finds the replications already done
and runs only the rest: that is how an interrupted experiment resumes.
Files are replaced atomically, so an interruption never leaves half a file.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lbsim import __version__
from lbsim.build import describe as describe_build
from lbsim.experiment.result import Result
from lbsim.experiment.variants import Variant
from lbsim.report import atomic
from lbsim.report.jsonout import clean
from lbsim.scenario.loader import scenario_from_data


class StoreError(RuntimeError):
    """A results directory that cannot be used; the message says why."""


@dataclass
class PointResult:
    """The replications of one point so far."""

    variant: Variant
    runs: dict[int, dict[str, Any]] = field(default_factory=dict)
    wall_times: dict[int, float] = field(default_factory=dict)
    #: time series and latency CDFs of replication 0 (for plots)
    extras: dict[str, Any] | None = None
    #: replications the stopping rule has asked for so far
    target: int = 0

    @property
    def label(self) -> str:
        return self.variant.label

    @property
    def assignments(self) -> dict[str, Any]:
        return self.variant.assignments

    def ordered_runs(self) -> list[dict[str, Any]]:
        """Replications 0..n-1 present without a gap, in index order."""
        out = []
        r = 0
        while r in self.runs:
            out.append(self.runs[r])
            r += 1
        return out

    @property
    def result(self) -> Result:
        """The point as a :class:`Result` (means, intervals, frames, plots)."""
        extras = self.extras or {}
        cdf = {k: (list(v[0]), list(v[1])) for k, v in extras.get("cdf", {}).items()}
        runs = self.ordered_runs()
        meta = {
            "lbsim_version": __version__,
            "lbsim_build": describe_build(),
            "seed": self.variant.scenario.seed,
            "replications": len(runs),
            "wall_time": sum(self.wall_times.get(r, 0.0) for r in range(len(runs))),
            "duration": self.variant.scenario.duration,
            "warmup": self.variant.scenario.warmup,
        }
        return Result(self.variant.scenario, runs, extras.get("timeseries", []), cdf, meta)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.variant.key,
            "label": self.variant.label,
            "assignments": self.variant.assignments,
            "scenario": self.variant.scenario.model_dump(mode="json"),
            "target": self.target,
            "runs": {str(r): run for r, run in sorted(self.runs.items())},
            "wall_times": {str(r): t for r, t in sorted(self.wall_times.items())},
            "extras": self.extras,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], variant: Variant | None = None) -> PointResult:
        if variant is None:
            scenario = scenario_from_data(data["scenario"], "<results>")
            variant = Variant(data["label"], dict(data["assignments"]), scenario)
        return cls(
            variant,
            {int(r): _restore_nan(run) for r, run in data.get("runs", {}).items()},
            {int(r): float(t) for r, t in data.get("wall_times", {}).items()},
            data.get("extras"),
            int(data.get("target", 0)),
        )


def _restore_nan(tree: Any) -> Any:
    """JSON has no NaN: ``clean`` wrote null; metrics read back as NaN."""
    if isinstance(tree, dict):
        return {k: _restore_nan(v) for k, v in tree.items()}
    if tree is None:
        return float("nan")
    return tree


def command_line() -> str:
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def _write_atomic(path: Path, data: Any) -> None:
    atomic.write_text(path, json.dumps(clean(data), indent=1, allow_nan=False) + "\n")


class ResultsDir:
    """Reads and writes one experiment's results directory."""

    def __init__(self, path: Path, kind: str):
        self.path = Path(path)
        self.kind = kind
        self.points_dir = self.path / "points"

    def open(self) -> None:
        """Create the directory, or check that it holds results of the same kind."""
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"{self.path}: exists and is not a directory")
        meta = self.path / "meta.json"
        if meta.exists():
            try:
                kind = json.loads(meta.read_text(encoding="utf-8")).get("kind")
            except (OSError, ValueError) as exc:
                raise StoreError(f"{meta}: unreadable ({exc})") from None
            if kind != self.kind:
                raise StoreError(
                    f"{self.path} holds {kind} results, not {self.kind}; "
                    "choose another --out directory"
                )
        try:
            self.points_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create directory ({exc.strerror})") from None

    def load(self, variant: Variant) -> PointResult:
        """The point's saved replications, or an empty point."""
        path = self.points_dir / f"{variant.key}.json"
        if not path.exists():
            return PointResult(variant)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return PointResult(variant)  # a damaged file is recomputed, not trusted
        return PointResult.from_json(data, variant)

    def save(self, point: PointResult) -> None:
        _write_atomic(self.points_dir / f"{point.variant.key}.json", point.to_json())

    def write_meta(self, meta: dict[str, Any]) -> None:
        _write_atomic(self.path / "meta.json", {"kind": self.kind, **meta})


def new_meta(spec: dict[str, Any], seed: int, command: str | None) -> dict[str, Any]:
    return {
        "lbsim_version": __version__,
        "lbsim_build": describe_build(),
        "seed": seed,
        "command": command if command is not None else command_line(),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_time": 0.0,
        "status": "running",
        "spec": spec,
    }


def read_meta(path: Path) -> dict[str, Any]:
    meta_path = Path(path) / "meta.json"
    try:
        data: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{path}: no meta.json (not an lbsim results directory)") from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"{meta_path}: unreadable ({exc})") from None
    return data


def read_points(path: Path, keys: list[str]) -> list[PointResult]:
    """The points named in meta.json, in order (those not started are skipped)."""
    out = []
    for key in keys:
        file = Path(path) / "points" / f"{key}.json"
        if file.exists():
            out.append(PointResult.from_json(json.loads(file.read_text(encoding="utf-8"))))
    return out
