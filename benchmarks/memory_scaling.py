"""lbsim's peak RSS against run length: the M/M/8 (ρ = 0.8) at 100k, 1M and 10M requests.

Each size runs in a fresh Python process; peak RSS is that child's ru_maxrss
(from wait4). psutil also samples the child's RSS every 0.25 s, so the table
shows the RSS a quarter, half and three quarters of the way through the
simulation (after the imports) too: flat numbers mean memory does not grow with simulated time.

    python benchmarks/memory_scaling.py                     # 100k, 1M, 10M (10M: a few minutes)
    python benchmarks/memory_scaling.py --sizes 1000000,10000000 --json mem.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from _harness import THEORY_SOJOURN, machine, run_child

RSS_TARGET_MB = 150.0


def rss_at(samples: list[tuple[float, float]], start: float, fraction: float) -> float:
    """The sampled RSS nearest to ``fraction`` of the way through the simulation
    (from ``start``, when the child finished importing, to its last sample)."""
    if not samples:
        return float("nan")
    end = samples[-1][0]
    at = start + fraction * (end - start)
    return min(samples, key=lambda s: abs(s[0] - at))[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="100000,1000000,10000000", help="requests, comma-separated")
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    args = p.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]

    info = machine()
    print(
        f"lbsim M/M/8 memory scaling; {info['cpus']} CPUs, load average "
        f"{info['loadavg_at_start'][0]:.2f}; lbsim at {info['git']}"
    )
    head = (
        f"{'requests':>11s} {'wall s':>8s} {'req/s':>9s} {'peak RSS MB':>11s} {'import MB':>9s} "
        f"{'RSS@25%':>8s} {'RSS@50%':>8s} {'RSS@75%':>8s} {'mean W':>7s}"
    )
    print(head)
    print("-" * len(head))
    rows: list[dict[str, Any]] = []
    for n in sizes:
        r = run_child("lbsim", "--requests", str(n), sample=True)
        samples = r.pop("rss_samples")
        start = r["sim_started_at_s"] or 0.0
        r["rss_quartiles_mb"] = [rss_at(samples, start, f) for f in (0.25, 0.5, 0.75)]
        r["rss_samples_n"] = len(samples)
        rows.append(r)
        q = r["rss_quartiles_mb"]
        print(
            f"{r['requests']:>11,d} {r['wall_s']:>8.2f} {r['rate']:>9,.0f} "
            f"{r['peak_rss_mb']:>11.1f} "
            f"{r['rss_after_import_mb']:>9.1f} {q[0]:>8.1f} {q[1]:>8.1f} {q[2]:>8.1f} "
            f"{r['mean_sojourn']:>7.4f}",
            flush=True,
        )
    print(f"(theory mean W {THEORY_SOJOURN:.4f}; import MB: ru_maxrss after `import lbsim`)")
    peaks = [r["peak_rss_mb"] for r in rows]
    worst = max(peaks)
    print(
        f"\npeak RSS spread over sizes: {max(peaks) - min(peaks):.1f} MB; "
        f"largest {worst:.1f} MB, target < {RSS_TARGET_MB:.0f} MB: "
        f"{'MET' if worst < RSS_TARGET_MB else 'MISSED'}"
    )
    if args.json:
        doc = {
            "benchmark": "memory_scaling",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": info,
            "theory_mean_sojourn": THEORY_SOJOURN,
            "results": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
