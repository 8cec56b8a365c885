"""What keeps the load generator's sends on their schedule on a busy machine.

**The sending process's CPU priority** (:func:`sender_priority`). A replay on
a 2-core machine at 95 % of the stack's capacity, beside another program
using half a core, lagged its schedule by 13.9-17.2 ms at p99 (the limit is
10 ms: :data:`lbsim.validation.measured.LATENESS_P99_LIMIT`). While the sends
run, every thread of the process runs at a real-time priority
(``SCHED_FIFO`` :data:`SENDER_RT_PRIORITY`): a send that is due, or an answer
that arrives, takes a core at once from any normal thread, the stack's and
the other program's alike. What the generator uses is small (a few percent of
a core) and is measured as its own CPU (the model places it on the host), so
the stack's share of the machine is what it was; real clients sit on other
machines and do not wait for this one's cores either.

A raised nice value was not enough. Measured on 2026-12-07 (galera-writes'
stack, 40 s replays beside a half-core burner switching every 1 ms, at 84
and 97 requests/s, just over the stack's capacity): at nice -10 (CFS gives
the thread about nine times a normal one's weight) the p99 lateness was
11.0, 32.8 and 7.2 ms, the worst send 46-101 ms late, in stalls of 20-100 ms
in which dozens of sends were late together; at real-time priority 10 the
p99 was 2.0-2.1 ms and the worst send 2.2-4.3 ms late (the rest of the
lateness is the event loop's millisecond timer).

Real-time threads are used only where the kernel throttles them (its
``sched_rt_runtime_us`` is not -1: they never hold more than 95 % of a core,
so a fault in the sender cannot freeze the machine); processes started from
the block (``docker exec``) begin at normal priority (``SCHED_RESET_ON_FORK``).
Setting it needs root or CAP_SYS_NICE; without it every thread is raised to
nice :data:`SENDER_NICE` instead, and without that right either the sends run
at the threads' own priority. The priority the sends ran at is reported in
the generator's verdict. Linux's priorities are per thread: every thread of
the process is raised (one holding the GIL at a normal priority would keep
the sender waiting), and each is put back afterwards.

**The garbage collector** (:func:`frozen_heap`). Priority alone did not
help (the same replays at nice -10: 14.1 and 30.7 ms): the sends stalled
for 10-30 ms every few seconds, once for 131 ms, with the thread on a core.
The calibrating process holds about 163,000 objects (the scenario, the
plan, pydantic, numpy) and a full collection of them took 116-186 ms on the
busy machine; the generator's own allocations (a task, a stream pair and a
record per request) trigger collections that pass over all of them. While
the sends run, every object alive before them is frozen out of the
collector's passes (``gc.freeze``), which then see only what the run itself
made; they are put back afterwards.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: the threads' nice value while they send where real time is not allowed (-20 highest, 0 normal)
SENDER_NICE = -10
#: the threads' SCHED_FIFO priority while they send (1-99; 0: no real time)
SENDER_RT_PRIORITY = 10
#: the kernel's bound on real-time threads' CPU per period (-1: none)
RT_RUNTIME = Path("/proc/sys/kernel/sched_rt_runtime_us")


@dataclass(frozen=True)
class SendPriority:
    """The priority the calling thread sent at."""

    nice: int
    #: its SCHED_FIFO priority (0: a normal thread, at ``nice``)
    realtime: int = 0

    def __str__(self) -> str:
        if self.realtime:
            return f"real-time priority {self.realtime} (SCHED_FIFO)"
        return f"nice {self.nice}"


def _threads() -> list[int]:
    """This process's threads (Linux: ``/proc/self/task``; the calling one elsewhere)."""
    try:
        return sorted(int(t) for t in os.listdir("/proc/self/task"))
    except OSError:
        return [threading.get_native_id()]


def realtime_throttled(runtime: Path = RT_RUNTIME) -> bool:
    """Whether the kernel bounds real-time threads' CPU (so one that never
    sleeps still leaves the others a share): Linux with ``sched_rt_runtime_us``
    other than -1."""
    try:
        return int(runtime.read_text().strip()) >= 0
    except (OSError, ValueError):
        return False


@contextlib.contextmanager
def _realtime(priority: int) -> Iterator[int]:
    """Every thread of this process at SCHED_FIFO ``priority`` for the block;
    yields the priority (0 where not allowed: nothing changed)."""
    me = threading.get_native_id()
    if priority <= 0 or not hasattr(os, "SCHED_FIFO") or not realtime_throttled():
        yield 0
        return
    policy = os.SCHED_FIFO | os.SCHED_RESET_ON_FORK  # children start as normal
    try:
        saved = [(me, os.sched_getscheduler(me), os.sched_getparam(me))]
        os.sched_setscheduler(me, policy, os.sched_param(priority))
    except OSError:  # not root, no CAP_SYS_NICE, or no real-time runtime in this cgroup
        saved = []
    if not saved:
        yield 0
        return
    try:
        for tid in _threads():
            if tid == me:
                continue
            with contextlib.suppress(OSError):  # ended meanwhile
                before = (tid, os.sched_getscheduler(tid), os.sched_getparam(tid))
                os.sched_setscheduler(tid, policy, os.sched_param(priority))
                saved.append(before)
        yield priority
    finally:
        for tid, was, param in saved:
            with contextlib.suppress(OSError):  # a thread may always return to normal
                os.sched_setscheduler(tid, was, param)


@contextlib.contextmanager
def _niced(nice: int) -> Iterator[int]:
    """Every thread of this process at ``nice`` (never lower than it was) for
    the block; yields the calling thread's nice value in it."""
    me = threading.get_native_id()
    raised: list[tuple[int, int]] = []  # (thread, its nice before)
    mine = 0
    for tid in _threads():
        try:
            before = os.getpriority(os.PRIO_PROCESS, tid)
        except OSError:  # ended meanwhile
            continue
        now = before
        if nice < before:
            try:
                os.setpriority(os.PRIO_PROCESS, tid, nice)
                raised.append((tid, before))
                now = nice
            except OSError:  # not root, no CAP_SYS_NICE; or the thread ended
                pass
        if tid == me:
            mine = now
    try:
        yield mine
    finally:
        for tid, before in raised:
            with contextlib.suppress(OSError):  # a thread may always lower its priority
                os.setpriority(os.PRIO_PROCESS, tid, before)


@contextlib.contextmanager
def sender_priority(
    nice: int = SENDER_NICE, realtime: int = SENDER_RT_PRIORITY
) -> Iterator[SendPriority]:
    """Run the block with every thread of this process at real-time priority
    ``realtime`` where allowed, else at ``nice`` (never lower than a thread
    was); yields the priority the calling thread runs at. Every thread, not
    the sender's alone: a thread holding the GIL at a normal priority (the
    background sampler) would otherwise keep the raised sender waiting
    behind whatever preempted it."""
    with contextlib.ExitStack() as stack:
        rt = stack.enter_context(_realtime(realtime))
        if rt:
            mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        else:
            mine = stack.enter_context(_niced(nice))
        yield SendPriority(mine, rt)


#: how many frozen_heap blocks are open (nested ones leave the heap to the outermost)
_frozen = 0


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Run the block with every object alive before it out of the garbage
    collector's passes (collected first, frozen, unfrozen afterwards)."""
    global _frozen
    if _frozen:
        yield
        return
    gc.collect()
    gc.freeze()
    _frozen += 1
    try:
        yield
    finally:
        _frozen -= 1
        gc.unfreeze()
