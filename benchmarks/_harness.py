"""Shared machinery of the benchmark scripts: run one measurement in a fresh
Python process and collect its figures and its own peak RSS.

Every measurement runs in a child started as ``python _harness.py <kind> ...``;
the child imports only what its tool needs, times the simulation, and prints
one JSON line. The parent reaps the child with :func:`os.wait4`, whose
``ru_maxrss`` is that one child's peak resident set size (Linux: KiB). It is
the same number ``resource.getrusage(RUSAGE_CHILDREN)`` would give for a
single child, but per child, so several measurements can run from one parent.

Child kinds (also usable by hand, e.g. ``python benchmarks/_harness.py ciw --requests 10000``):

- ``lbsim``  the M/M/8 scenario below, or ``--scenario FILE [--duration S]``
- ``ciw``    Ciw on the same M/M/8 queue
- ``simpy``  a minimal hand-written SimPy model of the same queue
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- the queue

ARRIVAL_RATE = 6.4  # λ (1/s)
SERVICE_MEAN = 1.0  # 1/μ (s)
SERVERS = 8  # c
SEED = 1

REPO = Path(__file__).resolve().parent.parent
START_MARK = "#simulation-starts"


def erlang_c_sojourn(
    lam: float = ARRIVAL_RATE, mean: float = SERVICE_MEAN, c: int = SERVERS
) -> float:
    """Mean time in system of M/M/c (Erlang C wait plus the service mean)."""
    a = lam * mean  # offered load in Erlangs
    rho = a / c
    term = 1.0
    total = 1.0  # sum_{k<c} a^k / k!
    for k in range(1, c):
        term *= a / k
        total += term
    top = term * a / c / (1.0 - rho)  # a^c / c! / (1 - rho)
    p_wait = top / (total + top)
    return p_wait * mean / (c - a) + mean


THEORY_SOJOURN = erlang_c_sojourn()


def horizon_for(requests: int) -> float:
    """Simulated seconds that give ``requests`` arrivals on average."""
    return requests / ARRIVAL_RATE


def mm8_yaml(duration: float, seed: int = SEED) -> str:
    return f"""
name: mm8
seed: {seed}
duration: {duration!r}
workload:
  open: {{rate: {ARRIVAL_RATE}}}
  classes: [{{name: job, cpu: {{dist: exponential, mean: {SERVICE_MEAN}}}}}]
app: {{nodes: 1, workers: {SERVERS}, cores: {SERVERS}, backlog: 100000000}}
"""


# --------------------------------------------------------------------------- children


def _mark_start() -> None:
    """Tell the parent (sampling RSS) that the imports are done and the simulation starts."""
    print(START_MARK, flush=True)


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_lbsim(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    import lbsim

    import_s = time.perf_counter() - t0
    rss_import = _maxrss_mb()
    _mark_start()
    t1 = time.perf_counter()
    c1 = time.process_time()
    if args.scenario:
        scenario = lbsim.load_scenario(args.scenario, duration=args.duration)
    else:
        scenario = lbsim.loads_scenario(mm8_yaml(horizon_for(args.requests), args.seed))
    result = lbsim.simulate(scenario)
    wall = time.perf_counter() - t1
    cpu = time.process_time() - c1
    rows = result.timeseries
    # every arrival, warm-up included (requests.arrived counts the measured cohort only)
    simulated = 0.0
    last = 0.0
    for row in rows:
        simulated += row["arrival_rate"] * (row["time"] - last)
        last = row["time"]
    try:
        from lbsim.build import describe
    except ImportError:  # a tree from before the compiled build
        build = "pure Python"
    else:
        build = describe()
    return {
        "build": build,
        # M/M/8: completions, as counted for Ciw and SimPy; a scenario file: every arrival
        "requests": round(simulated) if args.scenario else int(result.value("requests.completed")),
        "arrivals": round(simulated),
        "arrived": result.value("requests.arrived"),
        "completed": result.value("requests.completed"),
        "failed": result.value("requests.failed.total"),
        "mean_sojourn": result.value("latency.mean"),
        "p99": result.value("latency.p99"),
        "simulated_s": scenario.horizon,
        "wall_s": wall,
        "cpu_s": cpu,
        "import_s": import_s,
        "rss_after_import_mb": rss_import,
    }


def child_ciw(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    import ciw

    import_s = time.perf_counter() - t0
    rss_import = _maxrss_mb()
    _mark_start()
    t1 = time.perf_counter()
    c1 = time.process_time()
    ciw.seed(args.seed)
    network = ciw.create_network(
        arrival_distributions=[ciw.dists.Exponential(ARRIVAL_RATE)],
        service_distributions=[ciw.dists.Exponential(1.0 / SERVICE_MEAN)],
        number_of_servers=[SERVERS],
    )
    sim = ciw.Simulation(network)
    sim.simulate_until_max_time(horizon_for(args.requests))
    records = sim.get_all_records()
    n = 0
    total = 0.0
    for rec in records:
        if rec.record_type == "service":
            n += 1
            total += rec.exit_date - rec.arrival_date
    wall = time.perf_counter() - t1
    cpu = time.process_time() - c1
    return {
        "requests": n,
        "completed": n,
        "mean_sojourn": total / n if n else float("nan"),
        "simulated_s": horizon_for(args.requests),
        "wall_s": wall,
        "cpu_s": cpu,
        "import_s": import_s,
        "rss_after_import_mb": rss_import,
    }


def child_simpy(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    import random

    import simpy

    import_s = time.perf_counter() - t0
    rss_import = _maxrss_mb()
    _mark_start()
    t1 = time.perf_counter()
    c1 = time.process_time()
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=SERVERS)
    arrivals = random.Random(args.seed)
    services = random.Random(args.seed + 1)
    lam, mu = ARRIVAL_RATE, 1.0 / SERVICE_MEAN
    stats = [0, 0.0]  # completed, total time in system

    def customer(env: simpy.Environment, arrived: float) -> Any:
        with servers.request() as req:
            yield req
            yield env.timeout(services.expovariate(mu))
        stats[0] += 1
        stats[1] += env.now - arrived

    def source(env: simpy.Environment) -> Any:
        while True:
            yield env.timeout(arrivals.expovariate(lam))
            env.process(customer(env, env.now))

    env.process(source(env))
    env.run(until=horizon_for(args.requests))
    wall = time.perf_counter() - t1
    cpu = time.process_time() - c1
    n, total = stats
    return {
        "requests": n,
        "completed": n,
        "mean_sojourn": total / n if n else float("nan"),
        "simulated_s": horizon_for(args.requests),
        "wall_s": wall,
        "cpu_s": cpu,
        "import_s": import_s,
        "rss_after_import_mb": rss_import,
    }


CHILDREN = {"lbsim": child_lbsim, "ciw": child_ciw, "simpy": child_simpy}


def child_main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description="one benchmark measurement (run in a fresh process)")
    p.add_argument("kind", choices=sorted(CHILDREN))
    p.add_argument("--requests", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--scenario", help="lbsim only: a scenario file instead of the M/M/8")
    p.add_argument("--duration", type=float, help="lbsim --scenario only: override duration")
    args = p.parse_args(argv)
    out = CHILDREN[args.kind](args)
    out["tool"] = args.kind
    out["self_maxrss_mb"] = _maxrss_mb()
    print(json.dumps(out), flush=True)


# --------------------------------------------------------------------------- parent side


def _sample_rss(
    pid: int, t0: float, samples: list[tuple[float, float]], stop: threading.Event
) -> None:
    try:
        import psutil

        proc = psutil.Process(pid)
    except Exception:  # psutil missing or the child already gone
        return
    while not stop.is_set():
        try:
            rss = proc.memory_info().rss
        except Exception:
            return
        if rss > 0:
            samples.append((time.perf_counter() - t0, rss / 2**20))
        stop.wait(0.25)


def run_child(
    kind: str, *extra: str, sample: bool = False, tree: Path | None = None
) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; returns its JSON plus
    ``peak_rss_mb`` (the child's ru_maxrss from wait4) and ``process_wall_s``.
    With ``sample``, also ``rss_samples``: (seconds since start, RSS MB) every 0.25 s
    via psutil, and ``sim_started_at_s``: when the child finished importing.
    ``tree``: import lbsim from that source tree instead (an older commit, to
    compare in one run)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), kind, *extra]
    env = dict(os.environ, PYTHONHASHSEED="0")
    if tree is not None:
        env["PYTHONPATH"] = str(tree.resolve())
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO, env=env)
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    sampler = None
    if sample:
        sampler = threading.Thread(
            target=_sample_rss, args=(proc.pid, started, samples, stop), daemon=True
        )
        sampler.start()
    assert proc.stdout is not None
    lines = []
    sim_started = None
    for line in proc.stdout:
        if line.startswith(START_MARK):
            sim_started = time.perf_counter() - started
        else:
            lines.append(line)
    stop.set()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if sampler is not None:
        sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["peak_rss_mb"] = usage.ru_maxrss / 1024.0
    result["process_wall_s"] = elapsed
    result["rate"] = result["requests"] / result["wall_s"]
    # CPU time (user + system) of the simulation: on a shared machine a process
    # waiting for a core loses wall time but not CPU time, so CPU-time rates
    # are the steadier comparison when other work runs
    result["rate_cpu"] = result["requests"] / result["cpu_s"]
    result["process_cpu_s"] = usage.ru_utime + usage.ru_stime
    if sample:
        result["rss_samples"] = samples
        result["sim_started_at_s"] = sim_started
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Best and median over repeats: rate by wall time, peak RSS as the maximum."""
    rates = [r["rate"] for r in runs]
    walls = [r["wall_s"] for r in runs]
    return {
        "repeats": len(runs),
        "requests": runs[0]["requests"],
        "rate_best": max(rates),
        "rate_median": statistics.median(rates),
        "rate_cpu_median": statistics.median(r["rate_cpu"] for r in runs),
        "wall_best_s": min(walls),
        "wall_median_s": statistics.median(walls),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "rss_after_import_mb": statistics.median(r["rss_after_import_mb"] for r in runs),
        "import_s": statistics.median(r["import_s"] for r in runs),
        "mean_sojourn": statistics.median(r["mean_sojourn"] for r in runs),
        "runs": runs,
    }


def git_state() -> str:
    """Commit and whether lbsim/ has uncommitted edits (others edit it concurrently)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "lbsim"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' + uncommitted lbsim/ edits' if dirty else ''}"


def machine() -> dict[str, Any]:
    import platform

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "git": git_state(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


if __name__ == "__main__":
    child_main(sys.argv[1:])
