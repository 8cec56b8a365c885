"""The stale-read probe on the real stack, next to the model (needs Docker; marker ``stack``).

One php-fpm node and three Galera nodes of one core each (tests/scenarios/live/probe.yaml):
200 write → read pairs from db1 to db2 without and with wsrep_sync_wait.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lbsim
from lbsim.validation.lifecycle import StackHandle
from lbsim.validation.probe import model_stale_fraction, probe_stale_reads
from tests.stack_support import running_stack

pytestmark = pytest.mark.stack

SCENARIO = Path(__file__).parent / "scenarios" / "live" / "probe.yaml"
N = 200

probe_stack = running_stack(SCENARIO, port=18090)


@pytest.mark.parametrize("sync_wait", [False, True], ids=["async", "sync_wait"])
def test_measured_stale_fraction_matches_the_model(
    probe_stack: StackHandle, sync_wait: bool
) -> None:
    # its own row per case: the probe must be the only writer of the row it reads back
    got = probe_stale_reads(probe_stack.url, "db1", "db2", N, sync_wait, key=11 + int(sync_wait))
    assert got.n == N and got.errors == 0, got
    predicted = model_stale_fraction(lbsim.load_scenario(SCENARIO), sync_wait, "db1", "db2")
    print(f"sync_wait={sync_wait}: measured {got.stale_fraction:.3f}, model {predicted:.3f}, {got}")
    if sync_wait:
        assert got.stale == 0, got
        assert predicted == 0.0
    assert abs(got.stale_fraction - predicted) <= 0.1, (got, predicted)
