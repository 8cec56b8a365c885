"""The stale-read probe on the real stack, next to the model (needs Docker; marker ``stack``).

One php-fpm node and three Galera nodes of one core each (tests/scenarios/live/probe.yaml):
200 write → read pairs from db1 to db2 with wsrep_sync_wait (never stale); and the
visibility lag calibrated from the poll probe against the stale fraction measured
without it, in the same run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import lbsim
from lbsim.scenario.loader import scenario_from_data
from lbsim.scenario.schema import Scenario
from lbsim.validation.lifecycle import StackHandle
from lbsim.validation.paired import PairedMetric, signed_error
from lbsim.validation.probe import model_stale_fraction, probe_stale_reads
from lbsim.validation.stories.readback import WARMUP_PAIRS
from lbsim.validation.visibility import (
    VisibilityPoll,
    ack_lags,
    poll_visibility,
    visibility_keys,
)
from tests.stack_support import running_stack

pytestmark = pytest.mark.stack

SCENARIO = Path(__file__).parent / "scenarios" / "live" / "probe.yaml"
N = 200

probe_stack = running_stack(SCENARIO, port=18090)


def test_sync_wait_reads_are_never_stale(probe_stack: StackHandle) -> None:
    """With wsrep_sync_wait a read waits for every write-set ordered before it:
    never stale on the stack, never in the model. (Without it, the stale
    fraction depends on how fast db2's applier runs on this machine at this
    moment — 4 % on a quiet machine, 42 % beside a busy neighbour — so it is
    judged only against the visibility lag calibrated in the same run: the
    next test.)"""
    got = probe_stale_reads(probe_stack.url, "db1", "db2", N, True, key=12)
    assert got.n == N and got.errors == 0, got
    predicted = model_stale_fraction(lbsim.load_scenario(SCENARIO), True, "db1", "db2")
    print(f"sync_wait: measured {got.stale_fraction:.3f}, model {predicted:.3f}, {got}")
    assert got.stale == 0, got
    assert predicted == 0.0


#: paired repetitions, each its own calibration (polls) and measurement (plain
#: pairs), interleaved in rounds of PAIRS of each
REPETITIONS, ROUNDS, PAIRS = 3, 2, 250


def _calibrated(polls: list[VisibilityPoll], max_wait: float) -> Scenario:
    sc = lbsim.load_scenario(SCENARIO)
    lags = ack_lags(tuple(polls), sc.network.app_db.mean, max_wait)
    raw = yaml.safe_load(SCENARIO.read_text(encoding="utf-8"))
    db = raw["database"]
    # as calibrated: the others' CPU per write-set off the path to visibility
    db.update(receive=db["apply"], apply=0.0, **visibility_keys(lags, float(db["commit"])))
    return scenario_from_data(raw, "<probe, visibility calibrated>")


def test_the_polled_visibility_lag_predicts_the_stale_fraction(probe_stack: StackHandle) -> None:
    """Calibrate ``visibility_lag`` as ``lbsim calibrate`` does (the poll probe:
    writes on db1, each read back on db2 until seen; lag = commit + the lag
    past the writer's OK), and measure plain write → read pairs: the model's
    stale fraction against the measured one, paired over three repetitions
    (each its own 500 polls and 500 plain pairs, interleaved in rounds of 250
    so both see the same machine), judged as lbsim judges every paired metric:
    a miss of the 0.02 bound is model error only when the whole 95 % interval
    lies beyond it.

    On this VM the plain pairs' fraction moves from minute to minute and away
    from the polls' first reads, both ways (CI, one after the other: polls
    7.8 % stale at the first read, plain 4.6 %, the model 8.6 %; local runs
    interleaved: polls 1-3 %, plain 4.9-11.2 %, the model 1.7-4.0 %): one
    shot at a 0.02 bound failed two runs in five, which is noise at R = 1."""
    # a fresh stack's reads go stale more often for its first thousands of writes
    # (CI: the poll's first reads 3.9 % stale right after start-up, the plain probe
    # after it 0.5 %): warm it first, unmeasured, as the read-your-write story does
    warm = probe_stale_reads(probe_stack.url, "db1", "db2", WARMUP_PAIRS, False, key=15)
    assert warm.errors == 0, warm
    # and the poll endpoint too: its first 250 polls after the plain warm-up missed
    # 23.6 % at the first read, the next rounds 4.4, 0.8 and 1.2 % (a local run)
    warm_polls = poll_visibility(probe_stack.url, "db1", "db2", PAIRS, key=13)
    assert warm_polls.result.errors == 0, warm_polls.result
    paired = PairedMetric("probe", "plain", "galera.stale_read_fraction", "absolute", 0.02)
    for r in range(REPETITIONS):
        polls: list[VisibilityPoll] = []
        stale = reads = 0
        max_wait = 0.0
        for _ in range(ROUNDS):
            polled = poll_visibility(probe_stack.url, "db1", "db2", PAIRS, key=13)
            assert not polled.cut_short and polled.result.errors == 0, polled.result
            polls += polled.polls
            max_wait = polled.max_wait_s
            got = probe_stale_reads(probe_stack.url, "db1", "db2", PAIRS, False, key=14)
            assert got.errors == 0, got
            stale, reads = stale + got.stale, reads + got.reads
        calibrated = _calibrated(polls, max_wait)
        predicted, measured = model_stale_fraction(calibrated, False, "db1", "db2"), stale / reads
        paired.predicted.append(predicted)
        paired.measured.append(measured)
        paired.errors.append(signed_error(predicted, measured, "absolute"))
        first = sum(1 for x in polls if x.missed) / len(polls)
        print(
            f"r{r + 1}: polls' first reads missed {first:.3f}; plain pairs {measured:.3f} "
            f"of {reads}; model {predicted:.3f}"
        )
    print(f"paired error {paired.mean:+.4f} ± {paired.half:.4f} (bound 0.02): {paired.verdict}")
    assert paired.verdict != "miss", (paired.predicted, paired.measured)
    assert model_stale_fraction(calibrated, True, "db1", "db2") == 0.0
