"""Replay a scenario against its running stack and measure it.

The plan (:mod:`lbsim.validation.workplan`) is the model's own trace; the
load generator (:mod:`lbsim.validation.loadgen`) sends it open loop, or runs
the model's closed-loop users (think, send, wait) until the horizon. At the
end of the warm-up the collectors start the measured window (container CPU
from cgroup accounting; ``FLUSH STATUS`` then ``SHOW GLOBAL STATUS`` on every
database node, on a thread so the sends keep their schedule); at the end of
the horizon they close it. The results carry the same keys as ``lbsim run``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from lbsim import __version__
from lbsim.report import atomic
from lbsim.scenario.database import Galera
from lbsim.scenario.schema import Scenario
from lbsim.validation import collectors
from lbsim.validation.faults import Injector, docker_runner
from lbsim.validation.lifecycle import StackHandle
from lbsim.validation.loadgen import Record, send_closed_loop, send_open_loop
from lbsim.validation.measured import (
    loadgen_verdict,
    summarise,
    unit_cost_moved,
    unit_seconds,
    write_requests_csv,
)
from lbsim.validation.path_times import path_times
from lbsim.validation.runqueue import RunQueue, Slices, window_deltas
from lbsim.validation.runqueue import summarise as runqueue_summary
from lbsim.validation.workplan import ClosedLoopPlan, MachineCosts, PlannedRequest, work_plan

#: closed-loop users the replay runs at once (each holds a connection while waiting)
MAX_USERS = 4096


@dataclass
class Window:
    """The collectors' view of the measured window."""

    handle: StackHandle
    galera: bool
    cpu: collectors.ContainerCpu = field(init=False)
    cpu_start: dict[str, float] = field(default_factory=dict)
    cpu_end: dict[str, float] = field(default_factory=dict)
    t_start: float = 0.0
    t_end: float = 0.0
    machine_start: float = 0.0
    machine_end: float = 0.0
    status_start: dict[str, dict[str, str]] = field(default_factory=dict)
    status_end: dict[str, dict[str, str]] = field(default_factory=dict)
    _thread: threading.Thread | None = None
    errors: list[str] = field(default_factory=list)
    #: the scheduler counters at the window's start and end (validation.runqueue)
    rq_start: dict[str, dict[int, Slices]] = field(default_factory=dict)
    rq_end: dict[str, dict[int, Slices]] = field(default_factory=dict)
    _rq_threads: list[threading.Thread] = field(default_factory=list)
    rq_problems: list[str] = field(default_factory=list)
    #: when the window-start status queries ended (their ``docker exec`` CPU
    #: lands outside the containers: the background sampler skips it)
    t_collected: float = 0.0

    def __post_init__(self) -> None:
        self.cpu = collectors.ContainerCpu(self.handle)
        self.runqueue = RunQueue(self.cpu.ids)

    def open(self) -> None:
        self.cpu_start = self.cpu.snapshot()
        self.machine_start = collectors.host_cpu_seconds()
        self.t_start = self.t_collected = time.monotonic()
        self._snap(self.rq_start)
        if self.galera:
            self._thread = threading.Thread(target=self._flush, daemon=True)
            self._thread.start()

    def _flush(self) -> None:
        try:
            for node in self.handle.db_nodes:
                collectors.flush_status(self.handle, node)
                self.status_start[node] = collectors.global_status(self.handle, node)
        except Exception as exc:  # reported with the results, never silently
            self.errors.append(f"status at window start: {exc}")
        self.t_collected = time.monotonic()

    def close(self) -> None:
        self.cpu_end = self.cpu.snapshot()
        self.machine_end = collectors.host_cpu_seconds()
        self.t_end = time.monotonic()
        self._snap(self.rq_end)

    def _snap(self, into: dict[str, dict[int, Slices]]) -> None:
        """The scheduler counters, read on a thread: hundreds of small files
        would hold up the sends that the hook runs between."""

        def read() -> None:
            try:
                into.update(self.runqueue.snapshot())
            except (OSError, ValueError) as exc:  # no waits then; the rest stands
                self.rq_problems.append(f"scheduler counters: {exc}")

        t = threading.Thread(target=read, daemon=True)
        self._rq_threads.append(t)
        t.start()

    def finish(self) -> None:
        """After the last answer: the end-of-window database counters."""
        for t in self._rq_threads:
            t.join()
        if self._thread is not None:
            self._thread.join()
        if self.galera:
            try:
                for node in self.handle.db_nodes:
                    self.status_end[node] = collectors.global_status(self.handle, node)
            except Exception as exc:
                self.errors.append(f"status at window end: {exc}")

    def machine_cores(self) -> dict[str, float]:
        """Cores busy on the whole machine in the window, and outside the containers."""
        span = self.t_end - self.t_start
        if span <= 0:
            return {}
        busy = (self.machine_end - self.machine_start) / span
        return {"busy": busy, "outside_containers": busy - sum(self.cpu_seconds().values()) / span}

    def cpu_seconds(self) -> dict[str, float]:
        # a container restarted in the window (an app node outage) counts from 0
        # again: its CPU in the window is not known, so it is left out
        return {
            s: self.cpu_end[s] - self.cpu_start[s]
            for s in self.cpu_end
            if s in self.cpu_start and self.cpu_end[s] >= self.cpu_start[s]
        }

    def waiting_for_a_core(self, requests: int) -> dict[str, dict[str, float]]:
        """Per group, its threads' wait for a core per request and per slice
        (empty where a snapshot could not be read)."""
        if self.rq_problems:
            return {}
        return runqueue_summary(window_deltas(self.rq_start, self.rq_end), requests)

    def galera_block(self) -> dict[str, Any]:
        elapsed = self.t_end - self.t_start
        # a node restarted in the window (a galera node outage) counts from 0
        # again (Uptime shorter than the window): its counters are left out
        nodes = {
            n: collectors.galera_counters(self.status_start[n], self.status_end[n], elapsed)
            for n in self.status_end
            if n in self.status_start
            and float(self.status_end[n].get("uptime", "inf") or "inf") >= elapsed
        }
        if not nodes:
            return {}
        paused = max(v.get("wsrep_flow_control_paused", 0.0) for v in nodes.values())
        return {"nodes": nodes, "flow_control": {"paused": paused}}


T = TypeVar("T")


def bounded(items: Iterable[T], max_requests: int) -> list[T]:
    """The planned requests of a replay, refused past ``max_requests``."""
    plan: list[T] = []
    for item in items:
        plan.append(item)
        if len(plan) > max_requests:
            raise ValueError(
                f"the replay would send more than {max_requests} requests; "
                "shorten duration or lower the rate"
            )
    return plan


@dataclass
class ReplayRun:
    scenario: Scenario
    records: list[Record]
    results: dict[str, Any]

    @property
    def valid(self) -> bool:
        return bool(self.results["meta"]["loadgen"]["valid"])

    def write(self, outdir: Path, stem: str = "replay") -> list[Path]:
        outdir.mkdir(parents=True, exist_ok=True)
        js = outdir / f"{stem}.json"
        atomic.write_text(js, json.dumps(self.results, indent=2) + "\n")
        return [js, write_requests_csv(self.records, outdir / f"{stem}-requests.csv")]


def replay(
    scenario: Scenario,
    handle: StackHandle,
    costs: MachineCosts,
    replication: int = 0,
    max_requests: int = 200_000,
) -> ReplayRun:
    """Send ``scenario``'s trace (replication ``replication``) to the stack, open
    loop, or run its closed-loop users; at most ``max_requests`` requests."""
    closed = scenario.workload.closed
    if closed is not None and closed.users > MAX_USERS:
        raise ValueError(
            f"workload.closed.users: {closed.users} users would hold {closed.users} "
            f"connections at once; the replay runs at most {MAX_USERS}"
        )
    rows = int(handle.meta.get("rows", 0)) or 1
    timeout = scenario.workload.timeout or 3600.0  # no client timeout: wait up to an hour
    window = Window(handle, isinstance(scenario.database, Galera))
    hooks = [(scenario.warmup, window.open), (scenario.horizon, window.close)]
    plan: list[PlannedRequest] = []
    if closed is None:
        plan = bounded(work_plan(scenario, costs, rows, replication), max_requests)
    # app node outages: docker kill / docker start on schedule (lbsim.validation.faults)
    faults = Injector.for_stack(scenario, handle, docker_runner(handle.compose.docker.docker))
    if faults is not None:
        hooks += faults.hooks()
    started = time.time()
    try:
        if closed is not None:
            users = ClosedLoopPlan(scenario, costs, rows, replication)
            records, stats = send_closed_loop(handle.url, users, timeout, max_requests, at=hooks)
        else:
            records, stats = send_open_loop(handle.url, plan, timeout, at=hooks)
    finally:
        if faults is not None:
            faults.finish()  # every killed container started again, even on failure
    window.finish()
    results = summarise(scenario, records, window.cpu_seconds(), window.galera_block())
    verdict = loadgen_verdict(stats)
    results["replications"] = 1
    results["meta"] = {
        "source": "replay",
        "version": __version__,
        "seed": scenario.seed,
        "replication": replication,
        "started": started,
        "wall_time": stats.wall,
        "url": handle.url,
        "stack": {k: handle.meta.get(k) for k in ("balancer", "policy", "notes")},
        "costs": costs.to_dict(),
        # the machine's speed during the run (the app's own CPU clock per unit)
        "unit_seconds": unit_seconds(records),
        # ... and how far it moved from the first to the last quarter of the run
        "unit_moved": unit_cost_moved(records),
        # where the requests' time went (the app's own timings; none from a target)
        "path": path_times(records, scenario.warmup, scenario.horizon),
        # how long each group's threads waited for a core, per request answered
        "runqueue": window.waiting_for_a_core(results["requests"]["completed"]),
        "loadgen": verdict,
        "collector_errors": window.errors,
        "faults": [e.to_dict() for e in faults.events] if faults is not None else [],
        "fault_problems": faults.problems() if faults is not None else [],
        "cpu_seconds": window.cpu_seconds(),
        "machine_cores": window.machine_cores(),
        # the measured window on this process's monotonic clock (the background
        # sampler's: lbsim.validation.background)
        "window": {"start": window.t_start, "end": window.t_end, "collected": window.t_collected},
    }
    results["scenario"] = scenario.model_dump(mode="json")
    return ReplayRun(scenario, records, results)
