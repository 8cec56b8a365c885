"""The event primitive every component schedules with.

Components are state machines driven by callbacks on SimPy events rather
than one generator process per request: a request passes through a handful
of timed steps, and a plain callback event costs a fraction of a process
switch. Long-lived activities (health checks, arrivals of closed-loop users)
use the same primitive; SimPy's calendar orders everything.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush
from typing import Any

import simpy
from simpy.events import NORMAL


class Call:
    """Calls ``fn(arg)`` when SimPy's calendar reaches it.

    SimPy processes an entry of its queue by taking its ``callbacks`` and
    checking ``_ok``; this slotted object offers exactly that, so it costs
    a third of a full :class:`simpy.events.Event` to create. It is never
    yielded by a process, only scheduled with :func:`later`.
    """

    __slots__ = ("_ok", "arg", "callbacks", "fn")

    def __init__(self, fn: Callable[[Any], None], arg: Any):
        self.callbacks: list[Callable[[Any], None]] | None = [_fire]
        self._ok = True
        self.fn = fn
        self.arg = arg


def _fire(event: Call) -> None:
    # a module-level function: no bound method to build per event
    event.fn(event.arg)


def later(env: simpy.Environment, delay: float, fn: Callable[[Any], None], arg: Any = None) -> None:
    """Schedule ``fn(arg)`` in ``delay`` seconds; ``delay == 0`` still goes through the
    calendar so that same-time events keep their order. (Same entry as
    ``env.schedule(event, NORMAL, delay)`` builds.)"""
    queue: list[Any] = env._queue
    heappush(queue, (env._now + delay, NORMAL, next(env._eid), Call(fn, arg)))


def every(
    env: simpy.Environment, interval: float, fn: Callable[[float], None], first: float = 0.0
) -> None:
    """Call ``fn(now)`` at ``first``, ``first + interval``, ... for as long as the run lasts."""

    def tick(_: Any) -> None:
        fn(env.now)
        later(env, interval, tick)

    later(env, first, tick)
