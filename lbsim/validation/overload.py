"""Overload on the real stack: failures of each kind, measured against predicted.

A scenario whose app nodes have a ``max_conns`` that binds is replayed at
several times what the nodes can serve, under the product the scenario names
(``balancer.product``; nginx skips a full peer and answers 502 at once, HAProxy
queues and answers 503 after ``timeout queue``), and the model predicts the
same arrivals (same seed, same replication) under the same product.

The regime is chosen so the counts do not hang on the machine's speed: in
heavy overload the nodes are always busy, failures ≈ arrivals − capacity ×
time, and the capacity is measured in the same run — the CPU the app
containers got in the measured window (cgroup accounting; another process on
the machine lowers it) and the cost of a work unit while the run lasted (the
app's own CPU clock). The model runs each app node with those cores and the
class's CPU demand at that speed, so a slower or busier machine moves the
prediction with the measurement.

Both sides count the requests that arrived after the warm-up and were
answered before the horizon (the model stops there; HAProxy answers its
queued requests up to ``timeout queue`` later).
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lbsim.experiment.run import run_replication
from lbsim.scenario.loader import load_scenario, loads_scenario
from lbsim.scenario.overrides import apply_overrides
from lbsim.scenario.schema import Scenario
from lbsim.validation import collectors, lifecycle
from lbsim.validation.calibration import (
    Calibration,
    ContainerGroups,
    calibrate_scenario,
    host_cores,
    measure_classes,
    measure_stack_costs,
)
from lbsim.validation.failures import REASONS, answered_by_horizon, predicted_counts
from lbsim.validation.levels import speed_factor
from lbsim.validation.lifecycle import StackHandle
from lbsim.validation.loadgen import NOT_SENT, Record
from lbsim.validation.measured import failure_reason
from lbsim.validation.policies import BalancerKind
from lbsim.validation.products import product_overrides, stack_balancer
from lbsim.validation.replay import replay

Say = Callable[[str], None]


@dataclass
class Repetition:
    """One replay and the simulation of the same replication."""

    replication: int
    #: CPU cost of a work unit during the replay over the calibrated one
    speed: float
    #: cores each app node got in the measured window (CPU used / window)
    cores: dict[str, float]
    measured: dict[str, int]
    predicted: dict[str, int]
    #: measured median latency (s) per answer kind (``ok`` or a failure reason)
    latency: dict[str, float]
    loadgen: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        rest = sorted((set(self.measured) | set(self.predicted)) - {"arrived", "completed"})
        cols = ["arrived", "completed", *rest]
        pairs = ", ".join(
            f"{c} {self.predicted.get(c, 0)}/{self.measured.get(c, 0)}"
            for c in cols
            if self.predicted.get(c, 0) or self.measured.get(c, 0)
        )
        lat = ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in sorted(self.latency.items()))
        cores = ", ".join(f"{n} {c:.2f}" for n, c in self.cores.items())
        return (
            f"replication {self.replication}: predicted/measured {pairs}; "
            f"cores {cores}, speed x{self.speed:.3f}; measured median latency {lat}"
        )


@dataclass
class OverloadResult:
    product: BalancerKind
    #: requests/s the app nodes serve (configured cores over calibrated CPU per request)
    capacity: float
    rate: float
    calibration: Calibration
    repetitions: list[Repetition] = field(default_factory=list)

    def total(self, side: str, key: str) -> int:
        return sum(getattr(r, side).get(key, 0) for r in self.repetitions)

    def summary(self) -> list[str]:
        out = [
            f"{self.product}: {len(self.repetitions)} replays at {self.rate:g} requests/s "
            f"({self.rate / self.capacity:.1f} x the calibrated capacity {self.capacity:.1f}/s)"
        ]
        out += ["  " + r.line() for r in self.repetitions]
        for key in ("completed", *REASONS):
            p, m = self.total("predicted", key), self.total("measured", key)
            if p or m:
                err = abs(p - m) / m if m else float("inf")
                out.append(f"  total {key}: predicted {p}, measured {m} (error {err:.1%})")
        return out


def median_latency(scenario: Scenario, records: Sequence[Record]) -> dict[str, float]:
    by: dict[str, list[float]] = {}
    for r in records:
        if r.status != NOT_SENT and scenario.warmup <= r.scheduled < scenario.horizon:
            kind = "ok" if r.status == 200 else failure_reason(r)
            by.setdefault(kind, []).append(r.latency)
    return {k: statistics.median(v) for k, v in by.items()}


def model_scenario(
    raw: dict[str, Any], base: Scenario, cal: Calibration, rate: float, cores: dict[str, float]
) -> Scenario:
    """The scenario as the stack ran it: calibrated CPU demands, the arrival
    rate, and each app node with the cores it got (no shared host: the
    measured cores already hold what the rest of the machine took)."""
    data = calibrate_scenario(copy.deepcopy(raw), base, cal, rate=rate)
    data.pop("hosts", None)
    app = data["app"]
    app.pop("host", None)
    nodes = base.app.resolved_nodes()
    if isinstance(app.get("nodes"), list):
        for spec, node in zip(app["nodes"], nodes, strict=True):
            spec["cores"] = round(cores[node.name], 4)
    else:
        if len(set(cores.values())) > 1:
            app["nodes"] = [{"cores": round(cores[n.name], 4)} for n in nodes]
        else:
            app["cores"] = round(cores[nodes[0].name], 4)
    return loads_scenario(yaml.safe_dump(data, sort_keys=False))


def calibrate(handle: StackHandle, scenario: Scenario, per_class: int, say: Say) -> Calibration:
    """The CPU of one request of each class at low load, and the work-unit cost."""
    cpu = collectors.ContainerCpu(handle)
    app = tuple(handle.app_nodes)
    groups = ContainerGroups(app, (), tuple(s for s in handle.services if s not in app))
    costs = measure_stack_costs(handle)
    classes = measure_classes(
        handle.url,
        scenario,
        costs,
        1,
        cpu.snapshot,
        collectors.host_cpu_seconds,
        0.0,
        groups,
        per_class=per_class,
    )
    cal = Calibration(costs=costs, classes=classes, host_cores=host_cores(), idle_cores=0.0)
    weights = [c.n for c in classes]
    cal.balancer_latency = max(
        statistics.fmean([c.latency - c.wall for c in classes], weights=weights), 0.0
    )
    for c in classes:
        say(
            f"  class {c.name}: {c.app_cpu * 1e3:.2f} ms app CPU per request "
            f"(planned {c.planned_cpu * 1e3:.2f} ms), work unit {c.unit * 1e6:.3f} us"
        )
    return cal


def node_capacity(scenario: Scenario, cal: Calibration) -> float:
    """Requests/s the app nodes serve with their configured cores (the class mix's CPU)."""
    weights = {c.name: c.weight for c in scenario.workload.classes}
    total = sum(weights.values())
    per_request = sum(weights[c.name] / total * c.app_cpu for c in cal.classes)
    return sum(n.cores for n in scenario.app.resolved_nodes()) / per_request


def run_overload(
    file: Path,
    product: BalancerKind,
    port: int,
    repetitions: int = 3,
    overload: float = 4.0,
    per_class: int = 20,
    overrides: Sequence[str] = (),
    say: Say = print,
) -> OverloadResult:
    """Start the stack of ``file`` under ``product``, calibrate, then replay and
    simulate ``repetitions`` replications at ``overload`` x the capacity.

    ``overrides`` (``key=value``, as ``--set``) apply to both, after the
    product is set (e.g. ``balancer.queue_timeout=1`` for HAProxy)."""
    sets = [*product_overrides(file, product, overrides), *overrides]
    base = load_scenario(file, sets)
    balancer = stack_balancer(base, product)
    raw = apply_overrides(yaml.safe_load(file.read_text(encoding="utf-8")), sets, str(file))
    opts = lifecycle.default_options(balancer, port)
    say(f"{product}: starting the stack of {base.name!r}")
    handle = lifecycle.up(base, opts)
    try:
        say(f"{product}: calibrating at low load")
        cal = calibrate(handle, base, per_class, say)
        capacity = node_capacity(base, cal)
        rate = round(overload * capacity, 2)
        result = OverloadResult(balancer, capacity, rate, cal)
        for r in range(repetitions):
            result.repetitions.append(_repetition(file, raw, base, sets, handle, cal, rate, r, say))
        return result
    finally:
        lifecycle.down(base, opts)


def _repetition(
    file: Path,
    raw: dict[str, Any],
    base: Scenario,
    sets: list[str],
    handle: StackHandle,
    cal: Calibration,
    rate: float,
    replication: int,
    say: Say,
) -> Repetition:
    scenario = load_scenario(file, [*sets, f"workload.open.rate={rate}"])
    say(f"  replication {replication}: replaying {rate:g} requests/s for {scenario.horizon:g} s")
    run = replay(scenario, handle, cal.costs, replication=replication)
    meta = run.results["meta"]
    speed = speed_factor(meta["unit_seconds"], cal.reference_unit())
    cores = {
        n.name: min(n.cores, meta["cpu_seconds"].get(n.name, 0.0) / scenario.duration) or n.cores
        for n in scenario.app.resolved_nodes()
    }
    model = model_scenario(raw, base, cal.at_speed(speed), rate, cores)
    predicted, _ = run_replication(model, replication)
    rep = Repetition(
        replication,
        speed,
        cores,
        answered_by_horizon(scenario, run.records),
        predicted_counts(predicted),
        median_latency(scenario, run.records),
        meta["loadgen"],
    )
    say("  " + rep.line())
    return rep
