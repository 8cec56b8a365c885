"""Who sends what, and when: client identities, class picks and the open-loop
arrival trace.

The open-loop arrival trace (times, classes, clients) is a pure function of
the scenario and the seed (:func:`arrival_trace`), drawn from its own
streams; the simulation consumes it in blocks (:func:`arrival_blocks`), and
the live replayer can draw exactly the same trace.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np

from lbsim.model.distributions import BLOCK, Sampler
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
            # a rate near the smallest float makes gaps near the largest: their sum
            # overflows to inf, which is past any horizon (the block is cut there)
            with np.errstate(over="ignore"):
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
