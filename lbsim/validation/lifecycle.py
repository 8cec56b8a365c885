"""Build, start, wait for, inspect and stop the real stack of a scenario.

One compose project per (scenario, balancer): files in
``build/stack/<scenario>-<balancer>`` (relative to the working directory),
project name ``lbsim-<scenario>-<balancer>``. ``up`` returns only when the
stack can serve: every container running (and healthy where it has a
healthcheck), every Galera node Synced in a cluster of the full size, and the
balancer answering ``/healthz`` through every app node. Otherwise it raises a
:class:`StackError` naming the service, its state and the end of its log.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from lbsim.scenario.schema import Scenario
from lbsim.validation import collectors, slow_node
from lbsim.validation.compose import (
    DEFAULT_BASE_IMAGE,
    VALIDATION_DIR,
    StackOptions,
    generate_stack,
    resolve,
)
from lbsim.validation.docker import (
    QUICK,
    SERVICE_LABEL,
    Compose,
    DockerTimeout,
    DockerUnavailable,
    StackError,
    image_exists,
    locate,
    run,
)
from lbsim.validation.images import source_digest, stale_images
from lbsim.validation.policies import ReplayUnsupported

#: the debootstrap base image (validation/stack/base/build-base.sh)
BASE_TAG = "lbsim/base:bookworm"
BUILD_BASE_SCRIPT = VALIDATION_DIR / "stack" / "base" / "build-base.sh"
#: image builds download Debian packages: minutes, not seconds
BUILD_TIMEOUT = 3600.0
LOG_LINES = 30
#: app images of the stack, built from validation/stack/<name>/Dockerfile
IMAGES = ("nginx", "haproxy", "php-fpm", "mariadb")


def default_base_image() -> str:
    """``$LBSIM_BASE_IMAGE``, else the local debootstrap base if built, else Debian's slim image."""
    env = os.environ.get("LBSIM_BASE_IMAGE")
    if env:
        return env
    try:
        docker = locate()
    except DockerUnavailable:
        return DEFAULT_BASE_IMAGE
    return BASE_TAG if image_exists(docker.docker, BASE_TAG) else DEFAULT_BASE_IMAGE


def default_options(balancer: str | None = None, port: int = 8080) -> StackOptions:
    """Stack options with the default base image (:func:`default_base_image`);
    ``balancer`` None: the scenario's ``balancer.product``."""
    return StackOptions(balancer=balancer, port=port, base_image=default_base_image())  # type: ignore[arg-type]


def project_name(scenario_name: str, balancer: str) -> str:
    """The compose project: ``lbsim-<scenario>-<balancer>`` in the characters compose allows."""
    raw = f"lbsim-{scenario_name}-{balancer}".lower()
    return re.sub(r"[^a-z0-9_-]+", "-", raw).strip("-_")


def stack_dir(scenario: Scenario, balancer: str) -> Path:
    """Where the compose project of ``scenario`` is written (relative to the working directory)."""
    return Path("build/stack") / f"{scenario.name}-{balancer}"


@dataclass
class StackHandle:
    """A running stack: how to reach its services and run commands in them."""

    project: str
    directory: Path
    meta: dict[str, Any]
    url: str
    compose: Compose

    @property
    def app_nodes(self) -> list[str]:
        return list(self.meta["app_nodes"])

    @property
    def db_nodes(self) -> list[str]:
        return list(self.meta["db_nodes"])

    @property
    def services(self) -> list[str]:
        """Every service of the project (as its docker-compose.yml lists them)."""
        text = (self.directory / "docker-compose.yml").read_text(encoding="utf-8")
        return list(yaml.safe_load(text)["services"])

    def container_id(self, service: str) -> str:
        return self.compose.container_id(service)

    def exec(self, service: str, argv: list[str], timeout: float = QUICK) -> str:
        """Run ``argv`` in the service's container: its stdout, or :class:`StackError`."""
        cid = self.container_id(service)
        proc = run([self.compose.docker.docker, "exec", cid, *argv], timeout, check=False)
        if proc.returncode != 0:
            err = proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}"
            raise StackError(f"`{' '.join(argv)}` in {service} failed: {err}")
        return proc.stdout

    def logs_tail(self, service: str, n: int = LOG_LINES) -> str:
        return self.compose.logs_tail(service, n)


def _compose(scenario: Scenario, options: StackOptions) -> Compose:
    balancer = str(resolve(scenario, options).balancer)
    directory = stack_dir(scenario, balancer)
    return Compose(locate(), project_name(scenario.name, balancer), directory)


def _handle(compose: Compose, meta: dict[str, Any]) -> StackHandle:
    return StackHandle(compose.project, compose.directory, meta, str(meta["url"]), compose)


def write_files(scenario: Scenario, options: StackOptions) -> dict[str, Any]:
    """Generate the compose project into :func:`stack_dir`; its ``stack.json`` meta."""
    options = resolve(scenario, options)
    directory = stack_dir(scenario, str(options.balancer))
    files = generate_stack(scenario, directory, options)
    files.write(directory)
    return files.meta


# ---------------------------------------------------------------- images
def build_base(tag: str = BASE_TAG, force: bool = False) -> str:
    """The debootstrap base image (built with build-base.sh unless it exists); its tag."""
    docker = locate()
    if not force and image_exists(docker.docker, tag):
        return tag
    proc = run(["sh", str(BUILD_BASE_SCRIPT), tag], BUILD_TIMEOUT, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-LOG_LINES:])
        raise StackError(
            f"building the base image {tag} with {BUILD_BASE_SCRIPT.name} failed "
            f"(needs root, debootstrap and network access to the Debian mirror):\n{tail}"
        )
    return tag


def build(scenario: Scenario, options: StackOptions, base: str = "debootstrap") -> StackOptions:
    """Build the stack's images ``FROM base`` (``debootstrap``: the local base, built if missing).

    Returns the options with the base image used, for :func:`up`.
    """
    image = build_base() if base == "debootstrap" else base
    opts = replace(resolve(scenario, options), base_image=image)
    write_files(scenario, opts)
    compose = _compose(scenario, opts)
    compose.run("build", timeout=BUILD_TIMEOUT)
    return opts


def _images_missing(compose: Compose, options: StackOptions) -> bool:
    """An image is missing, or was built from other app/stack sources than this tree's."""
    images = [f"{options.image_prefix}{name}:{options.image_tag}" for name in IMAGES]
    return bool(stale_images(compose.docker.docker, images, source_digest(options.validation_dir)))


# ---------------------------------------------------------------- containers
@dataclass(frozen=True)
class ContainerState:
    """What ``docker inspect`` says about one service's container."""

    service: str
    id: str
    state: str
    health: str
    cpus: float
    exit_code: int


def _cpu_limit(host: dict[str, Any]) -> float:
    """Cores a container may use: ``cpus`` (NanoCpus), else its CFS quota over its period."""
    nano = int(host.get("NanoCpus") or 0)
    if nano:
        return nano / 1e9
    quota, period = int(host.get("CpuQuota") or 0), int(host.get("CpuPeriod") or 0)
    return quota / period if quota > 0 and period > 0 else 0.0


def parse_inspect(text: str) -> list[ContainerState]:
    """``docker inspect`` JSON → one :class:`ContainerState` per container."""
    out = []
    for c in json.loads(text):
        state = c.get("State") or {}
        health = (state.get("Health") or {}).get("Status", "")
        out.append(
            ContainerState(
                service=(c.get("Config") or {}).get("Labels", {}).get(SERVICE_LABEL, "?"),
                id=str(c.get("Id", "")),
                state=str(state.get("Status", "unknown")),
                health=str(health),
                cpus=_cpu_limit(c.get("HostConfig") or {}),
                exit_code=int(state.get("ExitCode") or 0),
            )
        )
    return out


def containers(compose: Compose) -> dict[str, ContainerState]:
    """The project's containers by service (any state)."""
    ids = compose.container_ids()
    if not ids:
        return {}
    text = run([compose.docker.docker, "inspect", *ids]).stdout
    return {c.service: c for c in parse_inspect(text)}


def _failure(handle: StackHandle, service: str, what: str) -> StackError:
    tail = handle.logs_tail(service, LOG_LINES)
    return StackError(
        f"stack {handle.project}: {service} {what}\n"
        f"last {LOG_LINES} lines of {service}'s log:\n{tail}"
    )


def galera_state(handle: StackHandle, node: str) -> tuple[int, str]:
    """(wsrep_cluster_size, wsrep_local_state_comment) of one Galera node."""
    status = collectors.global_status(
        handle, node, like=("wsrep_cluster_size", "wsrep_local_state_comment")
    )
    return int(status.get("wsrep_cluster_size", "0") or 0), status.get(
        "wsrep_local_state_comment", "?"
    )


def healthz(url: str, client: int, timeout: float = 5.0) -> str | None:
    """``GET /healthz`` through the balancer as client number ``client``; the answering node.

    The client address varies (``X-Forwarded-For``, ``X-Lbsim-Client``) so
    address- and header-hashing policies also spread the probes.
    """
    addr = f"10.{(client >> 16) & 255}.{(client >> 8) & 255}.{client & 255}"
    req = urllib.request.Request(
        url.rstrip("/") + "/healthz",
        headers={"X-Forwarded-For": addr, "X-Lbsim-Client": str(client)},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            if resp.status != 200:
                return None
            # email.message headers match names case-insensitively (HAProxy lowercases them)
            node = resp.headers.get("X-Lbsim-Node")
            return str(node) if node else None
    except (urllib.error.URLError, OSError):
        return None


def _app_direct_ok(handle: StackHandle, node: str) -> bool:
    """php-fpm of ``node`` answers ``/healthz`` itself (for policies that never spread probes)."""
    argv = [
        "sh",
        "-c",
        "SCRIPT_NAME=/index.php SCRIPT_FILENAME=/srv/app/index.php REQUEST_URI=/healthz "
        "REQUEST_METHOD=GET cgi-fcgi -bind -connect 127.0.0.1:9000",
    ]
    try:
        return "ok" in handle.exec(node, argv)
    except StackError:
        return False


class _Readiness:
    """One pass of the health checks; remembers which app nodes answered already.

    A query that does not answer in time is "not ready yet", not an error:
    :func:`wait_ready` decides when waiting is over.
    """

    def __init__(
        self,
        handle: StackHandle,
        deadline: float = math.inf,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.handle = handle
        self.seen: set[str] = set()
        self.client = 0
        self.deadline = deadline
        self.clock = clock

    def pending(self) -> tuple[str, str] | None:
        """``(service, what it is waiting for)``, or None when the stack is ready."""
        h = self.handle
        try:
            states = containers(h.compose)
        except DockerTimeout as exc:
            return (h.services[0], f"cannot be inspected ({exc})")
        for service in h.services:
            c = states.get(service)
            if c is None:
                return (service, "has no container yet")
            if c.state in ("exited", "dead"):
                raise _failure(h, service, f"is {c.state} (exit code {c.exit_code})")
            if c.state != "running":
                return (service, f"is {c.state}")
            if c.health and c.health != "healthy":
                return (service, f"is running but {c.health}")
        if h.meta.get("db_engine") == "galera":
            size = len(h.db_nodes)
            for node in h.db_nodes:
                try:
                    n, comment = galera_state(h, node)
                except StackError as exc:  # not accepting connections yet, or no answer
                    return (node, f"does not answer SHOW STATUS ({exc})")
                if n != size or comment != "Synced":
                    return (node, f"is {comment} in a cluster of {n} (want Synced, {size})")
        return self._balancer()

    def _balancer(self) -> tuple[str, str] | None:
        h = self.handle
        nodes = h.app_nodes
        for _ in range(8 * len(nodes)):
            left = self.deadline - self.clock()
            if left <= 0:
                break
            self.client += 1
            node = healthz(h.url, self.client, timeout=min(5.0, max(0.5, left)))
            if node is not None:
                self.seen.add(node)
            if self.seen >= set(nodes):
                return None
        if not self.seen:
            return ("lb", f"does not answer GET {h.url}healthz with 200")
        missing = [n for n in nodes if n not in self.seen]
        if h.meta.get("policy") == "first" and all(_app_direct_ok(h, n) for n in missing):
            # `first` fills one server before the next: sequential probes never spread
            return None
        return (missing[0], f"is not reached through the balancer (answered: {sorted(self.seen)})")


def wait_ready(
    handle: StackHandle,
    timeout: float = 300.0,
    poll: float = 1.0,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Wait until the stack serves (see the module doc); seconds waited.

    Bounded in time and in count: no pass of the checks starts after
    ``timeout`` s (each docker query in a pass has its own timeout and the
    balancer probes stop at the deadline), and there are at most
    ``timeout / poll + 2`` passes. Then a :class:`StackError` names the service
    still waited for, what it waits for, and ends with the last lines of its log.
    """
    start = clock()
    deadline = start + timeout
    check = _Readiness(handle, deadline, clock)
    passes = math.ceil(timeout / max(poll, 0.01)) + 2
    waiting: tuple[str, str] | None = (handle.services[0], "was not checked")
    for _ in range(passes):
        waiting = check.pending()
        if waiting is None:
            return clock() - start
        left = deadline - clock()
        if left <= 0:
            break
        sleep(min(poll, left))
    assert waiting is not None
    service, what = waiting
    raise _failure(handle, service, f"{what} after {timeout:g} s")


# ---------------------------------------------------------------- lifecycle
def _require_free_port(port: int) -> None:
    """The balancer's port on loopback must be free (another stack may hold it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # connections of an earlier stack in TIME_WAIT do not make the port busy
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise StackError(
                f"port 127.0.0.1:{port} is in use, maybe by another scenario's stack "
                "(`docker ps`; stop it with `lbsim stack down --scenario FILE`) — "
                "or publish this stack elsewhere with --port"
            ) from None


def up(
    scenario: Scenario, options: StackOptions | None = None, timeout: float = 300.0
) -> StackHandle:
    """Generate, (build missing or stale images,) start and wait for the stack; a handle to it."""
    opts = resolve(scenario, options or default_options())
    meta = write_files(scenario, opts)
    compose = _compose(scenario, opts)
    if _images_missing(compose, opts):
        compose.run("build", timeout=BUILD_TIMEOUT)
    handle = _handle(compose, meta)
    # a fresh stack every time: recreating a running Galera cluster in place leaves
    # members with their peers' old addresses (a joiner then times out on gcomm)
    compose.run("down", "-v", "--remove-orphans", timeout=180)
    _require_free_port(opts.port)
    # compose v1 waits for healthy dependencies inside `up`: give it the whole budget
    argv = [*compose.docker.compose, "-p", compose.project, "up", "-d", "--force-recreate"]
    try:
        proc = run([*argv, "--remove-orphans"], timeout + 60, cwd=compose.directory, check=False)
    except DockerTimeout as exc:
        raise _up_failure(handle, f"{exc.output}\n{exc}", timed_out=True) from None
    if proc.returncode != 0:
        raise _up_failure(handle, proc.stderr)
    wait_ready(handle, timeout)
    try:
        slow_node.apply_delays(handle, scenario)  # Galera nodes' latency: tc netem
    except ReplayUnsupported:
        compose.run("down", "-v", "--remove-orphans", timeout=180)
        raise
    return handle


def _up_failure(handle: StackHandle, stderr: str, timed_out: bool = False) -> StackError:
    """Why ``compose up`` failed: the first dead or unhealthy service and its log;
    when compose itself did not finish (``timed_out``), the first service that
    is not running and healthy (the one it waited for) and its log."""
    try:
        states = containers(handle.compose)
    except DockerTimeout:
        states = {}
    for service in handle.services:
        c = states.get(service)
        if c is not None and (c.state in ("exited", "dead") or c.health == "unhealthy"):
            what = f"is {c.state}" + (f" and {c.health}" if c.health else "")
            return _failure(handle, service, f"{what} (exit code {c.exit_code}) after compose up")
    tail = "\n".join(stderr.strip().splitlines()[-15:])
    if timed_out:
        for service in handle.services:
            c = states.get(service)
            if c is None or c.state != "running" or c.health not in ("", "healthy"):
                what = "has no container" if c is None else f"is {c.state} {c.health}".strip()
                return _failure(handle, service, f"{what} when compose up was killed:\n{tail}\n")
    return StackError(f"stack {handle.project}: compose up failed:\n{tail}")


def down(scenario: Scenario, options: StackOptions | None = None, timeout: float = 180.0) -> None:
    """Stop and remove the stack's containers, networks and volumes."""
    opts = resolve(scenario, options)
    write_files(scenario, opts)
    _compose(scenario, opts).run("down", "-v", "--remove-orphans", timeout=timeout)


def attach(scenario: Scenario, options: StackOptions | None = None) -> StackHandle:
    """A handle to the running stack of ``scenario``; :class:`StackError` if it is not up."""
    opts = resolve(scenario, options)
    compose = _compose(scenario, opts)
    meta_file = compose.directory / "stack.json"
    running = compose.container_ids(running=True)
    if not running or not meta_file.is_file():
        raise StackError(
            f"the stack of scenario {scenario.name!r} ({opts.balancer}) is not up "
            f"(compose project {compose.project}); start it with `lbsim stack up`"
        )
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    return _handle(compose, meta)


@dataclass(frozen=True)
class ServiceStatus:
    """One row of ``lbsim stack status``."""

    service: str
    state: str
    health: str
    cpus: float
    extra: str


def status(scenario: Scenario, options: StackOptions | None = None) -> list[ServiceStatus]:
    """Per service of the scenario's stack: state, health, cpu limit, and wsrep state for Galera."""
    opts = resolve(scenario, options)
    files = generate_stack(scenario, stack_dir(scenario, str(opts.balancer)), opts)
    meta = {
        **files.meta,
        "services": list(yaml.safe_load(files.files["docker-compose.yml"])["services"]),
    }
    compose = _compose(scenario, opts)
    handle = _handle(compose, meta)
    states = containers(compose)
    rows = []
    for service in meta["services"]:
        c = states.get(service)
        if c is None:
            rows.append(ServiceStatus(service, "absent", "", 0.0, ""))
            continue
        extra = ""
        if c.state == "running" and service in handle.db_nodes and meta["db_engine"] == "galera":
            try:
                n, comment = galera_state(handle, service)
                extra = f"{comment}, cluster size {n}"
            except StackError as exc:
                extra = f"wsrep unknown: {exc}"
        rows.append(ServiceStatus(service, c.state, c.health or "-", c.cpus, extra))
    return rows
