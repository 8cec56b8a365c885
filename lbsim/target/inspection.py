"""What the user's containers say about their shape: CPU limits, PHP workers, connections, wsrep.

Pure parsers (text in, values out; unit-tested on captured output) and the
commands that fetch the text. Nothing here changes a container: the commands
only read (``docker inspect``, ``php-fpm -tt``, ``cat`` of pool files,
``SHOW VARIABLES``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: ``php-fpm -tt`` of whichever php-fpm the image has (php-fpm, php-fpm8.2, ...):
#: it tests the configuration and prints it (as NOTICE lines), starting nothing
FPM_DUMP = (
    "for b in php-fpm $(ls /usr/sbin/php-fpm* /usr/local/sbin/php-fpm* 2>/dev/null); do "
    'if command -v "$b" >/dev/null 2>&1; then echo "# $b"; "$b" -tt 2>&1; exit $?; fi; '
    "done; exit 127"
)
#: the pool files of the usual layouts (the official php image, Debian, RHEL)
POOL_FILES = (
    "cat /usr/local/etc/php-fpm.d/*.conf /etc/php/*/fpm/pool.d/*.conf "
    "/etc/php-fpm.d/*.conf 2>/dev/null"
)


@dataclass(frozen=True)
class AppReading:
    """One app container: its CPU limit and its php-fpm pool size."""

    service: str
    #: cores it may use (None: no limit, the machine's cores)
    cores: float | None
    cores_source: str
    #: ``pm.max_children`` (None: not read; ``workers_source`` says why)
    workers: int | None
    workers_source: str
    #: the CFS period (s) of its limit when a quota sets it (:func:`cfs_period`)
    cpu_period: float | None = None


@dataclass(frozen=True)
class DbReading:
    """One database container: its CPU limit, connections and Galera state."""

    service: str
    cores: float | None
    cores_source: str
    max_connections: int | None
    wsrep_on: bool
    cluster_size: int | None
    state: str  # wsrep_local_state_comment ('' without wsrep)
    #: the CFS period (s) of its limit when a quota sets it (:func:`cfs_period`)
    cpu_period: float | None = None


# ---------------------------------------------------------------- CPU
def parse_cpuset(text: str) -> int:
    """Cores in a cpuset list (``0-3,6`` → 5); ValueError if it is not one."""
    total = 0
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        a, b = int(lo), int(hi) if sep else int(lo)
        if b < a:
            raise ValueError(f"not a cpuset range: {part!r}")
        total += b - a + 1
    return total


def cpu_limit(host_config: Mapping[str, Any]) -> tuple[float | None, str]:
    """Cores a container may use from its ``HostConfig``, and where that came from.

    ``--cpus`` (NanoCpus), else a CFS quota over its period; a cpuset
    (``--cpuset-cpus``) caps either. None: no limit (the machine's cores).
    """
    limits: list[tuple[float, str]] = []
    nano = int(host_config.get("NanoCpus") or 0)
    quota, period = int(host_config.get("CpuQuota") or 0), int(host_config.get("CpuPeriod") or 0)
    if nano > 0:
        limits.append((nano / 1e9, "cpus (NanoCpus)"))
    elif quota > 0:
        period = period or 100_000  # the kernel's default CFS period
        limits.append((quota / period, f"cpu quota {quota}/{period}"))
    cpuset = str(host_config.get("CpusetCpus") or "").strip()
    if cpuset:
        with contextlib.suppress(ValueError):
            limits.append((float(parse_cpuset(cpuset)), f"cpuset {cpuset}"))
    if not limits:
        return None, "no CPU limit"
    return min(limits)


#: the kernel's CFS period when a container's quota names none (Docker ``--cpus``)
DEFAULT_CFS_PERIOD = 0.1


def cfs_period(host_config: Mapping[str, Any]) -> float | None:
    """The CFS bandwidth period (s) of a container whose CPU limit is a quota
    (``--cpus``: the kernel's 100 ms; ``--cpu-quota``: its ``--cpu-period``);
    None without a quota, or where a cpuset is the tighter limit (its cores
    are whole cores, not a share of each period)."""
    cores, source = cpu_limit(host_config)
    if cores is None or source.startswith("cpuset"):
        return None
    period = int(host_config.get("CpuPeriod") or 0)
    if int(host_config.get("NanoCpus") or 0) > 0 or period <= 0:
        return DEFAULT_CFS_PERIOD
    return period / 1e6


# ---------------------------------------------------------------- php-fpm
_NOTICE = re.compile(r"^(?:\[[^\]]*\]\s*)?NOTICE:\s?(.*)$")


def parse_fpm_dump(text: str) -> dict[str, dict[str, str]]:
    """``php-fpm -tt`` output → pool → key → value (``global`` for the global section)."""
    pools: dict[str, dict[str, str]] = {}
    section: dict[str, str] | None = None
    for raw in text.splitlines():
        m = _NOTICE.match(raw.strip())
        if not m:
            continue
        line = m.group(1).strip()
        head = re.fullmatch(r"\[([^\]]+)\]", line)
        if head:
            section = pools.setdefault(head.group(1), {})
            continue
        key, sep, value = line.partition(" = ")
        if sep and section is not None:
            section[key.strip()] = value.strip()
    return pools


def parse_pool_files(text: str) -> dict[str, dict[str, str]]:
    """php-fpm pool files (ini, ``;`` comments) concatenated → pool → key → value;
    a later file's value wins, as php-fpm reads its includes in order."""
    pools: dict[str, dict[str, str]] = {}
    section: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith((";", "#")):
            continue
        head = re.fullmatch(r"\[([^\]]+)\]", line)
        if head:
            section = pools.setdefault(head.group(1), {})
            continue
        key, sep, value = line.partition("=")
        if sep and section is not None:
            value = value.split(";", 1)[0].strip().strip('"')
            section[key.strip()] = value
    return pools


def _listens_on(listen: str, fpm_listen: str) -> bool:
    """A pool's ``listen`` is the address lbsim was told php-fpm serves on."""
    if fpm_listen.startswith("/"):
        return listen == fpm_listen
    port = fpm_listen.rsplit(":", 1)[-1]
    return listen == port or listen.endswith(f":{port}")


def pool_workers(pools: Mapping[str, Mapping[str, str]], fpm_listen: str) -> tuple[int | None, str]:
    """``pm.max_children`` of the pool on ``fpm_listen`` (the sum over the
    pools when none or several listen there), and a word on where it came from."""
    sizes: dict[str, int] = {}
    for name, keys in pools.items():
        if name == "global" or "pm.max_children" not in keys:
            continue
        try:
            sizes[name] = int(keys["pm.max_children"])
        except ValueError:
            continue
    if not sizes:
        return None, "no pool sets pm.max_children"
    serving = [p for p in sizes if _listens_on(pools[p].get("listen", ""), fpm_listen)]
    if len(serving) == 1:
        return sizes[serving[0]], f"pool {serving[0]}"
    if len(sizes) == 1:
        (name, n), *_ = sizes.items()
        return n, f"pool {name}"
    shown = ", ".join(f"{p} ({n})" for p, n in sizes.items())
    return sum(sizes.values()), f"the sum over pools {shown}"


# ---------------------------------------------------------------- MariaDB
def parse_rows(text: str) -> dict[str, str]:
    """``name TAB value`` rows (``mariadb -N -B``), names lower-cased."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition("\t")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


DB_VARIABLES = "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('max_connections', 'wsrep_on')"
DB_STATUS = (
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size', 'wsrep_local_state_comment')"
)


def db_reading(
    service: str,
    cores: tuple[float | None, str],
    variables: str,
    status: str,
    cpu_period: float | None = None,
) -> DbReading:
    """A database container's reading from its variables and status rows."""
    var, st = parse_rows(variables), parse_rows(status)
    conns = var.get("max_connections", "")
    size = st.get("wsrep_cluster_size", "")
    return DbReading(
        service=service,
        cores=cores[0],
        cores_source=cores[1],
        max_connections=int(conns) if conns.isdigit() else None,
        wsrep_on=var.get("wsrep_on", "OFF").upper() in ("ON", "1"),
        cluster_size=int(size) if size.isdigit() else None,
        state=st.get("wsrep_local_state_comment", ""),
        cpu_period=cpu_period,
    )


def fpm_reading_from(
    dump: str | None, files: str | None, fpm_listen: str
) -> tuple[int | None, str]:
    """``pm.max_children`` from ``php-fpm -tt`` output, else from the pool
    files; None with the reason when neither says."""
    if dump is not None:
        binary = dump.splitlines()[0].removeprefix("# ").strip() if dump.startswith("# ") else ""
        workers, where = pool_workers(parse_fpm_dump(dump), fpm_listen)
        if workers is not None:
            return workers, f"{binary or 'php-fpm'} -tt, {where}"
    if files:
        workers, where = pool_workers(parse_pool_files(files), fpm_listen)
        if workers is not None:
            return workers, f"pool files, {where}"
    return None, (
        "pm.max_children not read: no php-fpm binary answered -tt and no pool file "
        "(/usr/local/etc/php-fpm.d, /etc/php/*/fpm/pool.d, /etc/php-fpm.d) sets it"
    )


def _under_one_core(service: str, cores: float, period: float | None) -> str:
    if period is not None:
        return (
            f"{service}: a CPU limit under one core ({cores:g}, a CFS quota of "
            f"{cores * period * 1e3:g} ms per {period * 1e3:g} ms): modelled as the kernel "
            "runs it (cpu_period): full speed until the period's quota is spent"
        )
    return (
        f"{service}: a CPU limit under one core ({cores:g}): the model runs its requests "
        f"at {cores:g}× a core's speed"
    )


def shape_notes(
    engine: str | None, app: Sequence[AppReading], db: Sequence[DbReading], host_cores: float
) -> list[str]:
    """What the readings leave to the scenario or contradict in the target, one line each."""
    notes = []
    for a in app:
        if a.cores is None:
            notes.append(f"{a.service}: no CPU limit (it may use all {host_cores:g} cores)")
        elif a.cores < 1.0:
            notes.append(_under_one_core(a.service, a.cores, a.cpu_period))
        if a.workers is None:
            notes.append(f"{a.service}: {a.workers_source}")
    for d in db:
        if d.cores is None:
            notes.append(f"{d.service}: no CPU limit (it may use all {host_cores:g} cores)")
        elif d.cores < 1.0:
            notes.append(_under_one_core(d.service, d.cores, d.cpu_period))
        if d.max_connections is None:
            notes.append(f"{d.service}: max_connections not read")
        if engine == "galera" and not d.wsrep_on:
            notes.append(f"{d.service}: database.engine is galera but wsrep_on is OFF")
        if engine == "mysql" and d.wsrep_on:
            notes.append(
                f"{d.service}: wsrep_on is ON (a Galera node) but database.engine is mysql"
            )
        if engine == "galera" and d.wsrep_on and d.cluster_size not in (None, len(db)):
            notes.append(
                f"{d.service}: the Galera cluster has {d.cluster_size} nodes, "
                f"the target names {len(db)}"
            )
        if engine == "galera" and d.wsrep_on and d.state and d.state != "Synced":
            notes.append(f"{d.service}: Galera node is {d.state}, not Synced")
    return notes
