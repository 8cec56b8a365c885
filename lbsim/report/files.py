"""The ``--out DIR`` of a run: summary.json, timeseries.csv, PNG plots, and what
``lbsim plot``/``lbsim report`` need to redraw them (runs.json, cdf.json, meta.json)."""

from __future__ import annotations

import csv
import shlex
import sys
from pathlib import Path

from lbsim.experiment.result import Result
from lbsim.report import atomic
from lbsim.report.jsonout import write_json

#: the files of a run's --out directory besides its PNG figures
RUN_OUTPUT_NAMES = ("summary.json", "timeseries.csv", "runs.json", "cdf.json", "meta.json")


def write_timeseries(result: Result, path: Path) -> None:
    rows = result.timeseries
    if not rows:
        atomic.write_text(path, "")
        return
    fields = list(rows[0])
    with atomic.replacing(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.9g}" for k, v in row.items()})


def command_line() -> str:
    """How this process was started (the ``lbsim run ...`` line when run from the shell)."""
    return shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])


def write_outputs(result: Result, out_dir: Path, command: str | None = None) -> list[Path]:
    from lbsim.report.plots import write_all  # matplotlib: only when plots are written

    out_dir.mkdir(parents=True, exist_ok=True)
    # the names `lbsim run` checks --json against
    summary, series, runs, cdf, meta = (out_dir / name for name in RUN_OUTPUT_NAMES)
    write_json(summary, result.to_dict())
    write_timeseries(result, series)
    write_json(runs, result.runs)
    write_json(cdf, {k: [list(v[0]), list(v[1])] for k, v in result.cdf.items()})
    write_json(
        meta,
        {
            "kind": "run",
            **result.meta,
            "command": command if command is not None else command_line(),
            "status": "complete",
            "spec": {"file": None, "scenario": result.scenario.name},
        },
    )
    return [summary, series, runs, cdf, meta, *write_all(result, out_dir)]
