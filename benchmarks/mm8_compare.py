"""M/M/8 at ρ = 0.8: lbsim vs Ciw 3.2.7 vs a minimal hand-written SimPy model.

Each run is a fresh Python process (so peak RSS is that tool's alone). The
queue: Poisson arrivals at 6.4/s, exponential service of mean 1 s, 8 FCFS
servers, simulated for N / 6.4 s (≈ N customers). Wall time covers building
and running the model and collecting its results; interpreter start-up and
imports are reported separately.

    python benchmarks/mm8_compare.py                       # 1M requests, each tool once
    python benchmarks/mm8_compare.py --repeat 3 --json out.json
    python benchmarks/mm8_compare.py --requests 100000 --tools lbsim,simpy
    python benchmarks/mm8_compare.py --requests 256000 --repeat 5 --whole-process

Targets (issue 13): in-process, lbsim ≥ 2× the minimal SimPy model's requests/s;
whole process (``--whole-process``: ``lbsim run FILE -q --json OUT`` through the
CLI against a ``python`` process that imports Ciw and simulates, interpreter
start and imports included) lbsim ≥ 3× Ciw; peak RSS < 150 MB. (Issue 1's
targets, lbsim ≥ 2× Ciw in-process and within 2× of SimPy, are printed too.)
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

from _harness import REPO, THEORY_SOJOURN, horizon_for, machine, mm8_yaml, run_child, summarise

TOOLS = ("lbsim", "ciw", "simpy")  # and "baseline": lbsim from --baseline DIR
RSS_TARGET_MB = 150.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=1_000_000, help="≈ customers (default 1e6)")
    p.add_argument("--repeat", type=int, default=1, help="runs per tool; best and median reported")
    p.add_argument(
        "--tools", default=",".join(TOOLS), help="comma-separated subset of " + ",".join(TOOLS)
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    p.add_argument(
        "--whole-process",
        action="store_true",
        help="also time lbsim through its CLI, whole process, against Ciw's whole process",
    )
    p.add_argument(
        "--baseline",
        type=Path,
        help="also run lbsim from this source tree (e.g. git archive OLD | tar -x -C DIR)",
    )
    p.add_argument(
        "--tree",
        type=Path,
        help="import lbsim from this directory instead of the installed one (a source tree, "
        "or an unpacked LBSIM_MYPYC=1 wheel: the compiled build); the CLI run too",
    )
    args = p.parse_args(argv)
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in tools:
        if t not in TOOLS:
            p.error(f"unknown tool {t!r}")

    info = machine()
    print(
        f"M/M/8, ρ = 0.8, ≈{args.requests:,} requests, repeat {args.repeat}; "
        f"{info.get('cpu', '?')}, {info['cpus']} CPUs, "
        f"load average {info['loadavg_at_start'][0]:.2f}; lbsim at {info['git']}"
    )
    if args.baseline is not None:
        tools.append("baseline")
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    cli_runs: list[dict[str, Any]] = []
    # interleave the tools so that background load is spread evenly over them
    for k in range(args.repeat):
        for t in tools:
            if t == "baseline":
                kind, tree = "lbsim", args.baseline
            else:
                kind, tree = t, (args.tree if t == "lbsim" else None)
            r = run_child(
                kind, "--requests", str(args.requests), "--seed", str(args.seed + k), tree=tree
            )
            runs[t].append(r)
            print(
                f"  [{k + 1}/{args.repeat}] {t:6s} {r['requests']:>11,d} req  "
                f"{r['wall_s']:7.2f} s  {r['rate']:>9,.0f} req/s  "
                f"{r['peak_rss_mb']:7.1f} MB  W = {r['mean_sojourn']:.4f}",
                flush=True,
            )
        if args.whole_process:
            r = run_cli(args.requests, args.seed + k, args.tree)
            cli_runs.append(r)
            print(
                f"  [{k + 1}/{args.repeat}] lbsim run (CLI, whole process) "
                f"{r['requests']:>11,d} req {r['process_wall_s']:7.2f} s "
                f"{r['process_rate']:>9,.0f} req/s {r['peak_rss_mb']:7.1f} MB",
                flush=True,
            )
    summary = {t: summarise(rs) for t, rs in runs.items()}

    print()
    head = (
        f"{'tool':6s} {'requests':>11s} {'wall s':>8s} {'req/s best':>11s} {'req/s med':>10s} "
        f"{'peak RSS MB':>11s} {'import MB':>9s} {'mean W':>8s} {'theory':>7s}"
    )
    print(head)
    print("-" * len(head))
    for t, s in summary.items():
        print(
            f"{t:6s} {s['requests']:>11,d} {s['wall_median_s']:>8.2f} {s['rate_best']:>11,.0f} "
            f"{s['rate_median']:>10,.0f} {s['peak_rss_mb']:>11.1f} "
            f"{s['rss_after_import_mb']:>9.1f} {s['mean_sojourn']:>8.4f} {THEORY_SOJOURN:>7.4f}"
        )
    print(
        "(wall s and mean W: median over repeats; peak RSS: the largest; "
        "import MB: ru_maxrss after the imports, before simulating)"
    )
    for t, rs in runs.items():
        if rs and "build" in rs[0]:
            print(f"{t}: {rs[0]['build']}")

    ratios: dict[str, Any] = {}
    targets: dict[str, Any] = {}
    print()
    if "lbsim" in summary and "ciw" in summary:
        lb, cw = summary["lbsim"], summary["ciw"]
        ratios["lbsim/ciw"] = {
            "median": lb["rate_median"] / cw["rate_median"],
            "best": lb["rate_best"] / cw["rate_best"],
        }
        ok = ratios["lbsim/ciw"]["median"] >= 2.0
        targets["lbsim >= 2x ciw"] = ok
        print(
            f"lbsim/ciw   speed ratio {ratios['lbsim/ciw']['median']:.2f} (median), "
            f"{ratios['lbsim/ciw']['best']:.2f} (best)   target ≥ 2.00: {'MET' if ok else 'MISSED'}"
        )
    if "lbsim" in summary and "simpy" in summary:
        lb, sp = summary["lbsim"], summary["simpy"]
        ratios["simpy/lbsim"] = {
            "median": sp["rate_median"] / lb["rate_median"],
            "best": sp["rate_best"] / lb["rate_best"],
        }
        ok = ratios["simpy/lbsim"]["median"] <= 2.0
        targets["lbsim within 2x of simpy"] = ok
        print(
            f"simpy/lbsim speed ratio {ratios['simpy/lbsim']['median']:.2f} (median), "
            f"{ratios['simpy/lbsim']['best']:.2f} (best)   "
            f"target ≤ 2.00: {'MET' if ok else 'MISSED'}"
        )
    if "lbsim" in summary:
        cpu_line = ", ".join(f"{t} {summary[t]['rate_cpu_median']:,.0f}" for t in summary)
        print(f"req/s by CPU time (median): {cpu_line}")
        for t in summary:
            if t != "lbsim":
                r = summary["lbsim"]["rate_cpu_median"] / summary[t]["rate_cpu_median"]
                ratios[f"lbsim/{t} (cpu time)"] = r
                print(f"  lbsim/{t} by CPU time: {r:.2f}")
    if "lbsim" in summary and "baseline" in summary:
        ratios["lbsim/baseline"] = (
            summary["lbsim"]["rate_median"] / summary["baseline"]["rate_median"]
        )
        print(f"lbsim/baseline speed ratio {ratios['lbsim/baseline']:.2f} (median, in-process)")
    if "lbsim" in summary and "simpy" in summary:
        ok = ratios["simpy/lbsim"]["median"] <= 0.5
        targets["lbsim >= 2x simpy (in-process)"] = ok
        print(
            f"lbsim/simpy speed ratio {1 / ratios['simpy/lbsim']['median']:.2f} (median)   "
            f"target ≥ 2.00: {'MET' if ok else 'MISSED'}"
        )
    if cli_runs:
        cli_rate = statistics.median(r["process_rate"] for r in cli_runs)
        summary["lbsim_cli"] = {
            "rate_median": cli_rate,
            "process_wall_median_s": statistics.median(r["process_wall_s"] for r in cli_runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in cli_runs),
            "runs": cli_runs,
        }
        cli_cpu = statistics.median(r["process_rate_cpu"] for r in cli_runs)
        print(
            f"lbsim run (CLI) whole process: {cli_rate:,.0f} req/s (median), "
            f"{cli_cpu:,.0f} by CPU time"
        )
        for tool in ("ciw", "simpy"):
            if tool in summary:
                other_cpu = statistics.median(
                    r["requests"] / r["process_cpu_s"] for r in summary[tool]["runs"]
                )
                ratios[f"lbsim_cli/{tool}_process (cpu time)"] = cli_cpu / other_cpu
                print(f"  whole process by CPU time: lbsim CLI / {tool} {cli_cpu / other_cpu:.2f}")
        for tool in ("ciw", "simpy"):
            if tool not in summary:
                continue
            other = statistics.median(
                r["requests"] / r["process_wall_s"] for r in summary[tool]["runs"]
            )
            ratio = cli_rate / other
            ratios[f"lbsim_cli/{tool}_process"] = ratio
            line = f"whole process: lbsim CLI / {tool} {ratio:.2f} (median)"
            if tool == "ciw":
                ok = ratio >= 3.0
                targets["lbsim CLI >= 3x ciw (whole process)"] = ok
                line += f"   target ≥ 3.00: {'MET' if ok else 'MISSED'}"
            print(line)
    if "lbsim" in summary:
        peak = summary["lbsim"]["peak_rss_mb"]
        ok = peak < RSS_TARGET_MB
        targets["lbsim peak RSS < 150 MB"] = ok
        print(
            f"lbsim peak RSS {peak:.1f} MB   target < {RSS_TARGET_MB:.0f} MB: "
            f"{'MET' if ok else 'MISSED'} ({peak - RSS_TARGET_MB:+.1f} MB)"
        )

    if args.json:
        doc = {
            "benchmark": "mm8_compare",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": info,
            "requests": args.requests,
            "repeat": args.repeat,
            "theory_mean_sojourn": THEORY_SOJOURN,
            "results": summary,
            "ratios": ratios,
            "targets": targets,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


def run_cli(requests: int, seed: int, tree: Path | None = None) -> dict[str, Any]:
    """``lbsim run`` on the M/M/8 through the CLI, timed as a whole process
    (interpreter start, imports, scenario loading, simulation, JSON written);
    ``tree``: lbsim imported from that directory."""
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "mm8.yaml"
        scenario.write_text(mm8_yaml(horizon_for(requests), seed))
        out = Path(tmp) / "out.json"
        cmd = [sys.executable, "-m", "lbsim", "run", str(scenario), "-q", "--json", str(out)]
        env = dict(os.environ, PYTHONHASHSEED="0")
        if tree is not None:
            env["PYTHONPATH"] = str(tree.resolve())
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tmp if tree is not None else REPO, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
        doc = json.loads(out.read_text())
    completed = int(doc["requests"]["completed"])
    return {
        "requests": completed,
        "process_wall_s": wall,
        "process_rate": completed / wall,
        "process_cpu_s": usage.ru_utime + usage.ru_stime,
        "process_rate_cpu": completed / (usage.ru_utime + usage.ru_stime),
        "peak_rss_mb": usage.ru_maxrss / 1024.0,
        "mean_sojourn": doc["latency"]["mean"],
    }


if __name__ == "__main__":
    sys.exit(main())
