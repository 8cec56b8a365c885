"""What compare, sweep and plan share: options, the executor, progress, Ctrl-C, errors."""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from lbsim.cli.common import console, err_console, fail, guard_outputs
from lbsim.cli.progress import ProgressBar
from lbsim.experiment.compare import Comparison
from lbsim.experiment.errors import ExperimentInputError
from lbsim.experiment.executors import DaskError, Executor, make_executor
from lbsim.experiment.plan import Plan
from lbsim.experiment.session import ProgressHook
from lbsim.experiment.store import StoreError
from lbsim.experiment.sweep import Sweep
from lbsim.report.figures import write_figures
from lbsim.report.summaries import headline, print_tables, tables
from lbsim.scenario import ScenarioError

#: exit status after Ctrl-C (128 + SIGINT), as shells report it
INTERRUPTED = 130

TargetOption = Annotated[
    str | None,
    typer.Option(
        "--target-ci",
        help="metric=half-width: add replications until the 95 % half-width of the metric "
        "is at most this (e.g. p95=0.01), up to --max-replications.",
        show_default=False,
    ),
]
MaxReplicationsOption = Annotated[
    int | None,
    typer.Option(
        "--max-replications",
        help="Cap for --target-ci (default 30).",
        show_default=False,
        min=2,
        max=100_000,
    ),
]
JobsOption = Annotated[
    int,
    typer.Option("--jobs", "-j", help="Local worker processes (0: one per core).", min=0, max=4096),
]
DaskOption = Annotated[
    str | None,
    typer.Option(
        "--dask",
        help="Run on a Dask cluster: scheduler address, e.g. tcp://host:8786 "
        "(default: $LBSIM_DASK_SCHEDULER; local processes when neither is set).",
        show_default=False,
    ),
]
OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        "-o",
        help="Results directory (default out/KIND-FILE). Re-running the same command "
        "resumes: finished replications are kept.",
        show_default=False,
    ),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print no tables.")]

T = TypeVar("T", Comparison, Sweep, Plan)


def out_dir(out: Path | None, kind: str, file: Path) -> Path:
    """The results directory; exits 2 when it would replace the scenario or one of its inputs."""
    folder = out if out is not None else Path("out") / f"{kind}-{file.stem}"
    guard_outputs([file], [folder], [folder])
    return folder


def max_reps(target: str | None, maximum: int | None) -> int:
    if maximum is not None and target is None:
        fail("--max-replications needs --target-ci (with a fixed count use --replications)")
    if maximum is not None and maximum < 2:
        fail(f"--max-replications must be at least 2 (got {maximum})")
    return maximum if maximum is not None else 30


def scenario_error(exc: ScenarioError) -> typer.Exit:
    err_console.print("[bold red]error:[/bold red] invalid scenario", highlight=False)
    for line in str(exc).splitlines():
        err_console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def finished_points(out: Path) -> tuple[int, int]:
    """Points with all the replications their rule asked for, and points started."""
    try:
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0, 0
    done = 0
    keys = meta.get("points", [])
    for key in keys:
        try:
            point = json.loads((out / "points" / f"{key}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if 0 < int(point.get("target", 0)) <= len(point.get("runs", {})):
            done += 1
    return done, len(keys)


def invoked_command(ctx: typer.Context) -> str:
    """The command line as given, rebuilt from the options parsed on the command line
    (right under any caller, not only ``sys.argv``)."""
    words = ctx.command_path.split()
    for param in ctx.command.params:
        if param.name is None or param.name not in ctx.params:
            continue
        source = ctx.get_parameter_source(param.name)
        value = ctx.params[param.name]
        if source is None or source.name != "COMMANDLINE" or value is None:
            continue
        if param.param_type_name == "argument":
            words.append(str(value))
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            words.append(flag if value else (param.secondary_opts or [flag])[0])
        elif isinstance(value, list | tuple):
            for v in value:
                words += [flag, str(v)]
        else:
            words += [flag, str(value)]
    return shlex.join(words)


def execute(
    ctx: typer.Context,
    kind: str,
    out: Path,
    jobs: int,
    dask: str | None,
    quiet: bool,
    call: Callable[[Executor, ProgressHook, str], T],
) -> T:
    """Run ``call(executor, progress, command)``; bad input exits 2, Ctrl-C exits 130
    keeping every finished replication in ``out``."""
    try:
        executor = make_executor(jobs, dask)
    except DaskError as exc:
        fail(str(exc))
    interrupted = False
    try:
        with ProgressBar(err_console, kind, enabled=not quiet) as bar:
            return call(executor, bar, invoked_command(ctx))
    except KeyboardInterrupt:
        interrupted = True
        done, started = finished_points(out)
        err_console.print(
            f"[bold yellow]interrupted:[/bold yellow] {done} of {started} point(s) finished; "
            f"kept in {out} with every finished replication. "
            "Run the same command again to resume.",
            highlight=False,
            soft_wrap=True,
        )
        executor.close(interrupted=True)
        _exit_interrupted()
        raise typer.Exit(code=INTERRUPTED) from None  # only where exiting is not ours
    except ScenarioError as exc:
        raise scenario_error(exc) from None
    except (ExperimentInputError, StoreError, DaskError) as exc:
        fail(str(exc))
    finally:
        executor.close(interrupted=interrupted)


def _exit_interrupted() -> None:
    """Exit 130 now, past the interpreter's exit handlers: everything kept is
    written (atomically, point by point) and the workers are stopped, but
    concurrent.futures joins its pool's manager thread at exit, which could
    wait for ever on a worker stopped mid-task (a busy machine: the sweep of
    the Ctrl-C test printed its message and hung past 300 s). Not under a
    caller that runs the command inside its own process (typer's CliRunner, a
    notebook): only when this process is the ``lbsim`` program."""
    import lbsim.cli

    if not lbsim.cli.STANDALONE:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(INTERRUPTED)


def finish(obj: Comparison | Sweep | Plan, out: Path, quiet: bool) -> None:
    """Tables on stdout, figures into ``out``."""
    try:
        paths = write_figures(obj, out)
    except OSError as exc:
        fail(f"cannot write figures to {out} ({exc.strerror})")
    if quiet:
        return
    print_tables(console, tables(obj, compact=True))
    console.print(headline(obj), highlight=False)
    console.print(
        f"[dim]results in {out} ({len(paths)} figure(s)); HTML: lbsim report {out}[/dim]",
        highlight=False,
    )
