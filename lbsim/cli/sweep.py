"""``lbsim sweep FILE --param key=50:400:25 [--param key2=2,3,4]``: a grid, tidy results
(CSV and Parquet), curves with the knee marked."""

from __future__ import annotations

from typing import Annotated

import typer

from lbsim.cli.common import DurationOption, ReplicationsOption, ScenarioFile, SeedOption, SetOption
from lbsim.cli.experiment import (
    DaskOption,
    JobsOption,
    MaxReplicationsOption,
    OutOption,
    QuietOption,
    TargetOption,
    execute,
    finish,
    max_reps,
    out_dir,
)
from lbsim.experiment.executors import Executor
from lbsim.experiment.knee import DEFAULT_FACTOR
from lbsim.experiment.session import ProgressHook
from lbsim.experiment.sweep import Sweep
from lbsim.experiment.sweep import sweep as run_sweep


def sweep(
    ctx: typer.Context,
    file: ScenarioFile,
    param: Annotated[
        list[str] | None,
        typer.Option(
            help="key=start:stop:step (inclusive), key=first..last or key=v1,v2. Repeatable: "
            "the grid is every combination; the first is the x axis.",
            show_default=False,
        ),
    ] = None,
    knee_factor: Annotated[
        float,
        typer.Option(help="The knee: first point whose p95 exceeds this × its low-load value."),
    ] = DEFAULT_FACTOR,
    set_: SetOption = None,
    seed: SeedOption = None,
    duration: DurationOption = None,
    replications: ReplicationsOption = None,
    target_ci: TargetOption = None,
    max_replications: MaxReplicationsOption = None,
    jobs: JobsOption = 0,
    dask: DaskOption = None,
    out: OutOption = None,
    quiet: QuietOption = False,
) -> None:
    """Sweep FILE over a grid of parameters: latency percentiles, utilisation and failures
    per point (tidy CSV and Parquet), with the knee of each curve."""
    directory = out_dir(out, "sweep", file)
    maximum = max_reps(target_ci, max_replications)

    def call(executor: Executor, progress: ProgressHook, command: str) -> Sweep:
        return run_sweep(
            file,
            param or [],
            overrides=set_ or [],
            replications=replications,
            target=target_ci,
            max_replications=maximum,
            knee_factor=knee_factor,
            executor=executor,
            out=directory,
            progress=progress,
            command=command,
            seed=seed,
            duration=duration,
        )

    result = execute(ctx, "sweep", directory, jobs, dask, quiet, call)
    finish(result, directory, quiet)


def register(app: typer.Typer) -> None:
    app.command("sweep")(sweep)
