"""What a log says about its workload, gathered while it streams by.

Memory is bounded by the log's *population*, not its length: a counter per
class, a fixed-size histogram per class and measure, one small counter per
distinct client address, one per rate bin.

- Response times: mean exact; percentiles from a log-bucketed histogram
  (:class:`lbsim.stats.histogram.LogHistogram`) within 0.5 % relative error.
- Rate schedule: arrivals per ``bin`` seconds from the first arrival. The last
  bin is usually cut short by the end of the log: its rate is its count over
  the part of it the log covers (to the last arrival plus one mean gap).
- Heavy users: the Lorenz curve of the heavy classes' requests per client
  (every distinct client, those that sent none included) and its Hoover
  point, the share of clients that maximises ``share - fraction`` (the
  clients above the mean). Clients drawn uniformly already give a Hoover
  index of ``P(X = floor(m))`` for ``X ~ Poisson(m)``, ``m`` the mean per
  client (a Poisson count's mean absolute deviation is ``2 m P(X = floor(m))``);
  ``heavy`` is reported only when the log's index exceeds that noise by
  :data:`HEAVY_MIN_EXCESS`.
"""

from __future__ import annotations

import ipaddress
import math
from array import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import numpy as np

from lbsim.stats.histogram import LogHistogram

#: relative error of the reported percentiles
PERCENTILE_ERROR = 0.005
#: ``heavy`` needs a Hoover index this much above uniform clients' Poisson noise
HEAVY_MIN_EXCESS = 0.05
#: response times go to a histogram this many at a time
BATCH = 4096


class ResponseTimes:
    """Count, exact mean and max, and percentiles within :data:`PERCENTILE_ERROR` (s)."""

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        # values wait in a fixed array and go to the histogram in batches (numpy)
        self._pending = np.empty(BATCH)
        self._waiting = 0
        self._histogram = LogHistogram(PERCENTILE_ERROR)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value
        self._pending[self._waiting] = value
        self._waiting += 1
        if self._waiting == BATCH:
            self._settle()

    def _settle(self) -> None:
        if self._waiting:
            self._histogram.add_many(self._pending[: self._waiting])
            self._waiting = 0

    def summary(self) -> dict[str, float] | None:
        if self.count == 0:
            return None
        self._settle()
        q = self._histogram.quantile
        return {
            "count": self.count,
            "mean": self.total / self.count,
            "p50": q(0.50),
            "p95": q(0.95),
            "p99": q(0.99),
            "max": self.max,
        }


@dataclass(frozen=True)
class HeavyFit:
    """The Hoover point of the heavy classes' requests per client."""

    #: share of the clients above the mean
    fraction: float
    #: share of the heavy classes' requests they sent
    share: float
    classes: tuple[str, ...]
    #: share - fraction (the Hoover index)
    hoover: float
    #: the Hoover index uniform clients would show at the same mean (Poisson noise)
    noise: float
    #: clients above the mean, and all clients
    heavy_clients: int
    clients: int
    #: the heavy classes' requests
    requests: int

    @property
    def reported(self) -> bool:
        return 0 < self.heavy_clients < self.clients and (
            self.hoover - self.noise >= HEAVY_MIN_EXCESS
        )


def poisson_hoover(mean: float) -> float:
    """The Hoover index of a Poisson(mean) count: ``P(X = floor(mean))``."""
    if mean <= 0:
        return 0.0
    k = math.floor(mean)
    return math.exp(-mean + k * math.log(mean) - math.lgamma(k + 1))


def hoover_point(counts: Sequence[int] | np.ndarray, classes: tuple[str, ...]) -> HeavyFit | None:
    """The Hoover point of per-client counts (None: no requests, or fewer than 2 clients)."""
    values = np.sort(np.asarray(counts, dtype=np.int64))[::-1]
    n = int(values.size)
    total = int(values.sum())
    if n < 2 or total == 0:
        return None
    mean = total / n
    k = int(np.count_nonzero(values > mean))
    fraction = k / n
    share = int(values[:k].sum()) / total
    return HeavyFit(
        fraction=fraction,
        share=share,
        classes=classes,
        hoover=share - fraction,
        noise=poisson_hoover(mean),
        heavy_clients=k,
        clients=n,
        requests=total,
    )


def subnet_of(address: str) -> str:
    """The network a client address belongs to: IPv4 /24, IPv6 /48; an address that
    is not an IP (a host name, ``-``) is its own."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


@dataclass
class ClassSummary:
    name: str
    #: the --classes option (None for ``other``)
    pattern: str | None
    count: int = 0
    weight: float = 0.0
    #: $request_time or HAProxy Ta (s)
    response_time: dict[str, float] | None = None
    #: $upstream_response_time, summed over the tries of a request (s)
    upstream_time: dict[str, float] | None = None
    #: responses by status class: ``2xx`` ... and ``unknown``
    status: dict[str, int] = field(default_factory=dict)


@dataclass
class LogWorkload:
    """Everything ``from_log`` measured (``summary.json`` is :meth:`to_dict`)."""

    source: str
    format: str
    lines: dict[str, int]
    malformed_reasons: dict[str, int]
    #: the first malformed lines: ``{line, reason, text}``
    malformed_examples: list[dict[str, Any]]
    #: epoch seconds of the first arrival (naive UTC for HAProxy); None: no arrival
    first_arrival: float | None
    #: first to last arrival (s), and to the end the log covers (plus one mean gap)
    span: float
    duration: float
    bin: float
    counts: list[int]
    rates: list[float]
    classes: list[ClassSummary]
    clients: int
    subnets: int
    heavy: HeavyFit | None
    #: how arrival times were made: spread inside whole seconds, the reorder window
    timing: dict[str, Any]

    @property
    def schedule(self) -> list[tuple[float, float]]:
        return [(i * self.bin, r) for i, r in enumerate(self.rates)]

    @property
    def arrivals(self) -> int:
        return sum(self.counts)

    def listed_classes(self) -> list[ClassSummary]:
        """The classes of the fragment: ``other`` only when it has requests."""
        return [c for c in self.classes if c.pattern is not None or c.count > 0]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["classes"] = [asdict(c) for c in self.listed_classes()]
        out["schedule"] = [list(p) for p in self.schedule]
        out["arrivals"] = self.arrivals
        out["heavy"] = None
        if self.heavy is not None:
            out["heavy"] = {**asdict(self.heavy), "reported": self.heavy.reported}
        return out


class WorkloadTally:
    """Counts arrivals (in time order) per class, bin and client; writes the trace."""

    def __init__(
        self,
        names: Sequence[str],
        heavy: Sequence[int],
        bin_seconds: float,
        trace: IO[str] | None = None,
    ):
        self.names = tuple(names)
        self.bin = bin_seconds
        self.class_counts = [0] * len(names)
        self.response = [ResponseTimes() for _ in names]
        self.upstream = [ResponseTimes() for _ in names]
        self.status: list[dict[str, int]] = [{} for _ in names]
        self._heavy = [i in set(heavy) for i in range(len(names))]
        self.bins: list[int] = []
        self.clients: dict[str, int] = {}
        self.heavy_counts: array[int] = array("q")
        self.subnets: set[str] = set()
        self.first: float | None = None
        self.last = 0.0
        self._trace = trace
        if trace is not None:
            trace.write("time,class,client\n")

    def measure(
        self, cls: int, response: float | None, upstream: float | None, status: int | None
    ) -> None:
        """What a request's log line says besides its arrival (in log order)."""
        if response is not None:
            self.response[cls].add(response)
        if upstream is not None:
            self.upstream[cls].add(upstream)
        key = f"{status // 100}xx" if status is not None and 100 <= status < 600 else "unknown"
        counts = self.status[cls]
        counts[key] = counts.get(key, 0) + 1

    def arrive(self, t: float, cls: int, client: str) -> None:
        """One arrival; ``t`` never decreases from one call to the next."""
        if self.first is None:
            self.first = t
        self.last = t
        rel = t - self.first
        i = int(rel // self.bin)
        bins = self.bins
        while len(bins) <= i:
            bins.append(0)
        bins[i] += 1
        self.class_counts[cls] += 1
        cid = self.clients.get(client)
        if cid is None:
            cid = len(self.clients)
            self.clients[client] = cid
            self.heavy_counts.append(0)
            self.subnets.add(subnet_of(client))
        if self._heavy[cls]:
            self.heavy_counts[cid] += 1
        if self._trace is not None:
            self._trace.write(f"{rel:.6f},{self.names[cls]},{cid}\n")

    def rates(self) -> tuple[float, float, list[float]]:
        """``(span, duration, rate per bin)``: see the module's note on the last bin."""
        n = sum(self.bins)
        if self.first is None or n == 0:
            return 0.0, 0.0, []
        span = self.last - self.first
        duration = span + (span / (n - 1) if n > 1 else self.bin)
        rates = []
        for i, count in enumerate(self.bins):
            width = min(self.bin, duration - i * self.bin)
            rates.append(count / width if width > 0 else 0.0)
        return span, duration, rates

    def heavy_fit(self) -> HeavyFit | None:
        present = tuple(
            n for i, n in enumerate(self.names) if self._heavy[i] and self.class_counts[i] > 0
        )
        if not present:
            return None
        return hoover_point(np.frombuffer(self.heavy_counts, dtype=np.int64), present)

    def class_summaries(self, patterns: Sequence[str | None]) -> list[ClassSummary]:
        total = sum(self.class_counts)
        return [
            ClassSummary(
                name=name,
                pattern=patterns[i],
                count=self.class_counts[i],
                weight=self.class_counts[i] / total if total else 0.0,
                response_time=self.response[i].summary(),
                upstream_time=self.upstream[i].summary(),
                status=dict(sorted(self.status[i].items())),
            )
            for i, name in enumerate(self.names)
        ]
