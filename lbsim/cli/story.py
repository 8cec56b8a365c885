"""``lbsim story NAME``: one of the failures users come with, predicted and measured.

Replays every variant of the story's scenario on a fresh real stack, R times
with paired seeds, simulates the same replications and reports the counts
(completed, error 1040, 502, …) predicted vs measured with their paired
errors and verdicts (:mod:`lbsim.validation.stories`).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lbsim.cli.common import console, err_console, fail, guard_outputs
from lbsim.cli.stack import PortOption
from lbsim.cli.validate import _calibration_errors
from lbsim.scenario.errors import ScenarioError
from lbsim.validation.stories import catalogue, report
from lbsim.validation.stories.harness import StoryResult, run_story

#: exit status when a count misses its bound significantly or a fix is not 0
EXIT_MISSED = 1


def story(
    name: Annotated[
        str,
        typer.Argument(
            help=f"The story: {', '.join(catalogue.STORIES)} (or 'list').",
            metavar="NAME",
        ),
    ],
    repetitions: Annotated[
        int, typer.Option(min=1, max=20, help="Paired replays of every variant.")
    ] = 3,
    duration: Annotated[
        float | None,
        typer.Option(
            min=5.0, max=3600.0, help="Measured seconds per replay (default: the scenario's)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Report directory (default validation/results/stories/NAME)."),
    ] = None,
    port: PortOption = 8080,
) -> None:
    """Replay a validation story on the real stack and simulate it: the counts of
    every outcome, predicted vs measured, paired over R repetitions."""
    if name == "list":
        for s in catalogue.STORIES.values():
            console.print(f"{s.name}: {s.title}", highlight=False)
        return
    try:
        chosen = catalogue.story(name)
    except KeyError as exc:
        fail(str(exc.args[0]))
    if not chosen.file.is_file():
        fail(f"{chosen.file}: the story's scenario is missing (run from a checkout of lbsim)")
    outdir = out or Path("validation/results/stories") / chosen.name
    guard_outputs([chosen.file], [], [outdir])
    from lbsim.validation.machine import machine

    stamp = {"when": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    if isinstance(chosen, catalogue.PolicyStory):
        _policies(chosen, repetitions, duration, outdir, port, machine() | stamp)
        return
    if isinstance(chosen, catalogue.GaleraStory):
        _galera(chosen, repetitions, duration, outdir, port, machine() | stamp)
        return
    if isinstance(chosen, catalogue.ReadbackStory):
        _readback(chosen, repetitions, outdir, port, machine() | stamp)
        return
    extra = [f"duration={duration}"] if duration is not None else []
    if isinstance(chosen, catalogue.FaultStory):
        _faults(chosen, repetitions, extra, outdir, port, machine() | stamp)
        return
    from lbsim.validation.stories.conflicts import ConflictModelSide, ConflictStackSide
    from lbsim.validation.stories.sides import ModelSide, StackSide

    conflicts = isinstance(chosen, catalogue.ConflictStory)
    with _calibration_errors():
        try:
            result = run_story(
                chosen,
                (ConflictStackSide if conflicts else StackSide)(port, say=_say),
                ConflictModelSide() if conflicts else ModelSide(),
                repetitions=repetitions,
                extra=extra,
                say=_say,
            )
        except ScenarioError as exc:
            fail(str(exc))
    result.machine = machine() | stamp
    for path in report.write(result, outdir):
        console.print(f"wrote {path}")
    _print(result)
    if not result.passed:
        raise typer.Exit(code=EXIT_MISSED)


def _policies(
    chosen: catalogue.PolicyStory,
    repetitions: int,
    duration: float | None,
    outdir: Path,
    port: int,
    box: dict[str, object],
) -> None:
    from lbsim.validation.campaign import CampaignOptions
    from lbsim.validation.stories import policies_report
    from lbsim.validation.stories.policies import run_policies

    options = CampaignOptions(
        levels=(chosen.level,),
        duration=duration or 120.0,
        warmup=10.0,
        per_class=25,
        port=port,
        out=outdir,
        keep_up=False,
        repetitions=repetitions,
        min_requests=0,
    )
    with _calibration_errors():
        result = run_policies(chosen.file, chosen.policies, options, chosen.level, outdir, _say)
    result.machine = dict(box)
    for path in policies_report.write(result, outdir, chosen.name, chosen.title, chosen.about):
        console.print(f"wrote {path}")
    for m in (*result.differences, *(x for ms in result.metrics.values() for x in ms)):
        if m.verdict != "within":
            _say(f"{m.level} {m.metric}: error {m.mean:+.3f}, {m.verdict}")
    _say(
        "ranking by mean latency: predicted "
        + " < ".join(result.ranking("predicted", "latency.mean"))
        + "; measured "
        + " < ".join(result.ranking("measured", "latency.mean"))
    )
    if not result.passed:
        raise typer.Exit(code=EXIT_MISSED)


def _galera(
    chosen: catalogue.GaleraStory,
    repetitions: int,
    duration: float | None,
    outdir: Path,
    port: int,
    box: dict[str, object],
) -> None:
    from lbsim.scenario.loader import load_scenario
    from lbsim.validation.campaign import CampaignOptions
    from lbsim.validation.stories import galera_report
    from lbsim.validation.stories.galera import StackGaleraSide, run_galera_story

    shipped = load_scenario(chosen.file)
    options = CampaignOptions(
        levels=(),
        duration=duration or shipped.duration,
        warmup=shipped.warmup,
        per_class=25,
        port=port,
        out=outdir,
        keep_up=False,
        repetitions=repetitions,
        min_requests=0,
    )
    with _calibration_errors():
        try:
            result = run_galera_story(chosen, StackGaleraSide(), options, outdir, say=_say)
        except ScenarioError as exc:
            fail(str(exc))
    result.machine = dict(box)
    for path in galera_report.write(result, outdir):
        console.print(f"wrote {path}")
    for ms in result.metrics.values():
        for m in ms:
            if m.verdict != "within":
                _say(f"{m.level} {m.metric}: error {m.mean:+.3f}, {m.verdict}")
    for line in result.not_valid():
        err_console.print(f"[bold red]not valid:[/bold red] {escape(line)}")
    if not result.passed:
        raise typer.Exit(code=EXIT_MISSED)


def _readback(
    chosen: catalogue.ReadbackStory,
    repetitions: int,
    outdir: Path,
    port: int,
    box: dict[str, object],
) -> None:
    from lbsim.validation.probe import ProbeError
    from lbsim.validation.stories import readback_report
    from lbsim.validation.stories.readback import ProbeStackSide, run_readback

    with _calibration_errors():
        try:
            result = run_readback(
                chosen, ProbeStackSide(port, say=_say), repetitions=repetitions, say=_say
            )
        except ProbeError as exc:
            fail(str(exc))
    result.machine = dict(box)
    for path in readback_report.write(result, outdir):
        console.print(f"wrote {path}")
    for m in result.metrics:
        _say(f"{m.metric}: error {m.mean:+.3f} (bound {m.bound:g}), {m.verdict}")
    for p in result.problems:
        err_console.print(f"[bold red]problem:[/bold red] {escape(p)}")
    if not result.passed:
        raise typer.Exit(code=EXIT_MISSED)


def _faults(
    chosen: catalogue.FaultStory,
    repetitions: int,
    extra: list[str],
    outdir: Path,
    port: int,
    box: dict[str, object],
) -> None:
    from lbsim.validation.stories import faults_report
    from lbsim.validation.stories.faults import (
        FaultModelSide,
        FaultStackSide,
        run_fault_story,
    )

    with _calibration_errors():
        try:
            live = FaultStackSide(port, say=_say)
            result = run_fault_story(
                chosen,
                live,
                FaultModelSide(timed_by=live),
                repetitions=repetitions,
                extra=extra,
                say=_say,
            )
        except ScenarioError as exc:
            fail(str(exc))
    result.story.machine = dict(box)
    for path in faults_report.write(result, outdir):
        console.print(f"wrote {path}")
    _print(result.story)
    if not result.story.passed:
        raise typer.Exit(code=EXIT_MISSED)


def _say(line: str) -> None:
    console.print(line, highlight=False, markup=False)


def _print(result: StoryResult) -> None:
    table = Table(
        title=f"{result.story.name}: predicted vs measured (mean of {result.repetitions})"
    )
    for col in ("variant", "count", "predicted", "measured", "error ± 95 %", "verdict"):
        table.add_column(col, justify="right" if col in ("predicted", "measured") else "left")
    for v in result.variants:
        for m in v.metrics:
            rel = m.kind == "relative"
            err = f"{m.mean:+.1%}" if rel else f"{m.mean:+.1f}"
            if m.n >= 2 and m.half == m.half:
                err += f" ± {m.half:.1%}" if rel else f" ± {m.half:.1f}"
            table.add_row(
                v.variant.name,
                m.metric.removeprefix("requests."),
                f"{sum(m.predicted) / m.n:.1f}",
                f"{sum(m.measured) / m.n:.1f}",
                err,
                m.verdict,
            )
    console.print(table)
    for v in result.variants:
        for p in v.problems:
            err_console.print(f"[bold red]{escape(v.variant.name)}:[/bold red] {escape(p)}")


def register(app: typer.Typer) -> None:
    app.command(name="story")(story)
