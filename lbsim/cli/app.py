"""The ``lbsim`` command: one module per command, joined here.

A command's module is imported only when that command runs (or its own
``--help`` is asked for): ``lbsim --help`` lists the commands from the table
below without importing pydantic, numpy, the simulator or matplotlib. A test
checks that each short help here is the first paragraph of the command's own.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

import typer
from typer.core import TyperGroup

#: command -> (module under lbsim.cli, short help shown by ``lbsim --help``), in help order
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "Simulate FILE and print latency, throughput, failures and utilisation."),
    "check": ("check", "Validate FILE and show the offered load of every resource."),
    "compare": (
        "compare",
        "Compare variants of FILE: each metric with its 95 % interval and the paired\n"
        "difference against the first variant (common random numbers).",
    ),
    "sweep": (
        "sweep",
        "Sweep FILE over a grid of parameters: latency percentiles, utilisation and failures\n"
        "per point (tidy CSV and Parquet), with the knee of each curve.",
    ),
    "plan": (
        "plan",
        "Find the cheapest configuration (cores of app and database nodes) of FILE that\n"
        "meets every SLO at its load, with one-sided 95 % confidence, and its headroom.",
    ),
    "report": (
        "report",
        "Write one HTML page (tables, embedded figures, scenario, seed, version) for DIR.",
    ),
    "plot": ("plot", "Regenerate the PNG figures of DIR (run, compare, sweep or plan results)."),
    "replay": (
        "validate",
        "Send FILE's arrival trace (same seed: same times, classes, clients, demands) to\n"
        "its stack, open loop — or run its closed-loop users (think, send, wait) — and\n"
        "measure latency, throughput, utilisation, Galera counters. With --target: to\n"
        "your own running stack, each class as the target file's HTTP request.",
    ),
    "calibrate": (
        "validate",
        "Measure FILE's real stack at low load, write FILE's calibrated scenario, then\n"
        "replay and simulate it at several loads and report the error of every metric.\n"
        "With --target: your own running stack (the target file says where and how).",
    ),
    "story": (
        "story",
        "Replay a validation story on the real stack and simulate it: the counts of\n"
        "every outcome, predicted vs measured, paired over R repetitions.",
    ),
    "stack": ("stack", "Build, start, inspect and stop the scenario's real stack in Docker."),
    "workload": (
        "workload",
        "Build a scenario's workload from an access log: class weights, rate schedule,\n"
        "clients, heavy users and an exact-replay trace (workload from-log).",
    ),
}


def load_command(name: str) -> Any:
    """The real click command ``name``: imports its module and lets it register."""
    module = import_module(f"lbsim.cli.{COMMANDS[name][0]}")
    holder = typer.Typer()
    module.register(holder)
    return typer.main.get_group(holder).commands[name]


class LazyGroup(TyperGroup):
    """The top-level group: placeholders (name and short help) until a command is used."""

    def __init__(self, **attrs: Any):
        super().__init__(**attrs)
        for name, (_, short) in COMMANDS.items():
            self.commands[name] = typer.core.TyperCommand(name=name, help=short)
        self._loaded: set[str] = set()

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        # help listings of the top level use the placeholders; anything else the real one
        if cmd_name in COMMANDS and cmd_name not in self._loaded and not _listing(ctx):
            self.commands[cmd_name] = load_command(cmd_name)
            self._loaded.add(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        ctx._lbsim_listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            ctx._lbsim_listing = False


def _listing(ctx: Any) -> bool:
    """True while the top level prints its own help (the command list)."""
    return bool(getattr(ctx, "_lbsim_listing", False))


app = typer.Typer(
    name="lbsim",
    cls=LazyGroup,
    help="Simulate load-balanced PHP-FPM + database stacks: latency, utilisation, failures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from lbsim import __version__
        from lbsim.build import describe

        typer.echo(f"lbsim {__version__} ({describe()})")
        raise typer.Exit()


@app.callback()
def main_options(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """lbsim — predict before you change your stack."""


def main() -> None:
    """The ``lbsim`` program (the console script and ``python -m lbsim``)."""
    import lbsim.cli

    lbsim.cli.STANDALONE = True  # this process is lbsim: it may end itself (Ctrl-C)
    app()
