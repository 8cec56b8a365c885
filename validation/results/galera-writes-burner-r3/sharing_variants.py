"""How the host's cores are shared, tried on this directory's replays.

Each replay's calibrated scenario is simulated again with the host's CPU
sharing replaced by one of these variants (an exact per-job engine patched
over ``lbsim.model.cpu`` for this analysis; the shipped model is untouched):

- ``pooled``: the shipped model's rule (the cores less the background, shared
  among the containers by water-filling, a container's jobs equally): a
  check of this engine, which must reproduce the shipped predictions;
- ``capped``: the same, but no job runs faster than ``1 - background /
  cores`` (a background that runs on every core in turn takes its share of
  each, so a thread never has a whole core);
- ``pinned-even``: each core its own run queue; a job starts on an idle core
  if there is one, else on the least loaded, and stays there; the background
  takes the same share of every core;
- ``pinned-fill``: the same with the background on as few cores as it fits.

Prints, per replay, the mean and p95 latency (measured / shipped / variant)
and php-fpm's and db1's wait for a core per request (the model's jobs'
elapsed less work, against the kernel's counters), and per level the mean
paired error. ``python sharing_variants.py [variant ...] [--levels 30,60]``
"""

from __future__ import annotations

import argparse
import collections
import json
from collections.abc import Callable
from heapq import heappush
from pathlib import Path
from typing import Any

import yaml
from simpy.events import NORMAL

import lbsim
from lbsim.model import cpu as cpumod

HERE = Path(__file__).resolve().parent
VARIANTS = ("pooled", "capped", "pinned-even", "pinned-fill")
WAIT: collections.defaultdict[str, float] = collections.defaultdict(float)


class Job:
    __slots__ = ("arg", "callback", "cancelled", "core", "cpu", "left", "rate", "t0", "work")

    def __init__(self, cpu: Any, core: int, work: float, callback: Callable[[Any], None], arg: Any):
        self.cpu, self.core, self.left, self.work = cpu, core, work, work
        self.callback, self.arg = callback, arg
        self.rate, self.cancelled, self.t0 = 0.0, False, cpu.env._now


class Sharing:
    """One host's jobs, each with its own rate, re-planned at every change."""

    def __init__(self, host: Any, variant: str):
        self.host, self.variant = host, variant
        self.k = round(host.cores)
        if variant == "pinned-fill":
            left, self.bg = host.background, []
            for _ in range(self.k):
                take = min(left, 0.95)
                self.bg.append(take)
                left -= take
        else:
            self.bg = [host.background / self.k] * self.k
        self.jobs: list[Job] = []
        self.t, self.gen, self.env = 0.0, 0, None

    def advance(self, now: float) -> None:
        dt = now - self.t
        if dt > 0:
            for j in self.jobs:
                j.left -= j.rate * dt
        self.t = now

    def place(self) -> int:
        n = [0] * self.k
        for j in self.jobs:
            n[j.core] += 1
        idle = [c for c in range(self.k) if n[c] == 0]
        if idle:
            return min(idle, key=lambda c: self.bg[c])
        return min(range(self.k), key=lambda c: n[c] + self.bg[c])

    def rates(self) -> None:
        groups: dict[Any, list[Job]] = collections.defaultdict(list)
        if self.variant in ("pooled", "capped"):
            for j in self.jobs:
                groups[j.cpu].append(j)
            cpus = list(groups)
            cap = 1.0 - self.host.background / self.k if self.variant == "capped" else 1.0
            demand = [min(len(groups[c]) * cap, c.cap) for c in cpus]
            for c, a in zip(cpus, _fill(demand, self.host.capacity), strict=True):
                for j in groups[c]:
                    j.rate = a / len(groups[c])
            return
        for j in self.jobs:
            groups[(j.core, j.cpu)].append(j)
        by_core: dict[int, list[Any]] = collections.defaultdict(list)
        for core, c in groups:
            by_core[core].append(c)
        for core, cs in by_core.items():
            for c, a in zip(cs, _fill([1.0] * len(cs), 1.0 - self.bg[core]), strict=True):
                for j in groups[(core, c)]:
                    j.rate = a / len(groups[(core, c)])

    def replan(self, now: float) -> None:
        self.rates()
        total: dict[Any, float] = collections.defaultdict(float)
        count: dict[Any, int] = collections.defaultdict(int)
        for j in self.jobs:
            total[j.cpu] += j.rate
            count[j.cpu] += 1
        for c in self.host.members:
            c.n = count.get(c, 0)
            a = total.get(c, 0.0)
            if a != c.alloc:
                c.busy.set(now, a)
                c.alloc = a
        self.host.busy.set(now, sum(total.values()) + self.host.background)
        self.gen += 1
        if self.jobs:
            at = now + min(max(j.left, 0.0) / j.rate if j.rate > 0 else 1e18 for j in self.jobs)
            env = self.env
            assert env is not None
            heappush(env._queue, (at, NORMAL, next(env._eid), self.wake, self.gen))

    def wake(self, gen: int) -> None:
        if gen != self.gen:
            return
        assert self.env is not None
        now = self.env._now
        self.advance(now)
        done = [j for j in self.jobs if j.left <= 1e-12]
        self.jobs = [j for j in self.jobs if j.left > 1e-12]
        self.replan(now)
        for j in done:
            j.cancelled = True
            WAIT[j.cpu.name] += now - j.t0 - j.work
            j.callback(j.arg)


def _fill(demand: list[float], capacity: float) -> list[float]:
    return cpumod._water_fill(demand, capacity) if sum(demand) > capacity else list(demand)


def patch(variant: str) -> None:
    host_init = cpumod.Host.__init__

    def init(self: Any, name: str, cores: float, background: float = 0.0) -> None:
        host_init(self, name, cores, background)
        self.sharing = Sharing(self, variant)

    def submit(self: Any, work: float, callback: Callable[[Any], None], arg: Any) -> Job:
        s: Sharing = self.host.sharing
        s.env = self.env
        now = self.env._now
        s.advance(now)
        job = Job(self, s.place(), work, callback, arg)
        s.jobs.append(job)
        s.replan(now)
        return job

    def cancel(self: Any, job: Job) -> None:
        s: Sharing = self.host.sharing
        if job.cancelled:
            return
        job.cancelled = True
        now = self.env._now
        s.advance(now)
        s.jobs.remove(job)
        s.replan(now)

    cpumod.Host.__init__ = init  # type: ignore[method-assign]
    plain_submit, plain_cancel = cpumod.Cpu.submit, cpumod.Cpu.cancel
    cpumod.Cpu.submit = lambda self, w, cb, a: (  # type: ignore[method-assign]
        submit(self, w, cb, a) if self.host is not None else plain_submit(self, w, cb, a)
    )
    cpumod.Cpu.cancel = lambda self, job: (  # type: ignore[method-assign]
        cancel(self, job) if self.host is not None else plain_cancel(self, job)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variant", nargs="?", default="pooled", choices=VARIANTS)
    ap.add_argument("--levels", default="30,60,85,95")
    args = ap.parse_args()
    patch(args.variant)
    for level in args.levels.split(","):
        errors = []
        for path in sorted(HERE.glob(f"level-{level}-r*.calibrated.yaml")):
            tag = path.name.removesuffix(".calibrated.yaml")
            measured = json.loads((HERE / f"{tag}-measured.json").read_text())
            shipped = json.loads((HERE / f"{tag}-predicted.json").read_text())
            raw = yaml.safe_load(path.read_text())
            WAIT.clear()
            result = lbsim.simulate(lbsim.loads_scenario(yaml.safe_dump(raw))).to_dict()
            ml, sl, vl = (x["latency"] for x in (measured, shipped, result))
            errors.append(
                ((sl["mean"] - ml["mean"]) / ml["mean"], (vl["mean"] - ml["mean"]) / ml["mean"])
            )
            n = raw["workload"]["open"]["rate"] * (raw["duration"] + raw["warmup"])
            rq = measured["meta"]["runqueue"]
            php_model = (WAIT["app1"] + WAIT["app2"]) / n
            php_measured = rq["app1"]["wait_per_request"] + rq["app2"]["wait_per_request"]
            print(
                f"{tag} [{args.variant}]: mean {ml['mean'] * 1e3:.1f} / {sl['mean'] * 1e3:.1f} / "
                f"{vl['mean'] * 1e3:.1f} ms ({errors[-1][1]:+.1%}), p95 {ml['p95'] * 1e3:.0f} / "
                f"{sl['p95'] * 1e3:.0f} / {vl['p95'] * 1e3:.0f} ms; php-fpm waits "
                f"{php_model * 1e3:.1f} (measured {php_measured * 1e3:.1f}), db1 "
                f"{WAIT['db1'] / n * 1e3:.2f} "
                f"({rq['db1']['wait_per_request'] * 1e3:.2f}) ms/request",
                flush=True,
            )
        shipped_mean = sum(e[0] for e in errors) / len(errors)
        variant_mean = sum(e[1] for e in errors) / len(errors)
        print(
            f"  {level} %: mean latency error shipped {shipped_mean:+.1%}, "
            f"{args.variant} {variant_mean:+.1%}"
        )


if __name__ == "__main__":
    main()
