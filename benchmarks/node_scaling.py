"""Scale in nodes: the same 100,000 requests on 10, 100 and 1,000 nodes, per policy.

Every node has one PHP worker on one core; exponential service of mean 1 s
at 80 % load (arrival rate 0.8 × nodes per second, duration 100,000 /
rate), no database, the balancer's defaults (nginx). The issue's target:
with ``power_of_d``, ``least_conn`` and ``round_robin`` the 1,000-node case
runs within 1.5× the wall time of the 10-node case.

    python benchmarks/node_scaling.py                      # 3 policies x 10/100/1,000 nodes
    python benchmarks/node_scaling.py --repeat 3 --json results/node_scaling.json
    python benchmarks/node_scaling.py --baseline /tmp/orig # an older tree in the same run
    python benchmarks/node_scaling.py --nodes 10,1000 --policies round_robin

Each case runs in a fresh process (this script with ``--child FILE``): it
loads the scenario (which imports what the model needs), then times
``lbsim.simulate`` — building the model, running it and collecting its
results, wall and CPU time; the target is judged on that wall time. The
parent also times the whole child process (interpreter start-up, imports and
loading included, as a command line run would pay them). Cases run
interleaved over the repeats; the table gives the medians per case and the
ratios of the largest to the smallest node count per policy, measured in
this run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _harness import REPO, machine

POLICIES = ("round_robin", "least_conn", "power_of_d")
TARGET = 1.5


def scenario_yaml(nodes: int, policy: str, requests: int, seed: int = 1) -> str:
    rate = 0.8 * nodes  # ρ = 0.8 with a mean service of 1 s on one worker per node
    return f"""
name: nodes-{nodes}-{policy}
seed: {seed}
duration: {requests / rate!r}
warmup: 0
workload:
  open: {{rate: {rate!r}}}
  classes: [{{name: job, cpu: {{dist: exponential, mean: 1.0}}}}]
balancer: {{policy: {policy}}}
app: {{nodes: {nodes}, workers: 1, cores: 1}}
database: {{engine: none}}
"""


def child(path: str) -> None:
    """Simulate the scenario at ``path``; print one JSON line of times and key results."""
    import lbsim

    scenario = lbsim.load_scenario(path)
    t0, c0 = time.perf_counter(), time.process_time()
    result = lbsim.simulate(scenario)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {
        "wall_s": wall,
        "cpu_s": cpu,
        "arrived": result.value("requests.arrived"),
        "completed": result.value("requests.completed"),
        "latency_mean": result.value("latency.mean"),
    }
    print(json.dumps(out), flush=True)


def run_case(path: Path, tree: Path) -> dict[str, Any]:
    """One case in a fresh interpreter importing lbsim from ``tree``."""
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()), PYTHONHASHSEED="0")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(path)]
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    process_wall = time.perf_counter() - started
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    out["process_wall_s"] = process_wall
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nodes", default="10,100,1000", help="comma-separated node counts")
    p.add_argument("--policies", default=",".join(POLICIES))
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--tree", type=Path, default=REPO, help="the lbsim source tree to time")
    p.add_argument("--baseline", type=Path, help="also time this lbsim source tree")
    p.add_argument("--json", type=Path)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    sizes = [int(n) for n in args.nodes.split(",")]
    policies = args.policies.split(",")
    trees: list[tuple[str, Path]] = [("this tree", args.tree)]
    if args.baseline is not None:
        trees.append(("baseline", args.baseline))
    info = machine()
    print(
        f"{args.requests:,} requests, ρ = 0.8, one worker per node; {info['cpus']} CPUs, "
        f"load average {info['loadavg_at_start'][0]:.2f}; lbsim at {info['git']}"
    )
    runs: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for policy in policies:
            for n in sizes:
                path = Path(tmp) / f"nodes-{n}-{policy}.yaml"
                path.write_text(scenario_yaml(n, policy, args.requests))
                files[policy, n] = path
        for _ in range(args.repeat):
            for policy in policies:
                for n in sizes:
                    for label, tree in trees:
                        out = run_case(files[policy, n], tree)
                        runs.setdefault((label, policy, n), []).append(out)
                        print(
                            f"  {label:9} {policy:12} {n:5} nodes: {out['wall_s']:6.2f} s wall, "
                            f"{out['cpu_s']:6.2f} s CPU",
                            flush=True,
                        )
    lo, hi = min(sizes), max(sizes)
    print(
        f"\nmedian of {args.repeat}: lbsim.simulate wall s (CPU s) [whole process wall s]; "
        f"ratio {hi:,}/{lo:,} nodes (target ≤ {TARGET}, on simulate's wall time)"
    )
    header = " | ".join(f"{f'{n:,} nodes':>24}" for n in sizes)
    print(f"{'tree':9} {'policy':12} | {header} | ratio wall (CPU) [process]")
    table: list[dict[str, Any]] = []

    def median(label: str, policy: str, key: str) -> dict[int, float]:
        return {n: statistics.median(r[key] for r in runs[label, policy, n]) for n in sizes}

    for label, _ in trees:
        for policy in policies:
            wall = median(label, policy, "wall_s")
            cpu = median(label, policy, "cpu_s")
            proc = median(label, policy, "process_wall_s")
            ratio, ratio_cpu, ratio_proc = (m[hi] / m[lo] for m in (wall, cpu, proc))
            cells = " | ".join(f"{wall[n]:7.2f} ({cpu[n]:6.2f}) [{proc[n]:6.2f}]" for n in sizes)
            verdict = "met" if ratio <= TARGET else "missed"
            print(
                f"{label:9} {policy:12} | {cells} | {ratio:5.2f} ({ratio_cpu:5.2f}) "
                f"[{ratio_proc:5.2f}] {verdict}"
            )
            table.append(
                {
                    "tree": label,
                    "policy": policy,
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "process_wall_s": proc,
                    "ratio_wall": ratio,
                    "ratio_cpu": ratio_cpu,
                    "ratio_process_wall": ratio_proc,
                }
            )
    if args.json:
        out_json = {
            "benchmark": "node_scaling",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": info,
            "requests": args.requests,
            "repeat": args.repeat,
            "baseline": str(args.baseline) if args.baseline else None,
            "table": table,
            "runs": [
                {"tree": t, "policy": pol, "nodes": n, **r}
                for (t, pol, n), rs in runs.items()
                for r in rs
            ],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out_json, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
