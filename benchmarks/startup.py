"""Start-up time of the ``lbsim`` command, whole process, against a bare interpreter.

Each command runs ``--repeat`` times, interleaved with the others so that the
machine's drift spreads evenly; the table shows the median and best wall
time and the ratio of the median to ``python -c pass`` measured in the same
run. ``lbsim`` is the console script next to this interpreter (not a pyenv
shim, which adds its own ≈50 ms of bash).

    python benchmarks/startup.py                          # 15 runs each
    python benchmarks/startup.py --repeat 30 --json benchmarks/results/startup.json
    python benchmarks/startup.py --baseline /tmp/old      # also an older source tree

``--baseline DIR`` runs the same commands as ``python -m lbsim`` with
``PYTHONPATH=DIR`` (e.g. ``git archive OLD | tar -x -C DIR``), in the same loop.

Targets (issue 13): ``lbsim --help`` < 0.25 s and ``lbsim check
scenarios/mixed.yaml`` < 0.5 s on a quiet machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _harness import REPO, machine

TARGETS = {"lbsim --help": 0.25, "lbsim check mixed.yaml": 0.5}


Command = tuple[list[str], dict[str, str] | None, Path]


def commands(baseline: Path | None) -> dict[str, Command]:
    py = sys.executable
    script = Path(py).with_name("lbsim")
    lbsim = [str(script)] if script.exists() else [shutil.which("lbsim") or "lbsim"]
    mixed = str(REPO / "scenarios" / "mixed.yaml")
    cmds: dict[str, Command] = {
        "python -c pass": ([py, "-c", "pass"], None, REPO),
        "python -c 'import lbsim'": ([py, "-c", "import lbsim"], None, REPO),
        "python -c 'import lbsim.cli.app'": ([py, "-c", "import lbsim.cli.app"], None, REPO),
        "lbsim --help": ([*lbsim, "--help"], None, REPO),
        "lbsim --version": ([*lbsim, "--version"], None, REPO),
        "lbsim check mixed.yaml": ([*lbsim, "check", mixed], None, REPO),
    }
    if baseline is not None:
        # run from inside the old tree: -c and -m put the working directory first on sys.path
        base = baseline.resolve()
        env = dict(os.environ, PYTHONPATH=str(base))
        cmds["baseline: import lbsim"] = ([py, "-c", "import lbsim"], env, base)
        cmds["baseline: -m lbsim --help"] = ([py, "-m", "lbsim", "--help"], env, base)
        cmds["baseline: -m lbsim check"] = ([py, "-m", "lbsim", "check", mixed], env, base)
        cmds["now: -m lbsim --help"] = ([py, "-m", "lbsim", "--help"], None, REPO)
    return cmds


def once(cmd: list[str], env: dict[str, str] | None, cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--baseline", type=Path, help="an older source tree to time alongside")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    cmds = commands(args.baseline)
    info = machine()
    print(
        f"start-up, {args.repeat} runs each, interleaved; {info['cpus']} CPUs, load average "
        f"{info['loadavg_at_start'][0]:.2f}; lbsim at {info['git']}"
    )
    times: dict[str, list[float]] = {name: [] for name in cmds}
    for cmd, env, cwd in cmds.values():  # warm the file cache
        once(cmd, env, cwd)
    for _ in range(args.repeat):
        for name, (cmd, env, cwd) in cmds.items():
            times[name].append(once(cmd, env, cwd))
    bare = statistics.median(times["python -c pass"])
    print(f"\n{'command':34s} {'median s':>9s} {'best s':>8s} {'× bare python':>14s}  target")
    rows = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        target = TARGETS.get(name)
        verdict = "" if target is None else f"< {target} s: {'MET' if med < target else 'MISSED'}"
        print(f"{name:34s} {med:9.3f} {min(ts):8.3f} {med / bare:14.1f}  {verdict}")
        rows[name] = {"median_s": med, "best_s": min(ts), "ratio_to_bare": med / bare, "runs": ts}
    if args.json:
        doc = {
            "benchmark": "startup",
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "machine": info,
            "results": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
