"""The ``lbsim`` command: one module per command, joined here."""

from __future__ import annotations

import typer

from lbsim import __version__
from lbsim.cli import check, compare, plan, plot, report, run, stack, sweep, validate

app = typer.Typer(
    name="lbsim",
    help="Simulate load-balanced PHP-FPM + database stacks: latency, utilisation, failures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
run.register(app)
check.register(app)
compare.register(app)
sweep.register(app)
plan.register(app)
report.register(app)
plot.register(app)
stack.register(app)
validate.register(app)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lbsim {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """lbsim — predict before you change your stack."""


def main() -> None:
    app()
