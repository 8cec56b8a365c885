"""The user's running stack as the collectors see it: :class:`TargetHandle`.

It offers what :class:`lbsim.validation.lifecycle.StackHandle` offers the
collectors (``url``, ``services``, ``app_nodes``, ``db_nodes``,
``container_id``, ``exec``, ``logs_tail``, ``meta``) on the containers
:func:`lbsim.target.containers.attach` resolved, and what the built-in stack
does not need: SQL with the target's credentials (:meth:`TargetHandle.mysql`,
the password passed in the environment, never on a command line), php-fpm's
status where the target says it is, and the shape of every container
(:meth:`TargetHandle.readings`, :meth:`TargetHandle.topology`).

Every command only reads: nothing here starts, stops or changes a container,
except :meth:`TargetHandle.stop`, which stops a project lbsim itself started.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from lbsim.target.inspection import (
    DB_STATUS,
    DB_VARIABLES,
    FPM_DUMP,
    POOL_FILES,
    AppReading,
    DbReading,
    cfs_period,
    cpu_limit,
    db_reading,
    fpm_reading_from,
    shape_notes,
)
from lbsim.target.schema import TargetSpec
from lbsim.validation.collectors import FpmStatus, parse_fpm_status
from lbsim.validation.docker import (
    QUICK,
    Docker,
    DockerTimeout,
    DockerUnavailable,
    StackError,
    communicate,
)

if TYPE_CHECKING:
    from lbsim.target.topology import Topology

LOG_LINES = 30


class Runner(Protocol):
    """Runs a command for at most ``timeout`` s, ``env`` added to this
    process's environment; :class:`DockerTimeout` on expiry."""

    def __call__(
        self, argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]: ...


def docker_runner(
    argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The real :class:`Runner`: the command in its own process group, killed on expiry."""
    try:
        return communicate(argv, timeout, env={**os.environ, **env} if env else None)
    except FileNotFoundError:
        raise DockerUnavailable(f"`{argv[0]}` is not installed") from None


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The last non-blank line a failed command wrote (stderr first), or its exit status."""
    for text in (proc.stderr, proc.stdout):
        lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
        if lines:
            return lines[-1]
    return f"exit {proc.returncode}"


def not_found(proc: subprocess.CompletedProcess[str]) -> bool:
    """``docker exec`` found no such program in the container."""
    text = f"{proc.stderr}\n{proc.stdout}".lower()
    return proc.returncode in (126, 127) or "executable file not found" in text


@dataclass
class Readings:
    """What the containers say about their shape (:meth:`TargetHandle.readings`)."""

    app: list[AppReading]
    db: list[DbReading]
    #: the cores of the machine docker runs on (a container with no limit may use them all)
    host_cores: float
    notes: list[str] = field(default_factory=list)


@dataclass
class TargetHandle:
    """A user's running compose project, attached (:func:`lbsim.target.containers.attach`)."""

    target: TargetSpec
    file: Path
    docker: Docker
    #: service → running container id
    containers: dict[str, str]
    #: service → its container's ``HostConfig`` (docker inspect)
    host_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    runner: Runner = docker_runner
    #: lbsim started the project (:meth:`stop` stops it again)
    started: bool = False
    #: what attaching found but did not refuse (a node without cgi-fcgi, ...)
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        db = self.target.database
        self.meta = {
            "target": self.target.target,
            "file": str(self.file),
            "project": self.project,
            "url": self.url,
            "balancer": self.target.services.balancer,
            "app_nodes": self.app_nodes,
            "db_nodes": self.db_nodes,
            "db_engine": db.engine if db is not None else "none",
            "policy": None,
            "started_by_lbsim": self.started,
            "notes": self.notes,
            **self.meta,
        }

    @property
    def project(self) -> str:
        return self.target.compose.project

    @property
    def url(self) -> str:
        return self.target.url

    @property
    def services(self) -> list[str]:
        """Every service the target names (balancer, app, database)."""
        return list(self.target.services.all)

    @property
    def app_nodes(self) -> list[str]:
        return list(self.target.services.app)

    @property
    def db_nodes(self) -> list[str]:
        return list(self.target.services.database)

    def container_id(self, service: str) -> str:
        try:
            return self.containers[service]
        except KeyError:
            raise StackError(
                f"service {service!r} is not one the target {self.target.target!r} names "
                f"(it names {', '.join(self.services)})"
            ) from None

    def run_in(
        self,
        service: str,
        argv: Sequence[str],
        timeout: float = QUICK,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``docker exec`` of ``argv`` in the service's container, whatever its exit
        status; ``env``'s variables are passed by name (their values never
        appear on a command line)."""
        names = [a for k in (env or {}) for a in ("-e", k)]
        cmd = [self.docker.docker, "exec", *names, self.container_id(service), *argv]
        return self.runner(cmd, timeout, env)

    def exec(self, service: str, argv: list[str], timeout: float = QUICK) -> str:
        """Run ``argv`` in the service's container: its stdout, or :class:`StackError`."""
        proc = self.run_in(service, argv, timeout)
        if proc.returncode != 0:
            raise StackError(f"`{' '.join(argv)}` in {service} failed: {last_line(proc)}")
        return proc.stdout

    def logs_tail(self, service: str, n: int = LOG_LINES) -> str:
        """The last ``n`` lines of a service's log (stdout, then stderr). Never raises."""
        cid = self.containers.get(service)
        if cid is None:
            return f"(no container for {service})"
        try:
            proc = self.runner([self.docker.docker, "logs", "--tail", str(n), cid], QUICK)
        except (StackError, OSError) as exc:
            return f"(no log: {exc})"
        lines = (proc.stdout.rstrip() + "\n" + proc.stderr.rstrip()).strip().splitlines()[-n:]
        return "\n".join(lines) if lines else "(empty log)"

    # ------------------------------------------------------------ the database
    def sql_argv(self, sql: str) -> list[str]:
        """The client's command line for ``sql`` inside a database container
        (``-N -B``: tab-separated rows, no header; no password: see :meth:`mysql`)."""
        db = self.target.database
        if db is None:
            raise StackError(f"the target {self.target.target!r} names no database")
        return [db.client, "-u", db.user, "-N", "-B", "-e", sql]

    def sql_env(self) -> dict[str, str]:
        """The environment that carries the password to the client (``MYSQL_PWD``)."""
        db = self.target.database
        secret = db.secret if db is not None else None
        return {"MYSQL_PWD": secret} if secret is not None else {}

    def run_sql(
        self, node: str, sql: str, timeout: float = QUICK
    ) -> subprocess.CompletedProcess[str]:
        """``sql`` on ``node`` with the target's credentials, whatever its exit status."""
        return self.run_in(node, self.sql_argv(sql), timeout, self.sql_env())

    def mysql(self, node: str, sql: str, timeout: float = QUICK) -> str:
        """``sql``'s rows on ``node`` (the collectors' way of running SQL here), or
        :class:`StackError` with the client's message."""
        proc = self.run_sql(node, sql, timeout)
        if proc.returncode != 0:
            raise StackError(f"`{sql}` on {node} failed: {last_line(proc)}")
        return proc.stdout

    # ------------------------------------------------------------ php-fpm
    def fpm_status_argv(self, node: str) -> list[str]:
        """php-fpm's status (JSON) from inside ``node``, through cgi-fcgi."""
        path = self.target.fpm_status
        if path is None:
            raise StackError(f"the target {self.target.target!r} gives no fpm_status path")
        return [
            "env",
            f"SCRIPT_NAME={path}",
            f"SCRIPT_FILENAME={path}",
            "REQUEST_METHOD=GET",
            "QUERY_STRING=json",
            "cgi-fcgi",
            "-bind",
            "-connect",
            self.target.fpm_listen,
        ]

    def fpm_status(self, node: str) -> FpmStatus:
        """The pool status of one app node."""
        return parse_fpm_status(self.exec(node, self.fpm_status_argv(node)))

    # ------------------------------------------------------------ shape
    def host_cores(self) -> float:
        """The cores of the machine docker runs on (``docker info``; else this one's)."""
        try:
            proc = self.runner([self.docker.docker, "info", "--format", "{{.NCPU}}"], QUICK)
            if proc.returncode == 0 and proc.stdout.strip().isdigit():
                return float(int(proc.stdout.strip()))
        except StackError:
            pass
        try:
            return float(len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return float(os.cpu_count() or 1)

    def read_app(self, service: str) -> AppReading:
        """An app container's CPU limit and ``pm.max_children``."""
        cores = cpu_limit(self.host_configs.get(service, {}))
        dump = files = None
        try:
            proc = self.run_in(service, ["sh", "-c", FPM_DUMP])
            if "NOTICE" in proc.stdout:
                dump = proc.stdout
            if dump is None or "pm.max_children" not in dump:
                files = self.run_in(service, ["sh", "-c", POOL_FILES]).stdout
        except DockerTimeout:
            pass
        workers, source = fpm_reading_from(dump, files, self.target.fpm_listen)
        period = cfs_period(self.host_configs.get(service, {}))
        return AppReading(service, cores[0], cores[1], workers, source, period)

    def read_db(self, service: str) -> DbReading:
        """A database container's CPU limit, ``max_connections`` and wsrep state;
        :class:`StackError` when the server does not answer."""
        host_config = self.host_configs.get(service, {})
        return db_reading(
            service,
            cpu_limit(host_config),
            self.mysql(service, DB_VARIABLES),
            self.mysql(service, DB_STATUS),
            cfs_period(host_config),
        )

    def readings(self) -> Readings:
        """Every named container's shape, with a note for what could not be read."""
        host = self.host_cores()
        app = [self.read_app(s) for s in self.app_nodes]
        db: list[DbReading] = []
        notes: list[str] = []
        for s in self.db_nodes:
            try:
                db.append(self.read_db(s))
            except StackError as exc:
                notes.append(f"{s}: not read ({exc})")
        db_spec = self.target.database
        engine = db_spec.engine if db_spec is not None else None
        return Readings(app, db, host, notes + shape_notes(engine, app, db, host))

    def topology(self) -> Topology:
        """The containers as the calibrated scenario models them."""
        from lbsim.target.topology import NodeShape, Topology

        r = self.readings()
        return Topology(
            app=[NodeShape(a.service, a.cores, a.workers, cpu_period=a.cpu_period) for a in r.app],
            db=[
                NodeShape(
                    d.service, d.cores, max_connections=d.max_connections, cpu_period=d.cpu_period
                )
                for d in r.db
            ],
            host_cores=r.host_cores,
            notes=[*self.notes, *r.notes],
        )

    # ------------------------------------------------------------ lifecycle
    def stop(self, timeout: float = 180.0) -> bool:
        """Stop the project if lbsim started it (``compose stop``: containers and
        their data kept); True if it did. A project the user runs is never touched."""
        path = self.target.compose.path
        if not self.started or path is None:
            return False
        argv = [*self.docker.compose, "-f", str(path), "-p", self.project, "stop"]
        proc = self.runner(argv, timeout)
        if proc.returncode != 0:
            raise StackError(f"`{' '.join(argv)}` failed: {last_line(proc)}")
        self.started = False
        return True

    def __enter__(self) -> TargetHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
