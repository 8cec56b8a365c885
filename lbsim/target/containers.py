"""Attaching to the user's running compose project: :func:`attach` → :class:`TargetHandle`.

Each service the target file names is resolved to its one running container
by the labels every compose version sets (``com.docker.compose.project`` and
``.service``), so neither the compose file nor compose itself is needed. Then
the target is checked end to end before anything is measured: the URL
answers HTTP, the database credentials work (``SELECT 1`` in the first
database node), php-fpm's status answers where the target says. Whatever is
missing is a :class:`TargetError` naming the file, the key and what to do.

lbsim never starts, stops or changes the user's containers, unless the
target says ``compose.start: true``: then a project that is not running is
started with its compose file (``up -d``, waiting a bounded time for it to
serve) and :meth:`TargetHandle.stop` stops it again (``compose stop``: the
containers and their data are kept).
"""

from __future__ import annotations

import http.client
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lbsim.target.handle import LOG_LINES, Runner, TargetHandle, docker_runner, last_line, not_found
from lbsim.target.schema import TargetSpec
from lbsim.validation.collectors import parse_fpm_status
from lbsim.validation.docker import (
    PROJECT_LABEL,
    QUICK,
    SERVICE_LABEL,
    Docker,
    DockerTimeout,
    DockerUnavailable,
    StackError,
    compose_command,
    find_docker,
)

__all__ = ["TargetError", "TargetHandle", "attach", "probe_url", "project_containers"]

#: how long the URL and each check may take to answer
PROBE_TIMEOUT = 5.0


class TargetError(Exception):
    """The target cannot be used as it stands; ``str()`` is the message for the
    user (the CLI prints it and exits 2)."""


UrlProbe = Callable[[str, float], str | None]


def probe_url(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when ``GET /`` on ``url`` gets an HTTP answer (any status), else why not."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Host": parts.netloc, "Connection": "close"})
        conn.getresponse().close()
        return None
    except ConnectionRefusedError:
        return "connection refused (nothing listens on that port)"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except http.client.HTTPException as exc:
        return f"not an HTTP answer ({type(exc).__name__}: {exc})"
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        conn.close()


def project_containers(runner: Runner, docker: str, project: str) -> list[tuple[str, str, str]]:
    """(id, service, state) of every container of the compose project, any state."""
    fmt = '{{.ID}}\t{{.Label "' + SERVICE_LABEL + '"}}\t{{.State}}'
    argv = [docker, "ps", "-a", "--no-trunc", "--filter", f"label={PROJECT_LABEL}={project}"]
    proc = runner([*argv, "--format", fmt], QUICK)
    if proc.returncode != 0:
        raise StackError(f"`{' '.join(argv)}` failed: {last_line(proc)}")
    out = []
    for line in proc.stdout.splitlines():
        fields = line.strip().split("\t")
        if len(fields) == 3 and fields[0]:
            out.append((fields[0], fields[1], fields[2]))
    return out


def _running(found: list[tuple[str, str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for cid, service, state in found:
        if state == "running":
            out.setdefault(service, []).append(cid)
    return out


def _role(target: TargetSpec, service: str) -> str:
    s = target.services
    if service == s.balancer:
        return "services.balancer"
    if service in s.app:
        return f"services.app[{s.app.index(service)}]"
    return f"services.database[{s.database.index(service)}]"


def _missing(
    target: TargetSpec, file: str, missing: list[str], found: list[tuple[str, str, str]]
) -> TargetError:
    project = target.compose.project
    if not found:
        return TargetError(
            f"{file}: compose.project: compose project {project!r} has no containers "
            f"(is it up? `docker compose -p {project} ps`); start it yourself, or give "
            "compose.file and compose.start: true to let lbsim start it"
        )
    running = sorted(_running(found))
    states = {service: state for _, service, state in found}
    lines = []
    for service in missing:
        why = f"its container is {states[service]}" if service in states else "no such service"
        lines.append(
            f"{file}: {_role(target, service)}: service {service!r} of compose project "
            f"{project!r} has no running container ({why})"
        )
    lines.append(f"  the project's running services: {', '.join(running) if running else 'none'}")
    return TargetError("\n".join(lines))


def _docker(runner: Runner, need_compose: bool) -> Docker:
    exe = find_docker()
    try:
        proc = runner([exe, "info", "--format", "{{.ServerVersion}}"], QUICK)
    except DockerTimeout:
        raise DockerUnavailable(
            f"Docker is not available: `docker info` took over {QUICK:g} s"
        ) from None
    if proc.returncode != 0 or not proc.stdout.strip():
        raise DockerUnavailable(f"Docker is not available: `docker info` failed: {last_line(proc)}")
    return Docker(exe, compose_command(exe) if need_compose else ())


def _inspect(runner: Runner, docker: str, ids: list[str]) -> list[dict[str, Any]]:
    proc = runner([docker, "inspect", *ids], QUICK)
    if proc.returncode != 0:
        raise StackError(f"`docker inspect` failed: {last_line(proc)}")
    data: list[dict[str, Any]] = json.loads(proc.stdout)
    return data


def _not_ready(
    runner: Runner, docker: str, target: TargetSpec, probe: UrlProbe
) -> tuple[str, str] | None:
    """(service, what it waits for) of a project just started, or None when it serves."""
    found = project_containers(runner, docker, target.compose.project)
    running = _running(found)
    for service in target.services.all:
        if service not in running:
            states = [state for _, s, state in found if s == service]
            return service, f"is {states[0]}" if states else "has no container yet"
    ids = [running[s][0] for s in target.services.all]
    for service, info in zip(target.services.all, _inspect(runner, docker, ids), strict=True):
        health = ((info.get("State") or {}).get("Health") or {}).get("Status", "")
        if health and health != "healthy":
            return service, f"is {health}"
    problem = probe(target.url, PROBE_TIMEOUT)
    if problem is not None:
        first = target.services.balancer or target.services.app[0]
        return first, f"does not answer at {target.url}: {problem}"
    return None


def _start(
    target: TargetSpec,
    file: str,
    docker: Docker,
    runner: Runner,
    probe: UrlProbe,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> None:
    """``compose up -d`` of the target's compose file, then wait (bounded) until it serves."""
    spec = target.compose
    assert spec.path is not None  # the schema requires the file with start: true
    timeout = spec.start_timeout
    argv = [*docker.compose, "-f", str(spec.path), "-p", spec.project, "up", "-d"]
    try:
        proc = runner(argv, timeout)
    except DockerTimeout as exc:
        raise TargetError(f"{file}: compose.start: {exc}\n{exc.output[-2000:]}") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise TargetError(f"{file}: compose.start: `{' '.join(argv)}` failed:\n{tail}")
    deadline = clock() + timeout
    waiting: tuple[str, str] | None = (spec.project, "was not checked")
    for _ in range(math.ceil(timeout) + 2):
        waiting = _not_ready(runner, docker.docker, target, probe)
        if waiting is None or clock() >= deadline:
            break
        sleep(min(1.0, max(0.0, deadline - clock())))
    if waiting is not None:
        service, what = waiting
        found = project_containers(runner, docker.docker, spec.project)
        cid = next((c for c, s, _ in found if s == service), None)
        tail = "(no container)"
        if cid is not None:
            logs = runner([docker.docker, "logs", "--tail", str(LOG_LINES), cid], QUICK)
            tail = (logs.stdout + logs.stderr).strip() or "(empty log)"
        raise TargetError(
            f"{file}: compose.start: lbsim started project {spec.project!r}, but after "
            f"{timeout:g} s {service} {what} (the project is left running)\n"
            f"last {LOG_LINES} lines of {service}'s log:\n{tail}"
        )


def _check_database(handle: TargetHandle) -> None:
    db = handle.target.database
    if db is None:
        return
    node = handle.db_nodes[0]
    file = str(handle.file)
    try:
        proc = handle.run_sql(node, "SELECT 1", PROBE_TIMEOUT * 2)
    except DockerTimeout:
        raise TargetError(
            f"{file}: database: `{db.client} -e 'SELECT 1'` in {node} did not answer "
            f"within {PROBE_TIMEOUT * 2:g} s"
        ) from None
    if not_found(proc):
        other = "mysql" if db.client == "mariadb" else "mariadb"
        raise TargetError(
            f"{file}: database.client: {node}'s container has no `{db.client}` program "
            f"({last_line(proc)}); if it has `{other}`, set database.client: {other}"
        )
    if proc.returncode != 0 or proc.stdout.strip() != "1":
        why = last_line(proc) if proc.returncode != 0 else f"answered {proc.stdout.strip()!r}"
        raise TargetError(
            f"{file}: database: the credentials do not work on {node}: user {db.user!r} "
            f"with {db.password_source}: {why}"
        )


def _check_fpm_status(handle: TargetHandle) -> None:
    path = handle.target.fpm_status
    if path is None:
        return
    file = str(handle.file)
    for node in handle.app_nodes:
        argv = handle.fpm_status_argv(node)
        try:
            proc = handle.run_in(node, argv, PROBE_TIMEOUT * 2)
        except DockerTimeout:
            raise TargetError(
                f"{file}: fpm_status: php-fpm's status in {node} did not answer within "
                f"{PROBE_TIMEOUT * 2:g} s"
            ) from None
        if not_found(proc):
            handle.notes.append(
                f"{node}: no cgi-fcgi in the container: php-fpm status not read there"
            )
            continue
        try:
            if proc.returncode != 0:
                raise StackError(last_line(proc))
            parse_fpm_status(proc.stdout)
        except StackError as exc:
            raise TargetError(
                f"{file}: fpm_status: {path} does not answer in {node} (php-fpm at "
                f"{handle.target.fpm_listen}): {exc}; set pm.status_path = {path} in the "
                "pool, or correct fpm_status / fpm_listen"
            ) from None


def attach(
    target: TargetSpec,
    target_file: Path | str,
    *,
    docker: Docker | None = None,
    runner: Runner = docker_runner,
    probe: UrlProbe = probe_url,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> TargetHandle:
    """The user's running stack, checked: every named service has one running
    container, the URL answers, the database credentials and php-fpm's status
    work. :class:`TargetError` names what is missing; Docker itself missing is
    :class:`~lbsim.validation.docker.DockerUnavailable`.

    With ``compose.start: true`` a project with a named service not running is
    started first (the handle's :meth:`~TargetHandle.stop` stops it again).
    ``docker`` and ``runner`` replace the real docker (tests).
    """
    file = str(target_file)
    spec = target.compose
    if docker is None:
        docker = _docker(runner, need_compose=spec.start)
    found = project_containers(runner, docker.docker, spec.project)
    missing = [s for s in target.services.all if s not in _running(found)]
    started = False
    if missing and spec.start:
        _start(target, file, docker, runner, probe, clock, sleep)
        started = True
        found = project_containers(runner, docker.docker, spec.project)
        missing = [s for s in target.services.all if s not in _running(found)]
    if missing:
        raise _missing(target, file, missing, found)
    running = _running(found)
    scaled = [s for s in target.services.all if len(running[s]) > 1]
    if scaled:
        s = scaled[0]
        raise TargetError(
            f"{file}: {_role(target, s)}: service {s!r} runs {len(running[s])} containers "
            "(scaled); lbsim models one node per container: give each node its own service"
        )
    ids = {s: running[s][0] for s in target.services.all}
    infos = _inspect(runner, docker.docker, list(ids.values()))
    configs = {s: dict(i.get("HostConfig") or {}) for s, i in zip(ids, infos, strict=True)}
    handle = TargetHandle(target, Path(target_file), docker, ids, configs, runner, started)
    problem = probe(target.url, PROBE_TIMEOUT)
    if problem is not None:
        raise TargetError(
            f"{file}: url: {target.url} does not answer: {problem} (is the balancer's port "
            "published on this address?)"
        )
    _check_database(handle)
    _check_fpm_status(handle)
    return handle
