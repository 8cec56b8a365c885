"""``lbsim check FILE``: validate a scenario without running it."""

from __future__ import annotations

from typing import Annotated

import typer

from lbsim.cli.common import (
    ScenarioFile,
    SetOption,
    budget_or_exit,
    console,
    err_console,
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
) -> None:
    """Validate FILE and show the offered load of every resource."""
    scenario = load_or_exit(file, set_)
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


def register(app: typer.Typer) -> None:
    app.command("check")(check)
