"""Running the points of an experiment: replications by a stopping rule, on an executor,
saved to a results directory as they finish.

Rounds are synchronous: every replication a round asks for finishes before the
stopping rule looks again, so the number of replications (and every result)
is the same on any executor. With ``paired`` (common random numbers across
variants) all points get the same replication count, the largest any of them
needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from lbsim.experiment.executors import Executor, Task
from lbsim.experiment.stopping import StoppingRule
from lbsim.experiment.store import PointResult, ResultsDir, new_meta
from lbsim.experiment.variants import Variant

#: progress(done, total): replications finished and asked for so far (total grows
#: when a sequential rule asks for more)
ProgressHook = Callable[[int, int], None]


def run_points(
    variants: Sequence[Variant],
    rule: StoppingRule,
    executor: Executor,
    *,
    paired: bool = False,
    store: ResultsDir | None = None,
    progress: ProgressHook | None = None,
) -> list[PointResult]:
    """Run every variant until ``rule`` is satisfied; returns the points in variant order."""
    unique: dict[str, PointResult] = {}
    for v in variants:
        if v.key not in unique:
            unique[v.key] = store.load(v) if store is not None else PointResult(v)
    points = list(unique.values())
    while True:
        targets = []
        for p in points:
            prefix = p.ordered_runs()
            # a decision taken before an interruption is replayed, not re-taken
            # on fewer runs, so a resumed experiment ends where it would have
            targets.append(p.target if p.target > len(prefix) else rule.next_count(prefix))
        if paired and targets:
            targets = [max(targets)] * len(points)
        tasks: list[Task] = []
        for i, (p, target) in enumerate(zip(points, targets, strict=True)):
            p.target = target
            tasks.extend(
                Task(i, r, p.variant.scenario, extras=r == 0 and p.extras is None)
                for r in range(target)
                if r not in p.runs
            )
        if not tasks:
            break
        total = sum(targets)
        done = total - len(tasks)
        if progress is not None:
            progress(done, total)
        for out in executor.run(tasks):
            p = points[out.point]
            p.runs[out.replication] = out.run
            p.wall_times[out.replication] = out.wall_time
            if out.extras is not None:
                p.extras = out.extras
            if store is not None:
                store.save(p)
            done += 1
            if progress is not None:
                progress(done, total)
    return [unique[v.key] for v in variants]


class Session:
    """One experiment command: its results directory, meta and points.

    Use as a context manager; on leaving, meta.json records the status
    (``complete``, ``interrupted`` on Ctrl-C, or ``failed``) and the wall time.
    """

    def __init__(
        self,
        kind: str,
        executor: Executor,
        rule: StoppingRule,
        *,
        out: Path | None = None,
        spec: dict[str, Any] | None = None,
        seed: int = 0,
        command: str | None = None,
        paired: bool = False,
        progress: ProgressHook | None = None,
    ):
        self.kind = kind
        self.executor = executor
        self.rule = rule
        self.paired = paired
        self.progress = progress
        self.store = ResultsDir(out, kind) if out is not None else None
        self.meta = new_meta({**(spec or {}), "replications": rule.to_dict()}, seed, command)
        self.meta["executor"] = executor.description
        self.meta["points"] = []
        self._started = time.perf_counter()

    def __enter__(self) -> Session:
        if self.store is not None:
            self.store.open()
            self.store.write_meta(self.meta)
        self._started = time.perf_counter()
        return self

    def run(self, variants: Sequence[Variant]) -> list[PointResult]:
        for v in variants:
            if v.key not in self.meta["points"]:
                self.meta["points"].append(v.key)
        self.save_meta()
        return run_points(
            variants,
            self.rule,
            self.executor,
            paired=self.paired,
            store=self.store,
            progress=self.progress,
        )

    def save_meta(self) -> None:
        self.meta["wall_time"] = time.perf_counter() - self._started
        if self.store is not None:
            self.store.write_meta(self.meta)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if kind is None:
            self.meta["status"] = "complete"
        elif issubclass(kind, KeyboardInterrupt):
            self.meta["status"] = "interrupted"
        else:
            self.meta["status"] = "failed"
            self.meta["error"] = f"{kind.__name__}: {exc}"
        self.save_meta()
