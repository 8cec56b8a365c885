"""One MySQL/MariaDB server: connections, a thread limit, row locks and a shared CPU.

The pieces every engine uses; :mod:`mysql` runs whole queries on one server,
:mod:`galera` adds replication around them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

from lbsim.model.cpu import BandwidthCpu, Cpu, Host, Job
from lbsim.model.db.locks import RowLocks
from lbsim.model.deadlines import Deadlines
from lbsim.stats.timeweighted import TimeWeighted

ERR_TOO_MANY_CONNECTIONS = 1040
ERR_LOCK_WAIT_TIMEOUT = 1205
ERR_DEADLOCK = 1213


class DbServer:
    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        name: str,
        cores: float,
        max_connections: int,
        threads: int | None,
        slowness: float = 1.0,
        host: Host | None = None,
        cpu_period: float | None = None,
    ):
        self.env = env
        self.index = index
        self.name = name
        #: on a host, the server's CPU shares the host's cores with the other
        #: containers placed there (its own ``cores`` stay its cap); under
        #: CFS bandwidth control (``cpu_period``) its quota per period
        self.cpu = (
            Cpu(env, name, cores, host)
            if cpu_period is None
            else BandwidthCpu(env, name, cores, cpu_period, host)
        )
        self.max_connections = max_connections
        self.threads = threads
        self.slowness = slowness
        self.locks = RowLocks()
        self.connections = 0
        self.connections_max = 0
        self.connections_tw = TimeWeighted()
        self.connection_errors = 0
        self.running = 0
        self._thread_queue: deque[tuple[Callable[[Any], None], Any]] = deque()
        self.queries = 0

    # -- connections --------------------------------------------------------------------
    def connect(self) -> bool:
        """Open a connection; False: error 1040 (max_connections reached)."""
        if self.connections >= self.max_connections:
            self.connection_errors += 1
            return False
        self.connections += 1
        if self.connections > self.connections_max:
            self.connections_max = self.connections
        self.connections_tw.set(self.env._now, self.connections)
        return True

    def disconnect(self) -> None:
        self.connections -= 1
        self.connections_tw.set(self.env._now, self.connections)

    # -- running a statement ------------------------------------------------------------
    def admit(self, fn: Callable[[Any], None], arg: Any) -> None:
        """Wait for a free thread (if threads are limited), then ``fn(arg)``."""
        if self.threads is None or self.running < self.threads:
            self.running += 1
            fn(arg)
        else:
            self._thread_queue.append((fn, arg))

    def leave(self) -> None:
        """A statement admitted with ``admit`` finished."""
        if self._thread_queue:
            fn, arg = self._thread_queue.popleft()
            fn(arg)
        else:
            self.running -= 1

    def execute(self, work: float, done: Callable[[Any], None], arg: Any) -> Job:
        """Run ``work`` core-seconds (scaled by the node's slowness) on the CPU."""
        self.queries += 1
        return self.cpu.submit(work * self.slowness, done, arg)

    def crash(self) -> None:
        """The server process dies: its CPU work stops (no callback of it is
        called), its threads, row locks and connections are gone."""
        cpu = self.cpu
        for entry in list(cpu._heap):  # the jobs of a shared-clock CPU
            cpu.cancel(entry[2])
        self.running = 0
        self._thread_queue.clear()
        locks = RowLocks()
        locks.waits, locks.bf_aborts = self.locks.waits, self.locks.bf_aborts
        self.locks = locks
        self.connections = 0
        self.connections_tw.set(self.env._now, 0)

    def lock_deadlines(
        self,
        timeout: float,
        pending: Callable[[Any, int], bool],
        expire: Callable[[Any, int], None],
    ) -> Deadlines:
        return Deadlines(self.env, timeout, pending, expire)

    def reset_stats(self, now: float) -> None:
        self.cpu.busy.reset(now)
        self.connections_tw.reset(now)
        self.connections_max = self.connections
        self.connection_errors = 0
        self.queries = 0
        self.locks.waits = 0
        self.locks.bf_aborts = 0

    def results(self, now: float) -> dict[str, Any]:
        return {
            "connections": self.connections_tw.mean(now),
            "connections_max": self.connections_max,
            "connection_errors": self.connection_errors,
            "queries": self.queries,
            "row_lock_waits": self.locks.waits,
        }
