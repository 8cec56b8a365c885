"""``lbsim check TARGET`` and ``lbsim check SCENARIO --target TARGET``: target files checked.

Loading a target file with clear errors (every problem as ``file:line:column:
key: what``, exit 2), the summary ``lbsim check`` prints (services, database,
requests with an example of each, placeholders), and the check that a target
performs every class of a scenario.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from lbsim.cli.common import err_console

if TYPE_CHECKING:
    from lbsim.scenario.schema import Scenario
    from lbsim.target.schema import TargetSpec

TargetOption = Annotated[
    Path | None,
    typer.Option(
        "--target",
        help="A target file: your own running compose stack and the HTTP request of each "
        "class (README: Calibrate your own stack).",
        show_default=False,
    ),
]

_TARGET_KEY = re.compile(r"(?m)^target\s*:")


def looks_like_target(path: Path) -> bool:
    """``path`` is a target file: a top-level ``target:`` key (False when unreadable:
    the scenario loader then says why)."""
    from lbsim.scenario.yamlio import UnreadableFile, read_regular_text

    try:
        return bool(_TARGET_KEY.search(read_regular_text(path)))
    except UnreadableFile:
        return False


def _print_errors(title: str, text: str) -> None:
    err_console.print(f"[bold red]error:[/bold red] {title}", highlight=False)
    for line in text.splitlines():
        err_console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def load_target_or_exit(path: Path) -> TargetSpec:
    """The target file, or its problems (file:line: key: what) and exit 2."""
    from lbsim.target.loader import TargetFileError, load_target

    try:
        return load_target(path)
    except TargetFileError as exc:
        _print_errors("invalid target file", str(exc))
        raise typer.Exit(code=2) from None


def _where(path: Path, key: tuple[str | int, ...]) -> str:
    """``file:line:column`` of ``key`` in the target file (the file alone if unknown)."""
    from lbsim.scenario.errors import Problem
    from lbsim.target.loader import locate_in

    problem = Problem(key, "")
    locate_in(path, [problem])
    return problem.render(str(path)).removesuffix(": ")


def check_classes(scenario: Scenario, file: Path, target: TargetSpec, path: Path) -> None:
    """Exit 2 unless ``target`` has a request for every class of ``scenario``;
    warn about requests for classes the scenario does not have."""
    from lbsim.target.requests import extra_requests, missing_requests

    missing = missing_requests(scenario, target)
    if missing:
        names = ", ".join(missing)
        _print_errors(
            "the target file does not perform every class of the scenario",
            f"{_where(path, ('requests',))}: no request for class"
            f"{'es' if len(missing) > 1 else ''} {names} (scenario {file}); "
            "add them under requests:",
        )
        raise typer.Exit(code=2)
    for name in extra_requests(scenario, target):
        err_console.print(
            f"warning: {_where(path, ('requests', name))}: the scenario {file} has no class "
            f"{name!r}: this request is never sent",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def print_target(console: Console, target: TargetSpec, path: Path) -> None:
    """The summary of ``lbsim check TARGET``: services, database, requests, placeholders."""
    from lbsim.model.streams import RandomStreams
    from lbsim.target.requests import RequestRenderer

    def say(text: str) -> None:
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    console.print(
        f"[green]ok[/green] {escape(str(path))}: target '{escape(target.target)}' is valid",
        highlight=False,
        soft_wrap=True,
    )
    c = target.compose
    if c.start:
        say(f"compose project {c.project}: lbsim starts it with {c.file} if it is not running")
    else:
        say(f"compose project {c.project}: lbsim never starts, stops or changes it")
    s = target.services
    roles = [f"balancer {s.balancer}"] if s.balancer else []
    roles.append(f"app {', '.join(s.app)}")
    if s.database:
        roles.append(f"database {', '.join(s.database)}")
    say(f"services: {'; '.join(roles)}")
    say(f"url: {target.url}")
    if target.database is not None:
        db = target.database
        login = f"user {db.user} (password: {db.password_source})"
        say(f"database: {db.engine}, {login}, client {db.client}")
    if target.fpm_status is not None:
        where = f"{target.fpm_status} at {target.fpm_listen}"
        say(f"php-fpm status: {where} (read with cgi-fcgi in each app node)")
    renderer = RequestRenderer(target, RandomStreams(0), unique="example")
    width = max(len(n) for n in target.requests)
    say(f"requests ({len(target.requests)}):")
    used: set[str] = set()
    for i, (name, spec) in enumerate(target.requests.items()):
        used |= spec.placeholders
        extra = [f"expect {', '.join(map(str, spec.expect))}"]
        if spec.form is not None:
            extra.append(f"form {', '.join(spec.form)}")
        elif spec.body is not None:
            extra.append(f"body of {len(spec.body)} characters")
        sources = spec.describe_sources()
        if sources:
            extra.append(sources)
        say(f"  {name:<{width}}  {spec.method} {spec.path}  ({'; '.join(extra)})")
        example = renderer.render(name, i, 0)
        if example.path != spec.path:
            say(f"  {'':<{width}}  e.g. {example.path}")
    for _, template in target.header_templates:
        used |= template.names
    shown = sorted(f"{{{n}}}" for n in used)
    say(f"placeholders: {', '.join(shown) if shown else 'none'}")
