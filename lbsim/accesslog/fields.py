"""What an access-log line holds, and the small readers of its fields: the
request line, nginx's escapes, times in seconds, timestamps.

A :class:`Record` is one request as the log tells it; a parser raises
:class:`Malformed` with a short reason for a line it cannot read.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

#: month abbreviations as nginx, Apache and HAProxy write them (never localised)
MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}


class Malformed(ValueError):
    """A line the format cannot read; the message is the reason."""


class LogFormatError(ValueError):
    """A ``--format`` that cannot be used (unknown name, a log_format without a time)."""


@dataclass(slots=True)
class Record:
    """One request as the log tells it. Times in seconds (epoch, or naive UTC for HAProxy)."""

    client: str
    method: str
    #: the request URI, path and query (an absolute-form URI loses its scheme and host)
    uri: str
    stamp: float
    #: True: ``stamp`` is when the request ended (nginx); False: when it arrived (HAProxy)
    stamp_is_end: bool
    #: True: ``stamp`` has whole-second resolution (spread inside its second later)
    coarse: bool
    #: total response time seen by the server ($request_time, HAProxy Ta), None: unknown
    response: float | None = None
    #: summed upstream time ($upstream_response_time over every try), None: unknown
    upstream: float | None = None
    status: int | None = None


LineParser = Callable[[str], Record]

_REQUEST = re.compile(r"([A-Z][A-Z0-9_-]*) +(\S.*?)(?: +HTTP/[0-9.]+)?")
_ABSOLUTE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*")
_HEX = re.compile(r"\\x([0-9A-Fa-f]{2})")
_TIME_LOCAL = re.compile(
    r"(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([-+])(\d{2})(\d{2})"
)


def split_request(request: str) -> tuple[str, str]:
    """``(method, uri)`` of a request line ``METHOD URI [HTTP/x]``."""
    m = _REQUEST.fullmatch(request)
    if m is None:
        shown = request if len(request) <= 40 else request[:37] + "..."
        raise Malformed(f"request {shown!r} is not 'METHOD URI HTTP/x'")
    return m.group(1), strip_authority(m.group(2))


def strip_authority(uri: str) -> str:
    """``/path?query`` of an absolute-form URI (``http://host/path``, HTTP/2 in HAProxy)."""
    if uri.startswith("/"):
        return uri
    m = _ABSOLUTE.match(uri)
    if m is None:
        return uri
    return uri[m.end() :] or "/"


def unescape(value: str) -> str:
    """A value as the client sent it: nginx's ``\\xHH`` escapes decoded (as UTF-8)."""
    if "\\x" not in value:
        return value
    parts = _HEX.split(value)  # text, hex, text, hex, ..., text
    raw = b"".join(
        bytes([int(part, 16)]) if i % 2 else part.encode("utf-8", "surrogateescape")
        for i, part in enumerate(parts)
    )
    return raw.decode("utf-8", "replace")


def seconds(value: str | None, what: str) -> float | None:
    """A time in seconds (``0.123``); None for nginx's ``-`` (not known)."""
    if value is None or value in ("", "-"):
        return None
    try:
        t = float(value)
    except ValueError:
        raise Malformed(f"{what} {value!r} is not a number") from None
    if not t >= 0 or t == float("inf"):
        raise Malformed(f"{what} {value!r} is not a time >= 0")
    return t


def summed_seconds(value: str | None, what: str) -> float | None:
    """The sum of a ``$upstream_response_time`` list (``0.01, 0.02 : 0.03``, one per try);
    ``-`` entries (a try that got no response) count 0; None when every entry is ``-``."""
    if value is None or value in ("", "-"):
        return None
    total, known = 0.0, False
    for part in re.split(r"[\s,:]+", value.strip()):
        t = seconds(part, what)
        if t is not None:
            total += t
            known = True
    return total if known else None


class Clock:
    """Timestamp strings to seconds, remembering the last one (a log repeats each second)."""

    def __init__(self, parse: Callable[[str], float]):
        self._parse = parse
        self._last_text = ""
        self._last_value = 0.0

    def __call__(self, text: str) -> float:
        if text != self._last_text:
            self._last_value = self._parse(text)
            self._last_text = text
        return self._last_value


def parse_time_local(text: str) -> float:
    """``10/Oct/2000:13:55:36 -0700`` (nginx $time_local, Apache %t) to epoch seconds."""
    m = _TIME_LOCAL.fullmatch(text)
    if m is None or m.group(2) not in MONTHS:
        raise Malformed(f"time {text!r} is not dd/Mon/yyyy:hh:mm:ss +zzzz")
    day, mon, year, hh, mm, ss, sign, oh, om = m.groups()
    try:
        epoch = calendar.timegm(
            datetime(int(year), MONTHS[mon], int(day), int(hh), int(mm), int(ss)).timetuple()
        )
    except ValueError:
        raise Malformed(f"time {text!r} is not a valid date") from None
    offset = (int(oh) * 3600 + int(om) * 60) * (1 if sign == "+" else -1)
    return float(epoch - offset)


def parse_iso8601(text: str) -> float:
    """``2000-10-10T13:55:36-07:00`` (nginx $time_iso8601) to epoch seconds."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise Malformed(f"time {text!r} is not ISO 8601") from None
    if when.tzinfo is None:
        raise Malformed(f"time {text!r} has no UTC offset")
    return when.timestamp()


def parse_msec(text: str) -> float:
    t = seconds(text, "msec")
    if t is None:
        raise Malformed("msec is '-'")
    return t
