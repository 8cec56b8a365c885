"""Sweep scaling: a 32-point × 4-replication sweep of scenarios/mixed.yaml (short
duration), timed on 1 and 2 local worker processes and on a Dask LocalCluster of 2
single-threaded worker processes. All three must give identical results (checked).

    python benchmarks/sweep_scaling.py                    # duration 15 s, warm-up 5 s
    python benchmarks/sweep_scaling.py --duration 30 --json results/sweep_scaling.json

Wall times include starting the pool or the cluster (that is the overhead a user
pays); the Dask figure also reports the cluster start separately.
"""

from __future__ import annotations

import argparse
import datetime
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
    p.add_argument("--no-dask", action="store_true")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from lbsim.experiment.executors import DaskExecutor, LocalExecutor

    out: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "python": platform.python_version(),
        "points": 32,
        "replications": 4,
        "duration": args.duration,
        "warmup": args.warmup,
    }
    t1, r1 = timed_sweep(LocalExecutor(1), args.duration, args.warmup)
    print(f"1 local worker:   {t1:7.2f} s")
    with LocalExecutor(2) as pool:
        t2, r2 = timed_sweep(pool, args.duration, args.warmup)
    print(f"2 local workers:  {t2:7.2f} s   speed-up {t1 / t2:.2f}×")
    assert r1.frame.equals(r2.frame), "local executors disagree"
    out.update({"local_1": t1, "local_2": t2, "speedup_1_to_2": t1 / t2})
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
    tasks = 32 * 4
    print(f"per task (1 worker): {t1 / tasks * 1000:.0f} ms; results identical on every executor")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
