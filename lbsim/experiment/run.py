"""Running a scenario: replications, in this process or in local worker processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from lbsim import __version__
from lbsim.experiment.result import Result
from lbsim.model.stack import Stack
from lbsim.scenario.schema import Scenario

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
) -> Result:
    """Simulate ``scenario`` (its own ``replications`` unless given).

    Replication ``r`` draws from streams keyed by (seed, r), so results are
    the same whether replications run here or in ``jobs`` worker processes.
    """
    reps = replications if replications is not None else scenario.replications
    started = time.perf_counter()
    outputs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if jobs <= 1 or reps == 1:
        for r in range(reps):

            def rep_progress(now: float, horizon: float, r: int = r) -> None:
                if progress is not None:
                    progress((r + now / horizon) / reps)

            outputs.append(run_replication(scenario, r, rep_progress if progress else None))
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, reps)) as pool:
            futures = [pool.submit(run_replication, scenario, r) for r in range(reps)]
            for done, fut in enumerate(futures, start=1):
                outputs.append(fut.result())
                if progress is not None:
                    progress(done / reps)
    runs = [o[0] for o in outputs]
    extras = outputs[0][1]
    meta = {
        "lbsim_version": __version__,
        "seed": scenario.seed,
        "replications": reps,
        "wall_time": time.perf_counter() - started,
        "duration": scenario.duration,
        "warmup": scenario.warmup,
    }
    return Result(scenario, runs, extras["timeseries"], extras["cdf"], meta)
