"""``lbsim workload from-log``: a scenario's workload measured from an access log.

A thin layer over :mod:`lbsim.accesslog`: options checked before the log is
read (bad format, pattern, name or output: exit 2 naming the option or the
file), the outputs written atomically and never over a file already there
unless ``--force``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from lbsim.accesslog import (
    AccessLogError,
    ClassPatternError,
    LogFormatError,
    LogWorkload,
    from_log,
)
from lbsim.accesslog.classes import classifier
from lbsim.accesslog.formats import parser_for
from lbsim.accesslog.fragment import OUTPUT_NAMES, write_outputs
from lbsim.cli.common import console, err_console, fail, guard_outputs
from lbsim.report import atomic

workload_app = typer.Typer(
    name="workload",
    help="Build a scenario's workload from an access log: class weights, rate schedule,\n"
    "clients, heavy users and an exact-replay trace (workload from-log).",
    no_args_is_help=True,
)


@contextmanager
def _byte_progress(enabled: bool) -> Iterator[Callable[[int, int], None]]:
    """``progress(bytes_read, bytes_total)``: a bar on stderr when it is a terminal."""
    bar: Progress | None = None
    task: TaskID | None = None

    def update(done: int, total: int) -> None:
        nonlocal bar, task
        if not enabled or not err_console.is_terminal:
            return
        if bar is None:
            bar = Progress(
                TextColumn("reading"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=err_console,
                transient=True,
            )
            bar.start()
            task = bar.add_task("read", total=total)
        assert task is not None
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if bar is not None:
            bar.stop()


def _show(w: LogWorkload, written: list[Path]) -> None:
    lines = w.lines
    if lines["malformed"]:
        err_console.print(
            f"warning: {lines['malformed']} of {lines['used'] + lines['malformed']} lines "
            "malformed (skipped); the first:",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        for e in w.malformed_examples:
            err_console.print(
                f"  {w.source}:{e['line']}: {e['reason']}",
                markup=False,
                highlight=False,
                soft_wrap=True,  # a FILE:LINE is never broken (copied, clicked)
            )
    table = Table(title=f"{w.arrivals} requests over {w.duration:.6g} s", title_justify="left")
    for col in ("class", "requests", "weight", "p50 (s)", "p95 (s)"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for c in w.listed_classes():
        rt = c.response_time
        table.add_row(
            escape(c.name),
            str(c.count),
            f"{c.weight:.4f}",
            f"{rt['p50']:.4g}" if rt else "—",
            f"{rt['p95']:.4g}" if rt else "—",
        )
    console.print(table)
    heavy = w.heavy
    shown = ""
    if heavy is not None and heavy.reported:
        shown = f"; heavy: {heavy.fraction:.1%} of them send {heavy.share:.1%}"
    console.print(f"clients: {w.clients} in {w.subnets} subnets{shown}", highlight=False)
    if lines["unmatched"]:
        console.print(f"{lines['unmatched']} requests matched no pattern: class other")
    for path in written:
        console.print(f"wrote {escape(str(path))}", highlight=False)


def from_log_command(
    access_log: Annotated[
        Path, typer.Argument(help="The access log (plain or .gz).", show_default=False)
    ],
    classes: Annotated[
        list[str],
        typer.Option(
            "--classes",
            "-c",
            help="NAME=[METHOD ]PATH, in order, first match wins: PATH matches the URI "
            "from its start, '$' at its end: exactly, '*': anything. Repeatable.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Write workload.yaml, trace.csv and summary.json here."),
    ],
    log_format: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="combined (also reads common), haproxy (option httplog), or an nginx "
            "log_format string such as '$remote_addr [$time_local] \"$request\" $request_time'.",
        ),
    ] = "combined",
    bin_seconds: Annotated[
        float,
        typer.Option("--bin", help="Seconds per step of the rate schedule.", min=0.001),
    ] = 60.0,
    heavy_class: Annotated[
        list[str] | None,
        typer.Option(
            "--heavy-class",
            help="A class whose requests per client measure heavy users (default: all). "
            "Repeatable.",
            show_default=False,
        ),
    ] = None,
    max_malformed: Annotated[
        float,
        typer.Option(
            "--max-malformed",
            help="Fail when more than this share of lines is malformed.",
            min=0.0,
            max=1.0,
        ),
    ] = 0.01,
    reorder_window: Annotated[
        float | None,
        typer.Option(
            "--reorder-window",
            help="Seconds an arrival may appear late in the log (default: the longest "
            "response time seen, at most 60).",
            min=0.0,
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace outputs already in the directory.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print no table.")] = False,
) -> None:
    """Measure a scenario workload from ACCESS_LOG: class weights, rate schedule, clients.

    Writes workload.yaml (the workload: section of a scenario, with per-class
    response times in comments), trace.csv (time,class,client for
    workload.trace: an exact replay) and summary.json.
    """
    try:
        parser_for(log_format)
        names = classifier(classes).names
    except (LogFormatError, ClassPatternError) as exc:
        prefix = "--format: " if isinstance(exc, LogFormatError) else ""
        fail(prefix + str(exc))
    for name in heavy_class or ():
        if name not in names:
            fail(f"--heavy-class {name!r}: not a class (classes are: {', '.join(names)})")
    if not access_log.is_file():
        fail(f"{access_log}: no such file")
    targets = [out / name for name in OUTPUT_NAMES]
    guard_outputs([access_log], targets)
    if out.exists() and not out.is_dir():
        fail(f"--out {out}: exists and is not a directory")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not force:
        fail(
            f"{', '.join(existing)} already exist; refusing to overwrite "
            "(use --force or another --out)"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--out {out}: cannot create directory ({exc.strerror})")
    try:
        with (
            _byte_progress(not quiet) as progress,
            atomic.replacing(out / "trace.csv", newline="") as trace,
        ):
            w = from_log(
                access_log,
                log_format,
                classes,
                bin_seconds=bin_seconds,
                heavy_classes=heavy_class,
                max_malformed=max_malformed,
                reorder_window=reorder_window,
                trace=trace,
                progress=progress,
            )
    except (AccessLogError, LogFormatError, ClassPatternError) as exc:
        fail(str(exc))
    written = [out / "trace.csv", *write_outputs(w, out)]
    if not quiet:
        _show(w, written)


workload_app.command("from-log")(from_log_command)


def register(app: typer.Typer) -> None:
    app.add_typer(workload_app, name="workload")
