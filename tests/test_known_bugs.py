"""Known model bugs, reproduced: each test fails (xfail, strict) until the bug
is fixed, and then must be turned into an ordinary regression test.

Envoy retry onto a node still running the earlier try: after an upstream
(per-try) timeout Envoy retries, and its host selection may pick the same
node while the first try still runs there. The model tracks a node's running
work per request, not per try, so the second try overwrites the first and the
node's ``_finish`` raises KeyError. A fix needs one entry (phase, CPU job,
worker, database session) per try rather than per request (lbsim/model/app.py).
Found by the property test ``test_any_limits_run_and_conserve_requests``; in
CI that test's examples are derandomized (tests/conftest.py), so its verdict
does not depend on whether a run draws this case.
"""

from __future__ import annotations

import pytest

import lbsim
from tests.support import scenario
from tests.test_overload_properties import overloaded


@pytest.mark.xfail(raises=KeyError, strict=True, reason="per-request, not per-try, node state")
def test_envoy_retry_onto_the_node_still_running_the_first_try() -> None:
    data = overloaded(
        rate=2.0, nodes=1, workers=2, backlog=2, max_conns=0, product="envoy", seed=161
    )
    lbsim.simulate(scenario(data))
