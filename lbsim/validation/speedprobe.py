"""The machine's CPU speed, followed while a user's stack is measured.

lbsim's own stack times a fixed PHP work unit inside every request; a user's
application times nothing, and its CPU per request moves with the requests
drawn (a post with 40 comments costs 5× one with 8) as much as with the
machine. So a small child process times a fixed piece of pure-Python work
every ``interval`` seconds and reports its *CPU* time: waiting for a core
does not count, a slower core (a noisy neighbour on the host, a shared
hyperthread, a lower clock) does. Its median cost over a phase against the
median while the classes were measured is the machine's speed factor, and
its last quarter against its first says whether the machine moved within
the phase — as the work unit does on lbsim's stack.

The probe costs about 2 % of a core (10 ms of work per 0.5 s); its CPU is
counted as the load generator's own (:meth:`SpeedProbe.cpu_seconds`), never
as the machine's background.
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: the child: times ``n`` iterations of a fixed loop (thread CPU time) every
#: ``interval`` s until ``limit`` s have passed or its stdin closes
_CODE = """\
import sys, threading, time
n, interval, limit = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
end = time.monotonic() + limit
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
def work(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s
while time.monotonic() < end and not done.is_set():
    c0 = time.thread_time()
    work(n)
    c = time.thread_time() - c0
    print(f"{time.monotonic():.6f} {c:.9f}", flush=True)
    done.wait(interval)
"""


@dataclass(frozen=True)
class ProbeSample:
    t: float  # time.monotonic() when the work ended (the machine's clock)
    cpu: float  # CPU seconds the fixed work took


class SpeedProbe:
    """The probe process between :meth:`start` and :meth:`stop` (a context manager)."""

    def __init__(self, iterations: int = 50_000, interval: float = 0.5, limit: float = 7200.0):
        self.iterations, self.interval, self.limit = iterations, interval, limit
        self.samples: list[ProbeSample] = []
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> SpeedProbe:
        argv = [sys.executable, "-c", _CODE, str(self.iterations), str(self.interval)]
        self._proc = subprocess.Popen(
            [*argv, str(self.limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True, name="lbsim-speed")
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            parts = line.split()
            if len(parts) == 2:
                with self._lock:
                    self.samples.append(ProbeSample(float(parts[0]), float(parts[1])))

    def cpu_seconds(self) -> float:
        """CPU seconds the probe has used so far (0 once it has ended)."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return 0.0
        try:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def between(self, t0: float, t1: float) -> list[ProbeSample]:
        with self._lock:
            return [s for s in self.samples if t0 <= s.t <= t1]

    def stop(self) -> list[ProbeSample]:
        proc = self._proc
        if proc is not None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()  # the child's own way out
                proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                proc.kill()
                proc.wait(timeout=30)
            if self._reader is not None:
                self._reader.join(timeout=10)
            if proc.stdout is not None:
                proc.stdout.close()
            self._proc = None
        with self._lock:
            return list(self.samples)

    def __enter__(self) -> SpeedProbe:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def median_cost(samples: Sequence[ProbeSample]) -> float:
    """The median CPU cost of the fixed work (NaN without samples)."""
    return statistics.median(s.cpu for s in samples) if samples else math.nan


def speed_of(samples: Sequence[ProbeSample], reference: float) -> tuple[float, float]:
    """The machine's speed factor over ``samples`` (their median cost over
    ``reference``; NaN without either) and how far it moved within them (the
    last quarter's median over the first quarter's, less 1; NaN with fewer
    than 8 samples)."""
    factor = median_cost(samples) / reference if reference > 0 else math.nan
    if len(samples) < 8:
        return factor, math.nan
    q = len(samples) // 4
    first, last = median_cost(samples[:q]), median_cost(samples[-q:])
    return factor, (last / first - 1.0) if first > 0 else math.nan
