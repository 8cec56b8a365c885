"""``lbsim check FILE``: validate a scenario without running it, or a target file.

``lbsim check TARGET`` (a file with a top-level ``target:`` key) validates a
target file and shows its services, requests and placeholders; ``lbsim check
SCENARIO --target TARGET`` also checks that the target has a request for
every class of the scenario.
"""

from __future__ import annotations

from typing import Annotated

import typer

from lbsim.cli.check_target import (
    TargetOption,
    check_classes,
    load_target_or_exit,
    looks_like_target,
    print_target,
)
from lbsim.cli.common import (
    ScenarioFile,
    SetOption,
    budget_or_exit,
    console,
    err_console,
    fail,
    load_or_exit,
)
from lbsim.experiment.budget import MAX_WALL
from lbsim.experiment.offered_load import arrival_rate, offered_load
from lbsim.report.table import print_offered_load, print_overload_warnings


def check(
    file: ScenarioFile,
    set_: SetOption = None,
    insist: Annotated[
        bool,
        typer.Option(
            "--insist",
            help=f"Accept a run whose estimated wall time is over {MAX_WALL / 3600:g} hours "
            "(as lbsim run --insist does).",
        ),
    ] = False,
    target_file: TargetOption = None,
) -> None:
    """Validate FILE and show the offered load of every resource.

    FILE may be a target file (a top-level target: key): its services,
    requests and placeholders are checked and shown. With --target TARGET,
    FILE is a scenario and TARGET needs a request for each of its classes.
    """
    if looks_like_target(file):
        if target_file is not None or set_:
            option = "--target" if target_file is not None else "--set"
            fail(f"{file} is a target file; {option} goes with a scenario file")
        print_target(console, load_target_or_exit(file), file)
        return
    target = load_target_or_exit(target_file) if target_file is not None else None
    scenario = load_or_exit(file, set_)
    if target is not None and target_file is not None:
        check_classes(scenario, file, target, target_file)
    cost = budget_or_exit(scenario, file, insist=insist)
    mean, peak, how = arrival_rate(scenario)
    console.print(f"[green]ok[/green] {file}: scenario '{scenario.name}' is valid")
    loads = offered_load(scenario, use_peak=peak > mean)
    print_offered_load(
        console,
        loads,
        f"{how}, {peak if peak > mean else mean:.4g} requests/s"
        + (" at peak" if peak > mean else ""),
    )
    console.print(f"cost: {cost.describe()}", highlight=False)
    print_overload_warnings(err_console, loads)
    if target is not None and target_file is not None:
        print_target(console, target, target_file)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
