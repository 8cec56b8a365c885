"""``lbsim run FILE``: simulate a scenario and report."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from lbsim.cli.common import (
    DurationOption,
    ReplicationsOption,
    ScenarioFile,
    SeedOption,
    SetOption,
    budget_or_exit,
    console,
    err_console,
    fail,
    guard_outputs,
    load_or_exit,
)
from lbsim.experiment.budget import ANNOUNCE_WALL, MAX_WALL
from lbsim.experiment.executors import DASK_ENV, DaskError, DaskExecutor
from lbsim.experiment.offered_load import arrival_rate, offered_load
from lbsim.experiment.run import simulate
from lbsim.report.files import RUN_OUTPUT_NAMES, write_outputs
from lbsim.report.jsonout import write_json
from lbsim.report.table import print_offered_load, print_overload_warnings, print_result

PROGRESS_AFTER = 2.0  # s of wall time before a progress bar appears


def run(
    file: ScenarioFile,
    set_: SetOption = None,
    seed: SeedOption = None,
    replications: ReplicationsOption = None,
    duration: DurationOption = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the results (contract keys) as JSON.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write summary.json, timeseries.csv and PNG plots to this directory."),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(help="Worker processes for replications (0: all cores).", min=0, max=4096),
    ] = 1,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print no tables (warnings still go to stderr).")
    ] = False,
    insist: Annotated[
        bool,
        typer.Option(
            "--insist",
            help=f"Run even when the estimated wall time is over {MAX_WALL / 3600:g} hours.",
        ),
    ] = False,
    dask: Annotated[
        str | None,
        typer.Option(
            help="Run the replications on a Dask cluster: scheduler address, e.g. "
            f"tcp://host:8786 (default: ${DASK_ENV} when --jobs is not 1).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Simulate FILE and print latency, throughput, failures and utilisation."""
    scenario = load_or_exit(file, set_, seed, replications, duration)
    guard_outputs([file], [json_path, out], [out])
    if (
        json_path is not None
        and out is not None
        and json_path.resolve().parent == out.resolve()
        and json_path.name in RUN_OUTPUT_NAMES
    ):
        fail(f"--json {json_path} is also written by --out {out}; choose another name")
    for target in (json_path, out):
        if target is not None and target.exists() and target.is_dir() != (target is out):
            fail(f"{target}: exists and is {'not ' if target is out else ''}a directory")
    # make the output directories now: a bad path fails before the simulation, not after
    for folder in (json_path.parent if json_path is not None else None, out):
        if folder is not None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                fail(f"{folder}: cannot create directory ({exc.strerror})")
    cost = budget_or_exit(scenario, file, insist=insist)
    mean, peak, how = arrival_rate(scenario)
    use_peak = peak > mean
    loads = offered_load(scenario, use_peak)
    if not quiet:
        print_offered_load(
            console,
            loads,
            f"{how}, {peak if use_peak else mean:.4g} requests/s"
            + (" at peak" if use_peak else ""),
        )
    print_overload_warnings(err_console, loads)
    if cost.wall > ANNOUNCE_WALL:
        err_console.print(f"estimate: {cost.describe()}", highlight=False, soft_wrap=True)
    n_jobs = jobs if jobs > 0 else (os.cpu_count() or 1)
    started = time.perf_counter()
    bar: Progress | None = None
    task = None

    def progress(fraction: float) -> None:
        nonlocal bar, task
        if quiet or not err_console.is_terminal:
            return
        if bar is None:
            if time.perf_counter() - started < PROGRESS_AFTER:
                return
            bar = Progress(
                TextColumn("simulating"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            bar.start()
            task = bar.add_task("run", total=1.0)
        assert task is not None
        bar.update(task, completed=fraction)

    address = dask or (os.environ.get(DASK_ENV) if jobs != 1 else None)
    executor = None
    if address:
        try:
            executor = DaskExecutor(address)
        except DaskError as exc:
            fail(str(exc))
    try:
        result = simulate(scenario, jobs=n_jobs, progress=progress, executor=executor)
    finally:
        if bar is not None:
            bar.stop()
        if executor is not None:
            executor.close()
    if not quiet:
        print_result(console, result)
    if json_path is not None:
        try:
            write_json(json_path, result.to_dict())
        except OSError as exc:
            fail(f"cannot write {json_path} ({exc.strerror})")
        if not quiet:
            console.print(f"wrote {json_path}")
    if out is not None:
        try:
            paths = write_outputs(result, out)
        except OSError as exc:
            fail(f"cannot write to {out} ({exc.strerror})")
        if not quiet:
            console.print("wrote " + ", ".join(str(p) for p in paths))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
