"""The event primitive every component schedules with.

Components are state machines driven by callbacks on SimPy events rather
than one generator process per request: a request passes through a handful
of timed steps, and a plain callback event costs a fraction of a process
switch. Long-lived activities (health checks, arrivals of closed-loop users)
use the same primitive; SimPy's calendar orders everything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy
from simpy.events import NORMAL, Event


class Call(Event):
    """Calls ``fn(arg)`` after ``delay`` seconds of simulated time."""

    __slots__ = ("arg", "fn")

    def __init__(self, env: simpy.Environment, delay: float, fn: Callable[[Any], None], arg: Any):
        self.env = env
        self.callbacks = [_fire]
        self._value = None
        self._ok = True
        self.fn = fn
        self.arg = arg
        env.schedule(self, NORMAL, delay)


def _fire(event: Call) -> None:
    # a module-level function: no bound method to build per event
    event.fn(event.arg)


def later(env: simpy.Environment, delay: float, fn: Callable[[Any], None], arg: Any = None) -> None:
    """Schedule ``fn(arg)`` in ``delay`` seconds; ``delay == 0`` still goes through the calendar
    so that same-time events keep their order."""
    Call(env, delay, fn, arg)


def every(
    env: simpy.Environment, interval: float, fn: Callable[[float], None], first: float = 0.0
) -> None:
    """Call ``fn(now)`` at ``first``, ``first + interval``, ... for as long as the run lasts."""

    def tick(_: Any) -> None:
        fn(env.now)
        Call(env, interval, tick, None)

    Call(env, first, tick, None)
