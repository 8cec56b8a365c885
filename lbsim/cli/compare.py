"""``lbsim compare FILE --policy a,b`` / ``--vary key=v1,v2``: variants on common random
numbers, with paired differences against the first."""

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
from lbsim.experiment.compare import DEFAULT_METRICS, Comparison
from lbsim.experiment.compare import compare as run_compare
from lbsim.experiment.executors import Executor
from lbsim.experiment.session import ProgressHook

VaryOption = Annotated[
    list[str] | None,
    typer.Option(
        "--vary",
        help="key=v1,v2,... (or key=start:stop:step, key=first..last). Repeatable: "
        "every combination is a variant.",
        show_default=False,
    ),
]


def compare(
    ctx: typer.Context,
    file: ScenarioFile,
    policy: Annotated[
        str | None,
        typer.Option(
            help="Balancer policies to compare, comma-separated (same as "
            "--vary balancer.policy=a,b).",
            show_default=False,
        ),
    ] = None,
    vary: VaryOption = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            help=f"Metrics of the table (repeatable; default {', '.join(DEFAULT_METRICS)}).",
            show_default=False,
        ),
    ] = None,
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
    """Compare variants of FILE: each metric with its 95 % interval and the paired
    difference against the first variant (common random numbers)."""
    directory = out_dir(out, "compare", file)
    maximum = max_reps(target_ci, max_replications)
    policies = [p.strip() for p in policy.split(",")] if policy else []

    def call(executor: Executor, progress: ProgressHook, command: str) -> Comparison:
        return run_compare(
            file,
            vary or [],
            policies=policies,
            overrides=set_ or [],
            replications=replications,
            target=target_ci,
            max_replications=maximum,
            metrics=metric or None,
            executor=executor,
            out=directory,
            progress=progress,
            command=command,
            seed=seed,
            duration=duration,
        )

    result = execute(ctx, "compare", directory, jobs, dask, quiet, call)
    finish(result, directory, quiet)


def register(app: typer.Typer) -> None:
    app.command("compare")(compare)
