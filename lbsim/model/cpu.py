"""Processor-shared CPUs: a container's CPU allocation, and hosts that share cores.

A :class:`Cpu` runs jobs (CPU bursts, in core-seconds) under egalitarian
processor sharing capped by its ``cores`` (Docker ``cpus``): with n jobs each
runs at rate min(1, cores/n). A job never uses more than one core (a PHP
worker is one thread).

When CPUs are placed on a :class:`Host`, the host's cores are split among
its containers like CFS with equal ``cpu.shares``: each container gets
min(its demand, a common level) — water-filling — where its demand is
min(jobs, cores cap); inside a container its jobs share equally.

A :class:`BandwidthCpu` is a container limited by CFS bandwidth control
(Docker ``cpus``, or ``cpu_quota`` per ``cpu_period``) instead: its threads
run at full speed, one core each, until the container has used ``cores ×
period`` CPU-seconds in the current period, then none runs until the next
period begins. The mean share is the same as processor sharing at
``cores``; the waits are not (a 0.4 ms job on 0.1 cores takes 4 ms shared,
but 0.4 ms or up to 9 ms more in 1 ms of quota per 10 ms period).

Implementation: the virtual-time form of processor sharing. All jobs of one
CPU receive service at the same rate, so a single clock ``V`` (service
attained per job) advances at that rate and a job finishes when ``V``
reaches its tag ``V_start + work``. Jobs wait in a heap by tag; one pending
wake-up event per CPU, re-planned only when the rate or the earliest tag
changes. O(log n) per job event.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.events import NORMAL

from lbsim.stats.timeweighted import TimeWeighted

_EPS = 1e-9


class Job:
    __slots__ = ("arg", "callback", "cancelled", "tag")

    def __init__(self, tag: float, callback: Callable[[Any], None], arg: Any):
        self.tag = tag
        self.callback = callback
        self.arg = arg
        self.cancelled = False


class Cpu:
    """One container's CPU: ``cores`` may be fractional (a CFS quota)."""

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        cores: float,
        host: Host | None = None,
        max_jobs: int | None = None,
    ):
        self.env = env
        #: every job always gets a whole core (no host, and never more jobs
        #: than cores): each finishes exactly ``work`` seconds after it starts,
        #: so it gets its own timer instead of the shared-clock machinery.
        self.dedicated = host is None and max_jobs is not None and max_jobs <= cores
        self.name = name
        self.cores = cores
        #: the most cores its jobs may use now (a bandwidth-limited CPU: as many
        #: as it has jobs while its quota lasts, none when throttled)
        self.cap = cores
        self.host = host
        self.n = 0  # jobs running (not cancelled)
        self.alloc = 0.0  # cores in use now
        self.rate = 1.0  # service rate of each job (core-seconds per second)
        self._v = 0.0
        self._t = 0.0
        self._heap: list[tuple[float, int, Job]] = []
        self._seq = 0
        self._wake_gen = 0
        self._wake_tag = math.inf
        self._wake_at = math.inf  # time of the pending wake-up (inf: none)
        self.busy = TimeWeighted()  # cores in use
        if host is not None:
            host.attach(self)

    # -- public -------------------------------------------------------------------------
    def submit(self, work: float, callback: Callable[[Any], None], arg: Any) -> Job:
        """Run ``work`` core-seconds; call ``callback(arg)`` when done."""
        env = self.env
        now: float = env._now  # the hot path: skip the property
        n = self.n + 1
        self.n = n
        busy = self.busy
        if self.dedicated:
            alloc = float(n)
            self.alloc = alloc
            # busy.set(now, alloc), inlined
            busy._area += busy.value * (now - busy._t)
            busy._t = now
            busy.value = alloc
            job = Job(now + work, callback, arg)
            queue: list[Any] = env._queue
            heappush(queue, (now + work, NORMAL, next(env._eid), self._dedicated_done, job))
            return job
        heap = self._heap
        if n > 1:
            v = self._v + (now - self._t) * self.rate
        else:
            # rebase the virtual clock whenever the CPU empties (keeps tags small)
            v = 0.0
            heap.clear()
        self._v = v
        self._t = now
        tag = v + work
        job = Job(tag, callback, arg)
        seq = self._seq + 1
        self._seq = seq
        heappush(heap, (tag, seq, job))
        if self.host is None:
            cores = self.cores
            alloc = n if n < cores else cores
            if alloc != self.alloc:
                busy._area += busy.value * (now - busy._t)
                busy._t = now
                busy.value = alloc
                self.alloc = alloc
            rate = alloc / n
            if rate != self.rate:
                self.rate = rate
                self._plan()
            elif tag < self._wake_tag:
                self._plan()
        else:
            self.host.rebalance(now)
            if tag < self._wake_tag:
                self._plan()
        return job

    def cancel(self, job: Job) -> None:
        """Stop ``job`` (its worker was killed); its callback is never called."""
        if job.cancelled:
            return
        job.cancelled = True
        now = self.env._now
        if self.dedicated:
            self.n -= 1
            self.alloc = float(self.n)
            self.busy.set(now, self.alloc)
            return
        self._advance(now)
        self.n -= 1
        self._load_changed(now)
        self._plan()

    def utilisation(self, now: float) -> float:
        """Mean fraction of ``cores`` busy since the last reset."""
        return self.busy.mean(now) / self.cores

    # -- internals ----------------------------------------------------------------------
    def _dedicated_done(self, job: Job) -> None:
        if job.cancelled:
            return
        job.cancelled = True  # finished: a later cancel() is a no-op
        n = self.n - 1
        self.n = n
        alloc = float(n)
        self.alloc = alloc
        busy = self.busy
        now: float = self.env._now
        busy._area += busy.value * (now - busy._t)
        busy._t = now
        busy.value = alloc
        job.callback(job.arg)

    def _advance(self, now: float) -> None:
        if self.n:
            self._v += (now - self._t) * self.rate
        self._t = now

    def _load_changed(self, now: float) -> None:
        if self.host is None:
            self._set_alloc(now, min(float(self.n), self.cores))
        else:
            self.host.rebalance(now)

    def _set_alloc(self, now: float, alloc: float) -> None:
        """Called with the cores this CPU may use now; re-plans if the per-job rate moved."""
        rate = alloc / self.n if self.n else 1.0
        if alloc != self.alloc:
            self.busy.set(now, alloc)
            self.alloc = alloc
        if rate != self.rate:
            self._advance(now)
            self.rate = rate
            self._plan()

    def _plan(self) -> None:
        """Make sure a wake-up comes no later than the earliest finish.

        A pending wake-up that comes earlier than needed is kept (it re-plans
        when it fires); only an earlier finish needs a new event. Under
        processor sharing most load changes move finishes later, so this
        saves most re-plans.
        """
        heap = self._heap
        while heap and heap[0][2].cancelled:
            heappop(heap)
        if not heap:
            self._wake_tag = math.inf
            return
        tag = heap[0][0]
        self._wake_tag = tag
        if self.rate <= 0.0:
            return  # throttled: planned again when its quota is back
        delay = (tag - self._v) / self.rate
        if delay < 0:
            delay = 0.0
        env = self.env
        at = env._now + delay
        if self._wake_at <= at + _EPS:
            return  # the pending wake-up is early enough
        gen = self._wake_gen + 1
        self._wake_gen = gen
        self._wake_at = at
        # what later() does, inlined: one calendar entry per wake-up
        queue: list[Any] = env._queue
        heappush(queue, (at, NORMAL, next(env._eid), self._wake, gen))

    def _wake(self, gen: int) -> None:
        if gen != self._wake_gen:
            return  # superseded by an earlier wake-up
        self._wake_at = math.inf
        now: float = self.env._now
        n = self.n
        v = self._v
        if n:
            v += (now - self._t) * self.rate
            self._v = v
        self._t = now
        heap = self._heap
        limit = v + _EPS + 1e-12 * v
        if not heap or heap[0][0] > limit:
            self._plan()  # nothing finished: the rate fell since this was planned
            return
        job = heappop(heap)[2]
        done: list[Job] | None = None
        while heap and heap[0][0] <= limit:
            other = heappop(heap)[2]
            if not other.cancelled:
                if done is None:
                    done = [] if job.cancelled else [job]
                done.append(other)
        if done is None:
            if job.cancelled:
                self._plan()
                return
            n -= 1
        else:
            n -= len(done)
        self.n = n
        if self.host is None:  # inline _load_changed: this is the hot path
            cores = self.cores
            alloc = n if n < cores else cores
            if alloc != self.alloc:
                busy = self.busy
                busy._area += busy.value * (now - busy._t)
                busy._t = now
                busy.value = alloc
                self.alloc = alloc
            self.rate = alloc / n if n else 1.0
        else:
            self.host.rebalance(now)
        # self._plan(), inlined: every wake-up that finished a job plans the next
        while heap and heap[0][2].cancelled:
            heappop(heap)
        if heap:
            tag = heap[0][0]
            self._wake_tag = tag
            rate = self.rate
            if rate > 0.0:
                delay = (tag - self._v) / rate
                if delay < 0:
                    delay = 0.0
                at = now + delay
            else:  # throttled (a BandwidthCpu): planned when its quota is back
                at = math.inf
            if self._wake_at > at + _EPS:
                gen = self._wake_gen + 1
                self._wake_gen = gen
                self._wake_at = at
                env = self.env
                queue: list[Any] = env._queue
                heappush(queue, (at, NORMAL, next(env._eid), self._wake, gen))
        else:
            self._wake_tag = math.inf
        if done is None:
            job.callback(job.arg)
        else:
            for job in done:
                job.callback(job.arg)


class Host:
    """A machine whose ``cores`` its containers share (CFS, equal shares).

    ``background`` cores are busy with processes outside the model (a load
    generator, a proxy, housekeeping): the containers share what is left, and
    the host's busy time includes them.
    """

    def __init__(self, name: str, cores: float, background: float = 0.0):
        if not 0 <= background < cores:
            raise ValueError(f"host {name!r}: background {background} not in [0, cores)")
        self.name = name
        self.cores = cores
        self.background = background
        self.capacity = cores - background
        self.members: list[Cpu] = []
        self.busy = TimeWeighted(background)

    def attach(self, cpu: Cpu) -> None:
        self.members.append(cpu)

    def rebalance(self, now: float) -> None:
        demands = [min(float(c.n), c.cap) for c in self.members]
        total = sum(demands)
        cap = self.capacity
        allocs = demands if total <= cap else _water_fill(demands, cap)
        self.busy.set(now, min(total, cap) + self.background)
        for cpu, alloc in zip(self.members, allocs, strict=True):
            cpu._set_alloc(now, alloc)

    def utilisation(self, now: float) -> float:
        return self.busy.mean(now) / self.cores


class BandwidthCpu(Cpu):
    """A container under CFS bandwidth control: ``cores × period`` CPU-seconds
    per ``period`` (s), its jobs at full speed (one core each, shared with the
    host's other containers) until the quota is spent, then throttled to the
    period's end (periods from time 0, like the kernel's timer from the
    group's start).

    ``throttled`` counts the periods that ran out of quota (the cgroup's
    ``nr_throttled``). Without a host it has one of its own with no limit
    on cores: the quota alone limits it.
    """

    def __init__(
        self, env: simpy.Environment, name: str, cores: float, period: float,
        host: Host | None = None,
    ):  # fmt: skip
        if not period > 0:
            raise ValueError(f"cpu {name!r}: CFS period {period} must be positive")
        super().__init__(env, name, cores, host if host is not None else Host(name, math.inf))
        self.period = period
        self.quota = cores * period
        self.cap = math.inf
        self.used = 0.0  # CPU-seconds used in the current period
        self.throttled = 0
        self._throttled = False
        self._end = period  # when the current period ends
        self._acc = 0.0  # when ``used`` was last brought up to date
        self._gen = 0  # the pending quota event's generation

    def _account(self, now: float) -> None:
        """``used`` up to ``now`` at the allocation held since the last call
        (a new period counts only what was used since it began)."""
        if now >= self._end:
            periods = math.floor((now - self._end) / self.period) + 1
            self._end += periods * self.period
            start = self._end - self.period
            if start > now:  # rounding: ``now`` is the new period's start
                start = now
            self.used = self.alloc * (now - start)
        else:
            self.used += self.alloc * (now - self._acc)
        self._acc = now

    def _set_alloc(self, now: float, alloc: float) -> None:
        before = self.alloc
        self._account(now)
        super()._set_alloc(now, alloc)
        if self.alloc != before:  # the quota runs out at another time
            self._plan_quota(now)

    def _plan_quota(self, now: float) -> None:
        """One event: the period's end while throttled; else when the quota
        runs out at the present allocation, or the period's end if sooner."""
        self._gen += 1
        if self._throttled:
            at = self._end
        elif self.alloc > 0.0:
            at = min(now + max(self.quota - self.used, 0.0) / self.alloc, self._end)
        else:
            return  # idle: the next job's allocation plans it
        env = self.env
        queue: list[Any] = env._queue
        heappush(queue, (at, NORMAL, next(env._eid), self._quota_event, self._gen))

    def _quota_event(self, gen: int) -> None:
        if gen != self._gen:
            return
        now: float = self.env._now
        self._account(now)  # at a period's end: the next period, nothing used
        if self._throttled:  # the period is over: a new quota
            self._throttled = False
            self.cap = math.inf
        elif self.used >= self.quota * (1 - 1e-9):
            self._throttled = True
            self.throttled += 1
            self.cap = 0.0
        assert self.host is not None
        self.host.rebalance(now)
        self._plan_quota(now)


def _water_fill(demands: list[float], capacity: float) -> list[float]:
    """Equal shares: each gets min(demand, level) with the allocations summing to capacity."""
    order = sorted(range(len(demands)), key=demands.__getitem__)
    allocs = [0.0] * len(demands)
    left = capacity
    remaining = len(demands)
    for i in order:
        share = left / remaining
        give = min(demands[i], share)
        allocs[i] = give
        left -= give
        remaining -= 1
    return allocs
