"""Clients and the requests they send: open loop, closed loop and trace replay.

The open-loop arrival trace (times, classes, clients) is a pure function of
the scenario and the seed (:func:`arrival_trace`), drawn from its own
streams; the simulation consumes it, and the live replayer can draw exactly
the same trace.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import simpy

from lbsim.model.distributions import BLOCK, Sampler
from lbsim.model.engine import later
from lbsim.model.request import Request
from lbsim.model.streams import RandomStreams
from lbsim.scenario import schema
from lbsim.scenario.distributions import AnyDist, Exponential, Uniform

Arrival = tuple[float, int, int]  # time (s), class index, client id


# --------------------------------------------------------------------------- clients


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


class ClientPopulation:
    """Client identities and IPv4 addresses, and who sends which class.

    Heavy users: ``fraction`` of the clients (ids ``0 .. n_heavy-1``) send
    ``share`` of the requests of the heavy classes; all other requests come
    from clients drawn uniformly.
    """

    def __init__(self, spec: schema.Clients, class_names: tuple[str, ...], streams: RandomStreams):
        self.count = spec.count
        self._subnets = spec.subnets
        self._salt = _splitmix64(streams.seed * 1_000_003 + streams.replication)
        rng = streams.generator("client-ips")
        self._prefixes: list[tuple[int, int, int]] = []
        if spec.subnets is not None:
            raw = rng.integers(0, 2**24, size=spec.subnets)
            self._prefixes = [(1 + int(r) % 223, (int(r) >> 8) & 255, int(r) >> 16) for r in raw]
        heavy = spec.heavy
        self.n_heavy = 0
        self.heavy_share = 0.0
        self.heavy_class = [False] * len(class_names)
        if heavy is not None:
            self.n_heavy = min(max(1, round(heavy.fraction * spec.count)), spec.count - 1)
            self.heavy_share = heavy.share
            self.heavy_class = [n in heavy.classes for n in class_names]
        self._uniform = Sampler(_UNIT_UNIFORM, streams.generator("clients"))
        self._ips: dict[int, tuple[int, int, int, int]] = {}

    def pick(self, cls: int) -> int:
        """The client sending a request of class ``cls`` (open loop)."""
        u = self._uniform()
        if self.n_heavy and self.heavy_class[cls]:
            if u < self.heavy_share:
                return min(int(u / self.heavy_share * self.n_heavy), self.n_heavy - 1)
            rest = self.count - self.n_heavy
            frac = (u - self.heavy_share) / (1.0 - self.heavy_share)
            return self.n_heavy + min(int(frac * rest), rest - 1)
        return min(int(u * self.count), self.count - 1)

    def pick_many(self, classes: list[int]) -> list[int]:
        """``[self.pick(c) for c in classes]``, computed on a block at once
        (the same uniforms, the same arithmetic, so the same clients)."""
        k = len(classes)
        u = np.asarray(self._uniform.take(k), dtype=float)
        count = self.count
        ids = np.minimum((u * count).astype(np.int64), count - 1)
        if self.n_heavy and any(self.heavy_class):
            heavy = np.asarray(self.heavy_class, dtype=bool)[np.asarray(classes, dtype=np.int64)]
            share, nh = self.heavy_share, self.n_heavy
            rest = count - nh
            with np.errstate(all="ignore"):
                lo = np.minimum((u / share * nh).astype(np.int64), nh - 1)
                frac = (u - share) / (1.0 - share)
                hi = nh + np.minimum((frac * rest).astype(np.int64), rest - 1)
            ids = np.where(heavy, np.where(u < share, lo, hi), ids)
        out: list[int] = ids.tolist()
        return out

    def ip(self, client: int) -> tuple[int, int, int, int]:
        ip = self._ips.get(client)
        if ip is None:
            if self._prefixes:
                a, b, c = self._prefixes[client % len(self._prefixes)]
                ip = (a, b, c, 1 + (client // len(self._prefixes)) % 254)
            else:
                x = _splitmix64(self._salt ^ client)
                ip = (
                    1 + (x >> 24 & 0xFF) % 223,
                    x >> 16 & 0xFF,
                    x >> 8 & 0xFF,
                    1 + (x & 0xFF) % 254,
                )
            if len(self._ips) < 1_000_000:
                self._ips[client] = ip
        return ip


_UNIT_UNIFORM = Uniform(dist="uniform", low=0.0, high=1.0)


class ClassPicker:
    """Draws class indices with the given weights, in blocks."""

    def __init__(self, weights: list[float], rng: np.random.Generator):
        total = sum(weights)
        self._p = np.asarray(weights, dtype=float) / total
        self._n = len(weights)
        self._rng = rng
        self._buf: list[int] = []
        self._i = 0

    def __call__(self) -> int:
        if self._n == 1:
            return 0
        if self._i >= len(self._buf):
            self._buf = self._rng.choice(self._n, size=4096, p=self._p).tolist()
            self._i = 0
        v = self._buf[self._i]
        self._i += 1
        return v

    def take(self, n: int) -> list[int]:
        """The next ``n`` classes, as ``n`` calls would return them."""
        if self._n == 1:
            return [0] * n
        out: list[int] = []
        while len(out) < n:
            if self._i >= len(self._buf):
                self._buf = self._rng.choice(self._n, size=4096, p=self._p).tolist()
                self._i = 0
            j = min(len(self._buf), self._i + n - len(out))
            out.extend(self._buf[self._i : j])
            self._i = j
        return out


# --------------------------------------------------------------------------- arrival trace


def _arrival_times(
    spec: schema.OpenLoop, streams: RandomStreams, horizon: float
) -> Iterator[list[float]]:
    """Arrival times below ``horizon`` in blocks (lists), in order."""
    gen = streams.generator("arrivals")
    if spec.rate is not None or spec.interarrival is not None:
        dist: AnyDist
        if spec.interarrival is not None:
            dist = spec.interarrival
        else:
            assert spec.rate is not None
            dist = Exponential(dist="exponential", mean=1.0 / spec.rate)
        gap = Sampler(dist, gen)
        if gap.constant is not None:
            yield from _chunks(_renewal_times(gap, horizon))
            return
        # t_k = t_(k-1) + gap_k: a sequential cumulative sum, the same float
        # additions in the same order as adding one gap at a time
        t = 0.0
        first = True
        while True:
            gaps = np.asarray(gap.take(BLOCK), dtype=float)
            if not first:
                gaps[0] += t
            first = False
            times = np.cumsum(gaps)
            over = times >= horizon
            if over.any():
                cut = int(over.argmax())
                if cut:
                    yield times[:cut].tolist()
                return
            out: list[float] = times.tolist()
            t = out[-1]
            yield out
    assert spec.schedule is not None
    yield from _chunks(_schedule_times(spec.schedule, spec.shape, gen, horizon))


def _renewal_times(gap: Sampler, horizon: float) -> Iterator[float]:
    t = gap()
    while t < horizon:
        yield t
        t += gap()


def _chunks(times: Iterator[float], size: int = 4096) -> Iterator[list[float]]:
    block: list[float] = []
    for t in times:
        block.append(t)
        if len(block) >= size:
            yield block
            block = []
    if block:
        yield block


def _schedule_times(
    schedule: tuple[tuple[float, float], ...], shape: str, gen: np.random.Generator, horizon: float
) -> Iterator[float]:
    """Non-homogeneous Poisson arrivals: exact restarts at breakpoints for a step
    rate; thinning against the segment maximum for a linear one."""
    expo = Sampler(Exponential(dist="exponential", mean=1.0), gen)
    unif = Sampler(_UNIT_UNIFORM, gen)
    points = [*schedule, (math.inf, schedule[-1][1])]
    t = 0.0
    for (t0, r0), (t1, r1) in itertools.pairwise(points):
        end = min(t1, horizon)
        linear = shape == "linear" and math.isfinite(t1)
        rmax = max(r0, r1) if linear else r0
        t = max(t, t0)
        while rmax > 0:
            t += expo() / rmax
            if t >= end:
                break
            if linear:
                r = r0 + (r1 - r0) * (t - t0) / (t1 - t0)
                if unif() * rmax > r:
                    continue
            yield t
        t = end
        if end >= horizon:
            return


ArrivalBlock = tuple[list[float], list[int], list[int]]  # times, class indices, clients


def arrival_blocks(scenario: schema.Scenario, replication: int = 0) -> Iterator[ArrivalBlock]:
    """:func:`arrival_trace` in blocks of parallel lists (what the simulation consumes)."""
    wl = scenario.workload
    streams = RandomStreams(scenario.seed, replication)
    names = wl.class_names
    clients = ClientPopulation(wl.clients, names, streams)
    horizon = scenario.horizon
    if wl.trace is not None:
        index = {n: i for i, n in enumerate(names)}
        rows: list[tuple[float, int, int]] = []
        for t, cls_name, client in wl.trace.rows:
            if t >= horizon:
                break
            cls = index[cls_name]
            rows.append((t, cls, client if client is not None else clients.pick(cls)))
        for k in range(0, len(rows), 4096):
            chunk = rows[k : k + 4096]
            yield [r[0] for r in chunk], [r[1] for r in chunk], [r[2] for r in chunk]
        return
    if wl.open is None:
        raise ValueError("a closed workload has no arrival trace: arrivals depend on responses")
    pick_class = ClassPicker([c.weight for c in wl.classes], streams.generator("classes"))
    for times in _arrival_times(wl.open, streams, horizon):
        classes = pick_class.take(len(times))
        yield times, classes, clients.pick_many(classes)


def arrival_trace(scenario: schema.Scenario, replication: int = 0) -> Iterator[Arrival]:
    """The open-loop or trace-file arrivals of ``scenario``: (time, class index, client)."""
    for times, classes, clients in arrival_blocks(scenario, replication):
        yield from zip(times, classes, clients, strict=True)


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
