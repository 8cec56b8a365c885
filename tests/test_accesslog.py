"""Workloads from access logs (lbsim.accesslog): each format on a hand-written
sample with its exact expected output, the pattern language, malformed lines,
arrival reordering, a generated log of a known workload recovered within its
sampling error, and memory that does not grow with the log."""

from __future__ import annotations

import calendar
import io
import math
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from lbsim.accesslog import AccessLogError, ClassPatternError, LogFormatError, from_log
from lbsim.accesslog.arrivals import ReorderBuffer, SecondSpreader
from lbsim.accesslog.classes import classifier, parse_class
from lbsim.accesslog.formats import (
    Malformed,
    compile_nginx,
    haproxy_parser,
    nginx_parser,
    parser_for,
    summed_seconds,
    unescape,
)
from lbsim.accesslog.fragment import fragment_text
from lbsim.accesslog.summary import hoover_point, poisson_hoover, subnet_of

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "accesslog"
NOON = calendar.timegm(datetime(2024, 5, 1, 12).timetuple())  # 2024-05-01T12:00:00Z
#: the lbsim stack's nginx log_format (validation/), which from-log must read
LBSIM_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $msec $request_time "$upstream_response_time"'
)
WORDPRESS = [
    "front=GET /$",
    "post=GET /?p=*",
    "search=GET /?s=*",
    "comment=POST /wp-comments-post.php",
]
SHOP = [
    "browse=GET /?class=browse&*",
    "checkout=POST /?class=checkout&*",
    "search=GET /?class=search&*",
]


def traced(path: Path, fmt: str, classes: list[str], **options: object) -> tuple[object, str]:
    out = io.StringIO()
    w = from_log(path, fmt, classes, trace=out, **options)  # type: ignore[arg-type]
    return w, out.getvalue()


# --------------------------------------------------------------------------- samples


def test_combined_sample_exactly() -> None:
    w, trace = traced(DATA / "combined.log", "combined", WORDPRESS, max_malformed=0.2)
    # whole seconds: the k requests of a second at second + (j + 0.5) / k; the
    # first arrival is 12:00:00 + 1/6
    assert trace.splitlines() == [
        "time,class,client",
        "0.000000,front,0",
        "0.333333,post,1",
        "0.666667,post,2",
        "1.083333,comment,0",
        "1.583333,other,3",
        "59.333333,search,0",
        "90.083333,post,0",
        "90.583333,front,4",
    ]
    assert w.lines == {"read": 10, "blank": 1, "malformed": 1, "used": 8, "unmatched": 1, "late": 0}
    assert w.malformed_examples == [
        {"line": 8, "reason": "does not match the log format", "text": "this is not a log line"}
    ]
    assert w.first_arrival == pytest.approx(NOON + 1 / 6)
    assert [(c.name, c.count, c.weight) for c in w.listed_classes()] == [
        ("front", 2, 0.25),
        ("post", 3, 0.375),
        ("search", 1, 0.125),
        ("comment", 1, 0.125),
        ("other", 1, 0.125),
    ]
    assert w.clients == 5  # 203.0.113.5, .9, 198.51.100.7, 66.249.66.1, 2001:db8::1
    assert w.subnets == 4  # three /24 and one /48
    # 8 arrivals spanning 90.583 s; the log covers one mean gap more: 90.583 * 8 / 7
    assert w.span == pytest.approx(90.583333, abs=1e-6)
    assert w.duration == pytest.approx(90.583333 * 8 / 7, abs=1e-6)
    assert w.counts == [6, 2]
    assert w.rates == pytest.approx([6 / 60, 2 / (90.583333 * 8 / 7 - 60)], rel=1e-6)
    assert all(c.response_time is None and c.upstream_time is None for c in w.classes)
    assert w.classes[0].status == {"2xx": 1, "3xx": 1}
    # one client sends 4 of the 8: Hoover index 0.3, below uniform clients' 0.323 + 0.05
    assert w.heavy is not None
    assert (w.heavy.fraction, w.heavy.share) == (0.2, 0.5)
    assert w.heavy.noise == pytest.approx(1.6 * math.exp(-1.6))
    assert not w.heavy.reported


def test_lbsim_nginx_sample_exactly() -> None:
    """The stack's own format: arrival = $msec - $request_time, out of order in the log."""
    w, trace = traced(DATA / "lbsim-nginx.log", LBSIM_FORMAT, SHOP, bin_seconds=1)
    assert trace.splitlines() == [
        "time,class,client",
        "0.000000,browse,0",
        "0.150000,checkout,0",  # logged third (ended at .900 after 0.7 s), arrived second
        "0.240000,browse,1",
        "0.900000,search,2",
        "1.030000,browse,0",
        "1.350000,browse,0",
    ]
    assert w.lines == {"read": 6, "blank": 0, "malformed": 0, "used": 6, "unmatched": 0, "late": 0}
    assert w.first_arrival == pytest.approx(NOON + 0.05)
    assert [(c.name, c.count) for c in w.listed_classes()] == [
        ("browse", 4),
        ("checkout", 1),
        ("search", 1),
    ]  # no `other`: nothing was unmatched
    browse, checkout, search = w.classes[:3]
    assert browse.weight == pytest.approx(2 / 3)
    assert browse.response_time is not None and browse.upstream_time is not None
    assert browse.response_time["count"] == 4
    assert browse.response_time["mean"] == pytest.approx((0.2 + 0.01 + 0.02 + 0.1) / 4)
    # percentiles: the order statistic at rank floor(q (n - 1)), within 0.5 %
    assert browse.response_time["p50"] == pytest.approx(0.02, rel=0.005)
    assert browse.response_time["p95"] == pytest.approx(0.1, rel=0.005)
    assert browse.response_time["max"] == 0.2
    # "0.020 : 0.070" and "0.300, 0.350": every try of a request summed
    assert browse.upstream_time["mean"] == pytest.approx((0.198 + 0.009 + 0.019 + 0.09) / 4)
    assert checkout.upstream_time is not None
    assert checkout.upstream_time["mean"] == pytest.approx(0.65)
    assert checkout.status == {"5xx": 1}
    assert search.upstream_time is None  # "-": the log does not know it
    assert (w.clients, w.subnets) == (3, 1)
    assert w.counts == [4, 2]
    assert w.rates == pytest.approx([4.0, 2 / (1.35 * 6 / 5 - 1)], rel=1e-6)
    # 10.1.0.1 sends 4 of 6: Hoover 1/3 against Poisson(2)'s 2 e^-2 = 0.271: reported
    assert w.heavy is not None and w.heavy.reported
    assert (w.heavy.fraction, w.heavy.share) == pytest.approx((1 / 3, 2 / 3))
    assert w.heavy.classes == ("browse", "checkout", "search")
    assert w.timing["reorder_window"] == 2.0  # the longest response (0.7 s) is under the 2 s floor


def test_haproxy_sample_exactly() -> None:
    w, trace = traced(
        DATA / "haproxy.log",
        "haproxy",
        ["front=GET /$", "post=GET /?p=*", "comment=POST /wp-comments-post.php"],
        max_malformed=0.25,
        heavy_classes=["post"],
    )
    # the date is the arrival; the second line arrived before the first
    assert trace.splitlines() == [
        "time,class,client",
        "0.000000,post,0",
        "0.050000,post,1",
        "0.850000,comment,1",
        "1.450000,front,2",  # "GET https://example.org/ HTTP/2.0" is "/"
    ]
    assert w.lines == {"read": 5, "blank": 0, "malformed": 1, "used": 4, "unmatched": 0, "late": 0}
    assert w.malformed_examples[0]["line"] == 4
    assert w.malformed_examples[0]["reason"] == "bad request (<BADREQ>)"
    assert w.first_arrival == pytest.approx(NOON + 0.05)
    assert [(c.name, c.weight) for c in w.listed_classes()] == [
        ("front", 0.25),
        ("post", 0.5),
        ("comment", 0.25),
    ]
    post = w.classes[1].response_time
    assert post is not None
    assert (post["count"], post["mean"], post["max"]) == (2, pytest.approx(0.171), 0.301)
    assert w.classes[2].response_time is not None
    assert w.classes[2].response_time["p50"] == pytest.approx(0.125, rel=0.005)
    assert all(c.upstream_time is None for c in w.classes)
    assert (w.clients, w.subnets) == (3, 2)
    # post only: 1, 1 and 0 requests per client
    assert w.heavy is not None and w.heavy.classes == ("post",)
    assert (w.heavy.fraction, w.heavy.share) == pytest.approx((2 / 3, 1.0))
    assert not w.heavy.reported
    assert w.counts == [4]
    assert w.rates == pytest.approx([4 / (1.45 * 4 / 3)])


def test_haproxy_without_syslog_prefix_and_old_timers() -> None:
    parse = haproxy_parser()
    r = parse(
        "10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in static/srv1 10/0/30/69/109 200 2750 "
        '- - ---- 1/1/1/1/0 0/0 {1wt.eu} {} "GET /index.html HTTP/1.1"'
    )
    assert (r.client, r.method, r.uri, r.response) == ("10.0.1.2", "GET", "/index.html", 0.109)
    assert r.stamp == calendar.timegm(datetime(2009, 2, 6, 12, 14, 14).timetuple()) + 0.655
    assert not r.stamp_is_end and not r.coarse
    # logasap (+Ta) and -1: response time unknown; a truncated request has no closing quote
    r = parse(
        "Feb  6 12:14:14 localhost haproxy[14389]: ::1:40000 [06/Feb/2009:12:14:14.655] "
        'fe be/s1 0/0/0/-1/+5 -1 0 - - CD-- 1/1/1/1/0 0/0 "GET /very/long'
    )
    assert (r.client, r.uri, r.response, r.status) == ("::1", "/very/long", None, None)


def test_nginx_format_compiler() -> None:
    regex, names = compile_nginx(LBSIM_FORMAT)
    assert names == (
        "remote_addr",
        "time_local",
        "request",
        "status",
        "msec",
        "request_time",
        "upstream_response_time",
    )
    # a quoted value keeps its \xHH escapes (a quote is \x22) and stops at the closing quote
    line = (
        '1.2.3.4 - - [01/May/2024:12:00:00 +0000] "GET /?q=\\x22a b\\x22 HTTP/1.1" 200 1 '
        '"-" "agent \\x22x\\x22" 1714564800.500 0.250 "-"'
    )
    m = regex.fullmatch(line)
    assert m is not None and m.group("request") == "GET /?q=\\x22a b\\x22 HTTP/1.1"
    r = nginx_parser(LBSIM_FORMAT)(line)
    assert (r.uri, r.stamp, r.response, r.upstream) == ('/?q="a b"', 1714564800.5, 0.25, None)
    assert r.stamp_is_end and not r.coarse


def test_nginx_format_variants() -> None:
    # ${var}, X-Forwarded-For's first address, $request_method + $uri + $args, ISO times,
    # the whole directive as written in nginx.conf
    fmt = (
        'log_format main escape=default \'"${http_x_forwarded_for}" $remote_addr '
        "[$time_iso8601] $request_method $uri $args $status $request_time $upstream_addr';"
    )
    parse = parser_for(fmt)
    r = parse(
        '"203.0.113.7, 10.0.0.1" 10.0.0.1 [2024-05-01T14:00:00+02:00] GET /index.php p=3 '
        "200 0.004 10.0.0.5:9000"
    )
    assert (r.client, r.method, r.uri, r.stamp, r.coarse) == (
        "203.0.113.7",
        "GET",
        "/index.php?p=3",
        NOON,
        True,
    )
    r = parse('"-" 10.0.0.2 [2024-05-01T12:00:00Z] POST /a - 200 0.1 -')
    assert (r.client, r.uri) == ("10.0.0.2", "/a")
    with pytest.raises(Malformed, match="does not match"):
        parse('"-" 10.0.0.2 [2024-05-01T12:00:00Z] GET')


@pytest.mark.parametrize(
    ("fmt", "why"),
    [
        ('$remote_addr "$request"', "no time"),
        ("$remote_addr [$time_local]", "no request"),
        ('[$time_local] "$request"', "no client"),
        ("no variables at all", "unknown format"),
        ("json", "unknown format"),
    ],
)
def test_unusable_formats_are_refused(fmt: str, why: str) -> None:
    with pytest.raises(LogFormatError, match=why):
        parser_for(fmt)


def test_value_helpers() -> None:
    assert summed_seconds("0.010, 0.020 : 0.030", "u") == pytest.approx(0.06)
    assert summed_seconds("-, 0.5", "u") == 0.5
    assert summed_seconds("- : -", "u") is None
    with pytest.raises(Malformed, match="not a number"):
        summed_seconds("0.1, abc", "u")
    assert unescape("caf\\xC3\\xA9 \\x5C") == "café \\"
    assert subnet_of("203.0.113.77") == "203.0.113.0/24"
    assert subnet_of("2001:db8:1:2::7") == "2001:db8:1::/48"
    assert subnet_of("::ffff:192.0.2.1") == "192.0.2.0/24"
    assert subnet_of("proxy.example.org") == "proxy.example.org"


# --------------------------------------------------------------------------- classes


def test_pattern_language() -> None:
    front, post, admin, anything = (
        parse_class("front=GET /$"),
        parse_class("post=/?p=*"),
        parse_class("admin=* /wp-admin/*.php"),
        parse_class("all=POST *"),
    )
    assert front.matches("GET", "/") and not front.matches("GET", "/?p=1")
    assert not front.matches("HEAD", "/")
    assert post.matches("GET", "/?p=12") and post.matches("POST", "/?p=")
    assert not post.matches("GET", "/xp=1") and not post.matches("GET", "/a?p=1")  # '?' literal
    assert admin.matches("GET", "/wp-admin/edit.php?x") and not admin.matches("GET", "/wp-admin/")
    assert anything.matches("POST", "/whatever") and not anything.matches("GET", "/")
    c = classifier(["a=GET /?p=1$", "b=GET /?p=1*", "c=/"])
    assert [c("GET", u) for u in ("/?p=1", "/?p=12", "/x")] == [0, 1, 2]
    assert c("DELETE", "/?p=1") == 2 and c.names == ("a", "b", "c", "other")
    assert classifier(["a=/x"])("GET", "/y") == 1  # unmatched: other


@pytest.mark.parametrize(
    ("option", "why"),
    [
        ("front", "expected NAME=PATTERN"),
        ("bad name=GET /", "class name"),
        (f"{'x' * 65}=/", "class name"),
        ("other=/", "class of the requests no pattern matches"),
        ("front=get /", "method 'get'"),
        ("front=GET", "must start with '/'"),
        ("front=GET /a b", "has a space"),
        ("front=", "no path"),
    ],
)
def test_bad_patterns_name_the_option(option: str, why: str) -> None:
    with pytest.raises(ClassPatternError, match=why) as info:
        parse_class(option)
    assert repr(option) in str(info.value)


def test_duplicate_class_names() -> None:
    with pytest.raises(ClassPatternError, match="given twice"):
        classifier(["a=/x", "a=/y"])


# --------------------------------------------------------------------------- arrivals


def test_second_spreader_is_even_and_deterministic() -> None:
    out: list[tuple[float, str]] = []
    spread: SecondSpreader[str] = SecondSpreader(lambda t, x: out.append((t, x)))
    for second, item in [(10.0, "a"), (10.0, "b"), (10.0, "c"), (11.0, "d"), (10.0, "e")]:
        spread.push(second, item)
    spread.flush()
    assert out == [(10 + 1 / 6, "a"), (10.5, "b"), (10 + 5 / 6, "c"), (11.5, "d"), (10.5, "e")]


def test_reorder_buffer_orders_within_the_window_and_clamps_later_ones() -> None:
    out: list[tuple[float, str]] = []
    buf: ReorderBuffer[str] = ReorderBuffer(lambda t, x: out.append((t, x)), window=1.0)
    # (arrival, end): logged by end
    for arrival, end, item in [
        (0.0, 0.1, "a"),
        (0.5, 0.6, "b"),
        (0.2, 0.9, "c"),  # arrived before b: reordered
        (3.0, 3.1, "d"),  # lets a, c, b go (older than 3.1 - 1)
        (0.3, 3.5, "e"),  # earlier than b, already let go: clamped to 0.5 and counted
    ]:
        buf.push(arrival, end, item)
    buf.flush()
    assert out == [(0.0, "a"), (0.2, "c"), (0.5, "b"), (0.5, "e"), (3.0, "d")]
    assert buf.late == 1
    times = [t for t, _ in out]
    assert times == sorted(times)


def test_out_of_order_beyond_the_window_is_clamped_and_counted() -> None:
    w, trace = traced(
        DATA / "haproxy.log",
        "haproxy",
        ["front=GET /$", "post=GET /?p=*", "comment=POST *"],
        max_malformed=0.25,
        reorder_window=0,
    )
    assert w.lines["late"] == 1 and w.timing["late_clamped"] == 1
    # the request received at .050 was logged after the one received at .100
    assert trace.splitlines()[1:3] == ["0.000000,post,0", "0.000000,post,1"]


def test_default_window_is_the_longest_response_time() -> None:
    buf: ReorderBuffer[int] = ReorderBuffer(lambda t, x: None, resolution=0.001)
    buf.push(0.0, 0.2, 0)
    buf.push(0.1, 5.0, 1)
    assert buf.window == pytest.approx(4.901)
    buf.push(100.0, 200.0, 2)
    assert buf.window == 60.0  # never more than MAX_DEFAULT_WINDOW


# --------------------------------------------------------------------------- heavy users


def test_hoover_point() -> None:
    # 2 of 10 clients send 60 of 100: the Hoover point is exactly them
    fit = hoover_point([30, 30] + [5] * 8, ("a",))
    assert fit is not None
    assert (fit.fraction, fit.share, fit.heavy_clients) == (0.2, 0.6, 2)
    assert fit.hoover == pytest.approx(0.4) and fit.reported
    # equal counts: nobody is above the mean
    flat = hoover_point([7] * 10, ("a",))
    assert flat is not None and flat.heavy_clients == 0 and not flat.reported
    assert hoover_point([0, 0], ("a",)) is None and hoover_point([5], ("a",)) is None


def test_poisson_hoover_is_the_mean_absolute_deviation() -> None:
    rng = np.random.default_rng(3)
    for mean in (0.7, 2.0, 9.3):
        x = rng.poisson(mean, 400_000)
        assert poisson_hoover(mean) == pytest.approx(np.abs(x - mean).mean() / (2 * mean), rel=0.01)


# --------------------------------------------------------------------------- failures


def test_too_many_malformed_lines_fail_naming_the_file_and_lines(tmp_path: Path) -> None:
    with pytest.raises(AccessLogError) as info:
        from_log(DATA / "haproxy.log", "haproxy", ["all=/"])
    message = str(info.value)
    assert str(DATA / "haproxy.log") in message
    assert "1 of 5 lines are malformed" in message and "line 4: bad request" in message


def test_a_log_of_another_format_fails_early(tmp_path: Path) -> None:
    log = tmp_path / "wrong.log"
    log.write_text((DATA / "combined.log").read_text() * 200)
    with pytest.raises(AccessLogError, match=r"none of the first 1000 lines .* haproxy"):
        from_log(log, "haproxy", ["all=/"])
    empty = tmp_path / "empty.log"
    empty.write_text("\n\n")
    with pytest.raises(AccessLogError, match="no request could be read"):
        from_log(empty, "combined", ["all=/"])


def test_gzip_logs_are_read(tmp_path: Path) -> None:
    import gzip

    log = tmp_path / "access.log.gz"
    log.write_bytes(gzip.compress((DATA / "lbsim-nginx.log").read_bytes()))
    plain = from_log(DATA / "lbsim-nginx.log", LBSIM_FORMAT, SHOP)
    packed = from_log(log, LBSIM_FORMAT, SHOP)
    assert packed.to_dict() | {"source": ""} == plain.to_dict() | {"source": ""}


# --------------------------------------------------------------------------- the fragment


def _fragment(w: object) -> dict[str, object]:
    data = yaml.safe_load(fragment_text(w))  # type: ignore[arg-type]
    assert isinstance(data, dict) and set(data) == {"workload"}
    return data


def test_fragment_merges_into_a_scenario(tmp_path: Path) -> None:
    """mixed.yaml with its workload replaced by the fragment, with the fragment's
    weights on the scenario's own classes, and as an exact replay of the trace."""
    from lbsim import load_scenario, simulate

    trace = tmp_path / "trace.csv"
    with trace.open("w") as fh:
        w = from_log(DATA / "lbsim-nginx.log", LBSIM_FORMAT, SHOP, bin_seconds=1, trace=fh)
    fragment = _fragment(w)["workload"]
    assert isinstance(fragment, dict)
    mixed = yaml.safe_load((ROOT / "scenarios" / "mixed.yaml").read_text())

    def load(workload: dict[str, object]) -> object:
        path = tmp_path / "scenario.yaml"
        path.write_text(yaml.safe_dump({**mixed, "workload": workload, "warmup": 0, "duration": 5}))
        return load_scenario(path)

    as_is = load(fragment)
    assert as_is.workload.class_names == ("browse", "checkout", "search")  # type: ignore[attr-defined]
    assert as_is.workload.open.schedule[1][1] == pytest.approx(3.22581)  # type: ignore[attr-defined]
    own = {c["name"]: c for c in mixed["workload"]["classes"]}
    classes = [{**own[c["name"]], "weight": c["weight"]} for c in fragment["classes"]]
    merged = load({**fragment, "classes": classes})
    assert merged.workload.clients.heavy.fraction == pytest.approx(1 / 3, abs=1e-6)  # type: ignore[attr-defined]
    replay = load(
        {"trace": {"file": "trace.csv"}, "classes": classes, "clients": fragment["clients"]}
    )
    assert len(replay.workload.trace.rows) == 6  # type: ignore[attr-defined]
    result = simulate(replay).to_dict()  # type: ignore[arg-type]
    assert result["requests"]["arrived"] == 6  # every arrival of the trace, none drawn


# --------------------------------------------------------------------------- a known workload


def write_known_log(
    path: Path, n: int, seed: int, *, rate: float = 40.0, clients: int = 400
) -> dict[str, object]:
    """A log of ``n`` requests of a known workload in the lbsim stack's format, in
    completion order: Poisson arrivals at ``rate``/s; browse 0.5, search 0.3,
    checkout 0.2 (POST); 5 % of the clients send 60 % of the browse requests (the
    model's heavy users: the rest of browse uniform over the other clients, the
    other classes uniform over all); IPv4 addresses in 40 /24 networks; response
    times exponential (mean 50 ms), logged in ms as nginx does."""
    rng = np.random.default_rng(seed)
    arrival = NOON + np.cumsum(rng.exponential(1 / rate, n))
    cls = rng.choice(3, n, p=[0.5, 0.3, 0.2])
    n_heavy = clients // 20
    u = rng.random(n)
    uniform = np.minimum((rng.random(n) * clients).astype(int), clients - 1)
    light = n_heavy + np.minimum(
        ((u - 0.6) / 0.4 * (clients - n_heavy)).astype(int), clients - n_heavy - 1
    )
    heavy = np.minimum((u / 0.6 * n_heavy).astype(int), n_heavy - 1)
    client = np.where(cls == 0, np.where(u < 0.6, heavy, light), uniform)
    rt = np.round(rng.exponential(0.05, n), 3)
    end = np.round(arrival + rt, 3)
    requests = [
        "GET /?class=browse&units=3&q=r:1",
        "GET /?class=search&units=7",
        "POST /?class=checkout&units=9",
    ]
    with path.open("w") as fh:
        for i in np.argsort(end, kind="stable"):
            c = int(client[i])
            stamp = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(int(end[i])))
            fh.write(
                f'10.7.{c % 40}.{1 + c // 40} - - [{stamp}] "{requests[cls[i]]} HTTP/1.1" 200 99 '
                f'"-" "lbsim-replay" {end[i]:.3f} {rt[i]:.3f} "{rt[i]:.3f}"\n'
            )
    return {"arrival": np.round(end - rt, 3), "class": cls, "client": client}


def test_a_known_workload_is_recovered_within_its_sampling_error(tmp_path: Path) -> None:
    """20,000 requests. Tolerances are 4 standard deviations of each estimator's
    sampling distribution (a two-sided 4-sigma band fails by chance with p = 6e-5):

    - weight of a class of probability p: binomial, sd = sqrt(p (1 - p) / N),
      at most 0.0035;
    - mean rate N / duration: the span of N Poisson arrivals is Gamma(N - 1, rate),
      relative sd 1 / sqrt(N - 1) = 0.71 %; a full 60 s bin: Poisson(2400),
      relative sd 2.0 %;
    - clients: the least active client expects 0.5*0.4*N/380 + 0.5*N/400 = 35.5
      requests, so P(some client is absent) < 400 e^-35.5 ~ 1e-13: exactly 400;
      subnets exactly 40;
    - heavy users: the 20 heavy clients expect 300 browse requests each, the
      others Poisson(10.5) against a mean of 25 per client: P(a light client is
      above the mean) = P(Poisson(10.5) >= 26) = 1.6e-5, so the Hoover point is
      the 20 heavy clients (fraction 0.05, at most one client more: +1/400) and
      their share is Binomial(B, 0.6) / B with B ~ 10,000 browse requests:
      sd = sqrt(0.24 / B) = 0.0049 (plus at most 26 / B = 0.0026 for one extra client).
    """
    n, rate = 20_000, 40.0
    log = tmp_path / "known.log"
    truth = write_known_log(log, n, seed=20240501, rate=rate)
    out = io.StringIO()
    w = from_log(log, LBSIM_FORMAT, SHOP, heavy_classes=["browse"], trace=out)
    assert w.lines["used"] == n and w.lines["malformed"] == 0
    # the exact realisation: per-class counts, clients, every arrival ($msec - $request_time)
    cls = truth["class"]
    assert isinstance(cls, np.ndarray)
    counts = {c.name: c.count for c in w.listed_classes()}
    assert counts == {
        "browse": int((cls == 0).sum()),
        "checkout": int((cls == 2).sum()),
        "search": int((cls == 1).sum()),
    }
    rows = [line.split(",") for line in out.getvalue().splitlines()[1:]]
    times = np.array([float(r[0]) for r in rows])
    arrivals = np.sort(np.asarray(truth["arrival"]))
    assert np.all(np.diff(times) >= 0)
    assert w.lines["late"] == 0  # the longest response (~0.5 s) is inside the 2 s window
    assert np.abs(times - (arrivals - arrivals[0])).max() <= 1e-6
    assert Counter(r[1] for r in rows) == Counter(counts)
    # the population parameters, within 4 sd
    for name, p in (("browse", 0.5), ("search", 0.3), ("checkout", 0.2)):
        weight = next(c.weight for c in w.classes if c.name == name)
        assert abs(weight - p) <= 4 * math.sqrt(p * (1 - p) / n), name
    mean_rate = w.arrivals / w.duration
    assert abs(mean_rate / rate - 1) <= 4 / math.sqrt(n - 1)
    full = w.rates[:-1]
    assert len(full) == int(w.span // 60)
    for r in full:
        assert abs(r / rate - 1) <= 4 / math.sqrt(rate * 60)
    assert (w.clients, w.subnets) == (400, 40)
    assert w.heavy is not None and w.heavy.reported and w.heavy.classes == ("browse",)
    assert abs(w.heavy.fraction - 0.05) <= 1 / 400
    browse = counts["browse"]
    assert abs(w.heavy.share - 0.6) <= 4 * math.sqrt(0.24 / browse) + 26 / browse
    # response times: exponential, mean 50 ms: the mean's sd is 0.05 / sqrt(count)
    rt = next(c.response_time for c in w.classes if c.name == "search")
    assert rt is not None
    assert abs(rt["mean"] - 0.05) <= 4 * 0.05 / math.sqrt(rt["count"])
    assert abs(rt["p50"] - 0.05 * math.log(2)) <= 0.004  # median's sd ~ 0.05/sqrt(count), ~1 ms


def test_uniform_clients_report_no_heavy_users(tmp_path: Path) -> None:
    """The same workload without heavy users (one class, uniform clients): the
    Hoover index stays within Poisson noise + 0.05, so no ``heavy``."""
    log = tmp_path / "uniform.log"
    write_known_log(log, 8_000, seed=11)
    w = from_log(log, LBSIM_FORMAT, SHOP, heavy_classes=["search", "checkout"])
    assert w.heavy is not None and not w.heavy.reported
    assert w.heavy.hoover == pytest.approx(w.heavy.noise, abs=0.05)


# --------------------------------------------------------------------------- memory


def _peak(log: Path, trace: Path) -> int:
    tracemalloc.start()
    try:
        with trace.open("w") as fh:
            from_log(log, LBSIM_FORMAT, SHOP, trace=fh)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_log(tmp_path: Path) -> None:
    """Four times the lines, the same clients: the peak of Python allocations grows
    by less than 64 KiB (a few more rate bins), not with the lines (each line
    held would cost hundreds of bytes: 30,000 more lines, several MB)."""
    short, long = tmp_path / "short.log", tmp_path / "long.log"
    write_known_log(short, 10_000, seed=1)
    write_known_log(long, 40_000, seed=1)
    _peak(short, tmp_path / "warm.csv")  # first-use imports and caches out of the way
    small = _peak(short, tmp_path / "short.csv")
    large = _peak(long, tmp_path / "long.csv")
    assert large - small < 64 * 1024, (small, large)
    assert large < 2 * 1024 * 1024


@pytest.mark.slow
def test_a_large_log_streams_in_bounded_memory(tmp_path: Path) -> None:
    """About 100 MB (700,000 lines) read by a fresh interpreter: its peak resident
    memory stays within 16 MB of the same interpreter's on 1,000 lines (measured: the
    same 75 MB for both; holding the lines would take well over 100 MB)."""
    log = tmp_path / "large.log"
    block = tmp_path / "block.log"
    write_known_log(block, 10_000, seed=5)
    lines = block.read_text().splitlines(keepends=True)
    with log.open("w") as fh:
        for k in range(70):  # 70 blocks of 10,000 lines, each shifted 300 s later
            shift = 300.0 * k
            for line in lines:  # ... "lbsim-replay" MSEC RT "RT"
                head, msec, tail = (
                    line.rsplit(" ", 3)[0],
                    line.rsplit(" ", 3)[1],
                    line.rsplit(" ", 2),
                )
                fh.write(f"{head} {float(msec) + shift:.3f} {tail[1]} {tail[2]}")
    assert log.stat().st_size > 90e6
    code = (
        "import resource, sys\n"
        "from lbsim.accesslog import from_log\n"
        "trace = open(sys.argv[1] + '.csv', 'w')\n"
        "w = from_log(sys.argv[1], sys.argv[2], sys.argv[3:], trace=trace)\n"
        "print(w.lines['used'], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    )
    small = tmp_path / "small.log"
    small.write_text("".join(lines[:1000]))
    rss = {}
    for path in (small, log):
        proc = subprocess.run(
            [sys.executable, "-c", code, str(path), LBSIM_FORMAT, *SHOP],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            timeout=900,
        )
        used, kib = proc.stdout.split()
        rss[path.name] = (int(used), int(kib))
    assert rss["large.log"][0] == 700_000
    assert rss["large.log"][1] - rss["small.log"][1] < 16 * 1024, rss
