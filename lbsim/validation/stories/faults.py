"""Fault stories: a node killed mid-run and started again, predicted and measured.

A :class:`~lbsim.validation.stories.catalogue.FaultStory` is a story
(:mod:`lbsim.validation.stories.harness`) whose scenario has app node
outages. The live side replays it on a fresh stack, killing and starting
the node's container on schedule (:mod:`lbsim.validation.faults`); the
model simulates the same replication with one-second report rows. Besides
the harness's counts (requests that arrived in the measured window, by how
they were answered), each side gives

* ``failed_outage`` / ``failed_after``: failed answers (any cause) that
  reached the client from the kill to the restart, and from the restart to
  the horizon (counts, judged like the others);
* the per-second series and their burst, dip and recovery
  (:mod:`lbsim.validation.timeline`), paired per replication:

  - ``burst.count``: absolute, bound :data:`BURST_COUNT_BOUND` bursts;
  - ``burst.duration``: absolute in seconds, bound 2 s or 25 % of the
    measured mean, whichever is larger (:func:`duration_bound`);
  - ``throughput.dip_min``: relative, 25 % (least completions in a second);
  - ``recovery``: relative, 25 %, over ``max(measured, RECOVERY_FLOOR)``:
    at one-second resolution one bin is the least difference the metric
    can tell, and 25 % of a recovery near 0 would ask for less.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from lbsim.experiment.run import run_replication
from lbsim.scenario.database import Galera
from lbsim.scenario.schema import Report, Scenario
from lbsim.validation import lifecycle
from lbsim.validation.failures import answered_by_horizon, predicted_counts
from lbsim.validation.faults import as_injected
from lbsim.validation.loadgen import NOT_SENT, Record
from lbsim.validation.measured import failure_reason
from lbsim.validation.paired import PairedMetric, signed_error
from lbsim.validation.products import stack_balancer
from lbsim.validation.replay import replay
from lbsim.validation.stories.catalogue import FaultStory
from lbsim.validation.stories.harness import (
    Counts,
    Say,
    StoryResult,
    run_story,
)
from lbsim.validation.stories.sides import measure_on_own_stack
from lbsim.validation.timeline import (
    FaultSummary,
    FaultWindow,
    Series,
    bin_answers,
    from_rows,
    summarise,
)
from lbsim.validation.workplan import MachineCosts

#: bound of the number of error bursts (absolute)
BURST_COUNT_BOUND = 1.0
#: bound of the burst duration: this many seconds, or DURATION_SHARE of the measured mean
DURATION_SECONDS = 2.0
DURATION_SHARE = 0.25
#: relative bound of the dip and the recovery time
TIMELINE_BOUND = 0.25
#: least denominator of the recovery time's relative error (s)
RECOVERY_FLOOR = 4.0


@dataclass
class Timeline:
    """One side's view of one replication."""

    series: Series
    summary: FaultSummary


def fault_window(scenario: Scenario) -> FaultWindow:
    """The first app or Galera node outage of ``scenario`` (ValueError without one)."""
    outages = [o for n in scenario.app.resolved_nodes() for o in n.outages]
    db = scenario.database
    if isinstance(db, Galera):
        outages += [o for n in db.resolved_nodes() for o in n.outages]
    if not outages:
        raise ValueError(f"scenario {scenario.name!r} has no node outage")
    first = min(outages, key=lambda o: o.start)
    return FaultWindow(scenario.warmup, first.start, first.start + first.duration, scenario.horizon)


def phase_counts(series: Series, window: FaultWindow) -> Counts:
    """Failed answers from the kill to the restart, and from the restart on."""
    k0, k1 = math.floor(window.start), math.floor(window.end)
    return {
        "failed_outage": sum(series.failed[k0:k1]),
        "failed_after": sum(series.failed[k1:]),
    }


def live_series(records: Sequence[Record], horizon: float) -> Series:
    """The replay's answers by the second they reached the client."""
    return bin_answers(
        (
            (r.sent + r.latency, "completed" if r.status == 200 else failure_reason(r))
            for r in records
            if r.status != NOT_SENT
        ),
        horizon,
    )


def with_seconds(scenario: Scenario) -> Scenario:
    """``scenario`` with one-second report rows (the model's per-second series)."""
    return scenario.model_copy(update={"report": Report(interval=1.0)})


class FaultStackSide:
    """Replays on a fresh stack, the node killed and started on schedule."""

    def __init__(self, port: int = 8080, say: Say = print) -> None:
        self.port = port
        self.say = say
        self.costs: MachineCosts | None = None
        self.last_notes: dict[str, Any] = {}
        self.timelines: list[Timeline] = []

    def __call__(self, scenario: Scenario, replication: int) -> Counts:
        options = lifecycle.default_options(stack_balancer(scenario), self.port)
        if self.costs is None:
            self.costs = measure_on_own_stack(scenario, options, self.say)
        handle = lifecycle.up(scenario, options)
        try:
            run = replay(scenario, handle, self.costs, replication=replication)
        finally:
            lifecycle.down(scenario, options)
        meta = run.results["meta"]
        verdict = meta["loadgen"]
        window = fault_window(scenario)
        series = live_series(run.records, scenario.horizon)
        summary = summarise(series, window)
        self.timelines.append(Timeline(series, summary))
        problems = list(verdict["problems"]) + list(meta.get("fault_problems", []))
        self.last_notes = {
            "valid": bool(verdict["valid"]) and not meta.get("fault_problems"),
            "problems": problems,
            "faults": meta.get("faults", []),
            "timeline": summary.to_dict(),
        }
        return answered_by_horizon(scenario, run.records) | phase_counts(series, window)


class FaultModelSide:
    """Simulates the replication with one-second rows.

    With ``timed_by`` (the stack side that has just replayed the same
    replication), each outage is simulated when the replay's container died
    and started (:func:`~lbsim.validation.faults.as_injected`); the counts
    keep the planned window, as the measured ones do.
    """

    def __init__(self, timed_by: FaultStackSide | None = None) -> None:
        self.timelines: list[Timeline] = []
        self.timed_by = timed_by

    def __call__(self, scenario: Scenario, replication: int) -> Counts:
        window = fault_window(scenario)
        if self.timed_by is not None:
            scenario = as_injected(scenario, self.timed_by.last_notes.get("faults", []))
        scenario = with_seconds(scenario)
        results, extras = run_replication(scenario, replication)
        series = from_rows(extras["timeseries"], scenario.horizon)
        self.timelines.append(Timeline(series, summarise(series, window)))
        return predicted_counts(results) | phase_counts(series, window)


def duration_bound(measured: Sequence[float]) -> float:
    """2 s or 25 % of the measured mean duration, whichever is larger."""
    vals = [m for m in measured if math.isfinite(m)]
    mean = sum(vals) / len(vals) if vals else 0.0
    return max(DURATION_SECONDS, DURATION_SHARE * mean)


def timeline_metrics(
    story: str, variant: str, pairs: Sequence[tuple[FaultSummary, FaultSummary]]
) -> list[PairedMetric]:
    """The paired burst, dip and recovery metrics over ``(predicted, measured)`` pairs."""
    specs: dict[str, tuple[str, float, float]] = {
        "burst.count": ("absolute", BURST_COUNT_BOUND, 0.0),
        "burst.duration": ("absolute", 0.0, 0.0),  # bound set from the measured values
        "throughput.dip_min": ("relative", TIMELINE_BOUND, 1.0),
        "recovery": ("relative", TIMELINE_BOUND, RECOVERY_FLOOR),
    }
    out = []
    for name, (kind, bound, floor) in specs.items():
        predicted = [p.metrics()[name] for p, _ in pairs]
        measured = [m.metrics()[name] for _, m in pairs]
        if name == "burst.duration":
            bound = duration_bound(measured)
        pm = PairedMetric(story, variant, name, kind, bound, floor)  # type: ignore[arg-type]
        for p, m in zip(predicted, measured, strict=True):
            pm.predicted.append(p)
            pm.measured.append(m)
            pm.errors.append(signed_error(p, m, kind, floor))  # type: ignore[arg-type]
        out.append(pm)
    return out


@dataclass
class FaultResult:
    """The harness's result and both sides' timelines, by variant in repetition order."""

    story: StoryResult
    predicted: dict[str, list[Timeline]] = field(default_factory=dict)
    measured: dict[str, list[Timeline]] = field(default_factory=dict)


def run_fault_story(
    story: FaultStory,
    measure: FaultStackSide | Any,
    predict: FaultModelSide | Any,
    repetitions: int = 3,
    extra: Sequence[str] = (),
    say: Say = print,
) -> FaultResult:
    """:func:`~lbsim.validation.stories.harness.run_story`, then the timeline
    metrics paired per replication and added to every variant's metrics."""
    result = run_story(story, measure, predict, repetitions, extra, say)
    # run_story measures then predicts each variant in turn, replication by replication
    order = [v.name for _ in range(repetitions) for v in story.variants]
    out = FaultResult(result)
    for name, m, p in zip(order, measure.timelines, predict.timelines, strict=True):
        out.measured.setdefault(name, []).append(m)
        out.predicted.setdefault(name, []).append(p)
    for vr in result.variants:
        name = vr.variant.name
        pairs = [
            (p.summary, m.summary)
            for p, m in zip(out.predicted.get(name, []), out.measured.get(name, []), strict=True)
        ]
        vr.metrics += timeline_metrics(story.name, name, pairs)
    return out
