"""``lbsim plan FILE --slo "p95<0.3" --vary app.nodes=1..12``: the cheapest configuration
meeting every SLO, with the confidence it does and its headroom."""

from __future__ import annotations

from typing import Annotated

import typer

from lbsim.cli.common import DurationOption, ScenarioFile, SeedOption, SetOption
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
from lbsim.experiment.plan import DEFAULT_REPLICATIONS, Plan
from lbsim.experiment.plan import plan as run_plan
from lbsim.experiment.session import ProgressHook


def plan(
    ctx: typer.Context,
    file: ScenarioFile,
    slo: Annotated[
        list[str] | None,
        typer.Option(
            help="metric<threshold, e.g. 'p95<0.3' (s), 'failed<0.001' (fraction of "
            "arrivals), 'cpu<0.8' (busiest app node). Repeatable: all must hold.",
            show_default=False,
        ),
    ] = None,
    vary: Annotated[
        list[str] | None,
        typer.Option(
            help="Configurations to search: key=v1,v2 or key=first..last (e.g. "
            "app.nodes=1..12). Repeatable: every combination.",
            show_default=False,
        ),
    ] = None,
    exhaustive: Annotated[
        bool,
        typer.Option(help="Evaluate every configuration, not only up to the cheapest that fits."),
    ] = False,
    set_: SetOption = None,
    seed: SeedOption = None,
    duration: DurationOption = None,
    replications: Annotated[
        int | None,
        typer.Option(
            help=f"Replications per configuration (default: the scenario's, at least "
            f"{DEFAULT_REPLICATIONS}).",
            show_default=False,
            min=1,
        ),
    ] = None,
    target_ci: TargetOption = None,
    max_replications: MaxReplicationsOption = None,
    jobs: JobsOption = 0,
    dask: DaskOption = None,
    out: OutOption = None,
    quiet: QuietOption = False,
) -> None:
    """Find the cheapest configuration (cores of app and database nodes) of FILE that
    meets every SLO at its load, with one-sided 95 % confidence, and its headroom."""
    directory = out_dir(out, "plan", file)
    maximum = max_reps(target_ci, max_replications)

    def call(executor: Executor, progress: ProgressHook, command: str) -> Plan:
        return run_plan(
            file,
            slo or [],
            vary or [],
            overrides=set_ or [],
            replications=replications,
            target=target_ci,
            max_replications=maximum,
            exhaustive=exhaustive,
            executor=executor,
            out=directory,
            progress=progress,
            command=command,
            seed=seed,
            duration=duration,
        )

    result = execute(ctx, "plan", directory, jobs, dask, quiet, call)
    finish(result, directory, quiet)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
