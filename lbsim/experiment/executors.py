"""Where replications run: this process, local worker processes, or a Dask cluster.

A :class:`Task` is one replication of one scenario. Its output is the same
run dict whichever executor runs it: a replication's random streams are keyed
by the scenario seed and the replication index, never by where or when it
runs (the wall time is returned beside the results, not inside them).
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import os
import re
import signal
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol

from lbsim.scenario.schema import Scenario

#: environment variable naming a Dask scheduler, like ``--dask``
DASK_ENV = "LBSIM_DASK_SCHEDULER"


@dataclass(frozen=True)
class Task:
    """Replication ``replication`` of ``scenario``, for point ``point`` of an experiment."""

    point: int
    replication: int
    scenario: Scenario
    #: also return the time series and latency CDFs (for plots)
    extras: bool = False


@dataclass(frozen=True)
class TaskOutput:
    point: int
    replication: int
    #: the replication's results (contract keys), identical for every executor
    run: dict[str, Any]
    #: wall time of the simulation (s)
    wall_time: float
    extras: dict[str, Any] | None


def run_task(task: Task) -> TaskOutput:
    """Simulate one task (in whatever process or Dask worker it lands on)."""
    from lbsim.experiment.run import run_replication

    results, extras = run_replication(task.scenario, task.replication)
    info = dict(results.get("run", {}))
    wall = float(info.pop("wall_time", math.nan))
    results["run"] = info
    return TaskOutput(task.point, task.replication, results, wall, extras if task.extras else None)


class Executor(Protocol):
    """Runs tasks and yields their outputs as they finish (any order)."""

    @property
    def workers(self) -> int:
        """How many tasks run at once."""
        ...

    @property
    def description(self) -> str: ...

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutput]: ...

    def close(self, *, interrupted: bool = False) -> None: ...


class _Managed:
    def __enter__(self) -> Any:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(interrupted=kind is not None and issubclass(kind, KeyboardInterrupt))

    def close(self, *, interrupted: bool = False) -> None:
        raise NotImplementedError


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: only the parent handles it
    # (cancels what is pending, keeps what finished); workers are then stopped.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalExecutor(_Managed):
    """Tasks in ``jobs`` local processes (0: one per core); one job runs them in this process."""

    def __init__(self, jobs: int = 0):
        self.jobs = jobs if jobs > 0 else (os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self.jobs

    @property
    def description(self) -> str:
        return f"{self.jobs} local process{'es' if self.jobs > 1 else ''}"

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # fork is fastest, but forking a process that runs other threads
            # (a Dask client, a progress bar) is unsafe: then use a fork server
            method = "fork" if threading.active_count() == 1 else "forkserver"
            if method not in multiprocessing.get_all_start_methods():
                method = "spawn"
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs,
                mp_context=multiprocessing.get_context(method),
                initializer=_ignore_sigint,
            )
        return self._pool

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutput]:
        if self.jobs == 1 or len(tasks) <= 1:
            for task in tasks:
                yield run_task(task)
            return
        pool = self._get_pool()
        futures: list[Future[TaskOutput]] = [pool.submit(run_task, t) for t in tasks]
        # Pending futures are not cancelled here when the caller stops early:
        # close() does it through shutdown(cancel_futures=True), in the pool's own
        # thread (cancelling them from here races with stopping the workers, and
        # CPython 3.11 then prints an InvalidStateError from that thread).
        for fut in as_completed(futures):
            yield fut.result()

    def close(self, *, interrupted: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if interrupted:
            # do not wait for replications that are running: stop their processes
            processes = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for p in processes:
                p.terminate()
        else:
            pool.shutdown(wait=True, cancel_futures=True)


_ADDRESS = re.compile(r"^(?:(tcp|tls|inproc|ucx|ws|wss)://)?[^\s/:]+(?::\d{1,5})?$")


class DaskError(RuntimeError):
    """A Dask scheduler that cannot be used; the message says why."""


class DaskExecutor(_Managed):
    """Tasks on a Dask cluster (``distributed``), given a scheduler address or a Client.

    The workers need lbsim installed (the same version) to unpickle the tasks.
    """

    def __init__(self, address: Any, *, timeout: float = 10.0):
        try:
            # untyped package: used through Any
            distributed: Any = importlib.import_module("distributed")
        except ImportError:  # pragma: no cover - distributed is a test dependency
            raise DaskError(
                "the Dask executor needs the 'distributed' package: pip install 'dask[distributed]'"
            ) from None
        self._distributed = distributed
        self._owned = not isinstance(address, distributed.Client)
        self.client: Any
        if isinstance(address, distributed.Client):
            self.client = address
        else:
            text = str(address).strip()
            if not _ADDRESS.match(text):
                raise DaskError(
                    f"--dask: {text!r} is not a scheduler address (expected e.g. tcp://host:8786)"
                )
            try:
                self.client = distributed.Client(text, timeout=timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                # ValueError: an address distributed cannot parse (e.g. no port)
                raise DaskError(f"cannot reach the Dask scheduler at {text}: {exc}") from None
        self.address = str(self.client.scheduler.address)

    @property
    def workers(self) -> int:
        info = self.client.scheduler_info()
        threads = sum(int(w.get("nthreads", 1)) for w in info.get("workers", {}).values())
        return max(1, threads)

    @property
    def description(self) -> str:
        return f"Dask cluster at {self.address} ({self.workers} threads)"

    def run(self, tasks: Sequence[Task]) -> Iterator[TaskOutput]:
        futures = self.client.map(run_task, list(tasks), pure=False)
        try:
            for fut in self._distributed.as_completed(futures):
                out: TaskOutput = fut.result()
                yield out
        finally:
            self.client.cancel(futures)

    def close(self, *, interrupted: bool = False) -> None:
        if self._owned:
            self.client.close()


def make_executor(jobs: int = 0, dask: str | None = None) -> LocalExecutor | DaskExecutor:
    """The executor the options ask for: ``dask`` (or ``$LBSIM_DASK_SCHEDULER``) or local."""
    address = dask or os.environ.get(DASK_ENV) or None
    if address:
        return DaskExecutor(address)
    return LocalExecutor(jobs)


class ExecutorScope:
    """Context manager: the given executor as is, or a new local one closed on exit."""

    def __init__(self, executor: Executor | None, jobs: int = 0):
        self.given = executor
        self.made: LocalExecutor | DaskExecutor | None = None
        self.jobs = jobs

    def __enter__(self) -> Executor:
        if self.given is not None:
            return self.given
        self.made = make_executor(self.jobs)
        return self.made

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.made is not None:
            self.made.close(interrupted=kind is not None and issubclass(kind, KeyboardInterrupt))
