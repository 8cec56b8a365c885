"""lbsim speed and peak RSS on scenarios/mixed.yaml: as shipped, and with the
duration stretched to ≈ N requests (default 1M). Each run is a fresh process.

"requests" counts every arrival, warm-up included (the figure the simulator
worked through); requests.arrived in lbsim's own output counts only the
measured cohort.

    python benchmarks/mixed.py                 # as shipped + ≈1M requests
    python benchmarks/mixed.py --repeat 3 --json mixed.json
    python benchmarks/mixed.py --requests 256000 --repeat 5 --long-only --simpy --baseline /tmp/old

``--simpy`` also runs the minimal hand-written SimPy M/M/8 (``_harness.py
simpy``) with as many requests as the long run, interleaved, and prints
lbsim's rate on mixed.yaml as a fraction of it (issue 13's target: ≥ 0.30).
``--baseline DIR`` runs lbsim from an older source tree in the same loop.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

from _harness import REPO, machine, run_child, summarise

SCENARIO = REPO / "scenarios" / "mixed.yaml"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--scenario", type=Path, default=SCENARIO)
    p.add_argument("--requests", type=int, default=1_000_000, help="target for the long run")
    p.add_argument(
        "--duration",
        type=float,
        help="measured duration of the long run (s); default: enough for --requests",
    )
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--json", type=Path, help="write the results here as JSON")
    p.add_argument("--long-only", action="store_true", help="skip the as-shipped run")
    p.add_argument("--simpy", action="store_true", help="also the minimal SimPy M/M/8")
    p.add_argument("--baseline", type=Path, help="also lbsim from this source tree")
    p.add_argument(
        "--tree",
        type=Path,
        help="import lbsim from this directory instead of the installed one (a source tree, "
        "or an unpacked LBSIM_MYPYC=1 wheel: the compiled build)",
    )
    args = p.parse_args(argv)

    sys.path.insert(0, str(REPO))
    import lbsim  # only to read the scenario's rate, duration and warm-up

    sc = lbsim.load_scenario(args.scenario)
    rate = sc.workload.open.mean_rate(sc.horizon) if sc.workload.open is not None else None
    if args.duration is not None:
        long_duration = args.duration
    elif rate:
        long_duration = round(args.requests / rate - sc.warmup)
    else:
        p.error("the scenario has no open-loop rate: give --duration")

    info = machine()
    print(
        f"lbsim on {args.scenario.name}; {info['cpus']} CPUs, load average "
        f"{info['loadavg_at_start'][0]:.2f}; lbsim at {info['git']}"
    )
    cases = [("as shipped", sc.duration), ("long", long_duration)]
    if args.long_only:
        cases = cases[1:]
    if args.baseline is not None:
        cases.append(("baseline", long_duration))
    if args.simpy:
        cases.append(("simpy M/M/8", long_duration))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in cases}
    for k in range(args.repeat):
        for name, duration in cases:
            if name == "simpy M/M/8":
                r = run_child("simpy", "--requests", str(args.requests), "--seed", str(1 + k))
                r["duration"] = duration
                runs[name].append(r)
                print(
                    f"  [{k + 1}/{args.repeat}] {name:10s} {r['requests']:>10,d} req "
                    f"{r['wall_s']:7.2f} s {r['rate']:>8,.0f} req/s",
                    flush=True,
                )
                continue
            tree = args.baseline if name == "baseline" else args.tree
            r = run_child(
                "lbsim", "--scenario", str(args.scenario), "--duration", repr(duration), tree=tree
            )
            r["duration"] = duration
            runs[name].append(r)
            print(
                f"  [{k + 1}/{args.repeat}] {name:10s} duration {duration:>8g} s: "
                f"{r['requests']:>10,d} req {r['wall_s']:7.2f} s {r['rate']:>8,.0f} req/s "
                f"{r['peak_rss_mb']:6.1f} MB",
                flush=True,
            )

    print()
    head = (
        f"{'case':10s} {'duration s':>10s} {'requests':>10s} {'wall s':>8s} {'req/s best':>10s} "
        f"{'req/s med':>10s} {'peak RSS MB':>11s} {'import MB':>9s} {'latency mean':>12s}"
    )
    print(head)
    print("-" * len(head))
    summary = {}
    for name, duration in cases:
        s = summarise(runs[name])
        s["duration"] = duration
        summary[name] = s
        print(
            f"{name:10s} {duration:>10g} {s['requests']:>10,d} {s['wall_median_s']:>8.2f} "
            f"{s['rate_best']:>10,.0f} {s['rate_median']:>10,.0f} {s['peak_rss_mb']:>11.1f} "
            f"{s['rss_after_import_mb']:>9.1f} {s['mean_sojourn']:>12.4f}"
        )
    for name, _ in cases:
        if runs[name] and "build" in runs[name][0]:
            print(f"{name}: {runs[name][0]['build']}")
    ratios: dict[str, float] = {}
    if "simpy M/M/8" in summary:
        ratio = summary["long"]["rate_median"] / summary["simpy M/M/8"]["rate_median"]
        ratios["mixed/simpy_mm8"] = ratio
        cpu = summary["long"]["rate_cpu_median"] / summary["simpy M/M/8"]["rate_cpu_median"]
        ratios["mixed/simpy_mm8 (cpu time)"] = cpu
        print(
            f"\nmixed.yaml / minimal SimPy M/M/8 requests/s: {ratio:.3f} (median wall), "
            f"{cpu:.3f} (CPU time)   target ≥ 0.30: {'MET' if ratio >= 0.30 else 'MISSED'}"
        )
    if "baseline" in summary:
        ratio = summary["long"]["rate_median"] / summary["baseline"]["rate_median"]
        ratios["lbsim/baseline"] = ratio
        cpu = summary["long"]["rate_cpu_median"] / summary["baseline"]["rate_cpu_median"]
        ratios["lbsim/baseline (cpu time)"] = cpu
        print(f"lbsim / baseline tree on mixed.yaml: {ratio:.2f}× (median wall), {cpu:.2f}× (CPU)")
    if args.json:
        doc = {
            "benchmark": "mixed",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": info,
            "scenario": str(args.scenario),
            "results": summary,
            "ratios": ratios,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
