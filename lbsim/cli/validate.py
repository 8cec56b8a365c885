"""``lbsim replay FILE`` and ``lbsim calibrate FILE``: the scenario on the real stack.

``replay`` sends the scenario's own trace to its running stack (starting it
when it is not up) and writes the measurements under the keys of ``lbsim
run``. ``calibrate`` measures the stack, writes the calibrated scenario and
compares prediction and measurement at several loads (see
:mod:`lbsim.validation.campaign`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from lbsim.cli.common import (
    DurationOption,
    ScenarioFile,
    SetOption,
    console,
    err_console,
    fail,
    guard_outputs,
    load_or_exit,
)
from lbsim.cli.stack import (
    EXIT_DOCKER,
    BalancerOption,
    PortOption,
    _balancer,
    _errors,
    load_for_stack,
)
from lbsim.validation import lifecycle
from lbsim.validation.calibration import CalibrationError, calibrated_path, measure_stack_costs
from lbsim.validation.campaign import CampaignOptions, run_campaign
from lbsim.validation.compose import BALANCER_SERVICE
from lbsim.validation.docker import StackError
from lbsim.validation.replay import ReplayRun
from lbsim.validation.replay import replay as replay_run
from lbsim.validation.workplan import MachineCosts

#: exit status of a replay whose load generator could not keep the schedule
EXIT_INVALID = 4

TargetOption = Annotated[
    Path | None,
    typer.Option(
        "--target",
        help="A target file: calibrate/replay against your own running compose stack "
        "(its services, entry URL, one HTTP request per class; see `lbsim check TARGET`).",
    ),
]


@contextmanager
def _calibration_errors() -> Iterator[None]:
    with _errors():
        try:
            yield
        except CalibrationError as exc:
            err_console.print(
                f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=EXIT_DOCKER) from None


def _costs(path: Path | None) -> MachineCosts | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return MachineCosts.from_dict(data.get("costs", data))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(
            f"{path}: cannot read the machine costs ({exc}); give the calibration.json "
            "written by lbsim calibrate"
        )


def replay(
    file: ScenarioFile,
    set_: SetOption = None,
    duration: DurationOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Directory of the results (default validation/results/NAME/replay)."),
    ] = None,
    costs: Annotated[
        Path | None,
        typer.Option(
            help="calibration.json of an earlier `lbsim calibrate` (default: measure the "
            "work-unit costs now, ~10 s)."
        ),
    ] = None,
    balancer: BalancerOption = None,
    port: PortOption = 8080,
    access_log: Annotated[
        Path | None,
        typer.Option(
            help="Write the balancer's access log of this replay to this new file (nginx: "
            "log_format lbsim, see `lbsim workload from-log`; HAProxy: httplog)."
        ),
    ] = None,
    target: TargetOption = None,
) -> None:
    """Send FILE's arrival trace (same seed: same times, classes, clients, demands) to
    its stack, open loop — or run its closed-loop users (think, send, wait) — and
    measure latency, throughput, utilisation, Galera counters. With --target: to
    your own running stack, each class as the target file's HTTP request."""
    if target is not None:
        _replay_target(file, target, set_, duration, out, costs, balancer, access_log)
        return
    scenario = load_for_stack(file, balancer, set_, duration)
    known = _costs(costs)
    outdir = out or Path("validation/results") / scenario.name / "replay"
    guard_outputs([file, costs], [outdir, access_log], [outdir])
    if access_log is not None and (access_log.exists() or access_log.is_symlink()):
        fail(f"--access-log {access_log}: the file exists (lbsim does not overwrite it)")
    with _calibration_errors():
        options = lifecycle.default_options(_balancer(balancer), port)
        try:
            handle = lifecycle.attach(scenario, options)
            console.print(f"using the running stack at {handle.url}")
        except StackError:
            console.print("starting the stack (lbsim stack up) ...")
            handle = lifecycle.up(scenario, options)
        if known is None:
            console.print("measuring the machine's work-unit costs ...")
            known = measure_stack_costs(handle)
        console.print(
            f"replaying {scenario.name}: {scenario.horizon:g} s "
            f"({scenario.warmup:g} s warm-up) to {handle.url}"
        )
        since = time.time()
        try:
            run = replay_run(scenario, handle, known)
        except ValueError as exc:
            fail(f"{file}: {exc}")
        if access_log is not None:
            handle.compose.save_stdout(BALANCER_SERVICE, since, access_log)
            console.print(f"wrote {access_log} (the balancer's access log of the replay)")
    _finish_replay(run, outdir)


def _replay_target(
    file: Path,
    target: Path,
    set_: list[str] | None,
    duration: float | None,
    out: Path | None,
    costs: Path | None,
    balancer: str | None,
    access_log: Path | None,
) -> None:
    from lbsim.cli.target import default_report_dir, replay_on_target

    for name, given in (("--costs", costs), ("--balancer", balancer), ("--access-log", access_log)):
        if given is not None:
            fail(
                f"{name} is for lbsim's own stack; with --target the stack, its balancer "
                "and its logs are yours"
            )
    scenario = load_or_exit(file, set_, duration=duration)
    outdir = out or default_report_dir(scenario, target) / "replay"
    guard_outputs([file, target], [outdir], [outdir])
    _, run = replay_on_target(file, target, set_, duration)
    _finish_replay(run, outdir)


def _finish_replay(run: ReplayRun, outdir: Path) -> None:
    for path in run.write(outdir):
        console.print(f"wrote {path}")
    _print_replay(run.results)
    if not run.valid:
        problems = "; ".join(run.results["meta"]["loadgen"]["problems"])
        err_console.print(
            f"[bold yellow]not a valid measurement:[/bold yellow] {escape(problems)}",
            highlight=False,
        )
        raise typer.Exit(code=EXIT_INVALID)


def _print_replay(results: dict[str, object]) -> None:
    t = Table(title="measured on the real stack", title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    lat = results["latency"]
    assert isinstance(lat, dict)
    t.add_row("throughput", f"{results['throughput']:.2f} req/s")
    for k in ("mean", "p50", "p95", "p99"):
        t.add_row(f"latency {k}", f"{lat[k] * 1e3:.1f} ms")
    util = results.get("utilisation", {})
    assert isinstance(util, dict)
    for tier in ("app", "db"):
        for node, v in util.get(tier, {}).items():
            if "cpu" in v:
                t.add_row(f"{node} cpu", f"{v['cpu']:.1%}")
    req = results["requests"]
    assert isinstance(req, dict)
    t.add_row("failed", str(req["failed"]["total"]))
    console.print(t)


def _levels(text: str) -> tuple[float, ...]:
    try:
        levels = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        fail(f"--levels must be fractions of capacity separated by commas, not {text!r}")
    if not levels or any(not 0 < x < 1.5 for x in levels):
        fail(f"--levels must be fractions of capacity in (0, 1.5), got {text!r}")
    return levels


def calibrate(
    file: ScenarioFile,
    levels: Annotated[
        str,
        typer.Option(
            help="Load levels as fractions of the measured capacity; above 1 an overload "
            "level, judged by its throughput and failures of each kind."
        ),
    ] = "0.3,0.6,0.85,0.95,1.1",
    duration: Annotated[float, typer.Option(help="Measured seconds per level.")] = 60.0,
    warmup: Annotated[float, typer.Option(help="Warm-up seconds per level.")] = 10.0,
    per_class: Annotated[int, typer.Option(help="Low-load requests measured per class.")] = 40,
    repetitions: Annotated[
        int,
        typer.Option(
            help="Replays per level, with different seeds, interleaved across levels; the "
            "errors are paired and get a 95 % interval (>= 2 for an interval)."
        ),
    ] = 3,
    min_requests: Annotated[
        int,
        typer.Option(
            help="Measured requests per replay (each level's --duration is lengthened "
            "to fit; 0: --duration as given)."
        ),
    ] = 2000,
    out: Annotated[
        Path | None,
        typer.Option(help="Report directory (default validation/results/NAME)."),
    ] = None,
    balancer: BalancerOption = None,
    port: PortOption = 8080,
    down: Annotated[bool, typer.Option("--down", help="Stop the stack at the end.")] = False,
    target: TargetOption = None,
    costs: Annotated[
        Path | None,
        typer.Option(
            help="With --target, a what-if: the class costs of an earlier calibration.json "
            "(another target's, say one app node) instead of measuring this target at low "
            "load; the levels run on this target's topology."
        ),
    ] = None,
    set_: SetOption = None,
) -> None:
    """Measure FILE's real stack at low load, write FILE's calibrated scenario, then
    replay and simulate it at several loads and report the error of every metric.
    With --target: your own running stack (the target file says where and how)."""
    if target is None and (costs is not None or set_):
        fail("--costs and --set go with --target (a what-if on your own stack)")
    if target is not None:
        if balancer is not None or down:
            fail("--balancer and --down are for lbsim's own stack, not a --target")
        scenario = load_or_exit(file, set_)
    else:
        scenario = load_for_stack(file, balancer)  # a bad scenario fails here, before Docker
    if target is not None:
        from lbsim.cli.target import default_report_dir

        report_dir = out or default_report_dir(scenario, target)
        # a what-if writes its calibrated scenario into the report, not over FILE's
        written = [report_dir] if costs is not None else [calibrated_path(file), report_dir]
        guard_outputs([f for f in (file, target, costs) if f is not None], written, [report_dir])
    else:
        report_dir = out or Path("validation/results") / scenario.name
        guard_outputs([file], [calibrated_path(file), report_dir], [report_dir])
    if scenario.workload.open is None:
        fail(
            f"{file}: lbsim calibrate drives the stack at chosen arrival rates and needs an "
            "open-loop workload (workload.open)"
        )
    if duration <= 0 or warmup < 0 or per_class < 5:
        fail("--duration must be > 0, --warmup >= 0 and --per-class >= 5")
    if repetitions < 1 or min_requests < 0:
        fail("--repetitions must be >= 1 and --min-requests >= 0")
    options = CampaignOptions(
        levels=_levels(levels),
        duration=duration,
        warmup=warmup,
        per_class=per_class,
        balancer=_balancer(balancer),
        port=port,
        out=out,
        keep_up=not down,
        repetitions=repetitions,
        min_requests=min_requests,
    )
    if target is not None:
        from lbsim.cli.target import calibrate_on_target

        result = calibrate_on_target(
            file, target, replace(options, out=report_dir), costs, list(set_ or [])
        )
    else:
        with _calibration_errors():
            result = run_campaign(file, options, say=lambda s: console.print(s, highlight=False))
    t = Table(title=f"prediction error of {result.scenario.name}", title_justify="left")
    for col in ("level", "metric", "R", "mean paired error ± 95 % CI", "bound", "verdict"):
        t.add_column(col)
    style = {"within": "green", "miss": "red", "inconclusive": "yellow"}
    for p in result.paired():
        rel = p.kind == "relative"
        err = (
            f"{p.mean:+.1%} ± {p.half:.1%}"
            if rel
            else f"{p.mean * 100:+.1f} ± {p.half * 100:.1f} pp"
        )
        more = f" (R={p.r_needed} would decide)" if p.r_needed else ""
        t.add_row(
            p.level,
            p.metric,
            str(p.n),
            err,
            (f"{p.bound:.0%}" + (f" of ≥ {p.floor:.0%}" if p.floor else ""))
            if rel
            else f"{p.bound * 100:.0f} pp",
            f"[{style[p.verdict]}]{p.verdict}[/{style[p.verdict]}]{more}",
        )
    for e in result.probe:
        t.add_row(
            e.level,
            e.metric,
            "1",
            f"{e.error * 100:.1f} pp",
            f"{e.bound * 100:.0f} pp",
            "[green]within[/green]" if e.ok else "[red]miss[/red]",
        )
    console.print(t)
    for line in result.not_valid():
        err_console.print(f"NOT VALID: {line}")
    console.print(
        f"report: {result.outdir / 'report.md'} — "
        + ("no significant miss, every phase valid" if result.passed else "see the misses")
    )


def register(app: typer.Typer) -> None:
    app.command(name="replay")(replay)
    app.command(name="calibrate")(calibrate)
