"""CPU used on this machine outside the stack, measured in every calibration phase.

A user's laptop or CI runner is never idle: other programs, other people's
containers, an IDE, a browser use the same cores as the stack. The model
places that load on its host (``hosts[].background``), so the calibration
measures it instead of assuming it away — and never mistakes it for the
stack's own cost.

The machine's busy CPU (``/proc/stat``, all cores summed) splits into::

    host busy = the stack's containers (their cgroups)
              + the load generator (this process and its waited-for children)
              + outside (everything else: other programs, dockerd, docker-proxy,
                         the kernel's network stack)

:class:`Meter` reads the three cumulative counters at once; :class:`Sampler`
reads them every ``interval`` seconds on a thread while a phase runs, so a
phase knows the outside load at its start, at its end and on average.
:func:`phase_background` turns the samples into a :class:`PhaseBackground`
and :func:`check_phase` decides whether the phase measured a machine that
held still: its background may not move more than :func:`drift_limit`
between the start and the end; its CPU speed (a PHP work unit's cost) may
not move more than :data:`SPEED_TOLERANCE` between the first and the last
quarter of its requests; and its speed factor (the unit's cost against the
calibration's) must stay within :data:`SPEED_OFFSET`. A factor off by less
than that is absorbed: the phase's prediction runs at the phase's own speed
(``Calibration.at_speed``), so a machine that is steadily faster or slower
than while it was calibrated (a 2-core VM drifted by 15 % for minutes on
2026-12-06; frequency and neighbours) is measured, not refused; a speed that
moves *during* the phase is what no single factor can absorb. The low-load
class phases are where the calibration's costs come from: each class's speed,
measured in its own requests, is taken out of its costs
(``ClassCost.at_unit``), so their speed is recorded and not judged.
A phase that fails is repeated by the caller, up to a bound, and otherwise
reported not valid with the reason.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: a phase is not valid when its background moved more than this (cores) ...
DRIFT_CORES = 0.15
#: ... or more than this fraction of its level, whichever is smaller,
DRIFT_FRACTION = 0.25
#: but never less than this (cores): /proc/stat ticks and short bursts of
#: dockerd or the kernel move a quiet machine's outside load by a few hundredths
DRIFT_FLOOR = 0.05
#: a phase's CPU speed may not move more than this between the first and the
#: last quarter of its requests ...
SPEED_TOLERANCE = 0.10
#: ... and its speed factor against the calibration must lie within 1 ± this
SPEED_OFFSET = 0.25


@dataclass(frozen=True)
class CpuReading:
    """Cumulative CPU seconds at one instant (``t``: monotonic seconds)."""

    t: float
    host: float  # busy CPU seconds of the whole machine
    stack: float  # CPU seconds of the stack's containers, summed
    own: float  # CPU seconds of the load generator (this process and its children)
    #: steal seconds of the machine (a virtual machine's cores taken by the
    #: hypervisor; part of ``host``, so part of the outside load)
    steal: float = 0.0


def outside_cores(a: CpuReading, b: CpuReading) -> float:
    """Cores busy outside the stack and the load generator between ``a`` and ``b``."""
    span = b.t - a.t
    if span <= 0:
        return math.nan
    return ((b.host - a.host) - (b.stack - a.stack) - (b.own - a.own)) / span


def steal_cores(a: CpuReading, b: CpuReading) -> float:
    """Cores the hypervisor took from this machine between ``a`` and ``b``."""
    span = b.t - a.t
    return (b.steal - a.steal) / span if span > 0 else math.nan


def stack_cores(a: CpuReading, b: CpuReading) -> float:
    """Cores the stack's containers used between ``a`` and ``b``."""
    span = b.t - a.t
    return (b.stack - a.stack) / span if span > 0 else math.nan


class Meter:
    """Reads the counters of a :class:`CpuReading` (each a callable, so tests
    give recorded values; ``steal``: the machine's steal seconds, None where
    not read)."""

    def __init__(
        self,
        host: Callable[[], float],
        stack: Callable[[], Mapping[str, float]],
        own: Callable[[], float],
        clock: Callable[[], float] = time.monotonic,
        steal: Callable[[], float] | None = None,
    ):
        self._host, self._stack, self._own, self._clock = host, stack, own, clock
        self._steal = steal

    def read(self) -> CpuReading:
        # the stack first (it may take a few ms: one file per container), then
        # the host and this process, so the host reading is never older than its parts
        stack = sum(self._stack().values())
        steal = self._steal() if self._steal is not None else 0.0
        return CpuReading(self._clock(), self._host(), stack, self._own(), steal)


class Sampler:
    """Reads ``meter`` every ``interval`` seconds on a thread between
    :meth:`start` and :meth:`stop` (and once at each of them)."""

    def __init__(self, meter: Meter, interval: float = 0.5):
        self.meter = meter
        self.interval = interval
        self.samples: list[CpuReading] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _take(self) -> None:
        try:
            self.samples.append(self.meter.read())
        except Exception as exc:  # a container gone: reported, never silently
            self.errors.append(str(exc))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def start(self) -> Sampler:
        self._take()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lbsim-cpu-sampler")
        self._thread.start()
        return self

    def stop(self) -> list[CpuReading]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._take()
        return self.samples

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class PhaseBackground:
    """The outside load during one phase, and whether the phase is valid."""

    phase: str
    seconds: float
    #: mean outside cores over the phase (the load it induced removed: ``induced``)
    cores: float
    start: float  # the same over the phase's first part
    end: float  # ... and its last part
    #: outside cores the phase's own requests caused (docker-proxy, network stack)
    induced: float = 0.0
    #: cores the stack's containers used (idle phase: their housekeeping)
    stack: float = math.nan
    #: a PHP work unit's cost in the phase over the calibration's (1: not measured)
    speed: float = 1.0
    attempt: int = 1
    problems: list[str] = field(default_factory=list)
    #: a user's stack: the speed probe's cost in the phase over the calibration's,
    #: and its last quarter over its first less 1 (NaN: not probed); recorded
    machine: float = math.nan
    machine_moved: float = math.nan
    #: of the outside load, the hypervisor's steal (cores): mean, first and last part
    steal: float = 0.0
    steal_start: float = 0.0
    steal_end: float = 0.0

    @property
    def valid(self) -> bool:
        return not self.problems

    @property
    def drift(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "valid": self.valid, "drift": self.drift}


def _window(samples: Sequence[CpuReading], t0: float, t1: float) -> list[CpuReading]:
    return [s for s in samples if t0 - 1e-9 <= s.t <= t1 + 1e-9]


def phase_background(
    phase: str,
    samples: Sequence[CpuReading],
    t0: float | None = None,
    t1: float | None = None,
    induced: float = 0.0,
    part: float = 0.25,
    min_part: float = 2.0,
) -> PhaseBackground:
    """The outside load of the samples between ``t0`` and ``t1`` (default: all).

    ``start`` and ``end`` cover the first and last ``part`` of the window (at
    least ``min_part`` seconds, at most half of it): a load that rises or
    falls inside the phase shows as their difference. ``induced`` (cores the
    phase's own requests cause outside the stack, e.g. docker-proxy) is
    subtracted from the mean; it cancels out of the difference, since an
    open-loop replay's rate is steady.
    """
    pts = list(samples)
    if t0 is not None and t1 is not None:
        pts = _window(pts, t0, t1)
    if len(pts) < 2:
        nan = math.nan
        return PhaseBackground(phase, 0.0, nan, nan, nan, induced, problems=["no CPU samples"])
    first, last = pts[0], pts[-1]
    span = last.t - first.t
    cut = min(max(part * span, min_part), span / 2)
    head = [s for s in pts if s.t <= first.t + cut + 1e-9]
    tail = [s for s in pts if s.t >= last.t - cut - 1e-9]
    mean, steal = outside_cores(first, last), steal_cores(first, last)
    return PhaseBackground(
        phase,
        span,
        max(mean - induced, 0.0),
        outside_cores(head[0], head[-1]) if len(head) > 1 else mean,
        outside_cores(tail[0], tail[-1]) if len(tail) > 1 else mean,
        induced,
        stack_cores(first, last),
        steal=steal,
        steal_start=steal_cores(head[0], head[-1]) if len(head) > 1 else steal,
        steal_end=steal_cores(tail[0], tail[-1]) if len(tail) > 1 else steal,
    )


def drift_limit(level: float) -> float:
    """How far (cores) a phase's background may move between its start and
    end: 25 % of its level, at most 0.15 core, at least 0.05 core."""
    level = abs(level) if math.isfinite(level) else 0.0
    return max(DRIFT_FLOOR, min(DRIFT_CORES, DRIFT_FRACTION * level))


#: after a phase the machine moved under, how long (s) :func:`settle` waits at
#: most for it to hold still before the phase is repeated
SETTLE_MOST = 40.0
#: ... reading the outside load over windows of this many seconds
SETTLE_WINDOW = 2.5


@dataclass(frozen=True)
class Settled:
    """What :func:`settle` saw: seconds waited, whether the machine held still
    (two windows in a row within :func:`drift_limit`), its last outside load."""

    waited: float
    still: bool
    cores: float
    steal: float


def settle(
    meter: Meter,
    most: float = SETTLE_MOST,
    window: float = SETTLE_WINDOW,
    sleep: Callable[[float], None] = time.sleep,
) -> Settled:
    """Wait until the outside load holds still, at most ``most`` seconds.

    A phase repeated at once after the machine moved under it mostly lands in
    the same burst (a CI run on 2026-12-07: three 25 s replays in a row whose
    outside load rose from 0.12 to 0.28-0.58 cores): the repetition waits for
    two consecutive ``window``-second readings of the outside load within
    :func:`drift_limit` of each other. The wait depends on the machine alone,
    never on what a phase measured; the repeated phase is judged by
    :func:`check_phase` like the first.
    """
    last = meter.read()
    waited, previous = 0.0, math.nan
    cores = steal = math.nan
    while waited < most:
        sleep(window)
        now = meter.read()
        waited += window
        cores, steal = outside_cores(last, now), steal_cores(last, now)
        last = now
        if math.isfinite(previous) and abs(cores - previous) <= drift_limit(max(cores, previous)):
            return Settled(waited, True, cores, steal)
        previous = cores
    return Settled(waited, False, cores, steal)


def check_phase(
    bg: PhaseBackground, speed: float = 1.0, moved: float = math.nan, judge_speed: bool = True
) -> list[str]:
    """Why ``bg``'s phase did not measure a machine that held still (empty: valid);
    ``moved``: the unit cost's last quarter over its first, less 1 (NaN: unknown);
    ``judge_speed``: whether ``speed`` measures the machine alone (a work unit's
    cost) and may invalidate the phase, or also what the requests did (a target's
    app CPU per request: recorded, not judged).

    Sets ``bg.speed`` and ``bg.problems``."""
    bg.speed = speed
    problems = [p for p in bg.problems if p == "no CPU samples"]
    if not problems:
        level = max(bg.start, bg.end)
        limit = drift_limit(level)
        if not (math.isfinite(bg.drift) and abs(bg.drift) <= limit):
            # how much of it the hypervisor took (steal), when it took any: a
            # busy neighbour of the virtual machine, not a program on it
            stolen = (
                f"; the hypervisor's steal {bg.steal_start:.2f} to {bg.steal_end:.2f}"
                if max(bg.steal_start, bg.steal_end) >= 0.01
                else ""
            )
            problems.append(
                f"the CPU used outside the stack moved from {bg.start:.2f} to {bg.end:.2f} "
                f"cores during the phase (more than {limit:.2f}{stolen})"
            )
    if judge_speed and math.isfinite(speed) and abs(speed - 1.0) > SPEED_OFFSET:
        problems.append(
            f"a CPU work unit cost ×{speed:.3f} its calibrated cost (outside 1 ± {SPEED_OFFSET:g})"
        )
    if math.isfinite(moved) and abs(moved) > SPEED_TOLERANCE:
        problems.append(
            f"a CPU work unit's cost moved ×{1 + moved:.3f} from the first to the last "
            f"quarter of the phase (outside 1 ± {SPEED_TOLERANCE:g})"
        )
    bg.problems = problems
    return problems
