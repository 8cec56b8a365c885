"""The client edge: sends requests into the stack, waits for answers, gives up
after ``workload.timeout`` (its request then fails with ``timeout`` while the
servers go on working on it, as they would in reality)."""

from __future__ import annotations

from collections.abc import Callable

import simpy

from lbsim.model.deadlines import Deadlines
from lbsim.model.distributions import Sampler
from lbsim.model.engine import later
from lbsim.model.observer import Observer
from lbsim.model.request import Request


class ClientEdge:
    def __init__(
        self,
        env: simpy.Environment,
        observer: Observer,
        network: Sampler,
        timeout: float | None,
    ):
        self.env = env
        self.observer = observer
        self._net = network
        self._balancer_receive: Callable[[Request, float], None] = _unwired
        self._deadlines = (
            Deadlines(env, timeout, self._pending, self._gave_up) if timeout is not None else None
        )

    def connect(self, receive: Callable[[Request, float], None]) -> None:
        self._balancer_receive = receive

    def send(self, request: Request) -> None:
        self.observer.arrived(request, self.env._now)
        if self._deadlines is not None:
            self._deadlines.add(request, 0)
        net = self._net
        self._balancer_receive(request, 0.0 if net.constant == 0.0 else net())

    def answer(self, request: Request, status: int) -> None:
        """The balancer answers ``request`` with HTTP ``status`` (or a DB error code)."""
        net = self._net
        if net.constant == 0.0:
            self._delivered(request, status)
        else:
            later(self.env, net(), self._deliver, (request, status))

    def _deliver(self, arg: tuple[Request, int]) -> None:
        request, status = arg
        if request.answered:
            return
        request.answered = True
        self.observer.answered(request, status, self.env._now)
        if request.on_answer is not None:
            request.on_answer(request)

    def _delivered(self, request: Request, status: int) -> None:
        if request.answered:
            return  # the client had already given up
        request.answered = True
        self.observer.answered(request, status, self.env._now)
        if request.on_answer is not None:
            request.on_answer(request)

    def _pending(self, request: Request, _: int) -> bool:
        return not request.answered

    def _gave_up(self, request: Request, _: int) -> None:
        request.answered = True
        self.observer.answered(request, TIMEOUT, self.env._now)
        if request.on_answer is not None:
            request.on_answer(request)


TIMEOUT = -1  # status of a request the client gave up on


def _unwired(request: Request, in_transit: float = 0.0) -> None:
    raise RuntimeError("client edge not connected to a balancer")
