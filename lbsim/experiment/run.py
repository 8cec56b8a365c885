"""Running a scenario: replications, in this process or in local worker processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lbsim import __version__
from lbsim.build import describe as describe_build
from lbsim.experiment.result import Result
from lbsim.model.stack import Stack
from lbsim.scenario.schema import Scenario

if TYPE_CHECKING:
    from lbsim.experiment.executors import Executor

Progress = Callable[[float], None]  # fraction done, 0..1


def run_replication(
    scenario: Scenario, replication: int, progress: Callable[[float, float], None] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Simulate one replication; returns (results, extras: time series and latency CDFs)."""
    stack = Stack(scenario, replication)
    results = stack.run(progress)
    obs = stack.observer
    cdf = {"all": _cdf(obs.latency)}
    for name, summary in zip(obs.class_names, obs.class_latency, strict=True):
        cdf[name] = _cdf(summary)
    return results, {"timeseries": obs.rows, "cdf": cdf}


def _cdf(summary: Any) -> tuple[list[float], list[float]]:
    summary.flush()
    values, frac = summary.hist.cdf_points()
    return values.tolist(), frac.tolist()


def simulate(
    scenario: Scenario,
    *,
    replications: int | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> Result:
    """Simulate ``scenario`` (its own ``replications`` unless given).

    Replication ``r`` draws from streams keyed by (seed, r), so results are
    the same whether replications run here, in ``jobs`` worker processes or
    on ``executor`` (e.g. a :class:`~lbsim.experiment.executors.DaskExecutor`).
    """
    reps = replications if replications is not None else scenario.replications
    started = time.perf_counter()
    outputs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if executor is None and (jobs <= 1 or reps == 1):
        for r in range(reps):

            def rep_progress(now: float, horizon: float, r: int = r) -> None:
                if progress is not None:
                    progress((r + now / horizon) / reps)

            outputs.append(run_replication(scenario, r, rep_progress if progress else None))
    else:
        outputs = _on_executor(scenario, reps, jobs, progress, executor)
    runs = [o[0] for o in outputs]
    extras = outputs[0][1]
    meta = {
        "lbsim_version": __version__,
        "lbsim_build": describe_build(),
        "seed": scenario.seed,
        "replications": reps,
        "wall_time": time.perf_counter() - started,
        "duration": scenario.duration,
        "warmup": scenario.warmup,
    }
    return Result(scenario, runs, extras["timeseries"], extras["cdf"], meta)


def _on_executor(
    scenario: Scenario,
    reps: int,
    jobs: int,
    progress: Progress | None,
    executor: Executor | None,
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Replications as tasks; outputs in replication order, wall times back in ``run``."""
    from lbsim.experiment.executors import ExecutorScope, Task

    tasks = [Task(0, r, scenario, extras=r == 0) for r in range(reps)]
    done: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    with ExecutorScope(executor, min(jobs, reps)) as ex:
        for out in ex.run(tasks):
            out.run["run"]["wall_time"] = out.wall_time
            done[out.replication] = (out.run, out.extras or {})
            if progress is not None:
                progress(len(done) / reps)
    return [done[r] for r in range(reps)]
