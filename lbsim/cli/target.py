"""``lbsim replay/calibrate SCENARIO --target TARGET``: the user's own stack.

The commands' target halves (:mod:`lbsim.cli.validate` calls them when
``--target`` is given): the target file is loaded and checked against the
scenario before anything touches Docker; a target that does not work (a
service not running, the URL not answering, credentials refused) is a clear
error and exit 2, never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from lbsim.cli.common import console, err_console, fail, load_or_exit
from lbsim.scenario.errors import ScenarioError

if TYPE_CHECKING:
    from lbsim.scenario.schema import Scenario
    from lbsim.target.schema import TargetSpec
    from lbsim.validation.campaign import CampaignOptions, CampaignResult
    from lbsim.validation.replay import ReplayRun


def load_target_or_exit(path: Path, scenario: Scenario) -> TargetSpec:
    """The target file, checked against ``scenario``'s classes: exit 2 naming
    the file, the line and the key (or the classes without a request)."""
    from lbsim.target.loader import load_target
    from lbsim.target.requests import missing_requests

    try:
        target = load_target(path)
    except ScenarioError as exc:
        fail(str(exc))
    missing = missing_requests(scenario, target)
    if missing:
        fail(
            f"{path}: requests: no request for class(es) {', '.join(missing)} of the "
            f"scenario {scenario.name!r} (add one per class under requests:)"
        )
    return target


@contextmanager
def target_errors() -> Iterator[None]:
    """A target that does not work, or a Docker that cannot be reached: exit 2
    with the reason (what is missing, and how to check it)."""
    from lbsim.target.containers import TargetError
    from lbsim.validation.calibration import CalibrationError
    from lbsim.validation.docker import StackError

    try:
        yield
    except (TargetError, CalibrationError, StackError) as exc:
        err_console.print(
            f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(code=2) from None


def replay_on_target(
    file: Path,
    target_file: Path,
    overrides: list[str] | None,
    duration: float | None,
) -> tuple[Scenario, ReplayRun]:
    """Attach to the target's containers and replay FILE's trace on them."""
    from lbsim.target.containers import attach
    from lbsim.target.replay import replay_target

    scenario = load_or_exit(file, overrides, duration=duration)
    target = load_target_or_exit(target_file, scenario)
    with target_errors():
        stack = attach(target, target_file)
        console.print(f"using the target {target.target!r} at {stack.url}")
        console.print(
            f"replaying {scenario.name}: {scenario.horizon:g} s "
            f"({scenario.warmup:g} s warm-up) to {stack.url}"
        )
        try:
            run = replay_target(scenario, stack, target)
        except ValueError as exc:
            fail(f"{file}: {exc}")
    return scenario, run


def calibrate_on_target(
    file: Path,
    target_file: Path,
    options: CampaignOptions,
    costs: Path | None = None,
    overrides: list[str] | None = None,
) -> CampaignResult:
    """The calibration campaign on the target's containers (``costs``: a
    what-if with an earlier calibration's class costs)."""
    from lbsim.target.campaign import run_target_campaign

    scenario = load_or_exit(file, overrides)
    load_target_or_exit(target_file, scenario)
    with target_errors():
        return run_target_campaign(
            file,
            target_file,
            options,
            say=lambda s: console.print(s, highlight=False),
            costs=costs,
            overrides=overrides or [],
        )


def default_report_dir(scenario: Scenario, target_file: Path) -> Path:
    """``validation/results/<scenario>-<target>``: the target's name when the
    file loads, else the file's stem (the load error comes later, with its line)."""
    from lbsim.target.loader import load_target

    try:
        name = load_target(target_file).target
    except (ScenarioError, OSError):
        name = target_file.stem
    return Path("validation/results") / f"{scenario.name}-{name}"
