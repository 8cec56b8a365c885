"""The load generator's CPU priority: on a busy machine its sends keep their schedule.

A replay on a 2-core machine at 95 % of the stack's capacity, beside another
program using half a core, lagged its schedule by 13.9-17.2 ms at p99 in
every attempt (the limit is 10 ms: :data:`lbsim.validation.measured.LATENESS_P99_LIMIT`):
the generator's one thread waited for a core behind php-fpm workers, MariaDB
threads and the other program. The sends are the experiment's input, so
while they run the sending thread has a raised priority (nice
:data:`SENDER_NICE`): CFS gives it about nine times a normal thread's weight,
so a send that is due runs promptly. What it uses is small and is measured as
the generator's own CPU (the model places it on the host), so the stack's
share of the machine is what it was.

Raising a priority needs root or CAP_SYS_NICE; without either the sends run
at the thread's own priority (reported as ``nice`` in the generator's
verdict) and the lateness check judges them as before. Linux's nice is per
thread: only the calling thread is raised, and it is put back afterwards.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

#: the sending thread's nice value while it sends (-20 highest, 0 normal)
SENDER_NICE = -10


@contextlib.contextmanager
def sender_priority(nice: int = SENDER_NICE) -> Iterator[int]:
    """Run the block with the calling thread at ``nice`` (never lower than it
    was); yields the nice value the block runs at."""
    tid = threading.get_native_id()
    try:
        before = os.getpriority(os.PRIO_PROCESS, tid)
    except OSError:
        yield 0
        return
    wanted = min(nice, before)
    raised = False
    if wanted < before:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, wanted)
            raised = True
        except OSError:  # not root, no CAP_SYS_NICE: the thread's own priority
            pass
    try:
        yield wanted if raised else before
    finally:
        if raised:
            # a thread may always lower its own priority again
            os.setpriority(os.PRIO_PROCESS, tid, before)
