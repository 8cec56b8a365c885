"""Live: story too-many-connections on the real stack, shortened (lbsim story).

Two variants (persistent connections over max_connections, and the fix: a
connection per request), three paired replications of 20 s each on a fresh
stack per replay (about 3 min). Judged by the story's own statistics: no
count outside its bound beyond the 95 % interval, no replay whose load
generator missed its plan, and error 1040 at 0 on both sides with the fix.
"""

from __future__ import annotations

import dataclasses

import pytest

from lbsim.validation.stories import catalogue
from lbsim.validation.stories.harness import run_story
from lbsim.validation.stories.sides import ModelSide, StackSide
from tests.stack_support import require_docker

pytestmark = [pytest.mark.stack, pytest.mark.slow]


def test_too_many_connections_counts_match_the_stack() -> None:
    require_docker()
    full = catalogue.TOO_MANY_CONNECTIONS
    story = dataclasses.replace(full, variants=full.variants[:2])
    result = run_story(
        story, StackSide(port=18090), ModelSide(), repetitions=3, extra=["duration=20"]
    )
    rows = [
        f"{v.variant.name} {m.metric}: predicted {m.predicted} measured {m.measured} "
        f"error {m.mean:+.3f} ({m.kind}, bound {m.bound:g}) {m.verdict}"
        for v in result.variants
        for m in v.metrics
    ]
    print(*rows, sep="\n")
    problems = [p for v in result.variants for p in v.problems]
    assert not problems, problems
    assert all(m.verdict != "miss" for v in result.variants for m in v.metrics), rows
    persistent = result.variants[0]
    failed = next(m for m in persistent.metrics if m.metric == "requests.db_1040")
    assert min(failed.measured) > 0 and min(failed.predicted) > 0
    assert result.passed
