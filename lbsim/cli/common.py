"""What every command shares: loading a scenario with clear errors, the consoles."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from lbsim.experiment.budget import Cost
from lbsim.report.atomic import OutputClash, refuse_overwriting
from lbsim.scenario import Scenario, ScenarioError, load_scenario

console = Console()
err_console = Console(stderr=True)

ScenarioFile = Annotated[Path, typer.Argument(help="Scenario YAML file.", show_default=False)]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a key: dotted.key=value (value as YAML). Repeatable.",
        show_default=False,
    ),
]


def _positive_seconds(value: float | None) -> float | None:
    if value is not None and not (0 < value < float("inf")):
        raise typer.BadParameter(f"must be a finite number of seconds > 0 (got {value:g})")
    return value


#: the largest seed (numpy's SeedSequence takes any non-negative integer; 2^63 - 1 keeps
#: it a signed 64-bit value in every results file)
MAX_SEED = 2**63 - 1
SeedOption = Annotated[
    int | None, typer.Option(help="Override the scenario seed.", min=0, max=MAX_SEED)
]
ReplicationsOption = Annotated[
    int | None, typer.Option(help="Override the number of replications.", min=1)
]
DurationOption = Annotated[
    float | None,
    typer.Option(
        help="Override the measured duration (simulated seconds).", callback=_positive_seconds
    ),
]


def guard_outputs(
    inputs: Iterable[Path | None],
    files: Iterable[Path | None] = (),
    directories: Iterable[Path | None] = (),
) -> None:
    """Exit 2 before any work when an output would replace one of the command's inputs."""
    try:
        refuse_overwriting(inputs, files, directories)
    except OutputClash as exc:
        fail(str(exc))


def budget_or_exit(scenario: Scenario, file: Path, *, insist: bool = False) -> Cost:
    """The run's estimated cost; exit 2 naming the file and the key when it is absurd."""
    from lbsim.experiment.budget import BudgetError, check

    try:
        return check(scenario, insist=insist)
    except BudgetError as exc:
        fail(f"{file}: {exc}")


def fail(message: str) -> NoReturn:
    err_console.print(
        f"[bold red]error:[/bold red] {escape(message)}", highlight=False, soft_wrap=True
    )
    raise typer.Exit(code=2)


def load_or_exit(
    path: Path,
    overrides: list[str] | None = None,
    seed: int | None = None,
    replications: int | None = None,
    duration: float | None = None,
) -> Scenario:
    try:
        return load_scenario(
            path, overrides or (), seed=seed, replications=replications, duration=duration
        )
    except ScenarioError as exc:
        err_console.print("[bold red]error:[/bold red] invalid scenario", highlight=False)
        for line in str(exc).splitlines():
            err_console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=2) from None
