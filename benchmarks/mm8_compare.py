"""M/M/8 at ρ = 0.8: lbsim vs Ciw 3.2.7 vs a minimal hand-written SimPy model.

Each run is a fresh Python process (so peak RSS is that tool's alone). The
queue: Poisson arrivals at 6.4/s, exponential service of mean 1 s, 8 FCFS
servers, simulated for N / 6.4 s (≈ N customers). Wall time covers building
and running the model and collecting its results; interpreter start-up and
imports are reported separately.

    python benchmarks/mm8_compare.py                       # 1M requests, each tool once
    python benchmarks/mm8_compare.py --repeat 3 --json out.json
    python benchmarks/mm8_compare.py --requests 100000 --tools lbsim,simpy

Targets (issue): lbsim ≥ 2× Ciw's requests/s, within 2× of SimPy's
(SimPy/lbsim ≤ 2), and peak RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from _harness import THEORY_SOJOURN, machine, run_child, summarise

TOOLS = ("lbsim", "ciw", "simpy")
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
    runs: dict[str, list[dict[str, Any]]] = {t: [] for t in tools}
    # interleave the tools so that background load is spread evenly over them
    for k in range(args.repeat):
        for t in tools:
            r = run_child(t, "--requests", str(args.requests), "--seed", str(args.seed + k))
            runs[t].append(r)
            print(
                f"  [{k + 1}/{args.repeat}] {t:6s} {r['requests']:>11,d} req  "
                f"{r['wall_s']:7.2f} s  {r['rate']:>9,.0f} req/s  "
                f"{r['peak_rss_mb']:7.1f} MB  W = {r['mean_sojourn']:.4f}",
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


if __name__ == "__main__":
    sys.exit(main())
