"""validation/app/probe.php run by the PHP CLI against a stand-in for mysqli
(tests/php/probe_harness.php): the poll mode's answer, without Docker.
Skipped where no ``php`` is installed."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lbsim.validation.probe import parse_probe
from lbsim.validation.visibility import VisibilityPoll, parse_polls

pytestmark = [
    pytest.mark.unit,
    pytest.mark.skipif(shutil.which("php") is None, reason="no php CLI"),
]

ROOT = Path(__file__).resolve().parent.parent
PROBE = ROOT / "validation" / "app" / "probe.php"
HARNESS = Path(__file__).parent / "php" / "probe_harness.php"


def probe(query: str, script: str = "") -> Any:
    php = shutil.which("php")
    assert php is not None
    proc = subprocess.run(
        [php, str(HARNESS), str(PROBE), query, script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_poll_mode_reads_back_until_the_reader_shows_the_write() -> None:
    # write 3 is missed by 3 reads, write 5 is never seen within max_wait
    body = probe(
        "n=5&writer=db1&reader=db2&sync_wait=0&key=3&poll=1&max_wait=0.05", "0,1,3,0,100000000"
    )
    got = parse_polls(body)
    assert [p.missed for p in got.polls[:4]] == [0, 1, 3, 0]
    assert got.polls[4].missed > 3 and got.polls[4].seen_s is None
    assert got.polls[4].last_missed_s is not None and got.polls[4].last_missed_s <= 0.05
    assert got.polls[0] == VisibilityPoll(0, None, got.polls[0].seen_s)
    third = got.polls[2]
    assert third.last_missed_s is not None and third.seen_s is not None
    assert 0 <= third.last_missed_s < third.seen_s < 0.05
    assert got.max_wait_s == 0.05 and not got.cut_short
    assert got.result.stale == 3 and got.first_read_stale_fraction == 0.6
    assert got.result.stale_fraction == 0.6 and got.result.errors == 0


def test_plain_mode_is_unchanged_and_poll_needs_plain_reads() -> None:
    body = probe("n=3&writer=db1&reader=db2&sync_wait=0&key=3", "0,1,0")
    assert "polls" not in json.loads(body)
    got = parse_probe(body)
    assert (got.n, got.stale, got.errors) == (3, 1, 0)
    for query in (
        "n=3&writer=db1&reader=db2&sync_wait=1&key=3&poll=1",
        "n=3&writer=db1&reader=db2&sync_wait=0&key=3&poll=1&max_wait=9",
    ):
        assert "poll=1 only with sync_wait=0" in json.loads(probe(query))["error"]
