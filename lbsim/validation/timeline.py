"""Per-second series of a fault and what a reader asks of them: the error
burst, the throughput dip and the recovery time.

Both sides are binned alike: a request counts in the second in which its
answer reached the client (``sent + latency`` on the live side, the
simulated answer time in the model), completed (status 200) or failed (any
other answer, a client timeout included, at the moment the client gave up).
Bin ``k`` covers ``[k, k + 1)`` s from the start of the run (the model's
time 0 is the replay's first scheduled send). Answers at or after the
horizon are not binned (the model stops there).

Given a fault from ``start`` (the kill) to ``end`` (the restart), precisely:

* **pre-fault mean** ``q``: the mean completions per second over the whole
  bins from the end of the warm-up to the fault's start.
* **failing second**: a bin at or after the fault's start bin with at least
  one failure.
* **error burst**: a maximal run of failing seconds in which successive
  failing seconds are at most :data:`JOIN` bins apart (up to two quiet
  seconds inside one burst). ``burst_count`` is the number of bursts;
  ``burst_duration`` is the span from the first failing second to the end
  of the last one, ``last − first + 1`` s (0 without failures), whatever
  the quiet stretches between bursts; ``first_failure`` is the first
  failing second's start minus the fault's start.
* **throughput dip**: ``dip_min``, the least completions in one second from
  the fault's start bin to :data:`DIP_AFTER` s after the restart (or the
  horizon); ``dip`` = ``1 − dip_min / q``.
* **recovery time**: from the restart, the start of the first bin ``k`` at
  or after the restart's bin whose :data:`HOLD` seconds ``k … k + HOLD − 1``
  average at least ``(1 − TOLERANCE) · q`` completions, minus the restart
  time (floored at 0). When that never happens before the horizon the run
  is censored: ``recovery`` is the time from the restart to the horizon
  (a lower bound, paired like the others) and ``recovered`` is False.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: failing seconds at most this many bins apart belong to one burst
JOIN = 3
#: the dip is looked for until this long after the restart (s)
DIP_AFTER = 10.0
#: throughput counts as recovered when HOLD seconds average within TOLERANCE of q
HOLD = 3
TOLERANCE = 0.10


@dataclass
class Series:
    """Completions and failures per second (failures also by reason, where known)."""

    completed: list[int]
    failed: list[int]
    by_reason: dict[str, list[int]] = field(default_factory=dict)

    @property
    def bins(self) -> int:
        return len(self.completed)

    def to_dict(self) -> dict[str, Any]:
        return {"completed": self.completed, "failed": self.failed, "by_reason": self.by_reason}


def bin_answers(answers: Iterable[tuple[float, str]], horizon: float) -> Series:
    """``(answer time, outcome)`` pairs into seconds: outcome ``completed`` or a
    failure reason (``http_502``, ``timeout``, …); answers at or after the horizon
    or with a time that is not a finite number ≥ 0 are left out."""
    n = max(0, math.ceil(horizon))
    completed = [0] * n
    failed = [0] * n
    by_reason: dict[str, list[int]] = {}
    for t, outcome in answers:
        if not (math.isfinite(t) and 0 <= t < horizon):
            continue
        k = int(t)
        if outcome == "completed":
            completed[k] += 1
        else:
            failed[k] += 1
            by_reason.setdefault(outcome, [0] * n)[k] += 1
    return Series(completed, failed, by_reason)


def from_rows(rows: Sequence[Mapping[str, float]], horizon: float) -> Series:
    """The model's report rows (``time`` = end of the interval, ``throughput`` and
    ``failure_rate`` per second over it) as a per-second :class:`Series`; the rows
    must be one second long (``report.interval: 1``)."""
    n = max(0, math.ceil(horizon))
    completed = [0] * n
    failed = [0] * n
    last = 0.0
    for row in rows:
        t = float(row["time"])
        span = t - last
        if span <= 0:
            continue
        if abs(span - 1.0) > 1e-6 and t < horizon - 1e-6:
            raise ValueError(f"the model's rows are {span:g} s long; the timeline needs 1 s")
        k = round(last)
        last = t
        if 0 <= k < n:
            completed[k] = round(float(row["throughput"]) * span)
            failed[k] = round(float(row["failure_rate"]) * span)
    return Series(completed, failed)


@dataclass(frozen=True)
class FaultWindow:
    """The fault as scheduled: warm-up end, kill, restart, horizon (s)."""

    warmup: float
    start: float
    end: float
    horizon: float


@dataclass
class Burst:
    first: int
    last: int
    failures: int

    @property
    def duration(self) -> float:
        return float(self.last - self.first + 1)


def bursts(failed: Sequence[int], from_bin: int = 0, join: int = JOIN) -> list[Burst]:
    """The error bursts of ``failed`` from bin ``from_bin`` on (see the module doc)."""
    out: list[Burst] = []
    for k in range(max(0, from_bin), len(failed)):
        if failed[k] <= 0:
            continue
        if out and k - out[-1].last <= join:
            out[-1].last = k
            out[-1].failures += failed[k]
        else:
            out.append(Burst(k, k, failed[k]))
    return out


def pre_fault_mean(series: Series, window: FaultWindow) -> float:
    lo = math.ceil(window.warmup)
    hi = min(math.floor(window.start), series.bins)
    if hi <= lo:
        return math.nan
    return sum(series.completed[lo:hi]) / (hi - lo)


def recovery_time(
    completed: Sequence[int],
    restart: float,
    target: float,
    hold: int = HOLD,
    tolerance: float = TOLERANCE,
) -> float:
    """Seconds from ``restart`` until ``hold`` seconds average at least
    ``(1 − tolerance) · target`` completions (see the module doc); NaN if never."""
    if not math.isfinite(target):
        return math.nan
    floor = (1.0 - tolerance) * target
    for k in range(max(0, math.floor(restart)), len(completed) - hold + 1):
        if sum(completed[k : k + hold]) / hold >= floor:
            return max(0.0, k - restart)
    return math.nan


@dataclass
class FaultSummary:
    """What :func:`summarise` finds in one run's series."""

    pre_fault: float
    burst_count: int
    burst_duration: float
    first_failure: float
    failures: int
    dip_min: float
    dip: float
    recovery: float
    bursts: list[tuple[int, int, int]] = field(default_factory=list)
    #: False: throughput had not recovered by the horizon (recovery is a lower bound)
    recovered: bool = True

    def metrics(self) -> dict[str, float]:
        """The values paired between the two sides."""
        return {
            "burst.count": float(self.burst_count),
            "burst.duration": self.burst_duration,
            "throughput.dip_min": self.dip_min,
            "recovery": self.recovery,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "pre_fault": self.pre_fault,
            "burst_count": self.burst_count,
            "burst_duration": self.burst_duration,
            "first_failure": self.first_failure,
            "failures": self.failures,
            "dip_min": self.dip_min,
            "dip": self.dip,
            "recovery": self.recovery,
            "recovered": self.recovered,
            "bursts": [list(b) for b in self.bursts],
        }


def summarise(series: Series, window: FaultWindow) -> FaultSummary:
    """Burst, dip and recovery of ``series`` around ``window`` (the module doc)."""
    q = pre_fault_mean(series, window)
    start_bin = math.floor(window.start)
    found = bursts(series.failed, start_bin)
    duration = float(found[-1].last - found[0].first + 1) if found else 0.0
    first = found[0].first - window.start if found else math.nan
    dip_end = min(series.bins, math.ceil(min(window.horizon, window.end + DIP_AFTER)))
    dip_bins = series.completed[start_bin:dip_end]
    dip_min = float(min(dip_bins)) if dip_bins else math.nan
    dip = 1.0 - dip_min / q if q and math.isfinite(q) and q > 0 else math.nan
    recovery = recovery_time(series.completed, window.end, q)
    recovered = math.isfinite(recovery) or not math.isfinite(q)
    return FaultSummary(
        pre_fault=q,
        burst_count=len(found),
        burst_duration=duration,
        first_failure=max(0.0, first) if math.isfinite(first) else math.nan,
        failures=sum(b.failures for b in found),
        dip_min=dip_min,
        dip=dip,
        recovery=recovery if recovered else max(0.0, window.horizon - window.end),
        recovered=recovered,
        bursts=[(b.first, b.last, b.failures) for b in found],
    )
