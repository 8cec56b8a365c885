"""cProfile of lbsim on the M/M/8 (ρ = 0.8): the top functions by own time.

    python benchmarks/profile_mm8.py                    # ≈100k requests, top 20 by tottime
    python benchmarks/profile_mm8.py --requests 200000 --top 30 --sort cumulative
    python benchmarks/profile_mm8.py --out mm8.prof     # keep the raw profile (snakeviz, pstats)
    python benchmarks/profile_mm8.py --scenario scenarios/mixed.yaml --duration 1800

Only the simulation is profiled (not the imports). cProfile roughly doubles
the run time and inflates small functions most; use it for shares, not speed.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

from _harness import REPO, horizon_for, mm8_yaml


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=100_000)
    p.add_argument("--top", type=int, default=20)
    p.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative, ...)")
    p.add_argument("--out", type=Path, help="also dump the raw profile here")
    p.add_argument("--scenario", type=Path, help="profile this scenario file instead of the M/M/8")
    p.add_argument("--duration", type=float, help="with --scenario: override its duration")
    args = p.parse_args(argv)

    sys.path.insert(0, str(REPO))
    import lbsim

    if args.scenario:
        scenario = lbsim.load_scenario(args.scenario, duration=args.duration)
    else:
        scenario = lbsim.loads_scenario(mm8_yaml(horizon_for(args.requests)))
    t0 = time.perf_counter()
    lbsim.simulate(scenario)
    plain = time.perf_counter() - t0

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    result = lbsim.simulate(scenario)
    prof.disable()
    profiled = time.perf_counter() - t0
    n = int(result.value("requests.arrived"))
    print(
        f"{n:,} requests (measured arrivals): {plain:.2f} s unprofiled ({n / plain:,.0f} req/s), "
        f"{profiled:.2f} s under cProfile"
    )
    stats = pstats.Stats(prof)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)
    if args.out:
        prof.dump_stats(str(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
