"""Story 3, a slow Galera node: the cluster's counters and the latency, live and in
the calibrated model, paired.

The story's variants (:class:`~lbsim.validation.stories.catalogue.GaleraStory`)
are written out as scenario files, each the *equivalent* of its variant
(:func:`lbsim.validation.slow_node.equivalent`: a slow node as ``cores /
slowness`` cores and slowness 1), which the stack replays and the model
simulates alike. The stack of one variant (``calibrate_on``) is calibrated
once at low load (:func:`lbsim.validation.campaign.measure`); every variant is
then replayed ``repetitions`` times at the scenario's own rate, interleaved
(A, B, C, A, …), each on a fresh stack, repetition ``r`` with seed
``seed + r`` in every variant, and simulated with that replay's seed, CPU
speed and background (:func:`lbsim.validation.levels.run_replay`).

A variant whose database nodes have other cores than the calibrated one's
(a node squeezed into a small CFS quota) has its receiving nodes' CPU per
write-set measured on its own stack (:mod:`lbsim.validation.node_costs`): the
model gives each such node ``write_set_cost`` = its cost over the calibrated
mean.

The calibration places the CPU the other nodes spend per write-set
(``receive``) beside the write-set's apply, off the receive queue's path.
In MariaDB's Galera the applier (slave) thread takes the write-set from the
receive queue and certifies, applies and commits it: that CPU *is* the
queue's service. With ``on_applier`` (:func:`on_applier`) the story's model
spends it on the applier (``apply``), so a node with little CPU drains its
queue slowly, as the real one does.

Judged per variant, paired over the repetitions (:mod:`lbsim.validation.paired`):

* the campaign's bounded metrics (throughput, mean and p95 latency, app
  nodes' CPU, ``galera.flow_control.paused`` within 0.05, stale reads);
* every class's mean and p95 latency (15 %, 25 %): the writing class's is the
  commit latency as its clients see it (the server keeps no commit timer);
* per database node: ``wsrep_flow_control_paused`` (absolute, 0.05),
  ``wsrep_flow_control_sent`` (the FC_STOP messages it sent: a count, 25 %
  or ±10 when fewer than 40 were measured) and ``wsrep_local_recv_queue_avg``
  (the queue seen by arriving write-sets: relative 25 % over at least one
  write-set, :data:`RECV_QUEUE_FLOOR`, so two near-empty queues agree).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

from lbsim.scenario.database import Galera, ResolvedGaleraNode
from lbsim.scenario.loader import scenario_from_data
from lbsim.scenario.overrides import apply_overrides
from lbsim.scenario.schema import Scenario
from lbsim.stats.replications import flatten
from lbsim.validation.calibration import Calibration
from lbsim.validation.campaign import CampaignOptions
from lbsim.validation.levels import Adjust, Replay, judged_replays
from lbsim.validation.node_costs import cost_factors, with_write_set_costs
from lbsim.validation.paired import PairedMetric, pair, signed_error
from lbsim.validation.slow_node import equivalent, replayed_lines
from lbsim.validation.stories.catalogue import GaleraStory
from lbsim.validation.stories.harness import (
    COUNT_BOUND,
    RELATIVE_FROM,
    SMALL_COUNT_BOUND,
    Say,
)
from lbsim.validation.stories.policies import class_metrics

#: flow control paused, a fraction of the window (absolute)
PAUSED_BOUND = 0.05
#: the receive queue's relative bound ...
RECV_QUEUE_BOUND = 0.25
#: ... over at least this many write-sets
RECV_QUEUE_FLOOR = 1.0
#: the cluster's paused fraction (the campaign's key)
PAUSED = "galera.flow_control.paused"
#: a replay at more than this fraction of the calibrated capacity is reported as such
HIGH_LEVEL = 0.9


def on_applier(data: dict[str, Any]) -> dict[str, Any]:
    """The calibrated scenario's data with the other nodes' CPU per write-set spent
    by their applier (``apply``) instead of beside it (``receive``); see the module."""
    db = data.get("database", {})
    if db.get("engine") == "galera" and "receive" in db:
        db["apply"], db["receive"] = db["receive"], 0.0
    return data


def receivers(scenario: Scenario) -> list[ResolvedGaleraNode]:
    """The database nodes that apply the writer's write-sets (all but the writer
    with a read/write split; every node otherwise)."""
    db = scenario.database
    if not isinstance(db, Galera):
        return []
    split = db.routing.read_write_split
    return [n for i, n in enumerate(db.resolved_nodes()) if not (split and i == db.routing.writer)]


def db_cores(scenario: Scenario) -> tuple[tuple[str, float], ...]:
    """Each database node's cores: variants that agree share one cost measurement."""
    db = scenario.database
    if not isinstance(db, Galera):
        return ()
    return tuple((n.name, n.cores) for n in db.resolved_nodes())


def variant_adjust(on: bool, factors: dict[str, float]) -> Adjust | None:
    """The story's change to a variant's calibrated data: the apply CPU on the
    applier (``on``) and the measured nodes' cost factors."""
    if not on and not factors:
        return None
    if not factors:
        return on_applier

    def adjust(data: dict[str, Any]) -> dict[str, Any]:
        return with_write_set_costs(on_applier(data) if on else data, factors)

    return adjust


def applier_busy(
    scenario: Scenario, cal: Calibration, rate: float, factors: dict[str, float] | None = None
) -> dict[str, float]:
    """Per node that applies the writer's write-sets: about how busy its appliers are
    in the calibrated model (:func:`on_applier`) at ``rate`` — the write-sets per
    second times one's apply CPU at the node's cores plus its commit, over the
    appliers. Near 1 the receive queue grows without bound: the flow-control
    fraction then hangs on the calibration's every microsecond."""
    db = scenario.database
    if not isinstance(db, Galera):
        return {}
    classes = scenario.workload.classes
    weight = sum(c.weight for c in classes)
    writes = sum(c.weight * sum(q.kind == "write" for q in c.queries) for c in classes) / weight
    nodes = db.resolved_nodes()
    split = db.routing.read_write_split
    # one writer: every other node applies them all; else each the others' share
    applied = rate * writes * (1.0 if split else (len(nodes) - 1) / len(nodes))
    factors = factors or {}
    return {
        n.name: applied
        * (
            cal.apply_cpu * n.slowness * factors.get(n.name, 1.0) / min(n.cores, n.applier_threads)
            + cal.write_commit
        )
        / n.applier_threads
        for n in receivers(scenario)
    }  # fmt: skip


def variant_data(
    story: GaleraStory, raw: dict[str, Any], overrides: Sequence[str]
) -> tuple[dict[str, Any], Scenario]:
    """One variant: the equivalent (slow nodes as fewer cores) of the file's data with
    ``overrides``, which is replayed and predicted; and the variant as written, loaded."""
    data = apply_overrides(raw, overrides, str(story.file))
    scenario = scenario_from_data(data, str(story.file), base_dir=story.file.parent)
    return equivalent(data, scenario), scenario


@dataclass
class GaleraResult:
    story: GaleraStory
    calibration: Calibration
    rate: float
    capacity: float
    horizon: tuple[float, float]
    #: per variant: what the replay made of its slow and distant nodes
    replayed: dict[str, list[str]] = field(default_factory=dict)
    replays: dict[str, list[Replay]] = field(default_factory=dict)
    metrics: dict[str, list[PairedMetric]] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)
    #: per variant: every receiving node's applier load (:func:`applier_busy`)
    appliers: dict[str, dict[str, float]] = field(default_factory=dict)
    #: per variant whose nodes' cores differ from the calibrated one's: each
    #: receiving node's measured cost over the calibrated apply cost (its write_set_cost)
    cost_factors: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def level(self) -> float:
        return self.rate / self.capacity if self.capacity > 0 else math.inf

    def not_valid(self) -> list[str]:
        return [
            f"{v} r{r.repetition + 1}: {'; '.join(r.problems)}"
            for v, reps in self.replays.items()
            for r in reps
            if not r.valid
        ]

    def mean(self, variant: str, side: str, key: str) -> float:
        """``key``'s mean over ``variant``'s valid replays (all when none is) on
        ``side`` (predicted, measured)."""
        reps = judged_replays(self.replays[variant])
        vals = [flatten(getattr(r, side)).get(key, math.nan) for r in reps]
        vals = [float(v) for v in vals if isinstance(v, int | float) and math.isfinite(v)]
        return sum(vals) / len(vals) if vals else math.nan

    @property
    def passed(self) -> bool:
        every = [m for ms in self.metrics.values() for m in ms]
        return all(m.verdict != "miss" for m in every) and not self.not_valid()


def _paired(
    story: str, variant: str, key: str, kind: str, bound: float, floor: float,
    replays: Sequence[Replay],
) -> PairedMetric:  # fmt: skip
    pm = PairedMetric(story, variant, key, kind, bound, floor)  # type: ignore[arg-type]
    for r in replays:
        p = float(flatten(r.predicted).get(key, math.nan))
        m = float(flatten(r.measured).get(key, math.nan))
        pm.predicted.append(p)
        pm.measured.append(m)
        pm.errors.append(signed_error(p, m, kind, floor))  # type: ignore[arg-type]
    return pm


def node_metrics(story: str, variant: str, replays: Sequence[Replay]) -> list[PairedMetric]:
    """Every database node's paused fraction, FC_STOP count and receive queue, paired."""
    nodes: set[str] = set()
    for r in replays:
        for side in (r.predicted, r.measured):
            nodes |= set((side.get("galera") or {}).get("nodes", {}))
    out = []
    for node in sorted(nodes):
        key = f"galera.nodes.{node}."
        out.append(
            _paired(story, variant, key + "wsrep_flow_control_paused", "absolute",
                    PAUSED_BOUND, 0.0, replays)
        )  # fmt: skip
        sent = key + "wsrep_flow_control_sent"
        measured = [float(flatten(r.measured).get(sent, math.nan)) for r in replays]
        finite = [m for m in measured if math.isfinite(m)]
        relative = bool(finite) and sum(finite) / len(finite) >= RELATIVE_FROM
        out.append(
            _paired(story, variant, sent, "relative" if relative else "absolute",
                    COUNT_BOUND if relative else SMALL_COUNT_BOUND, 0.0, replays)
        )  # fmt: skip
        out.append(
            _paired(story, variant, key + "wsrep_local_recv_queue_avg", "relative",
                    RECV_QUEUE_BOUND, RECV_QUEUE_FLOOR, replays)
        )  # fmt: skip
    return out


def judge(story: str, variant: str, replays: Sequence[Replay]) -> list[PairedMetric]:
    """Every paired metric of one variant (see the module), labelled with the variant."""
    bounded = pair([r.errors for r in replays])
    for m in bounded:
        m.level = variant  # the campaign labels them with the load level
    return [
        *bounded,
        *class_metrics(story, variant, replays),
        *node_metrics(story, variant, replays),
    ]


class GaleraSide(Protocol):
    """Calibrates on, and replays against, a stack (live: :class:`StackGaleraSide`)."""

    def calibrate(self, base: Scenario, options: CampaignOptions, say: Say) -> Calibration: ...

    def node_costs(
        self, base: Scenario, nodes: Sequence[str], options: CampaignOptions, say: Say
    ) -> dict[str, float]: ...

    def replay(
        self,
        file: Path,
        raw: dict[str, Any],
        base: Scenario,
        cal: Calibration,
        options: CampaignOptions,
        level: float,
        rate: float,
        repetition: int,
        horizon: tuple[float, float],
        outdir: Path,
        say: Say,
        adjust: Adjust | None,
    ) -> Replay: ...


class StackGaleraSide:
    """A fresh stack for the calibration and for every replay, taken down after each."""

    def calibrate(self, base: Scenario, options: CampaignOptions, say: Say) -> Calibration:
        from lbsim.validation import lifecycle
        from lbsim.validation.campaign import measure
        from lbsim.validation.products import stack_balancer

        opts = lifecycle.default_options(stack_balancer(base), options.port)
        handle = lifecycle.up(base, opts)
        try:
            return measure(handle, base, options, say)
        finally:
            lifecycle.down(base, opts)

    def node_costs(
        self, base: Scenario, nodes: Sequence[str], options: CampaignOptions, say: Say
    ) -> dict[str, float]:
        from lbsim.validation import collectors, lifecycle
        from lbsim.validation.node_costs import measure_node_costs
        from lbsim.validation.products import stack_balancer

        opts = lifecycle.default_options(stack_balancer(base), options.port)
        handle = lifecycle.up(base, opts)
        try:
            cpu = collectors.ContainerCpu(handle)
            return measure_node_costs(handle.url, cpu.snapshot, nodes)
        finally:
            lifecycle.down(base, opts)

    def replay(
        self,
        file: Path,
        raw: dict[str, Any],
        base: Scenario,
        cal: Calibration,
        options: CampaignOptions,
        level: float,
        rate: float,
        repetition: int,
        horizon: tuple[float, float],
        outdir: Path,
        say: Say,
        adjust: Adjust | None,
    ) -> Replay:
        from lbsim.validation import collectors, lifecycle
        from lbsim.validation.campaign import stack_meter
        from lbsim.validation.levels import run_replay
        from lbsim.validation.products import stack_balancer

        opts = lifecycle.default_options(stack_balancer(base), options.port)
        handle = lifecycle.up(base, opts)
        try:
            meter = stack_meter(collectors.ContainerCpu(handle))
            return run_replay(
                file, raw, base, handle, cal, meter, options, level, rate, repetition,
                horizon, outdir, say, adjust,
            )  # fmt: skip
        finally:
            lifecycle.down(base, opts)


def run_galera_story(
    story: GaleraStory,
    side: GaleraSide,
    options: CampaignOptions,
    outdir: Path,
    extra: Sequence[str] = (),
    variants: Sequence[str] | None = None,
    say: Say = print,
) -> GaleraResult:
    """Calibrate once, then replay and simulate every variant (see the module);
    ``variants``: only these (by name), in the story's order."""
    chosen = [v for v in story.variants if variants is None or v.name in variants]
    if not chosen:
        known = ", ".join(v.name for v in story.variants)
        raise ValueError(f"no such variant of {story.name}: {variants}; the variants: {known}")
    raw = yaml.safe_load(story.file.read_text(encoding="utf-8"))
    files: dict[str, Path] = {}
    datas: dict[str, dict[str, Any]] = {}
    bases: dict[str, Scenario] = {}
    replayed: dict[str, list[str]] = {}
    (outdir / "scenarios").mkdir(parents=True, exist_ok=True)
    for v in story.variants:  # every variant: the calibrated one may not be replayed
        data, scenario = variant_data(story, raw, [*v.overrides, *extra])
        path = outdir / "scenarios" / f"{story.name}-{v.name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        files[v.name], datas[v.name] = path, data
        bases[v.name] = scenario_from_data(data, str(path), base_dir=story.file.parent)
        replayed[v.name] = replayed_lines(scenario)
    on = story.calibrate_on or story.variants[0].name
    first = bases[on]
    open_loop = first.workload.open
    if open_loop is None or open_loop.rate is None:
        raise ValueError(f"{story.file}: the story needs a Poisson rate (workload.open.rate)")
    rate = open_loop.rate
    say(f"{story.name}: calibrating on the {on} stack at low load")
    cal = side.calibrate(first, options, say)
    capacity = cal.capacity(first)
    horizon = (options.warmup, options.duration)
    result = GaleraResult(story, cal, rate, capacity, horizon, replayed)
    level = result.level
    say(
        f"capacity {capacity:.2f} requests/s: {rate:g} requests/s is {level:.0%} of it; "
        f"{len(chosen)} variants x {options.repetitions} replays, {horizon[1]:g} s measured each"
    )
    if level > HIGH_LEVEL:
        say(f"  {level:.0%} of capacity: the replays run near the knee of this machine")
    measured: dict[tuple[tuple[str, float], ...], dict[str, float]] = {}
    for v in chosen:
        cores = db_cores(bases[v.name])
        if cores == db_cores(first):
            continue
        if cores not in measured:
            say(f"  {v.name}: measuring each receiving node's CPU per write-set on its stack")
            names = [n.name for n in receivers(bases[v.name])]
            costs = side.node_costs(bases[v.name], names, options, say)
            measured[cores] = cost_factors(costs, cal.apply_cpu)
            said = ", ".join(
                f"{n} {costs[n] * 1e3:.3f} ms (x{f:g})" for n, f in measured[cores].items()
            )
            say(f"    {said} against the calibrated {cal.apply_cpu * 1e3:.3f} ms")
        result.cost_factors[v.name] = measured[cores]
    for v in chosen:
        factors = result.cost_factors.get(v.name, {})
        busy = applier_busy(bases[v.name], cal, rate, factors) if story.on_applier else {}
        result.appliers[v.name] = busy
        if busy:
            shares = ", ".join(f"{n} {b:.0%}" for n, b in busy.items())
            say(f"  {v.name}: the appliers' busy share in the calibrated model, about {shares}")
    adjusts = {
        v.name: variant_adjust(story.on_applier, result.cost_factors.get(v.name, {}))
        for v in chosen
    }
    result.replays = {v.name: [] for v in chosen}
    for rep in range(options.repetitions):
        for v in chosen:
            (outdir / v.name).mkdir(parents=True, exist_ok=True)
            one = side.replay(
                files[v.name], datas[v.name], bases[v.name], cal, options, min(level, 1.0),
                rate, rep, horizon, outdir / v.name, say, adjusts[v.name],
            )  # fmt: skip
            result.replays[v.name].append(one)
            p, m = (flatten(x).get(PAUSED, math.nan) for x in (one.predicted, one.measured))
            say(f"  {v.name} r{rep + 1}: flow control paused {p:.3f} predicted, {m:.3f} measured")
    for name, reps in result.replays.items():
        # the valid replays (as a campaign's level): a replay the machine moved
        # under is reported (not_valid), not judged; all of them if none is valid
        result.metrics[name] = judge(story.name, name, judged_replays(reps))
    return result
