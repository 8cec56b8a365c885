"""``lbsim stack build|up|down|status``: the scenario's real stack in Docker.

A thin layer over :mod:`lbsim.validation.lifecycle`. Problems with Docker
(missing, daemon down, a container that will not start) exit 3 with a plain
message; a scenario or option the stack cannot replay exits 2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from lbsim.cli.common import console, err_console, fail, load_or_exit
from lbsim.scenario.schema import Scenario
from lbsim.validation import ReplayUnsupported, StackOptions
from lbsim.validation import lifecycle as life
from lbsim.validation.compose import resolve
from lbsim.validation.docker import StackError
from lbsim.validation.products import ENVOY_REFUSED, product_overrides

#: exit status for Docker and stack problems (2 is bad input)
EXIT_DOCKER = 3

ScenarioOption = Annotated[
    Path, typer.Option("--scenario", help="Scenario YAML file.", show_default=False)
]
BalancerOption = Annotated[
    str | None,
    typer.Option(
        "--balancer",
        help="App balancer of the stack: nginx or haproxy (default: the scenario's "
        "balancer.product, else nginx; a product the scenario names must agree).",
        show_default=False,
    ),
]
PortOption = Annotated[
    int, typer.Option("--port", help="Publish the balancer on 127.0.0.1:PORT (HAProxy stats +1).")
]

stack_app = typer.Typer(
    name="stack",
    help="Build, start, inspect and stop the scenario's real stack in Docker.",
    no_args_is_help=True,
)


@contextmanager
def _errors() -> Iterator[None]:
    """Stack failures as ``error: ...`` and an exit status, never a traceback."""
    try:
        yield
    except ReplayUnsupported as exc:
        fail(str(exc))
    except StackError as exc:
        err_console.print(
            f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        raise typer.Exit(code=EXIT_DOCKER) from None


def _balancer(value: str | None) -> Literal["nginx", "haproxy"] | None:
    """``--balancer`` checked (None: not given, the scenario's product decides)."""
    if value is None:
        return None
    if value == "nginx":
        return "nginx"
    if value == "haproxy":
        return "haproxy"
    if value == "envoy":
        fail(f"--balancer envoy: {ENVOY_REFUSED}")
    fail(f"--balancer must be nginx or haproxy, not {value!r}")


def _setup(
    file: Path, balancer: str | None, port: int, base: Callable[[], str] = lambda: life.BASE_TAG
) -> tuple[Scenario, StackOptions]:
    """The scenario and the stack options, the balancer resolved against the
    scenario's ``balancer.product`` (a disagreement is :class:`ReplayUnsupported`)."""
    scenario = load_for_stack(file, balancer)
    opts = StackOptions(balancer=_balancer(balancer), port=port, base_image=base())
    return scenario, resolve(scenario, opts)


def load_for_stack(
    file: Path,
    balancer: str | None,
    overrides: list[str] | None = None,
    duration: float | None = None,
) -> Scenario:
    """FILE as the stack runs it: a file that names no ``balancer.product`` is
    read with the product ``--balancer`` asks for (its default policy and
    options), so the stack and the model follow one product's rules."""
    scenario = load_or_exit(file, overrides, duration=duration)
    sets = product_overrides(file, _balancer(balancer), overrides or [])
    if not sets:
        return scenario
    return load_or_exit(file, [*(overrides or []), *sets], duration=duration)


def build(
    scenario: ScenarioOption,
    balancer: BalancerOption = None,
    port: PortOption = 8080,
    base: Annotated[
        str,
        typer.Option(
            "--base",
            help="Base image: 'debootstrap' (build lbsim/base:bookworm if missing) or an image.",
        ),
    ] = "debootstrap",
) -> None:
    """Build the stack's images (nginx, HAProxy, php-fpm, MariaDB) FROM the base image."""
    with _errors():
        s, opts = _setup(scenario, balancer, port)
        used = life.build(s, opts, base)
        console.print(
            f"[green]built[/green] images for {s.name} from {used.base_image} "
            f"in {life.stack_dir(s, str(used.balancer))}"
        )


def up(
    scenario: ScenarioOption,
    balancer: BalancerOption = None,
    port: PortOption = 8080,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for the stack to be ready.")
    ] = 300.0,
) -> None:
    """Start the stack (building missing images) and wait until every service is ready."""
    with _errors():
        s, opts = _setup(scenario, balancer, port, life.default_base_image)
        handle = life.up(s, opts, timeout)
        console.print(
            f"[green]up[/green] {handle.project}: {handle.url} "
            f"(app {', '.join(handle.app_nodes)}; db {', '.join(handle.db_nodes) or 'none'})"
        )


def down(
    scenario: ScenarioOption,
    balancer: BalancerOption = None,
    port: PortOption = 8080,
) -> None:
    """Stop and remove the stack's containers, network and volumes."""
    with _errors():
        s, opts = _setup(scenario, balancer, port)
        life.down(s, opts)
        console.print(f"[green]down[/green] {life.project_name(s.name, str(opts.balancer))}")


def status(
    scenario: ScenarioOption,
    balancer: BalancerOption = None,
    port: PortOption = 8080,
) -> None:
    """Show each service: container state, health, CPU limit, Galera state."""
    with _errors():
        s, opts = _setup(scenario, balancer, port)
        rows = life.status(s, opts)
        table = Table(title=f"stack {life.project_name(s.name, str(opts.balancer))}")
        for col in ("service", "state", "health", "cpus", "detail"):
            table.add_column(col, justify="right" if col == "cpus" else "left")
        for r in rows:
            style = "green" if r.state == "running" else "red"
            table.add_row(
                r.service,
                f"[{style}]{r.state}[/{style}]",
                r.health,
                f"{r.cpus:g}" if r.cpus else "-",
                escape(r.extra),
            )
        console.print(table)


stack_app.command("build")(build)
stack_app.command("up")(up)
stack_app.command("down")(down)
stack_app.command("status")(status)


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
