"""``from_log``: stream an access log into a :class:`LogWorkload`.

The log is read line by line (a ``.gz`` log is decompressed on the fly), so a
log of any length takes memory for its population only (see
:mod:`lbsim.accesslog.summary`). Malformed lines are counted by reason and the
first few kept; they fail the read only when more than ``max_malformed`` of
the non-blank lines are malformed, or when no line can be read at all.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from lbsim.accesslog.arrivals import ReorderBuffer, SecondSpreader
from lbsim.accesslog.classes import ClassPatternError, classifier
from lbsim.accesslog.formats import NAMED_FORMATS, Malformed, Record, parser_for
from lbsim.accesslog.summary import LogWorkload, WorkloadTally

#: malformed lines kept as examples (line number, reason, text)
EXAMPLES = 5
#: give up early when none of this many first non-blank lines can be read
GIVE_UP_AFTER = 1000
#: the progress callback is called every this many lines
PROGRESS_EVERY = 20_000
#: a shown line is cut to this many characters
SHOWN = 200


class AccessLogError(ValueError):
    """The log cannot give a workload (unreadable, too many malformed lines, empty)."""


class MalformedLines:
    """Malformed lines: counted by reason, the first :data:`EXAMPLES` kept."""

    def __init__(self) -> None:
        self.count = 0
        self.reasons: dict[str, int] = {}
        self.examples: list[dict[str, Any]] = []

    def add(self, number: int, reason: str, text: str) -> None:
        self.count += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1
        if len(self.examples) < EXAMPLES:
            shown = text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."
            self.examples.append({"line": number, "reason": reason, "text": shown})

    def first(self) -> str:
        return "; ".join(f"line {e['line']}: {e['reason']}" for e in self.examples[:3])


def _describe(fmt: str) -> str:
    return fmt if fmt in NAMED_FORMATS else "the nginx log_format"


def _open(path: Path) -> tuple[io.BufferedIOBase, io.BufferedReader]:
    """``(lines, raw)``: a binary line source and the raw file (its position is progress)."""
    raw = path.open("rb")
    if raw.peek(2)[:2] == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw), raw
    return raw, raw


def from_log(
    path: Path | str,
    fmt: str,
    classes: Sequence[str],
    *,
    bin_seconds: float = 60.0,
    heavy_classes: Sequence[str] | None = None,
    max_malformed: float = 0.01,
    reorder_window: float | None = None,
    trace: IO[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LogWorkload:
    """The workload of the access log ``path``.

    ``fmt``: ``combined``, ``haproxy`` or an nginx ``log_format`` string;
    ``classes``: ``NAME=[METHOD ]PATH`` patterns, first match wins;
    ``bin_seconds``: width of the rate schedule's steps; ``heavy_classes``:
    the classes whose requests per client measure heavy users (None: all);
    ``max_malformed``: the largest tolerated share of malformed lines;
    ``reorder_window``: seconds an arrival may come late in the log (None:
    the longest response time seen); ``trace``: where ``time,class,client``
    rows go; ``progress(bytes_read, bytes_total)``.

    Raises :class:`AccessLogError`, :class:`~lbsim.accesslog.formats.LogFormatError`
    or :class:`~lbsim.accesslog.classes.ClassPatternError`.
    """
    path = Path(path)
    if not (0 < bin_seconds < float("inf")):
        raise ValueError(f"bin must be a number of seconds > 0 (got {bin_seconds:g})")
    if not (0 <= max_malformed <= 1):
        raise ValueError(f"max_malformed must be a fraction in [0, 1] (got {max_malformed:g})")
    if reorder_window is not None and not (0 <= reorder_window < float("inf")):
        raise ValueError(f"reorder window must be >= 0 seconds (got {reorder_window:g})")
    parse = parser_for(fmt)
    classify = classifier(classes)
    names = classify.names
    if heavy_classes is None:
        heavy = list(range(len(names)))
    else:
        heavy = []
        for name in heavy_classes:
            if name not in names:
                raise ClassPatternError(
                    f"--heavy-class {name!r}: not a class (classes are: {', '.join(names)})"
                )
            heavy.append(names.index(name))
    tally = WorkloadTally(names, heavy, bin_seconds, trace)
    buffer: ReorderBuffer[tuple[int, str]] = ReorderBuffer(
        lambda t, item: tally.arrive(t, item[0], item[1]), window=reorder_window
    )

    def place(stamp: float, item: tuple[Record, int]) -> None:
        record, cls = item
        rt = record.response or 0.0
        if record.stamp_is_end:
            buffer.push(stamp - rt, stamp, (cls, record.client))
        else:
            buffer.push(stamp, stamp + rt, (cls, record.client))

    spreader: SecondSpreader[tuple[Record, int]] = SecondSpreader(place)
    bad = MalformedLines()
    counts = {"read": 0, "blank": 0, "malformed": 0, "used": 0}
    coarse: bool | None = None
    try:
        total = os.stat(path).st_size
        lines, raw = _open(path)
    except OSError as exc:
        raise AccessLogError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with raw, lines:
        try:
            for number, data in enumerate(lines, start=1):
                counts["read"] = number
                if progress is not None and number % PROGRESS_EVERY == 0:
                    progress(raw.tell(), total)
                text = data.decode("utf-8", "replace").rstrip("\r\n")
                if not text.strip():
                    counts["blank"] += 1
                    continue
                try:
                    record = parse(text)
                    if coarse is None:
                        coarse = record.coarse
                        buffer.resolution = 1.0 if coarse else 0.001
                    cls = classify(record.method, record.uri)
                except Malformed as exc:
                    bad.add(number, str(exc), text)
                    if counts["used"] == 0 and bad.count >= GIVE_UP_AFTER:
                        raise AccessLogError(
                            f"{path}: none of the first {bad.count} lines can be read as "
                            f"{_describe(fmt)} ({bad.first()}); is --format right?"
                        ) from None
                    continue
                counts["used"] += 1
                tally.measure(cls, record.response, record.upstream, record.status)
                if record.coarse:
                    spreader.push(record.stamp, (record, cls))
                else:
                    place(record.stamp, (record, cls))
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise AccessLogError(f"{path}: cannot read ({exc})") from None
    spreader.flush()
    buffer.flush()
    if progress is not None:
        progress(total, total)
    counts["malformed"] = bad.count
    written = counts["used"] + bad.count
    if counts["used"] == 0:
        why = f" ({bad.count} malformed: {bad.first()})" if bad.count else " (no lines)"
        raise AccessLogError(f"{path}: no request could be read as {_describe(fmt)}{why}")
    if bad.count > max_malformed * written:
        raise AccessLogError(
            f"{path}: {bad.count} of {written} lines are malformed "
            f"({bad.count / written:.2%}, more than the {max_malformed:g} allowed by "
            f"--max-malformed): {bad.first()}"
        )
    counts["unmatched"] = tally.class_counts[classify.other]
    counts["late"] = buffer.late
    span, duration, rates = tally.rates()
    patterns: list[str | None] = [p.text for p in classify.patterns]
    return LogWorkload(
        source=str(path),
        format=fmt,
        lines=counts,
        malformed_reasons=dict(sorted(bad.reasons.items(), key=lambda kv: -kv[1])),
        malformed_examples=bad.examples,
        first_arrival=tally.first,
        span=span,
        duration=duration,
        bin=bin_seconds,
        counts=list(tally.bins),
        rates=rates,
        classes=tally.class_summaries([*patterns, None]),
        clients=len(tally.clients),
        subnets=len(tally.subnets),
        heavy=tally.heavy_fit(),
        timing={
            "timestamps": "whole seconds, spread evenly inside each second"
            if coarse
            else "milliseconds",
            "reorder_window": buffer.window,
            "reorder_window_given": reorder_window is not None,
            "longest_response": buffer.longest,
            "late_clamped": buffer.late,
            "most_held": buffer.most_held,
        },
    )
