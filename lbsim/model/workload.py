"""Clients and the requests they send: open loop, closed loop and trace replay.

Client identities, class picks and the arrival trace live in
:mod:`lbsim.model.arrivals` (re-exported here); this module builds the
requests and feeds them into the stack.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import simpy

from lbsim.model.arrivals import (
    Arrival,
    ArrivalBlock,
    ClassPicker,
    ClientPopulation,
    arrival_blocks,
    arrival_trace,
)
from lbsim.model.distributions import Sampler
from lbsim.model.engine import later
from lbsim.model.request import Request
from lbsim.model.streams import RandomStreams
from lbsim.scenario import schema

__all__ = [
    "Arrival",
    "ArrivalBlock",
    "ClassPicker",
    "ClientPopulation",
    "ClosedLoopSource",
    "OpenLoopSource",
    "RequestFactory",
    "arrival_blocks",
    "arrival_trace",
    "closed_loop_classes",
]


# --------------------------------------------------------------------------- requests


class RequestFactory:
    """Builds requests: draws each one's CPU demand from its class's own stream
    and lays out its phases (CPU split evenly around the queries)."""

    def __init__(
        self, scenario: schema.Scenario, streams: RandomStreams, clients: ClientPopulation
    ):
        self._classes = scenario.workload.classes
        self._cpu = [Sampler(c.cpu, streams.generator(f"cpu:{c.name}")).next for c in self._classes]
        self._nq = [len(c.queries) for c in self._classes]
        self._clients = clients
        self._warmup = scenario.warmup
        self._next_id = 0

    def make(self, now: float, cls: int, client: int) -> Request:
        cpu = self._cpu[cls]()
        nq = self._nq[cls]
        phases: tuple[Any, ...]
        if nq == 0:
            phases = (float(cpu),) if cpu > 0 else ()
        else:
            burst = float(cpu) / (nq + 1)
            parts: list[Any] = []
            for q in range(nq):
                if burst > 0:
                    parts.append(burst)
                parts.append(q)
            if burst > 0:
                parts.append(burst)
            phases = tuple(parts)
        self._next_id += 1
        return Request(
            self._next_id,
            cls,
            client,
            self._clients.ip(client),
            now,
            cpu,
            phases,
            now >= self._warmup,
        )


# --------------------------------------------------------------------------- sources


Send = Callable[[Request], None]


class OpenLoopSource:
    """Feeds an arrival trace into the stack, one scheduled event per arrival."""

    def __init__(
        self,
        env: simpy.Environment,
        blocks: Iterator[ArrivalBlock],
        factory: RequestFactory,
        send: Send,
    ):
        self.env = env
        self._blocks = blocks
        self._factory = factory
        self._send = send
        self._times: list[float] = []
        self._classes: list[int] = []
        self._clients: list[int] = []
        self._i = 0

    def start(self) -> None:
        self._advance()

    def _advance(self) -> None:
        i = self._i
        times = self._times
        if i >= len(times):
            block = next(self._blocks, None)
            if block is None:
                return
            times, self._classes, self._clients = block
            self._times = times
            i = self._i = 0
        env = self.env
        now: float = env._now
        delay = times[i] - now
        later(env, delay if delay > 0.0 else 0.0, self._arrive)

    def _arrive(self, _: Any) -> None:
        i = self._i
        self._i = i + 1
        self._send(self._factory.make(self.env._now, self._classes[i], self._clients[i]))
        self._advance()


def closed_loop_classes(
    scenario: schema.Scenario, rng: np.random.Generator
) -> tuple[int, ClassPicker, ClassPicker]:
    """(heavy users, class picker of a heavy user, of a light user) of a closed loop.

    Heavy users (ids below the first number) draw heavy classes with the
    probability that makes them send ``share`` of the heavy requests while the
    overall class mix keeps the configured weights.
    """
    wl = scenario.workload
    assert wl.closed is not None
    users = wl.closed.users
    weights = [c.weight for c in wl.classes]
    heavy = wl.clients.heavy
    if heavy is None:
        light = ClassPicker(weights, rng)
        return 0, light, light
    is_heavy = [c.name in heavy.classes for c in wl.classes]
    total = sum(weights)
    p_h = sum(w for w, h in zip(weights, is_heavy, strict=True) if h) / total
    f, s = heavy.fraction, heavy.share
    n_heavy = min(max(1, round(f * users)), users - 1) if users > 1 else 0
    ph_heavy_user = s * p_h / f
    ph_light_user = (1 - s) * p_h / (1 - f)

    def mix(ph: float) -> list[float]:
        out = []
        for w, h in zip(weights, is_heavy, strict=True):
            if h:
                out.append(w / (p_h * total) * ph if p_h > 0 else 0.0)
            else:
                out.append(w / ((1 - p_h) * total) * (1 - ph) if p_h < 1 else 0.0)
        return out

    return n_heavy, ClassPicker(mix(ph_heavy_user), rng), ClassPicker(mix(ph_light_user), rng)


class ClosedLoopSource:
    """``users`` clients: think, send, wait for the answer (or give up), repeat.

    Heavy users (ids below ``n_heavy``) draw heavy classes with the
    probability that makes them send ``share`` of the heavy requests while
    the overall class mix keeps the configured weights.
    """

    def __init__(
        self,
        env: simpy.Environment,
        scenario: schema.Scenario,
        streams: RandomStreams,
        factory: RequestFactory,
        send: Send,
    ):
        wl = scenario.workload
        assert wl.closed is not None
        self.env = env
        self.users = wl.closed.users
        self._factory = factory
        self._send = send
        self._think = Sampler(wl.closed.think_time, streams.generator("think"))
        self.n_heavy, self._heavy, self._light = closed_loop_classes(
            scenario, streams.generator("classes")
        )

    def start(self) -> None:
        for user in range(self.users):
            later(self.env, self._think(), self._request, user)

    def _request(self, user: int) -> None:
        cls = self._heavy() if user < self.n_heavy else self._light()
        req = self._factory.make(self.env._now, cls, user)
        req.on_answer = self._answered
        self._send(req)

    def _answered(self, req: Request) -> None:
        later(self.env, self._think(), self._request, req.client)
