"""Live-stack measurements: CPU seconds, php-fpm status, MariaDB/Galera and HAProxy counters.

Each source has a pure parser (text in, numbers out; unit-tested on captured
real output) and a thin collector that fetches the text from the stack.
Units follow the simulator: seconds, counts, fractions of time.

A collector takes any :class:`Handle`: the built-in stack
(:class:`lbsim.validation.lifecycle.StackHandle`) or the user's
(:class:`lbsim.target.containers.TargetHandle`), which runs SQL with the
target's credentials (its ``mysql`` method) and reads php-fpm's status where
the target says (its ``fpm_status_argv``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import resource
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from lbsim.validation.docker import QUICK, StackError

CGROUP_ROOT = Path("/sys/fs/cgroup")


class Handle(Protocol):
    """What the collectors use of a running stack."""

    @property
    def project(self) -> str: ...
    @property
    def meta(self) -> dict[str, Any]: ...
    @property
    def services(self) -> list[str]: ...
    def container_id(self, service: str) -> str: ...
    def exec(self, service: str, argv: list[str], timeout: float = QUICK) -> str: ...


# ---------------------------------------------------------------- CPU
def parse_cpuacct_usage(text: str) -> float:
    """cgroup v1 ``cpuacct.usage`` (nanoseconds) → seconds."""
    return int(text.strip()) / 1e9


def parse_cpu_stat(text: str) -> float:
    """cgroup v2 ``cpu.stat`` (``usage_usec``) → seconds."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    raise ValueError("cpu.stat has no usage_usec line")


def parse_cgroup_cpu(path: Path | str, text: str) -> float:
    """CPU seconds from either cgroup file, by its name."""
    return parse_cpu_stat(text) if str(path).endswith("cpu.stat") else parse_cpuacct_usage(text)


def cgroup_dirs(container_id: str, root: Path = CGROUP_ROOT) -> tuple[list[Path], list[Path]]:
    """Where the host may keep a container's cgroup: the cgroup v1 directories
    (one per way the CPU controllers are mounted), then the v2 ones."""
    v1 = [
        root / mount / "docker" / container_id
        for mount in ("cpu,cpuacct", "cpuacct", "cpuacct,cpu", "cpu")
    ]
    v2 = [root / "system.slice" / f"docker-{container_id}.scope", root / "docker" / container_id]
    return v1, v2


def cgroup_cpu_paths(container_id: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """Where the host keeps a container's cumulative CPU time (cgroup v1 layouts, then v2)."""
    v1, v2 = cgroup_dirs(container_id, root)
    return [d / "cpuacct.usage" for d in v1] + [d / "cpu.stat" for d in v2]


def cgroup_task_paths(container_id: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """Where the host lists a container's threads (cgroup v1 layouts, then v2)."""
    v1, v2 = cgroup_dirs(container_id, root)
    return [d / "tasks" for d in v1] + [d / "cgroup.threads" for d in v2]


#: inside a container: its own cgroup's CPU time (v2, then v1)
IN_CONTAINER_CPU = (
    "cat /sys/fs/cgroup/cpu.stat 2>/dev/null "
    "|| cat /sys/fs/cgroup/cpuacct/cpuacct.usage 2>/dev/null "
    "|| cat /sys/fs/cgroup/cpu,cpuacct/cpuacct.usage"
)


def parse_in_container_cpu(text: str) -> float:
    """The output of :data:`IN_CONTAINER_CPU`: a ``cpu.stat`` or a bare ``cpuacct.usage``."""
    return parse_cpu_stat(text) if "usage_usec" in text else parse_cpuacct_usage(text)


class ContainerCpu:
    """Cumulative CPU seconds of every service's container.

    The host's cgroup file of each container is found once; a snapshot then
    reads one small file per service. Where the host path is not visible (a
    rootless or remote daemon), it falls back to ``docker exec ... cat``.
    """

    def __init__(self, handle: Handle, services: Iterable[str] | None = None):
        self.handle = handle
        self.paths: dict[str, Path | None] = {}
        self.ids: dict[str, str] = {}  # service → its container's full id
        for service in services if services is not None else handle.services:
            cid = self.ids[service] = handle.container_id(service)
            self.paths[service] = next((p for p in cgroup_cpu_paths(cid) if p.is_file()), None)

    def read(self, service: str) -> float:
        path = self.paths[service]
        if path is not None:
            try:
                text = path.read_text(encoding="ascii")
            except FileNotFoundError:
                raise StackError(
                    f"service {service!r}: its container {self.ids[service][:12]} is gone "
                    f"({path} vanished) — was it stopped or removed while lbsim measured it?"
                ) from None
            return parse_cgroup_cpu(path, text)
        return parse_in_container_cpu(self.handle.exec(service, ["sh", "-c", IN_CONTAINER_CPU]))

    def snapshot(self) -> dict[str, float]:
        """Service → CPU seconds used since its container started."""
        return {service: self.read(service) for service in self.paths}


def parse_proc_stat(text: str, ticks_per_second: float) -> float:
    """Busy CPU seconds of the whole machine from ``/proc/stat`` (all but idle and iowait).

    Fields: user nice system idle iowait irq softirq steal guest guest_nice;
    guest time is already counted in user, so it is not added again.
    """
    values = _aggregate_cpu(text)
    return (sum(values[:3]) + sum(values[5:8])) / ticks_per_second


def _aggregate_cpu(text: str) -> list[int]:
    """The tick counts of ``/proc/stat``'s aggregate ``cpu`` line."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            return [int(v) for v in fields[1:]]
    raise ValueError("/proc/stat has no aggregate cpu line")


def host_cpu_seconds(path: Path = Path("/proc/stat")) -> float:
    """Busy CPU seconds of the machine since boot (every core summed)."""
    return parse_proc_stat(path.read_text(encoding="ascii"), os.sysconf("SC_CLK_TCK"))


def parse_proc_steal(text: str, ticks_per_second: float) -> float:
    """Steal seconds of the whole machine from ``/proc/stat``: the time a virtual
    machine's cores were ready to run but the hypervisor ran something else (part
    of :func:`parse_proc_stat`'s busy time; 0 on bare metal)."""
    values = _aggregate_cpu(text)
    return values[7] / ticks_per_second if len(values) > 7 else 0.0


def host_steal_seconds(path: Path = Path("/proc/stat")) -> float:
    """Steal seconds of the machine since boot (every core summed)."""
    return parse_proc_steal(path.read_text(encoding="ascii"), os.sysconf("SC_CLK_TCK"))


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (the replayer's own cost)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        total += r.ru_utime + r.ru_stime
    return total


# ---------------------------------------------------------------- php-fpm
FPM_STATUS = (
    "SCRIPT_NAME=/status SCRIPT_FILENAME=/status REQUEST_METHOD=GET QUERY_STRING=json "
    "cgi-fcgi -bind -connect 127.0.0.1:9000"
)


@dataclass(frozen=True)
class FpmStatus:
    """php-fpm's pool status (``pm.status_path`` with ``?json``)."""

    active_processes: int
    idle_processes: int
    total_processes: int
    listen_queue: int
    max_listen_queue: int
    listen_queue_len: int
    accepted_conn: int
    max_children_reached: int
    slow_requests: int
    max_active_processes: int
    start_since: int


def parse_fpm_status(cgi_response: str) -> FpmStatus:
    """A CGI response (headers, blank line, JSON body) from php-fpm's status page."""
    text = cgi_response.replace("\r\n", "\n")
    _, sep, body = text.partition("\n\n")
    if not sep:
        body = text
    try:
        data: dict[str, Any] = json.loads(body)
    except json.JSONDecodeError:
        raise StackError(f"php-fpm status is not JSON: {cgi_response[:200]!r}") from None
    return FpmStatus(**{f: int(data[f.replace("_", " ")]) for f in FpmStatus.__dataclass_fields__})


def fpm_status(handle: Handle, node: str) -> FpmStatus:
    """The pool status of one app node (where the handle says it is, else the
    built-in stack's ``/status`` on 127.0.0.1:9000)."""
    own = getattr(handle, "fpm_status_argv", None)
    argv = own(node) if callable(own) else ["sh", "-c", FPM_STATUS]
    return parse_fpm_status(handle.exec(node, list(argv)))


# ---------------------------------------------------------------- MariaDB / Galera
def _mysql(handle: Handle, node: str, sql: str) -> str:
    """``sql``'s rows (``-N -B``: tab-separated, no header). A handle with its
    own ``mysql(node, sql)`` (credentials, another client) runs it; the
    built-in stack's servers take the client without credentials."""
    own = getattr(handle, "mysql", None)
    if callable(own):
        return str(own(node, sql))
    return handle.exec(node, ["mariadb", "-N", "-B", "-e", sql])


def parse_global_status(text: str) -> dict[str, str]:
    """``SHOW GLOBAL STATUS`` in ``mysql -N -B`` form (name TAB value per line)."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition("\t")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def global_status(handle: Handle, node: str, like: Iterable[str] | None = None) -> dict[str, str]:
    """The node's ``SHOW GLOBAL STATUS`` (only the ``like`` names when given), names lowercased."""
    sql = "SHOW GLOBAL STATUS"
    if like is not None:
        names = ",".join(f"'{n}'" for n in like)
        sql += f" WHERE Variable_name IN ({names})"
    return parse_global_status(_mysql(handle, node, sql))


def flush_status(handle: Handle, node: str) -> None:
    """``FLUSH STATUS``: resets session counters and Galera's averages (queue, paused fraction)."""
    _mysql(handle, node, "FLUSH STATUS")


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def status_delta(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, float]:
    """``after - before`` for every numeric status value in both (meaningful for counters only)."""
    out = {}
    for name, value in after.items():
        a, b = _number(value), _number(before.get(name, ""))
        if a is not None and b is not None:
            out[name] = a - b
    return out


#: cumulative wsrep counters the model counts under the same name
GALERA_COUNTERS = (
    "wsrep_replicated",
    "wsrep_received",
    "wsrep_local_commits",
    "wsrep_local_cert_failures",
    "wsrep_local_bf_aborts",
    "wsrep_local_replays",
    "wsrep_flow_control_sent",
    "wsrep_flow_control_recv",
)
#: averages Galera keeps since the last FLUSH STATUS, in the model's units
GALERA_AVERAGES = (
    "wsrep_local_recv_queue_avg",
    "wsrep_local_send_queue_avg",
    "wsrep_cert_deps_distance",
    "wsrep_cert_interval",
)


def galera_counters(
    before: Mapping[str, str], after: Mapping[str, str], elapsed: float
) -> dict[str, float]:
    """One node's ``galera.nodes.<node>.*`` values as the simulator reports them.

    ``before``/``after``: global status at the start and end of the measured
    window (``before`` taken right after :func:`flush_status`, so the averages
    cover the window). Counters are window deltas; ``wsrep_flow_control_paused``
    is the paused fraction of the window from the cumulative
    ``wsrep_flow_control_paused_ns``; ``wsrep_last_committed`` is the
    cluster's seqno at the end. The model's ``recv_queue_time_avg`` (a
    time-weighted mean) has no real counter and is not produced.
    """
    delta = status_delta(before, after)
    out = {name: delta[name] for name in GALERA_COUNTERS if name in delta}
    for name in GALERA_AVERAGES:
        v = _number(after.get(name, ""))
        if v is not None:
            out[name] = v
    paused_ns = delta.get("wsrep_flow_control_paused_ns")
    if paused_ns is not None and elapsed > 0:
        out["wsrep_flow_control_paused"] = min(1.0, paused_ns / 1e9 / elapsed)
    last = _number(after.get("wsrep_last_committed", ""))
    if last is not None:
        out["wsrep_last_committed"] = last
    return out


# ---------------------------------------------------------------- HAProxy
@dataclass(frozen=True)
class HaproxyRow:
    """One proxy/server line of HAProxy's stats CSV (numbers as HAProxy counts them)."""

    proxy: str
    server: str
    status: str
    scur: int
    smax: int
    stot: int
    qcur: int
    qmax: int
    hrsp_2xx: int
    hrsp_5xx: int
    econ: int
    eresp: int
    wretr: int
    wredis: int
    weight: int

    @property
    def is_server(self) -> bool:
        return self.server not in ("FRONTEND", "BACKEND")


_HAPROXY_INTS = tuple(
    f for f in HaproxyRow.__dataclass_fields__ if f not in ("proxy", "server", "status")
)


def parse_haproxy_csv(text: str) -> list[HaproxyRow]:
    """HAProxy ``/stats;csv`` → rows (empty cells count 0)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        raise StackError(f"not HAProxy stats CSV: {text[:80]!r}")
    header = lines[0][2:]
    reader = csv.DictReader(io.StringIO("\n".join([header, *lines[1:]])))
    rows = []
    for rec in reader:
        if not rec.get("pxname"):
            continue
        ints = {f: int(rec.get(f) or 0) for f in _HAPROXY_INTS}
        rows.append(
            HaproxyRow(proxy=rec["pxname"], server=rec["svname"], status=rec["status"], **ints)
        )
    return rows


def haproxy_servers(rows: Iterable[HaproxyRow], proxy: str = "php") -> dict[str, HaproxyRow]:
    """The server rows of one backend (``php`` for the app balancer), by server name."""
    return {r.server: r for r in rows if r.proxy == proxy and r.is_server}


def haproxy_stats(handle: Handle, timeout: float = 5.0) -> list[HaproxyRow]:
    """The app balancer's stats (the stack must use ``--balancer haproxy``)."""
    url = handle.meta.get("haproxy_stats")
    if not url:
        raise StackError(f"stack {handle.project} uses {handle.meta.get('balancer')}, not HAProxy")
    try:
        with urllib.request.urlopen(str(url), timeout=timeout) as resp:
            return parse_haproxy_csv(resp.read().decode("utf-8"))
    except OSError as exc:
        raise StackError(f"cannot read HAProxy stats at {url}: {exc}") from None
