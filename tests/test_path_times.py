"""Where a replay's time went (lbsim.validation.path_times): the app's own
timings split each request's latency into the parts of its path."""

from __future__ import annotations

import math

import pytest

from lbsim.validation.loadgen import Record
from lbsim.validation.path_times import PARTS, level_path, path_lines, path_times

pytestmark = pytest.mark.unit


def _rec(i: int, scheduled: float, status: int = 200, **kw: float) -> Record:
    r = Record(i, "c", 0, scheduled, sent=scheduled, status=status)
    for k, v in {"latency": 0.030, "wall": 0.025, "cpu": 0.010, "db": 0.008,
                 "connect": 0.002, "queue": 0.0001, **kw}.items():  # fmt: skip
        setattr(r, k, v)
    return r


def test_each_part_is_the_difference_of_the_apps_timings() -> None:
    got = path_times([_rec(0, 1.0)], 0.0, 10.0)
    want = {"balancer": 0.005, "php_start": 0.0001, "php_cpu": 0.010, "php_wait": 0.0069,
            "connect": 0.002, "queries": 0.006}  # fmt: skip
    assert got.pop("requests") == 1
    assert got == pytest.approx(want)
    assert sum(got.values()) == pytest.approx(0.030)  # the parts add up to the latency


def test_only_the_windows_completed_requests_with_every_timing_count() -> None:
    records = [
        _rec(0, 0.5, latency=9.0),  # warm-up
        _rec(1, 1.0),
        _rec(2, 2.0, latency=0.050),
        _rec(3, 3.0, status=503, latency=7.0),  # failed
        _rec(4, 4.0, connect=math.nan),  # no connect timing
        _rec(5, 10.0, latency=8.0),  # scheduled at the horizon: outside
    ]
    got = path_times(records, 1.0, 10.0)
    assert got["requests"] == 2 and got["balancer"] == pytest.approx((0.005 + 0.025) / 2)


def test_a_target_without_timings_has_no_path() -> None:
    bare = Record(0, "c", 0, 1.0, sent=1.0, latency=0.03, status=200)  # no X-Lbsim-* headers
    assert path_times([bare], 0.0, 10.0) == {}
    assert level_path([{}, {}]) == {}
    assert path_lines([("30 %", {})], 0.002, 0.0007) == []


def test_a_level_averages_its_replays_and_the_report_shows_them_in_ms() -> None:
    a = dict.fromkeys(PARTS, 0.002)
    b = dict.fromkeys(PARTS, 0.004)
    level = level_path([a, b, {}])
    assert level == pytest.approx(dict.fromkeys(PARTS, 0.003))
    lines = path_lines([("30 %", level), ("60 %", {})], 0.0023, 0.00069)
    assert lines[0].startswith("## Where the time went")
    assert "2.30 ms" in lines[2] and "0.69 ms" in lines[2]
    rows = [x for x in lines if x.startswith("| 30 %")]
    assert rows == ["| 30 % | " + " | ".join(["3.00"] * len(PARTS)) + " |"]
    assert not any(x.startswith("| 60 %") for x in lines)
