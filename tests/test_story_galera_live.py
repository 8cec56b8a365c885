"""Live: story slow-galera-node on the real stack, shortened (lbsim story).

The slow variant alone (db3 at cpus 0.1, gcs.fc_limit 4): calibrated once on
the even stack at low load, then three paired replays of 20 s measured after
5 s, each on a fresh stack and simulated with its own seed, CPU speed and
background (about 10 min: a Galera stack comes up four times). Judged by the
story's own statistics: no metric (campaign bounds, class latency, every
node's paused fraction, FC_STOP count and receive queue) outside its bound
beyond the 95 % interval, no replay whose load generator or machine moved,
and flow control on both sides: the point of the story.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lbsim.validation.campaign import CampaignOptions
from lbsim.validation.stories import catalogue
from lbsim.validation.stories.galera import PAUSED, StackGaleraSide, run_galera_story
from tests.stack_support import require_docker

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_slow_galera_node_flow_control_matches_the_stack(tmp_path: Path) -> None:
    require_docker()
    story = catalogue.SLOW_GALERA_NODE
    options = CampaignOptions(
        levels=(),
        duration=20.0,
        warmup=5.0,
        per_class=25,
        port=18092,
        out=tmp_path,
        keep_up=False,
        repetitions=3,
        min_requests=0,
    )
    result = run_galera_story(story, StackGaleraSide(), options, tmp_path, variants=["slow"])
    rows = [
        f"{m.level} {m.metric}: predicted {m.predicted} measured {m.measured} "
        f"error {m.mean:+.3f} ({m.kind}, bound {m.bound:g}) {m.verdict}"
        for ms in result.metrics.values()
        for m in ms
    ]
    print(*rows, sep="\n")
    assert not result.not_valid(), result.not_valid()
    assert all(m.verdict != "miss" for ms in result.metrics.values() for m in ms), rows
    for side in ("predicted", "measured"):
        assert result.mean("slow", side, PAUSED) > 0, (side, rows)
    assert result.passed
