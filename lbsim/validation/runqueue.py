"""How long the stack's threads waited for a core, from the kernel's scheduler statistics.

``/proc/<tid>/schedstat`` holds three counters per thread since it started:
nanoseconds on a CPU, nanoseconds runnable but waiting on a run queue, and
the number of times it was given a CPU (timeslices). Summed over the threads
of a container (its cgroup's ``tasks``), the published port's
``docker-proxy`` processes and the load generator itself, the difference
between two snapshots says, per group, how often its threads ran in the
window (``slices``), how long each waited for a core before it ran
(``wait / slices``) and — divided by the requests answered — how much
waiting for a core one request cost in that group.

On a shared 2-core host every hop of a request (the load generator's send
and receive, the port proxy, nginx, php-fpm, the database proxy, MariaDB's
connection thread) is a thread woken on a busy machine: the model's
processor sharing lets a short burst start at once, the kernel's scheduler
makes it wait for the running thread's slice. These counters measure that
wait per group and level instead of inferring it from what is left over.

A thread that exits inside the window takes its counts with it (a
connection thread of MariaDB past its thread cache); one that starts inside
it counts in full. Where the counters cannot be read (no schedstat, a remote
daemon) a group is left out; an empty result means nothing was readable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lbsim.validation.collectors import CGROUP_ROOT, cgroup_task_paths

PROC = Path("/proc")

#: the groups that are not containers
PORT_PROXY = "docker-proxy"
LOAD_GENERATOR = "load generator"


@dataclass(frozen=True)
class Slices:
    """One thread's (or a group's) scheduler counters: seconds on a CPU,
    seconds runnable and waiting for one, and the times it was given one."""

    run: float = 0.0
    wait: float = 0.0
    slices: int = 0

    def __add__(self, other: Slices) -> Slices:
        return Slices(self.run + other.run, self.wait + other.wait, self.slices + other.slices)

    def __sub__(self, other: Slices) -> Slices:
        return Slices(self.run - other.run, self.wait - other.wait, self.slices - other.slices)


def parse_schedstat(text: str) -> Slices:
    """``/proc/<tid>/schedstat`` (``run_ns wait_ns slices``) → :class:`Slices`."""
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"schedstat has {len(fields)} fields, expected 3: {text!r}")
    run, wait, slices = (int(f) for f in fields[:3])
    return Slices(run / 1e9, wait / 1e9, slices)


def parse_tasks(text: str) -> list[int]:
    """A cgroup's ``tasks`` / ``cgroup.threads``: one thread id a line."""
    return [int(line) for line in text.split() if line.strip()]


def threads_named(comm: str, proc: Path = PROC) -> list[int]:
    """The thread ids of every process whose ``comm`` is ``comm``."""
    tids: list[int] = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text(encoding="ascii").strip() != comm:
                continue
            tids.extend(int(t.name) for t in (entry / "task").iterdir() if t.name.isdigit())
        except OSError:  # the process ended while we looked
            continue
    return tids


def own_threads(proc: Path = PROC) -> list[int]:
    """This process's thread ids."""
    return [int(t.name) for t in (proc / str(os.getpid()) / "task").iterdir() if t.name.isdigit()]


def read_threads(tids: Iterable[int], proc: Path = PROC) -> dict[int, Slices]:
    """Each readable thread's counters (threads that ended are left out)."""
    out: dict[int, Slices] = {}
    for tid in tids:
        try:
            out[tid] = parse_schedstat((proc / str(tid) / "schedstat").read_text(encoding="ascii"))
        except (OSError, ValueError):
            continue
    return out


def group_delta(before: Mapping[int, Slices], after: Mapping[int, Slices]) -> Slices:
    """A group's counters over the window: each thread alive at the end less
    its start (a thread started inside the window counts in full; one whose
    counters went backwards is a reused id and counts from zero)."""
    total = Slices()
    for tid, end in after.items():
        start = before.get(tid)
        d = end if start is None else end - start
        if d.run < 0 or d.wait < 0 or d.slices < 0:
            d = end
        total = total + d
    return total


def summarise(deltas: Mapping[str, Slices], requests: int) -> dict[str, dict[str, float]]:
    """Per group: ``wait_per_request`` and ``run_per_request`` (s),
    ``slices_per_request``, ``wait_per_slice`` (s); groups that never ran
    are left out, and nothing is per request without a request."""
    out: dict[str, dict[str, float]] = {}
    if requests <= 0:
        return out
    for group, d in deltas.items():
        if d.slices <= 0:
            continue
        out[group] = {
            "wait_per_request": d.wait / requests,
            "run_per_request": d.run / requests,
            "slices_per_request": d.slices / requests,
            "wait_per_slice": d.wait / d.slices,
        }
    return out


class RunQueue:
    """Snapshots of the scheduler counters of the stack's containers, the
    port proxies and this process.

    The containers' thread lists are found once and re-read at each
    snapshot (php-fpm and MariaDB start threads); ``available`` is False
    where the host keeps no per-thread schedstat.
    """

    def __init__(
        self, containers: Mapping[str, str], proc: Path = PROC, root: Path = CGROUP_ROOT
    ):  # fmt: skip
        """``containers``: service → its container's full id."""
        self.proc = proc
        self.tasks: dict[str, Path] = {}
        for service, cid in containers.items():
            path = next((p for p in cgroup_task_paths(cid, root) if p.is_file()), None)
            if path is not None:
                self.tasks[service] = path
        self.available = (proc / "self" / "schedstat").is_file() and bool(self.tasks)

    def _threads(self) -> dict[str, list[int]]:
        groups: dict[str, list[int]] = {}
        for service, path in self.tasks.items():
            try:
                groups[service] = parse_tasks(path.read_text(encoding="ascii"))
            except OSError:  # the container went away
                continue
        groups[PORT_PROXY] = threads_named(PORT_PROXY, self.proc)
        groups[LOAD_GENERATOR] = own_threads(self.proc)
        return groups

    def snapshot(self) -> dict[str, dict[int, Slices]]:
        """Group → thread id → counters; empty where nothing is readable."""
        if not self.available:
            return {}
        return {g: read_threads(tids, self.proc) for g, tids in self._threads().items()}


def window_deltas(
    before: Mapping[str, Mapping[int, Slices]], after: Mapping[str, Mapping[int, Slices]]
) -> dict[str, Slices]:
    """Each group's counters between two snapshots (groups in both)."""
    return {g: group_delta(before[g], after[g]) for g in after if g in before}


def level_runqueue(replays: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """The mean over a level's replays (``meta.runqueue``) of each group's
    figures; a group counts over the replays that have it."""
    sums: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for rq in replays:
        for group, figures in rq.items():
            acc = sums.setdefault(group, {})
            for k, v in figures.items():
                acc[k] = acc.get(k, 0.0) + float(v)
            counts[group] = counts.get(group, 0) + 1
    return {g: {k: v / counts[g] for k, v in acc.items()} for g, acc in sums.items()}


def _order(group: str) -> tuple[int, str]:
    first = {LOAD_GENERATOR: 0, PORT_PROXY: 1}
    return (first.get(group, 2), group)


def runqueue_lines(rows: Sequence[tuple[str, dict[str, dict[str, float]]]]) -> list[str]:
    """The report's section: per level (``(label, level_runqueue)``), each
    group's wait for a core per request (ms) and its slices per request, and
    the total. Empty when no level has the counters."""
    rows = [(label, rq) for label, rq in rows if rq]
    if not rows:
        return []
    groups = sorted({g for _, rq in rows for g in rq}, key=_order)
    lines = [
        "## Waiting for a core (measured, ms per request)",
        "",
        "From the kernel's scheduler counters (`/proc/<tid>/schedstat`) of each container's "
        "threads, the published port's proxy and the load generator, over the measured "
        "window, divided by the requests answered: the time their threads spent runnable "
        "but waiting for a core, and in brackets how often they ran per request. Each run "
        "is a wake-up on the shared host; the model's processor sharing starts a short "
        "burst at once, so a total that grows with the load is latency the model does "
        "not have.",
        "",
        "| level | " + " | ".join(groups) + " | total |",
        "|---" * (len(groups) + 2) + "|",
    ]
    for label, rq in rows:
        cells = []
        for g in groups:
            f = rq.get(g)
            cells.append(
                "—"
                if f is None
                else f"{f['wait_per_request'] * 1e3:.2f} ({f['slices_per_request']:.1f})"
            )
        total = sum(f["wait_per_request"] for f in rq.values()) * 1e3
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {total:.2f} |")
    lines.append("")
    return lines
