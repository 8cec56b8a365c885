"""One hour of a large site: 200 PHP-FPM nodes at 50 requests/s each (10,000
requests/s, ≈36M requests) behind round robin, on a 3-node Galera cluster.

The site is ``scenarios/mixed.yaml`` (its request classes, network, Galera
settings) scaled up: 200 nodes of 4 cores and 16 workers (CPU ≈ 53 % busy),
database nodes of 96 cores with 16 appliers and ``max_connections`` 4000
(CPU ≈ 50 %), 200,000 clients. Offered loads: ``lbsim check`` with the same
``--set`` options (printed below).

    python benchmarks/site_hour.py                       # the whole hour (long: see below)
    python benchmarks/site_hour.py --duration 30         # 30 simulated seconds, extrapolated
    python benchmarks/site_hour.py --warmup 5 --duration 10   # ≈150k requests, a quick look
    python benchmarks/site_hour.py --nodes 20 --duration 60 --json results/site_hour.json

The simulation runs in this process after the imports; the table gives wall
time, requests (every arrival, warm-up included), requests/s and peak RSS,
and — for a shorter ``--duration`` — the wall time one hour would take at
the measured rate (the model's state is constant in run length, so the rate
does not fall with it).
"""

from __future__ import annotations

import argparse
import datetime
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from _harness import REPO, machine

SCENARIO = REPO / "scenarios" / "mixed.yaml"
HOUR = 3600.0


def overrides(nodes: int, per_node: float, warmup: float = 60.0) -> list[str]:
    return [
        f"app.nodes={nodes}",
        "app.cores=4",
        "app.workers=16",
        f"workload.open.rate={nodes * per_node}",
        f"workload.clients.count={1000 * nodes}",
        f"database.cores={max(2, round(96 * nodes / 200))}",
        "database.max_connections=4000",
        "database.applier_threads=16",
        f"warmup={warmup:g}",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", type=int, default=200)
    p.add_argument("--rate-per-node", type=float, default=50.0)
    p.add_argument("--duration", type=float, default=HOUR, help="measured simulated seconds")
    p.add_argument("--warmup", type=float, default=60.0, help="simulated warm-up seconds")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    sys.path.insert(0, str(REPO))
    t0 = time.perf_counter()
    import lbsim

    sets = overrides(args.nodes, args.rate_per_node, args.warmup)
    scenario = lbsim.load_scenario(SCENARIO, sets, duration=args.duration)
    setup = time.perf_counter() - t0
    info = machine()
    print(
        f"site: {args.nodes} nodes × {args.rate_per_node:g} requests/s, Galera 3 nodes; "
        f"{args.duration:g} s measured + {scenario.warmup:g} s warm-up; "
        f"{info['cpus']} CPUs, load average {info['loadavg_at_start'][0]:.2f}; "
        f"lbsim at {info['git']}"
    )
    print("lbsim check scenarios/mixed.yaml " + " ".join(f"-s {s}" for s in sets))
    started = time.perf_counter()
    result = lbsim.simulate(scenario)
    wall = time.perf_counter() - started
    rows = result.timeseries
    arrivals = 0.0
    last = 0.0
    for row in rows:
        arrivals += row["arrival_rate"] * (row["time"] - last)
        last = row["time"]
    requests = round(arrivals)
    rate = requests / wall
    hour_wall = (HOUR + 60.0) * args.nodes * args.rate_per_node / rate
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out: dict[str, Any] = {
        "benchmark": "site_hour",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": info,
        "nodes": args.nodes,
        "rate_per_node": args.rate_per_node,
        "duration": args.duration,
        "warmup": scenario.warmup,
        "requests": requests,
        "wall_s": wall,
        "setup_s": setup,
        "requests_per_s": rate,
        "hour_wall_s": hour_wall if args.duration != HOUR else wall,
        "peak_rss_mb": peak,
        "completed": result.value("requests.completed"),
        "failed": result.value("requests.failed.total"),
        "latency_mean": result.value("latency.mean"),
        "latency_p99": result.value("latency.p99"),
    }
    print(
        f"{requests:,} requests in {wall:.1f} s: {rate:,.0f} requests/s; peak RSS {peak:.0f} MB; "
        f"latency mean {out['latency_mean'] * 1000:.1f} ms, "
        f"p99 {out['latency_p99'] * 1000:.1f} ms, "
        f"failed {out['failed']:g}"
    )
    if args.duration != HOUR:
        print(
            f"one simulated hour (+ 60 s warm-up) at this rate: "
            f"{hour_wall / 60:.1f} min of wall time"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
