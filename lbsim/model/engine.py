"""The event primitive every component schedules with.

Components are state machines driven by callbacks scheduled on SimPy's
calendar rather than one generator process per request: a request passes
through a handful of timed steps, and a plain callback entry costs a
fraction of a process switch. Long-lived activities (health checks, arrivals
of closed-loop users) use the same primitive; SimPy's calendar orders
everything, and :func:`run` steps through it.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.events import NORMAL


class Call:
    """An entry of SimPy's calendar that calls ``fn(arg)`` when reached.

    :func:`run` executes these directly; an ordinary :class:`simpy.Event`
    met on the way (none of lbsim's components creates one, but a user's
    process may) is processed by SimPy's own ``step``.
    """

    __slots__ = ("arg", "fn")

    def __init__(self, fn: Callable[[Any], None], arg: Any):
        self.fn = fn
        self.arg = arg


def later(env: simpy.Environment, delay: float, fn: Callable[[Any], None], arg: Any = None) -> None:
    """Schedule ``fn(arg)`` in ``delay`` seconds; ``delay == 0`` still goes through the
    calendar so that same-time events keep their order (the same entry that
    ``env.schedule(event, NORMAL, delay)`` builds)."""
    queue: list[Any] = env._queue
    heappush(queue, (env._now + delay, NORMAL, next(env._eid), Call(fn, arg)))


def run(env: simpy.Environment, until: float | None = None) -> None:
    """Process the calendar up to (not including) time ``until``, then set the clock
    to ``until`` — what ``env.run(until=...)`` does, at a third of the cost per
    event for :class:`Call` entries."""
    queue: list[Any] = env._queue
    call = Call
    while queue:
        entry = queue[0]
        if until is not None and entry[0] >= until:
            break
        event = entry[3]
        if event.__class__ is call:
            heappop(queue)
            env._now = entry[0]
            event.fn(event.arg)
        else:
            env.step()
    if until is not None:
        env._now = until


def every(
    env: simpy.Environment, interval: float, fn: Callable[[float], None], first: float = 0.0
) -> None:
    """Call ``fn(now)`` at ``first``, ``first + interval``, ... for as long as the run lasts."""

    def tick(_: Any) -> None:
        fn(env.now)
        later(env, interval, tick)

    later(env, first, tick)
