"""What keeps the load generator's sends on their schedule on a busy machine.

**The sending thread's CPU priority** (:func:`sender_priority`). A replay on a
2-core machine at 95 % of the stack's capacity, beside another program using
half a core, lagged its schedule by 13.9-17.2 ms at p99 (the limit is 10 ms:
:data:`lbsim.validation.measured.LATENESS_P99_LIMIT`). While the sends run,
the sending thread has a raised priority (nice :data:`SENDER_NICE`): CFS
gives it about nine times a normal thread's weight, so a send that is due
runs promptly. What it uses is small and is measured as the generator's own
CPU (the model places it on the host), so the stack's share of the machine
is what it was. Raising a priority needs root or CAP_SYS_NICE; without
either the sends run at the thread's own priority (reported as ``nice`` in
the generator's verdict). Linux's nice is per thread: every thread of the
process is raised (one holding the GIL at a normal priority would keep the
sender waiting), and each is put back afterwards.

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

#: the sending thread's nice value while it sends (-20 highest, 0 normal)
SENDER_NICE = -10


def _threads() -> list[int]:
    """This process's threads (Linux: ``/proc/self/task``; the calling one elsewhere)."""
    try:
        return sorted(int(t) for t in os.listdir("/proc/self/task"))
    except OSError:
        return [threading.get_native_id()]


@contextlib.contextmanager
def sender_priority(nice: int = SENDER_NICE) -> Iterator[int]:
    """Run the block with every thread of this process at ``nice`` (never
    lower than a thread was); yields the nice value the calling thread runs
    at. Every thread, not the sender's alone: a thread holding the GIL at a
    normal priority (the background sampler) would otherwise keep the raised
    sender waiting behind whatever preempted it."""
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
