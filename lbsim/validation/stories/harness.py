"""A validation story: variants of one scenario, replayed live and simulated, paired.

A story (:mod:`lbsim.validation.stories.catalogue`) names a scenario and its
variants (``--set`` overrides, e.g. ``database.connect=per_request``, the fix).
Every variant is replayed ``repetitions`` times on a *fresh* stack (persistent
connections, caches and Galera state never carry from one replay to the next,
as the model starts empty), repetition ``r`` with replication ``r`` of the
scenario's seed, and the model simulates the same replication: the same
arrival times, classes, clients and demands. The repetitions are interleaved
across variants (A, B, A, B, …) so a drift of the machine spreads over all.

What is compared are *counts* of the requests that arrived in the measured
window, by how they were answered before the horizon (completed, error 1040,
502, 503, timeout, …; :func:`lbsim.validation.failures.answered_by_horizon`).
Each count is paired per repetition (:mod:`lbsim.validation.paired`): when
the measured count averages at least :data:`RELATIVE_FROM` its error is
relative with bound :data:`COUNT_BOUND` (25 %), otherwise absolute in
requests with bound :data:`SMALL_COUNT_BOUND` (±10): a count of 0 against 3
is not a 100 % miss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lbsim.scenario.loader import load_scenario
from lbsim.scenario.schema import Scenario
from lbsim.validation.accuracy import Kind
from lbsim.validation.paired import PairedMetric, signed_error

#: relative bound of a count of requests (25 %) ...
COUNT_BOUND = 0.25
#: ... when the measured count averages at least this many; else absolute:
RELATIVE_FROM = 40
#: ± this many requests
SMALL_COUNT_BOUND = 10.0
#: counts never judged (context only): what arrived is the trace, both sides alike
CONTEXT = ("arrived",)

Say = Callable[[str], None]
Counts = dict[str, int]


@dataclass(frozen=True)
class Variant:
    """One configuration of the story's scenario."""

    name: str
    overrides: tuple[str, ...] = ()
    #: what the variant shows, one line for the report
    about: str = ""


@dataclass(frozen=True)
class Story:
    """A scenario, its variants and what the report must show."""

    name: str
    title: str
    file: Path
    variants: tuple[Variant, ...]
    #: counts that must be in the comparison even when both sides are 0
    counts: tuple[str, ...] = ("completed",)
    #: per variant: counts that must be 0 on both sides (the fix)
    zero: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    about: str = ""

    def scenario(self, variant: Variant, extra: Sequence[str] = ()) -> Scenario:
        return load_scenario(self.file, [*variant.overrides, *extra])


class Side(Protocol):
    """Measures (live) or predicts (model) the counts of one replication."""

    def __call__(self, scenario: Scenario, replication: int) -> Counts: ...


@dataclass
class Repetition:
    variant: str
    replication: int
    measured: Counts
    predicted: Counts
    #: anything the live side reports beside the counts (load generator verdict, …)
    notes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        keys = sorted(set(self.measured) | set(self.predicted), key=_order)
        pairs = ", ".join(f"{k} {self.predicted.get(k, 0)}/{self.measured.get(k, 0)}" for k in keys)
        return f"{self.variant} r{self.replication}: predicted/measured {pairs}"


def _order(key: str) -> tuple[int, str]:
    first = {"arrived": 0, "completed": 1, "in_flight": 9}
    return (first.get(key, 5), key)


@dataclass
class VariantResult:
    variant: Variant
    repetitions: list[Repetition] = field(default_factory=list)
    metrics: list[PairedMetric] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class StoryResult:
    story: Story
    repetitions: int
    duration: float
    variants: list[VariantResult] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No significant miss and every required zero held."""
        return all(
            all(m.verdict != "miss" for m in v.metrics) and not v.problems for v in self.variants
        )


def count_metric(
    story: str, variant: str, key: str, pairs: Sequence[tuple[int, int]]
) -> PairedMetric:
    """The paired metric of count ``key`` over ``(predicted, measured)`` pairs."""
    measured = [m for _, m in pairs]
    relative = sum(measured) / len(measured) >= RELATIVE_FROM
    kind: Kind = "relative" if relative else "absolute"
    bound = COUNT_BOUND if relative else SMALL_COUNT_BOUND
    pm = PairedMetric(story, variant, f"requests.{key}", kind, bound)
    for p, m in pairs:
        pm.predicted.append(float(p))
        pm.measured.append(float(m))
        pm.errors.append(signed_error(float(p), float(m), kind))
    return pm


def judge(story: Story, result: VariantResult) -> None:
    """Pair every count of ``result``'s repetitions and check the required zeros."""
    reps = result.repetitions
    keys = set(story.counts)
    for r in reps:
        keys |= {k for k, v in {**r.measured, **r.predicted}.items() if v}
    keys -= set(CONTEXT)
    result.metrics = [
        count_metric(
            story.name,
            result.variant.name,
            key,
            [(r.predicted.get(key, 0), r.measured.get(key, 0)) for r in reps],
        )
        for key in sorted(keys, key=_order)
    ]
    for r in reps:
        if r.notes.get("valid") is False:
            why = "; ".join(r.notes.get("problems", [])) or "the load generator missed its plan"
            result.problems.append(f"replication {r.replication} not a valid measurement: {why}")
    for key in story.zero.get(result.variant.name, ()):
        for r in reps:
            for side, counts in (("predicted", r.predicted), ("measured", r.measured)):
                if counts.get(key, 0):
                    result.problems.append(
                        f"{key} should be 0 with {result.variant.name} but was "
                        f"{counts[key]} ({side}, replication {r.replication})"
                    )


def run_story(
    story: Story,
    measure: Side,
    predict: Side,
    repetitions: int = 3,
    extra: Sequence[str] = (),
    say: Say = print,
    repeats: int = 2,
) -> StoryResult:
    """Every variant ``repetitions`` times, interleaved; measured and predicted alike.

    A replay that was not a valid measurement (its load generator lagged its
    schedule, a fault was not injected on time: ``measure.last_notes``) is
    replayed again, the same replication, up to ``repeats`` more times, and
    otherwise kept and reported with the reason. Whether a replay is valid is
    decided by the replay alone, never by how it compares with the model."""
    if repetitions < 1:
        raise ValueError("repetitions must be at least 1")
    if repeats < 0:
        raise ValueError("repeats must be at least 0")
    scenarios = {v.name: story.scenario(v, extra) for v in story.variants}
    first = next(iter(scenarios.values()))
    result = StoryResult(story, repetitions, first.duration)
    by_name = {v.name: VariantResult(v) for v in story.variants}
    for r in range(repetitions):
        for v in story.variants:
            scenario = scenarios[v.name]
            say(f"{story.name}: {v.name}, replication {r} ({scenario.horizon:g} s)")
            for attempt in range(1, repeats + 2):
                measured = measure(scenario, r)
                notes = dict(getattr(measure, "last_notes", {}) or {})
                notes["attempt"] = attempt
                if notes.get("valid") is not False or attempt > repeats:
                    break
                why = "; ".join(notes.get("problems", [])) or "the load generator missed its plan"
                say(f"  not a valid measurement ({why}): replaying replication {r} again")
            predicted = predict(scenario, r)
            rep = Repetition(v.name, r, measured, predicted, notes)
            by_name[v.name].repetitions.append(rep)
            say("  " + rep.line())
    for vr in by_name.values():
        judge(story, vr)
        result.variants.append(vr)
    return result


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def verdict_line(passed: bool, means: str) -> str:
    """A story report's last line: passed or not, and what passing ``means``."""
    return f"Verdict: **{'passed' if passed else 'NOT passed'}** (passed means: {means})."
