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
from datetime import datetime

from lbsim.accesslog.fields import (
    MONTHS,
    Clock,
    LineParser,
    LogFormatError,
    Malformed,
    Record,
    parse_iso8601,
    parse_msec,
    parse_time_local,
    seconds,
    split_request,
    strip_authority,
    summed_seconds,
    unescape,
)

__all__ = [
    "COMBINED",
    "KNOWN",
    "NAMED_FORMATS",
    "LineParser",
    "LogFormatError",
    "Malformed",
    "Record",
    "combined_parser",
    "compile_nginx",
    "haproxy_parser",
    "nginx_parser",
    "parser_for",
    "summed_seconds",
    "unescape",
]

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
        time_key, clock, coarse = "msec", Clock(parse_msec), False
    elif "time_iso8601" in have:
        time_key, clock, coarse = "time_iso8601", Clock(parse_iso8601), True
    else:
        time_key, clock, coarse = "time_local", Clock(parse_time_local), True
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
    clock = Clock(parse_haproxy_date)
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
