"""Live: story slow-galera-node on the real stack, shortened (lbsim story).

The slow variant alone (db3 at cpus 0.1, gcs.fc_limit 4): calibrated once on
the even stack at low load, then three paired replays of 20 s measured after
5 s, each on a fresh stack and simulated with its own seed, CPU speed and
background (about 5 min: a Galera stack comes up four times). The story runs
once (a module fixture); two tests read it:

* what holds: no replay whose load generator or machine moved; the story's
  premise on the real stack (flow control pauses the cluster, and the slow
  node's receive queue is the longest); the model's throughput and app CPU
  within their bounds;
* the known model error, held to its size (SLOW_KNOWN; not yet every metric
  within its bound beyond the 95 % interval). db3 (0.1
  cores) spends about 2.2x the calibrated CPU per write-set; the story
  measures that on the slow stack (write_set_cost). Three runs on 2026-12-06
  (3 x 20 s each): with db3 x2.47 and x2.18 (60 writes, one quiet window) the
  latency was within (mean +4.5 %) but db3's queue ran 3x the measured one and
  flow control 22-35 % against 8-10 %; with db3 x2.19, db2 x1.47 (300 writes,
  two quiet windows) flow control was within (+0.006) but the latency missed
  (mean -37 %, the writing class's -51 %) and db3 sent 150 more FC_STOP.
  (Without the measured cost: db3's queue a third of the real one, paused
  0-0.2 % against 4-10 %.) Near saturation the slow applier's prediction
  swings with a few percent of its cost; its dynamics (processor sharing at
  0.1 cores against CFS bursts of 1 ms per 10 ms, the calibrated commit on the
  applier's path) are what is left to model.
"""

from __future__ import annotations

from typing import Any

import pytest

from lbsim.validation.campaign import CampaignOptions
from lbsim.validation.stories import catalogue
from lbsim.validation.stories.galera import PAUSED, StackGaleraSide, run_galera_story
from tests.stack_support import require_docker

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Any:
    require_docker()
    out = tmp_path_factory.mktemp("slow-galera-node")
    options = CampaignOptions(
        levels=(),
        duration=20.0,
        warmup=5.0,
        per_class=25,
        port=18092,
        out=out,
        keep_up=False,
        repetitions=3,
        min_requests=0,
        # a replay the machine moved under is replayed up to 4 more times, each
        # after waiting for the machine to hold still (stop 19's CI: 6 of 7
        # attempts moved, outside load rising 0.12 -> 0.28-0.58 cores)
        phase_repeats=4,
    )
    story = catalogue.SLOW_GALERA_NODE
    result = run_galera_story(story, StackGaleraSide(), options, out, variants=["slow"])
    rows = [
        f"{m.level} {m.metric}: predicted {m.predicted} measured {m.measured} "
        f"error {m.mean:+.3f} ({m.kind}, bound {m.bound:g}) {m.verdict}"
        for ms in result.metrics.values()
        for m in ms
    ]
    print(*rows, sep="\n")
    return result, rows


def _metric(result: Any, name: str) -> Any:
    return next(m for ms in result.metrics.values() for m in ms if m.metric == name)


def test_slow_galera_node_holds_the_cluster_back_on_the_stack(story: Any) -> None:
    result, rows = story
    # a replay the machine moved under (this VM's speed drifts: a CI run saw a
    # work unit's cost move ×0.78 within a phase) is reported, not a model error,
    # and not judged; two of the three must be valid measurements
    valid = sum(r.valid for r in result.replays["slow"])
    assert valid >= 2, result.not_valid()
    assert result.mean("slow", "measured", PAUSED) > 0.01, rows
    queues = {
        node: result.mean("slow", "measured", f"galera.nodes.{node}.wsrep_local_recv_queue_avg")
        for node in ("db1", "db2", "db3")
    }
    assert max(queues, key=queues.__getitem__) == "db3", queues
    for name in ("throughput", "utilisation.app.app1.cpu", "utilisation.app.app2.cpu"):
        assert _metric(result, name).verdict == "within", rows


#: the known error's size (module docstring): the mean paired error of these
#: metrics stayed within it in every run so far (latency.mean -37 % to +4.5 %,
#: paused -0.043 to +0.27: a CI rehearsal on 2026-12-07 measured db3 at x1.40
#: its calibrated write-set cost, and the model paused 0.6 % against 3-6 %);
#: past it the model got worse, not noisier
SLOW_KNOWN = {"latency.mean": 0.6, PAUSED: 0.4}


def test_slow_galera_node_flow_control_stays_within_its_known_error(story: Any) -> None:
    """The known model error, held to its size. A strict xfail was a coin toss:
    either half of the error can land within its bound in one run (latency
    within with flow control 3x, or flow control within with latency -37 %),
    and a run with both would fail CI as an unexpected pass."""
    result, rows = story
    for name, limit in SLOW_KNOWN.items():
        m = _metric(result, name)
        assert abs(m.mean) <= limit, (name, m.mean, limit, rows)
