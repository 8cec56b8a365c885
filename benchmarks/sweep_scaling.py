"""Sweep scaling: a 32-point × 4-replication sweep of scenarios/mixed.yaml (short
duration), timed on 1, 2 and all local cores (``--workers``: the curve) and on a
Dask LocalCluster of 2 single-threaded worker processes. Every executor must give
identical results (checked).

    python benchmarks/sweep_scaling.py                    # duration 15 s, warm-up 5 s
    python benchmarks/sweep_scaling.py --duration 30 --json results/sweep_scaling.json
    python benchmarks/sweep_scaling.py --workers 1,2,4,8,16 --no-dask   # a bigger machine

Wall times include starting the pool or the cluster (that is the overhead a user
pays); the Dask figure also reports the cluster start separately. One worker
runs the tasks in this process (no pool), so its time per task is the task's
own cost; the **per-task overhead** of k workers is the core time they spend
beyond it, (k × wall_k − wall_1) / tasks: pickling, the pool's round trips,
the start of the workers — and a worker that paid lbsim's start-up for every
task would show it here (a fresh ``import lbsim`` plus the model is ≈0.1 s).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCENARIO = REPO / "scenarios" / "mixed.yaml"
RATES = "workload.open.rate=30:92:2"  # 32 points


def timed_sweep(executor: Any, duration: float, warmup: float) -> tuple[float, Any]:
    from lbsim.experiment.sweep import sweep

    started = time.perf_counter()
    result = sweep(
        SCENARIO, [RATES], replications=4, executor=executor, duration=duration, warmup=warmup
    )
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument(
        "--workers",
        default="1,2,all",
        help="local worker counts, comma-separated; all = every core (default 1,2,all)",
    )
    p.add_argument("--no-dask", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if importlib.util.find_spec("lbsim") is None:  # not installed: this checkout
        sys.path.insert(0, str(REPO))
    from lbsim.build import describe
    from lbsim.experiment.executors import DaskExecutor, LocalExecutor

    print(f"lbsim: {describe()} ({importlib.util.find_spec('lbsim').origin})")

    out: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "points": 32,
        "replications": 4,
        "duration": args.duration,
        "warmup": args.warmup,
        "build": describe(),
    }
    cores = os.cpu_count() or 1
    counts = sorted(
        {1, *(cores if w.strip() == "all" else int(w) for w in args.workers.split(","))}
    )
    tasks = 32 * 4
    curve: dict[int, float] = {}
    first = None
    for k in counts:
        with LocalExecutor(k) as pool:
            tk, rk = timed_sweep(pool, args.duration, args.warmup)
        curve[k] = tk
        if first is None:
            first = rk
        else:
            assert first.frame.equals(rk.frame), f"{k} local workers disagree with 1"
        overhead = (k * tk - curve[1]) / tasks
        print(
            f"{k:3d} local worker{'s' if k > 1 else ' '}: {tk:7.2f} s   "
            f"speed-up {curve[1] / tk:5.2f}×   per-task overhead {overhead * 1000:+6.1f} ms"
        )
    t1, t2 = curve[1], curve.get(2, curve[1])
    out.update(
        {
            "local": {str(k): t for k, t in curve.items()},
            "speedup": {str(k): t1 / t for k, t in curve.items()},
            "per_task_overhead_s": {str(k): (k * t - t1) / tasks for k, t in curve.items()},
            "local_1": t1,
            "local_2": t2,
            "speedup_1_to_2": t1 / t2,
        }
    )
    assert first is not None
    r1 = first
    if not args.no_dask:
        from distributed import Client, LocalCluster

        started = time.perf_counter()
        with (
            LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=50,
            ) as cluster,
            Client(cluster) as client,
        ):
            startup = time.perf_counter() - started
            td, rd = timed_sweep(DaskExecutor(client), args.duration, args.warmup)
        assert r1.frame.equals(rd.frame), "Dask and local executors disagree"
        print(
            f"Dask LocalCluster (2 processes × 1 thread): {td:7.2f} s sweep "
            f"+ {startup:.2f} s cluster start; overhead vs 2 local workers "
            f"{(td - t2) / t2 * 100:+.1f} % "
            f"({(td + startup - t2) / t2 * 100:+.1f} % with the start)"
        )
        out.update({"dask_2": td, "dask_startup": startup, "dask_overhead": (td - t2) / t2})
        out["dask_per_task_overhead_s"] = (2 * td - t1) / tasks
        print(f"Dask per-task overhead (2 workers): {(2 * td - t1) / tasks * 1000:+.1f} ms")
    print(f"per task (1 worker): {t1 / tasks * 1000:.0f} ms; results identical on every executor")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
