"""Live: story app-node-crash on the real stack, shortened (lbsim story).

HAProxy only (its checks end the burst), app2 killed at 10 s and started
at 24 s in a 32 s replay, three paired replications on a fresh stack each
(about 4 min). Judged by the story's own statistics: no count and no
timeline metric (burst count and duration, dip, recovery) outside its bound
beyond the 95 % interval, no replay whose load generator missed its plan,
every docker kill/start done, and the killed container running again after
each replay (the stack is taken down anyway; the replay restarts it first).
"""

from __future__ import annotations

import dataclasses

import pytest

from lbsim.validation.stories import catalogue
from lbsim.validation.stories.faults import FaultModelSide, FaultStackSide, run_fault_story
from tests.stack_support import require_docker

pytestmark = [pytest.mark.stack, pytest.mark.slow]

#: the shortened outage: app2 down from 10 to 24 s of a 32 s replay (warm-up 2 s, so
#: 8 s before the kill set the pre-fault throughput), long enough for HAProxy's
#: checks to take it out (about 10 s after the kill)
SHORT = (
    "warmup=2",
    "duration=30",
    "app.nodes=[{name: app1}, {name: app3}, "
    "{name: app2, outages: [{start: 10, duration: 14, connections: unanswered}]}]",
)


def test_app_node_crash_under_haproxy_matches_the_stack() -> None:
    require_docker()
    full = catalogue.APP_NODE_CRASH
    story = dataclasses.replace(full, variants=(full.variants[-1],))
    assert story.variants[0].name == "haproxy"
    live = FaultStackSide(port=18091)
    result = run_fault_story(
        story, live, FaultModelSide(timed_by=live), repetitions=3, extra=list(SHORT)
    )
    rows = [
        f"{v.variant.name} {m.metric}: predicted {m.predicted} measured {m.measured} "
        f"error {m.mean:+.3f} ({m.kind}, bound {m.bound:g}) {m.verdict}"
        for v in result.story.variants
        for m in v.metrics
    ]
    print(*rows, sep="\n")
    for side, timelines in (("predicted", result.predicted), ("measured", result.measured)):
        for t in timelines["haproxy"]:
            print(side, t.summary.to_dict())
    reps = result.story.variants[0].repetitions
    for r in reps:
        events = r.notes["faults"]
        assert [e["action"] for e in events] == ["kill", "start"], events
        assert all(e["ok"] for e in events), events
        # docker's own times of the death and the start, read on the replay's clock
        assert all(e["due"] - 0.5 <= e["at"] <= e["done"] + 0.5 for e in events), events
    problems = [p for v in result.story.variants for p in v.problems]
    assert not problems, problems
    assert all(m.verdict != "miss" for v in result.story.variants for m in v.metrics), rows
    measured = result.measured["haproxy"]
    assert all(t.summary.failures > 0 for t in measured), "the kill made no error burst"
    assert result.story.passed
