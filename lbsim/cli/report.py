"""``lbsim report DIR``: one self-contained HTML page of a results directory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lbsim.cli.common import console, fail, guard_outputs
from lbsim.experiment.load import kind_of, load_results
from lbsim.experiment.store import StoreError
from lbsim.report.html import write_report

ResultsDirArgument = Annotated[
    Path,
    typer.Argument(
        help="Results directory of lbsim run --out, compare, sweep or plan.", show_default=False
    ),
]


def report(
    directory: ResultsDirArgument,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="HTML file (default DIR/report.html).", show_default=False
        ),
    ] = None,
) -> None:
    """Write one HTML page (tables, embedded figures, scenario, seed, version) for DIR."""
    try:
        kind = kind_of(directory)
        obj = load_results(directory)
    except StoreError as exc:
        fail(str(exc))
    target = output if output is not None else directory / "report.html"
    read = [p for p in directory.rglob("*") if p.suffix in (".json", ".csv", ".parquet")]
    guard_outputs(read, [target])
    try:
        write_report(obj, kind, target)
    except OSError as exc:
        fail(f"cannot write {target} ({exc.strerror})")
    console.print(f"wrote {target}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
