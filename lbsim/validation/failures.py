"""Failures of each kind, measured and predicted alike, for an overload level.

Both sides count the requests that arrived in the measured window (after the
warm-up, before the horizon) by how they were answered *before the horizon*:
the model stops there (what it has not answered is ``in_flight``), while the
load generator waits for every answer up to the client timeout, so a request
answered after the horizon is ``in_flight`` on the measured side too.

``failures.<reason>`` is the fraction of the arrived requests that failed with
``reason`` by the horizon, for the reasons both sides name alike
(:data:`REASONS`: the balancer's 502/503/504 and the client's timeout),
``other`` for the rest (the model's database errors; the stack's refused
connections, database errors and any other status) and ``total``. The counts
behind them (``answered``) are reported, not judged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from lbsim.scenario.schema import Scenario
from lbsim.validation.loadgen import NOT_SENT, Record
from lbsim.validation.measured import failure_reason

#: the failure reasons compared one by one (``requests.failed.<reason>`` of the model)
REASONS = ("http_502", "http_503", "http_504", "timeout")
#: every key of the ``failures`` block, in report order
FAILURE_KEYS = (*REASONS, "other", "total")


def answered_by_horizon(scenario: Scenario, records: Sequence[Record]) -> dict[str, int]:
    """Requests that arrived in the measured window, by how they were answered
    before the horizon (``completed``, a failure reason, else ``in_flight``)."""
    out: Counter[str] = Counter()
    for r in records:
        if r.status == NOT_SENT or not scenario.warmup <= r.scheduled < scenario.horizon:
            continue
        out["arrived"] += 1
        if r.sent + r.latency >= scenario.horizon:
            out["in_flight"] += 1
        else:
            out["completed" if r.status == 200 else failure_reason(r)] += 1
    return dict(out)


def predicted_counts(results: Mapping[str, Any]) -> dict[str, int]:
    """The model's counts of the same cohort (``requests`` of its results)."""
    req = results["requests"]
    out = {k: int(req[k]) for k in ("arrived", "completed", "in_flight")}
    out |= {k: int(v) for k, v in req["failed"].items() if k != "total"}
    return out


def fractions(counts: Mapping[str, int]) -> dict[str, float]:
    """``failures``: each of :data:`FAILURE_KEYS` as a fraction of the arrived
    requests (empty when none arrived: nothing to compare)."""
    arrived = counts.get("arrived", 0)
    if arrived <= 0:
        return {}
    failed = {
        k: v for k, v in counts.items() if k not in ("arrived", "completed", "in_flight") and v
    }
    named = {k: failed.get(k, 0) for k in REASONS}
    total = sum(failed.values())
    out = {k: v / arrived for k, v in named.items()}
    out["other"] = (total - sum(named.values())) / arrived
    out["total"] = total / arrived
    return out


def with_failures(results: dict[str, Any], counts: Mapping[str, int]) -> dict[str, Any]:
    """``results`` with the ``answered`` counts and their ``failures`` fractions."""
    shares = fractions(counts)
    if not shares:
        return results
    return {**results, "answered": dict(counts), "failures": shares}
