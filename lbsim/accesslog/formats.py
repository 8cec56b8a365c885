"""Access-log line parsers: nginx/Apache ``combined``, a custom nginx ``log_format``
given as its string, and HAProxy's HTTP log (``option httplog``).

Each parser turns one line into a :class:`Record` or raises :class:`Malformed`
with a short reason. A record carries the log's own timestamp and says what it
is: nginx writes a line when the request *ends* (``$time_local``,
``$time_iso8601``, ``$msec``), HAProxy's date is when the request was
*received*; the arrival time is worked out later (:mod:`lbsim.accesslog.arrivals`).

The nginx compiler turns each ``$variable``/``${variable}`` into a regex group:
between quotes (or brackets) a value runs to the closing character, nginx's
``\\xHH`` escapes (and ``escape=json``'s ``\\"``) included; elsewhere it is a run
of non-space characters (up to the next literal character of the format).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

#: month abbreviations as nginx, Apache and HAProxy write them (never localised)
MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}

#: the predefined nginx ``combined`` format (Apache's is the same line)
COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
#: variables the parsers read; any other variable is matched and ignored
KNOWN = frozenset(
    {
        "remote_addr",
        "http_x_forwarded_for",
        "time_local",
        "time_iso8601",
        "msec",
        "request",
        "request_method",
        "request_uri",
        "uri",
        "args",
        "status",
        "request_time",
        "upstream_response_time",
        "upstream_addr",
    }
)


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


class _Clock:
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


# --------------------------------------------------------------------------- nginx


def _normalise_format(text: str) -> str:
    """The format string itself: ``log_format NAME [escape=..] '...' '...';`` (as in
    nginx.conf) or one quoted string are unwrapped; anything else is taken as it is."""
    s = text.strip()
    if s.startswith("log_format"):
        s = s.removeprefix("log_format").strip().rstrip(";").strip()
        parts = s.split(None, 1)
        s = parts[1] if len(parts) == 2 else ""
        if s.startswith("escape="):
            s = s.split(None, 1)[1] if " " in s else ""
        pieces = re.findall(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"", s)
        if not pieces:
            raise LogFormatError("log_format directive without a quoted format string")
        return "".join(a or b for a, b in pieces)
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"" and s.count(s[0]) == 2:
        return s[1:-1]
    return text


_VARIABLE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
_CLOSING = {'"': '"', "'": "'", "[": "]", "(": ")", "{": "}", "<": ">"}


def compile_nginx(text: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """The regex of a log_format string and the known variables it captures."""
    fmt = _normalise_format(text)
    pieces: list[str] = []
    names: list[str] = []
    matches = list(_VARIABLE.finditer(fmt))
    if not matches:
        raise LogFormatError(f"log_format {fmt!r} has no $variable")
    pos = 0
    for i, m in enumerate(matches):
        before = fmt[pos : m.start()]
        pieces.append(re.escape(before))
        end = matches[i + 1].start() if i + 1 < len(matches) else len(fmt)
        after = fmt[m.end() : end]
        name = m.group(1) or m.group(2)
        closing = _CLOSING.get(before[-1:])
        if closing is not None and after.startswith(closing):
            c = re.escape(closing)
            value = f"[^{c}\\\\]*(?:\\\\.[^{c}\\\\]*)*"
        elif not after:
            value = r"\S*?" if i + 1 < len(matches) else r"\S*"
        elif after[0].isspace():
            value = r"\S*"
        else:
            value = f"[^\\s{re.escape(after[0])}]*"
        if name in KNOWN and name not in names:
            names.append(name)
            pieces.append(f"(?P<{name}>{value})")
        else:
            pieces.append(f"(?:{value})")
        pos = m.end()
    pieces.append(re.escape(fmt[pos:]))
    return re.compile("".join(pieces) + r"\s*"), tuple(names)


def nginx_parser(text: str, *, optional_tail: str = "") -> LineParser:
    """A parser for lines written by ``log_format`` ``text``.

    ``optional_tail``: a regex the line may end with (combined's referer and user agent).
    """
    regex, names = compile_nginx(text)
    if optional_tail:
        regex = re.compile(regex.pattern.removesuffix(r"\s*") + f"(?:{optional_tail})?" + r"\s*")
    have = set(names)
    if not have & {"msec", "time_iso8601", "time_local"}:
        raise LogFormatError("the log format has no time ($msec, $time_iso8601 or $time_local)")
    if not have & {"request", "request_uri", "uri"}:
        raise LogFormatError("the log format has no request ($request, $request_uri or $uri)")
    if not have & {"remote_addr", "http_x_forwarded_for"}:
        raise LogFormatError("the log format has no client ($remote_addr or $http_x_forwarded_for)")
    if "msec" in have:
        time_key, clock, coarse = "msec", _Clock(parse_msec), False
    elif "time_iso8601" in have:
        time_key, clock, coarse = "time_iso8601", _Clock(parse_iso8601), True
    else:
        time_key, clock, coarse = "time_local", _Clock(parse_time_local), True
    match = regex.fullmatch

    def parse(line: str) -> Record:
        m = match(line)
        if m is None:
            raise Malformed("does not match the log format")
        g = m.groupdict()
        client = ""
        forwarded = g.get("http_x_forwarded_for")
        if forwarded and forwarded != "-":
            client = unescape(forwarded).split(",", 1)[0].strip()
        if not client:
            client = g.get("remote_addr") or "-"
        request = g.get("request")
        if request is not None:
            method, uri = split_request(request)
            uri = unescape(uri)
        else:
            method = g.get("request_method") or ""
            method = "" if method == "-" else method
            uri = unescape(g.get("request_uri") or "-")
            if uri == "-":
                uri = unescape(g.get("uri") or "-")
                args = g.get("args")
                if args and args != "-":
                    uri += "?" + unescape(args)
            if uri == "-":
                raise Malformed("no request URI")
            uri = strip_authority(uri)
        status_text = g.get("status")
        status = int(status_text) if status_text and status_text.isdigit() else None
        return Record(
            client=client,
            method=method,
            uri=uri,
            stamp=clock(g[time_key]),
            stamp_is_end=True,
            coarse=coarse,
            response=seconds(g.get("request_time"), "request_time"),
            upstream=summed_seconds(g.get("upstream_response_time"), "upstream_response_time"),
            status=status,
        )

    return parse


def combined_parser() -> LineParser:
    """nginx/Apache ``combined``; the common format (no referer and user agent) is read too."""
    quoted = r'[^"\\]*(?:\\.[^"\\]*)*'
    common = COMBINED.removesuffix(' "$http_referer" "$http_user_agent"')
    return nginx_parser(common, optional_tail=f' "{quoted}" "{quoted}"')


# --------------------------------------------------------------------------- HAProxy

_HAPROXY = re.compile(
    r"(?:[^\[]*\[\d+\]:\s+)?"  # syslog header and process[pid]:
    r"(?P<client>\S+):(?:\d+|-)\s+"
    r"\[(?P<date>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2})(?P<frac>\.\d+)?\]\s+"
    r"\S+\s+\S+/\S+\s+"  # frontend, backend/server
    r"(?P<timers>\S+)\s+"  # TR/Tw/Tc/Tr/Ta
    r"(?P<status>-?\d+)\s+\+?-?\d+\s+"  # status, bytes read
    r"\S+\s+\S+\s+\S+\s+"  # request cookie, response cookie, termination state
    r"\S+\s+\S+\s+"  # actconn/feconn/beconn/srv_conn/retries, srv_queue/backend_queue
    r"(?:\{[^}]*\}\s+)*"  # captured request and response headers
    r'"(?P<request>[^"]*)(?:"|$)'
)


def parse_haproxy_date(text: str) -> float:
    """``06/Feb/2009:12:14:14`` (HAProxy's local time, no zone) as naive UTC seconds."""
    month = MONTHS.get(text[3:6])
    if month is None:
        raise Malformed(f"date {text!r} has no month")
    try:
        hh, mm, ss = (int(x) for x in text[12:].split(":"))
        when = datetime(int(text[7:11]), month, int(text[0:2]), hh, mm, ss)
    except ValueError:
        raise Malformed(f"date {text!r} is not a valid date") from None
    return float(calendar.timegm(when.timetuple()))


def haproxy_parser() -> LineParser:
    """HAProxy's HTTP log. The date is when the request was received (``%tr``; the
    accept date before 1.9): the arrival itself. The fifth timer (Ta, the total active
    time; Tt before 1.7) is the response time, unknown when -1 or ``+`` (logasap)."""
    clock = _Clock(parse_haproxy_date)
    match = _HAPROXY.match

    def parse(line: str) -> Record:
        m = match(line)
        if m is None:
            raise Malformed("does not match HAProxy's HTTP log format")
        timers = m.group("timers").split("/")
        if len(timers) != 5:
            raise Malformed(f"timers {m.group('timers')!r} are not TR/Tw/Tc/Tr/Ta")
        total = timers[4]
        response: float | None = None
        if not total.startswith("+"):
            try:
                ms = int(total)
            except ValueError:
                raise Malformed(f"timer Ta {total!r} is not a number") from None
            response = ms / 1000.0 if ms >= 0 else None
        request = m.group("request")
        if request.startswith("<BADREQ>"):
            raise Malformed("bad request (<BADREQ>)")
        method, uri = split_request(request)
        frac = m.group("frac")
        status = int(m.group("status"))
        return Record(
            client=m.group("client"),
            method=method,
            uri=uri,
            stamp=clock(m.group("date")) + (float(frac) if frac else 0.0),
            stamp_is_end=False,
            coarse=frac is None,
            response=response,
            status=status if status >= 0 else None,
        )

    return parse


#: --format names; anything else containing ``$`` is a log_format string
NAMED_FORMATS: dict[str, Callable[[], LineParser]] = {
    "combined": combined_parser,
    "haproxy": haproxy_parser,
}


def parser_for(fmt: str) -> LineParser:
    """The parser of ``--format`` ``fmt`` (a name, or an nginx log_format string)."""
    if fmt in NAMED_FORMATS:
        return NAMED_FORMATS[fmt]()
    if "$" in fmt:
        return nginx_parser(fmt)
    names = ", ".join(NAMED_FORMATS)
    raise LogFormatError(f"unknown format {fmt!r}: give {names} or an nginx log_format string")
