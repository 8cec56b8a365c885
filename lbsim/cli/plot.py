"""``lbsim plot DIR``: redraw the figures of a results directory from its saved results."""

from __future__ import annotations

import typer

from lbsim.cli.common import console, fail
from lbsim.cli.report import ResultsDirArgument
from lbsim.experiment.load import load_results
from lbsim.experiment.store import StoreError
from lbsim.report.figures import write_figures


def plot(directory: ResultsDirArgument) -> None:
    """Regenerate the PNG figures of DIR (run, compare, sweep or plan results)."""
    try:
        obj = load_results(directory)
    except StoreError as exc:
        fail(str(exc))
    try:
        paths = write_figures(obj, directory)
    except OSError as exc:
        fail(f"cannot write figures to {directory} ({exc.strerror})")
    console.print("wrote " + ", ".join(str(p) for p in paths), highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("plot")(plot)
