"""Docker and Compose from Python: locate them, run them with timeouts, explain failures.

Everything the live stack does goes through the ``docker`` and compose command
lines (no SDK): that is what a person runs by hand, and the messages we raise
can quote it. Compose v2 (``docker compose``) is preferred when it works,
else ``docker-compose`` v1; both read the generated format-2.4 file.

Containers are found by the labels every compose version sets
(``com.docker.compose.project`` / ``.service``), so the lookup needs neither
the compose file nor the compose binary.

No call waits without a bound: every command runs with a timeout, in a
process group of its own, and on expiry (or Ctrl-C) the whole group is
killed -- compose, the build scripts and whatever they started -- and
:class:`DockerTimeout` says which command did not finish.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
#: how long a quick query (docker info, ps, inspect, exec of a status command) may take
QUICK = 30.0


class StackError(Exception):
    """The live stack could not be built, started, reached or queried (message for a user)."""


class DockerUnavailable(StackError):
    """Docker itself is missing or its daemon does not answer."""


class DockerTimeout(StackError):
    """A docker or compose command did not finish in time (it was killed)."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        #: what the command wrote before it was killed (stdout then stderr)
        self.output = output


#: after SIGTERM, how long a timed-out command's process group may take to exit
KILL_GRACE = 5.0


def _kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM the process group of ``proc`` (its own session), SIGKILL it after
    :data:`KILL_GRACE` s, and reap ``proc``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=KILL_GRACE)
            if sig == signal.SIGTERM:
                # the leader is gone; anything left in its group goes now
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def communicate(
    argv: Sequence[str],
    timeout: float,
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    merge_stderr: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``argv`` in its own session with output captured, for at most ``timeout`` s.

    On expiry (or any exception, e.g. Ctrl-C) the whole process group is
    killed; expiry raises :class:`DockerTimeout`. ``OSError`` (a missing
    program) propagates.
    """
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    with proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out = err = ""
            # what it wrote before it was killed; the dead group closed the pipes
            with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
                out, err = proc.communicate(timeout=KILL_GRACE)
            raise DockerTimeout(
                f"`{' '.join(argv)}` did not finish within {timeout:g} s (killed)",
                (out or "") + (err or ""),
            ) from None
        except BaseException:
            _kill_group(proc)
            raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out or "", err or "")


def save_output(argv: Sequence[str], dest: Path, timeout: float) -> None:
    """``argv``'s stdout into the file ``dest`` (written whole or not at all: a
    temporary file renamed), for at most ``timeout`` s; a failure raises
    :class:`StackError` with the command's stderr, expiry :class:`DockerTimeout`."""
    part = dest.with_name(f".{dest.name}.part")
    try:
        with part.open("w", encoding="utf-8") as out:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            with proc:
                try:
                    _, err = proc.communicate(timeout=timeout)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    raise DockerTimeout(
                        f"`{' '.join(argv)}` did not finish within {timeout:g} s (killed)"
                    ) from None
                except BaseException:
                    _kill_group(proc)
                    raise
        if proc.returncode != 0:
            raise StackError(f"`{' '.join(argv)}` failed: {_first_line(err or '')}")
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def run(
    argv: Sequence[str],
    timeout: float = QUICK,
    *,
    cwd: Path | None = None,
    check: bool = True,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output; failures become :class:`StackError`.

    With ``check`` a non-zero exit raises, quoting the command and its last
    line of stderr; a missing program or a timeout (:class:`DockerTimeout`,
    the command's process group killed) always raises.
    """
    shown = " ".join(argv)
    try:
        proc = communicate(argv, timeout, cwd=cwd, env=env)
    except FileNotFoundError:
        raise DockerUnavailable(f"`{argv[0]}` is not installed (running `{shown}`)") from None
    if check and proc.returncode != 0:
        why = _first_line(proc.stderr) or _first_line(proc.stdout) or f"exit {proc.returncode}"
        raise StackError(f"`{shown}` failed: {why}")
    return proc


@dataclass(frozen=True)
class Docker:
    """The docker client and the compose command that work on this machine."""

    docker: str
    compose: tuple[str, ...]

    @property
    def compose_name(self) -> str:
        """How to call compose, for messages: ``docker compose`` or ``docker-compose``."""
        return " ".join([Path(self.compose[0]).name, *self.compose[1:]])


def find_docker(path: str | None = None) -> str:
    """The ``docker`` client on ``path`` (default: ``$PATH``)."""
    exe = shutil.which("docker", path=path)
    if exe is None:
        raise DockerUnavailable(
            "Docker is not available: no `docker` command on PATH — install docker.io "
            "(and docker-compose) and start dockerd"
        )
    return exe


def compose_command(docker: str, path: str | None = None) -> tuple[str, ...]:
    """``(docker, "compose")`` when compose v2 answers, else the ``docker-compose`` v1 binary."""
    try:
        v2 = communicate([docker, "compose", "version"], QUICK)
    except (OSError, DockerTimeout):
        v2 = None
    if v2 is not None and v2.returncode == 0:
        return (docker, "compose")
    v1 = shutil.which("docker-compose", path=path)
    if v1 is not None:
        return (v1,)
    raise DockerUnavailable(
        "Docker Compose is not available: neither `docker compose` (v2) nor `docker-compose` "
        "(v1) works — install docker-compose or the compose plugin"
    )


def check_daemon(docker: str) -> None:
    """Raise :class:`DockerUnavailable` unless ``docker info`` reaches a daemon."""
    try:
        proc = communicate([docker, "info", "--format", "{{.ServerVersion}}"], QUICK)
    except DockerTimeout:
        raise DockerUnavailable(
            f"Docker is not available: `docker info` did not answer within {QUICK:g} s"
        ) from None
    except OSError as exc:
        raise DockerUnavailable(f"Docker is not available: cannot run `{docker}`: {exc}") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        why = _first_line(proc.stderr) or f"exit {proc.returncode}"
        raise DockerUnavailable(
            f"Docker is not available: `docker info` failed: {why} — start dockerd "
            "(or install docker.io)"
        )


def locate(path: str | None = None) -> Docker:
    """Docker and compose, checked to work (the daemon answers); else :class:`DockerUnavailable`."""
    docker = find_docker(path)
    check_daemon(docker)
    return Docker(docker=docker, compose=compose_command(docker, path))


def image_exists(docker: str, image: str) -> bool:
    return run([docker, "image", "inspect", image], check=False).returncode == 0


@dataclass(frozen=True)
class Compose:
    """One compose project: its name, its directory and the commands to drive it."""

    docker: Docker
    project: str
    directory: Path

    def run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        """``<compose> -p <project> <args>`` in the project directory."""
        argv = [*self.docker.compose, "-p", self.project, *args]
        return run(argv, timeout, cwd=self.directory)

    def container_ids(self, service: str | None = None, *, running: bool = False) -> list[str]:
        """Full ids of the project's containers (of one service), any state unless ``running``."""
        argv = [self.docker.docker, "ps", "-q", "--no-trunc"]
        if not running:
            argv.append("-a")
        argv += ["--filter", f"label={PROJECT_LABEL}={self.project}"]
        if service is not None:
            argv += ["--filter", f"label={SERVICE_LABEL}={service}"]
        return run(argv).stdout.split()

    def container_id(self, service: str) -> str:
        """The one container of ``service``; :class:`StackError` if it has none."""
        ids = self.container_ids(service)
        if not ids:
            raise StackError(
                f"service {service!r} of compose project {self.project!r} has no container "
                "(is the stack up?)"
            )
        return ids[0]

    def save_stdout(self, service: str, since: float, dest: Path, timeout: float = 300.0) -> None:
        """What ``service``'s container wrote on its stdout since the Unix time
        ``since`` (its stderr left out) into ``dest``: the balancers' access log."""
        argv = [self.docker.docker, "logs", "--since", f"{since:.3f}"]
        save_output([*argv, self.container_id(service)], dest, timeout)

    def logs_tail(self, service: str, n: int = 30) -> str:
        """The last ``n`` lines of a service's log (stdout and stderr interleaved).

        Never raises: it is quoted in error messages, which must not be lost.
        """
        try:
            ids = self.container_ids(service)
        except StackError as exc:
            return f"(no log: {exc})"
        if not ids:
            return f"(no container for {service})"
        try:
            proc = communicate(
                [self.docker.docker, "logs", "--tail", str(n), ids[0]], QUICK, merge_stderr=True
            )
        except (OSError, DockerTimeout) as exc:
            return f"(no log: {exc})"
        lines = proc.stdout.rstrip().splitlines()[-n:]
        return "\n".join(lines) if lines else "(empty log)"
