"""``lbsim check FILE``: validate a scenario without running it."""

from __future__ import annotations

import typer

from lbsim.cli.common import ScenarioFile, SetOption, console, load_or_exit
from lbsim.experiment.offered_load import arrival_rate, offered_load
from lbsim.report.table import print_offered_load


def check(file: ScenarioFile, set_: SetOption = None) -> None:
    """Validate FILE and show the offered load of every resource."""
    scenario = load_or_exit(file, set_)
    mean, peak, how = arrival_rate(scenario)
    console.print(f"[green]ok[/green] {file}: scenario '{scenario.name}' is valid")
    print_offered_load(
        console,
        offered_load(scenario, use_peak=peak > mean),
        f"{how}, {peak if peak > mean else mean:.4g} requests/s"
        + (" at peak" if peak > mean else ""),
    )


def register(app: typer.Typer) -> None:
    app.command("check")(check)
