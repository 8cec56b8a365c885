"""Calibrating Galera's ``visibility_lag``: when a write shows on the other nodes.

What is measured (:func:`measure_visibility`, the probe's poll mode,
validation/app/probe.php): one PHP worker writes a row on the writer
(autocommit UPDATE) and, as soon as the OK is back, reads it on the reader
again and again until the reader shows it (at most ``max_wait``), ``n``
times. Per write: how many reads missed it, and the times from the write
returning to the sending of the last read that missed it and of the first
read that saw it.

From PHP's clock to the model's. A read sent ``x`` after the OK came back
runs on the reader ``2 × app_db`` after the writer acknowledged (one hop
back to PHP, one hop to the reader), so the lag of a write past the writer's
acknowledgement (:func:`ack_lags`) is

* ``2·app_db + (last missed + first seen) / 2`` for a write the first read
  missed (it showed between those two reads),
* ``2·app_db + max_wait`` for one not seen in time (a lower bound),
* 0 for a write the first read saw: it showed no later than that read, and
  no read earlier than the first one can tell when (a read issued after the
  acknowledgement is the earliest that counts as stale).

Into the model (:func:`visibility_lag_spec`). In a calibrated scenario
(``apply`` 0, ``replication_delay`` 0) a write-set is delivered to every node
at the end of the write's execution; the writer acknowledges ``commit``
later, each other node's applier commits it at once, and its rows show
``visibility_lag`` after that. So ``visibility_lag = commit + lag past the
acknowledgement``, as an empirical distribution of the measured lags:
the model's probe (:func:`lbsim.validation.probe.model_stale_fraction`)
then reads stale exactly when the first real read did, and at higher load
the reader's applier queue adds to it as it would on the stack.
"""

from __future__ import annotations

import json
import math
import statistics
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lbsim.validation.probe import ProbeError, ProbeResult, parse_probe, probe_url

#: how long a write may take to show on the reader before the probe stops reading (s)
MAX_WAIT = 0.5
#: lags are rounded to this (s) and equal ones pooled into one weighted value
RESOLUTION = 1e-5


@dataclass(frozen=True)
class VisibilityPoll:
    """One write of the poll probe, PHP's times from the write returning (s)."""

    #: reads that missed the write before one saw it (0: the first read saw it)
    missed: int
    #: when the last read that missed it was sent; None when none missed
    last_missed_s: float | None
    #: when the first read that saw it was sent; None: not seen within max_wait
    seen_s: float | None


@dataclass(frozen=True)
class VisibilityProbe:
    result: ProbeResult
    polls: tuple[VisibilityPoll, ...]
    max_wait_s: float
    #: the probe stopped at its time budget before its n writes
    cut_short: bool

    @property
    def first_read_stale_fraction(self) -> float:
        """Writes the first read missed, of those polled (the plain probe's fraction)."""
        return sum(1 for p in self.polls if p.missed) / len(self.polls)


def _time(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProbeError(f"{what} is {value!r}, not a time")
    x = float(value)
    if not (math.isfinite(x) and x >= 0):
        raise ProbeError(f"{what} is {x!r}, not a time >= 0")
    return x


def parse_polls(body: str | bytes) -> VisibilityProbe:
    """The JSON answer of ``GET /probe?poll=1`` (checked)."""
    result = parse_probe(body)
    data = json.loads(body)
    polls = data.get("polls")
    if not isinstance(polls, list):
        raise ProbeError("the probe answer has no polls (does the stack's probe.php poll?)")
    if not polls:
        raise ProbeError(f"the probe polled nothing ({result.errors} errors of {result.n})")
    out = []
    for i, row in enumerate(polls):
        if not (isinstance(row, list) and len(row) == 3):
            raise ProbeError(f"polls[{i}] is {row!r}, not [missed, last_missed_s, seen_s]")
        missed = row[0]
        if isinstance(missed, bool) or not isinstance(missed, int) or missed < 0:
            raise ProbeError(f"polls[{i}][0] is {missed!r}, not a count of reads")
        last, seen = _time(row[1], f"polls[{i}][1]"), _time(row[2], f"polls[{i}][2]")
        backwards = last is not None and seen is not None and seen < last
        if (last is None) != (missed == 0) or backwards:
            raise ProbeError(f"inconsistent poll polls[{i}]: {row!r}")
        out.append(VisibilityPoll(missed, last, seen))
    wait = _time(data.get("max_wait_s"), "max_wait_s")
    if wait is None or wait <= 0:
        raise ProbeError("the probe answer lacks max_wait_s")
    return VisibilityProbe(result, tuple(out), wait, bool(data.get("cut_short", False)))


def ack_lags(polls: Sequence[VisibilityPoll], app_db: float, max_wait: float) -> list[float]:
    """Each write's lag past the writer's acknowledgement (s; see the module docstring)."""
    if app_db < 0 or max_wait <= 0:
        raise ValueError(f"app_db {app_db!r} must be >= 0 and max_wait {max_wait!r} > 0")
    out = []
    for p in polls:
        if p.missed == 0:
            out.append(0.0)
        elif p.seen_s is None:
            out.append(2 * app_db + max_wait)
        else:
            assert p.last_missed_s is not None
            out.append(2 * app_db + (p.last_missed_s + p.seen_s) / 2)
    return out


def visibility_lag_spec(
    lags: Sequence[float],
    commit: float,
    resolution: float = RESOLUTION,
    late_share: float | None = None,
) -> dict[str, Any] | float | None:
    """``database.visibility_lag`` of a calibrated scenario: ``commit`` + each lag
    past the acknowledgement, rounded to ``resolution`` and pooled (an
    empirical distribution with weights); None without measurements.

    ``late_share``: the share of writes that show late (lag > 0) is set to it,
    the late lags keeping their measured shape (each weighs ``late_share`` /
    their count): the poll probe's own rhythm (the next write right after the
    reader shows the last) makes more of its writes late than a read-back
    probe sees (:mod:`lbsim.validation.stories.readback`). Ignored when no
    measured lag is late (there is no shape to give them)."""
    if not lags:
        return None
    if commit < 0 or any(not (math.isfinite(x) and x >= 0) for x in lags):
        raise ValueError("commit and the lags must be finite and >= 0")
    if late_share is not None and not 0 <= late_share <= 1:
        raise ValueError(f"late_share {late_share!r} must be in [0, 1]")
    digits = max(0, round(-math.log10(resolution)))
    late = [x for x in lags if x > 0]
    weights: dict[float, float] = {}
    if late_share is None or not late:
        for x in lags:
            v = round(commit + x, digits)
            weights[v] = weights.get(v, 0) + 1
    else:
        if late_share < 1:
            weights[round(commit, digits)] = 1.0 - late_share
        for x in late:
            v = round(commit + x, digits)
            weights[v] = weights.get(v, 0.0) + late_share / len(late)
        weights = {v: w for v, w in weights.items() if w > 0}
    if len(weights) == 1:
        return next(iter(weights))
    values = sorted(weights)
    if late_share is None or not late:  # counts of writes
        return {"dist": "empirical", "values": values, "weights": [int(weights[v]) for v in values]}
    return {"dist": "empirical", "values": values, "weights": [weights[v] for v in values]}


def visibility_keys(
    lags: Sequence[float], commit: float, late_share: float | None = None
) -> dict[str, Any]:
    """What a calibrated Galera database section gets: ``visibility_lag``, or
    nothing without measurements (visible at the commit, as before)."""
    spec = visibility_lag_spec(lags, commit, late_share=late_share)
    return {} if spec is None else {"visibility_lag": spec}


def poll_url(url: str, writer: str, reader: str, n: int, key: int, max_wait: float) -> str:
    if not 0 < max_wait <= 5:
        raise ValueError(f"max_wait must be in (0, 5] s, not {max_wait!r}")
    return probe_url(url, writer, reader, n, False, key) + f"&poll=1&max_wait={max_wait:g}"


def poll_visibility(
    url: str,
    writer: str,
    reader: str,
    n: int = 400,
    key: int = 1,
    max_wait: float = MAX_WAIT,
    timeout: float = 90.0,
) -> VisibilityProbe:
    """Run the poll probe on the stack behind ``url`` (loopback only). The
    endpoint stops after 60 s whatever ``n`` (``cut_short``); ``timeout``
    bounds the wait for its answer. ``key`` must be a row nothing else writes."""
    target = poll_url(url, writer, reader, n, key, max_wait)
    request = urllib.request.Request(target, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise ProbeError(f"{target}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
    except OSError as exc:
        raise ProbeError(f"{target}: {exc}") from exc
    return parse_polls(body)


def measure_visibility(
    url: str, writer: str, reader: str, app_db: float, n: int = 400, key: int = 1
) -> tuple[list[float], VisibilityProbe]:
    """The lags past the writer's acknowledgement (s) of ``n`` writes on
    ``writer`` read back on ``reader``, and the probe's answer."""
    probe = poll_visibility(url, writer, reader, n, key)
    return ack_lags(probe.polls, app_db, probe.max_wait_s), probe


def calibrate_visibility(
    url: str,
    writer: str,
    reader: str,
    app_db: float,
    say: Callable[[str], None] = print,
    n: int = 400,
) -> list[float]:
    """The calibration's step: :func:`measure_visibility`, told as it goes; a
    probe that fails is reported and leaves the lags unmeasured (no key)."""
    say(f"measuring when a write on {writer} shows on {reader} ({n} writes, each read back)")
    try:
        lags, probe = measure_visibility(url, writer, reader, app_db, n)
    except ProbeError as exc:
        say(f"  NOT MEASURED ({exc}): the model's rows show at the applier's commit")
        return []
    late = [x for x in lags if x > 0]
    say(
        f"  the first read missed {probe.first_read_stale_fraction:.1%} of {len(lags)} writes"
        + (
            f"; they showed {statistics.median(late) * 1e3:.3f} ms (median) after the OK"
            if late
            else ""
        )
        + ("; cut short at the probe's 60 s" if probe.cut_short else "")
    )
    return lags
