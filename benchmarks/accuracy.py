"""Print the theory-check table: simulated value (mean ± 95 % CI over
replications) next to the closed form, for the app tier and the database tier.

    python benchmarks/accuracy.py [--reps 10] [--scale 1.0]

The same checks run (shorter) in tests/test_theory.py and tests/test_database.py.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' helpers

import lbsim
from tests.support import queue, scenario
from tests.test_database import (
    db_queue,
    erlang_c_wait,
    one_writer,
    stale_setup,
)
from tests.test_theory import en_m_1_time, supermarket_time

EXP1 = {"dist": "exponential", "mean": 1.0}


def checks(scale: float) -> list[tuple[str, dict[str, Any], str, float]]:
    d = lambda x: x * scale  # noqa: E731
    return [
        ("M/M/1 ρ=0.8", queue(0.8, EXP1, duration=d(20000)), "latency.mean", 5.0),
        (
            "M/M/2 ρ=0.8 (Erlang C)",
            queue(1.6, EXP1, workers=2, duration=d(10000)),
            "latency.mean",
            1 + erlang_c_wait(2, 0.8),
        ),
        (
            "M/M/4 ρ=0.8 (Erlang C)",
            queue(3.2, EXP1, workers=4, duration=d(10000)),
            "latency.mean",
            1 + erlang_c_wait(4, 0.8),
        ),
        (
            "M/M/8 ρ=0.8 (Erlang C)",
            queue(6.4, EXP1, workers=8, duration=d(10000)),
            "latency.mean",
            1 + erlang_c_wait(8, 0.8),
        ),
        (
            "M/M/8 ρ=0.9 (Erlang C)",
            queue(7.2, EXP1, workers=8, duration=d(20000)),
            "latency.mean",
            1 + erlang_c_wait(8, 0.9),
        ),
        ("M/D/1 ρ=0.8 (P-K)", queue(0.8, 1.0, duration=d(20000)), "latency.mean", 3.0),
        (
            "M/G/1 c²=4 ρ=0.8 (P-K)",
            queue(0.8, {"dist": "gamma", "mean": 1.0, "cv": 2.0}, duration=d(40000)),
            "latency.mean",
            11.0,
        ),
        (
            "M/G/1-PS deterministic",
            queue(0.8, 1.0, workers=100000, cores=1, duration=d(20000)),
            "latency.mean",
            5.0,
        ),
        (
            "M/G/1-PS lognormal cv 1.5",
            queue(
                0.8,
                {"dist": "lognormal", "mean": 1.0, "cv": 1.5},
                workers=100000,
                cores=1,
                duration=d(20000),
            ),
            "latency.mean",
            5.0,
        ),
        (
            "random split, 4 × M/M/1 λ=0.7",
            queue(2.8, EXP1, nodes=4, policy="random", duration=d(10000)),
            "latency.mean",
            1 / 0.3,
        ),
        (
            "round robin 2 servers λ=0.7 (E2/M/1)",
            queue(1.4, EXP1, nodes=2, duration=d(10000)),
            "latency.mean",
            en_m_1_time(2, 0.7),
        ),
        (
            "round robin 2 servers λ=0.8 (E2/M/1)",
            queue(1.6, EXP1, nodes=2, duration=d(10000)),
            "latency.mean",
            en_m_1_time(2, 0.8),
        ),
        (
            "power of 2, n=100, λ=0.9 (n→∞ limit)",
            queue(90, EXP1, nodes=100, policy="power_of_d", duration=d(1000), warmup=100),
            "latency.mean",
            supermarket_time(0.9),
        ),
        (
            "DB server, 1 thread ρ=0.7 (M/M/1)",
            db_queue(0.7, 1, duration=d(10000)),
            "latency.mean",
            1 / 0.3,
        ),
        (
            "DB server, 3 threads ρ=0.8 (M/M/3)",
            db_queue(2.4, 3, duration=d(10000)),
            "latency.mean",
            1 + erlang_c_wait(3, 0.8),
        ),
        (
            "Galera 1 applier s=0.02, λ=100: commits/s → 1/s",
            one_writer(100.0, 0.02, 0.5),
            "galera.nodes.db1.wsrep_local_commits",
            50.0 * 300,
        ),
        (
            "Galera 1 applier s=0.02, λ=100: FC paused → 1 − 1/(λs)",
            one_writer(100.0, 0.02, 0.5),
            "galera.flow_control.paused",
            0.5,
        ),
        (
            "Galera 1 applier s=0.01, λ=150: FC paused → 1 − 1/(λs)",
            one_writer(150.0, 0.01, 0.5),
            "galera.flow_control.paused",
            1 - 1 / 1.5,
        ),
        (
            "Galera stale reads, low load: λ_w·a/2",
            stale_setup(False),
            "galera.stale_read_fraction",
            0.05,
        ),
        ("Galera stale reads with sync_wait", stale_setup(True), "galera.stale_read_fraction", 0.0),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply run lengths")
    args = ap.parse_args()
    print(f"{'check':58} {'simulated (95 % CI)':>24} {'theory':>9} {'error':>8}  in CI?")
    started = time.perf_counter()
    for name, data, key, theory in checks(args.scale):
        reps = args.reps if "Galera" not in name else min(args.reps, 4)
        result = lbsim.simulate(scenario(data), replications=reps, jobs=2)
        mean, half = result.value(key), result.ci95(key)
        err = (mean - theory) / theory if theory else mean - theory
        inside = "yes" if abs(mean - theory) <= half or math.isclose(mean, theory) else "NO"
        sim = f"{mean:.4f} ± {half:.4f}"
        print(f"{name:58} {sim:>24} {theory:9.4f} {err:+8.2%}  {inside}", flush=True)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
