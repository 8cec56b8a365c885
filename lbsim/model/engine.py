"""The event primitive every component schedules with.

Components are state machines driven by callbacks scheduled on SimPy's
calendar rather than one generator process per request: a request passes
through a handful of timed steps, and a plain callback entry costs a
fraction of a process switch. Long-lived activities (health checks, arrivals
of closed-loop users) use the same primitive; SimPy's calendar orders
everything, and :func:`run` steps through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.events import NORMAL


class Call:
    """Kept for code that built calendar entries by hand: ``fn(arg)`` as a SimPy event.

    lbsim's own entries are plain tuples (see :func:`later`); a :class:`Call`
    scheduled with ``env.schedule``-style 4-tuples is still run by :func:`run`.
    """

    __slots__ = ("arg", "fn")

    def __init__(self, fn: Callable[[Any], None], arg: Any):
        self.fn = fn
        self.arg = arg


def later(env: simpy.Environment, delay: float, fn: Callable[[Any], None], arg: Any = None) -> None:
    """Schedule ``fn(arg)`` in ``delay`` seconds; ``delay == 0`` still goes through the
    calendar so that same-time events keep their order.

    The entry is the tuple ``(time, NORMAL, eid, fn, arg)`` on SimPy's own heap:
    it orders exactly as the ``(time, NORMAL, eid, event)`` that
    ``env.schedule(event, NORMAL, delay)`` would build (``eid`` is unique and
    drawn from SimPy's counter), without an event object per entry.
    """
    queue: list[Any] = env._queue
    heappush(queue, (env._now + delay, NORMAL, next(env._eid), fn, arg))


def run(env: simpy.Environment, until: float | None = None) -> None:
    """Process the calendar up to (not including) time ``until``, then set the clock
    to ``until`` — what ``env.run(until=...)`` does, at a fraction of the cost per
    event for the entries :func:`later` makes; SimPy events met on the way (none of
    lbsim's components creates one, but a user's process may) go through SimPy's
    own ``step``."""
    queue: list[Any] = env._queue
    pop = heappop
    limit = math.inf if until is None else until
    while queue:
        entry = pop(queue)
        try:
            t, _, _, fn, arg = entry
        except ValueError:  # a SimPy event: (time, priority, eid, event)
            heappush(queue, entry)
            if entry[0] >= limit:
                break
            event = entry[3]
            if event.__class__ is Call:
                pop(queue)
                env._now = entry[0]
                event.fn(event.arg)
            else:
                env.step()
            continue
        if t >= limit:
            heappush(queue, entry)  # the first entry past the horizon stays for a later run
            break
        env._now = t
        fn(arg)
    if until is not None:
        env._now = until


def every(
    env: simpy.Environment, interval: float, fn: Callable[[float], None], first: float = 0.0
) -> None:
    """Call ``fn(now)`` at ``first``, ``first + interval``, ... for as long as the run lasts."""

    def tick(_: Any) -> None:
        fn(env._now)
        later(env, interval, tick)

    later(env, first, tick)
