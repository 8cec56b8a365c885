"""Story 1, heavy users vs policy: the same arrivals under each balancer policy,
live and in the calibrated model, paired.

The stack of the first policy is calibrated once at low load (the classes'
CPU, the machine's work unit and background: :func:`lbsim.validation.campaign.measure`);
the rate is ``level`` times what the app nodes can serve (their cores over
the mix's calibrated CPU, or the machine's capacity where that is lower).
Then every policy is replayed ``repetitions`` times, interleaved (A, B, C, A,
…), each on a fresh stack with that policy's balancer configuration,
repetition ``r`` with seed ``seed + r`` for every policy: the same arrival
times, classes, clients and demands. Each replay is simulated with its own
seed, CPU speed and background (:func:`lbsim.validation.levels.run_replay`),
so every error is paired.

Judged, per policy: the campaign's bounded metrics (throughput, mean and p95
latency, every app node's CPU) and every class's mean and p95 latency; and
the *difference* of each policy from the first one (mean and p95 latency):
per repetition ``(Δpredicted − Δmeasured) / |Δmeasured|``, bound 25 %.
The ranking of the policies (by mean and by p95 latency, means over the
repetitions) predicted and measured is reported side by side.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lbsim.scenario.loader import load_scenario
from lbsim.scenario.schema import Scenario
from lbsim.stats.replications import flatten
from lbsim.validation import collectors, lifecycle
from lbsim.validation.calibration import Calibration
from lbsim.validation.campaign import CampaignOptions, measure, stack_meter
from lbsim.validation.levels import Replay, replay_duration, run_replay
from lbsim.validation.overload import node_capacity
from lbsim.validation.paired import PairedMetric, pair, signed_error
from lbsim.validation.products import stack_balancer
from lbsim.validation.stories.harness import Say

#: the bound of a policy's difference from the first policy (relative)
DIFFERENCE_BOUND = 0.25
#: class latency bounds (the campaign's: mean 15 %, p95 25 %)
CLASS_BOUNDS = {"latency.mean": 0.15, "latency.p95": 0.25}


@dataclass
class PoliciesResult:
    scenario: Scenario
    policies: tuple[str, ...]
    level: float
    rate: float
    capacity: float
    calibration: Calibration
    replays: dict[str, list[Replay]] = field(default_factory=dict)
    metrics: dict[str, list[PairedMetric]] = field(default_factory=dict)
    differences: list[PairedMetric] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    def not_valid(self) -> list[str]:
        return [
            f"{p} r{r.repetition + 1}: {'; '.join(r.problems)}"
            for p, reps in self.replays.items()
            for r in reps
            if not r.valid
        ]

    def ranking(self, side: str, metric: str) -> list[str]:
        """The policies from best (lowest) to worst by ``metric``'s mean on ``side``."""

        def mean(p: str) -> float:
            vals = [flatten(getattr(r, side)).get(metric, float("nan")) for r in self.replays[p]]
            return sum(vals) / len(vals)

        return sorted(self.policies, key=mean)

    @property
    def passed(self) -> bool:
        every = [m for ms in self.metrics.values() for m in ms] + self.differences
        return all(m.verdict != "miss" for m in every) and not self.not_valid()


def policy_file(raw: dict[str, Any], policy: str, outdir: Path, name: str) -> Path:
    """The scenario with ``policy`` (its own options dropped), written for the replay."""
    data = copy.deepcopy(raw)
    data["balancer"] = {**data.get("balancer", {}), "policy": policy}
    data["balancer"].pop("policy_options", None)
    path = outdir / f"{name}-{policy}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def class_metrics(name: str, policy: str, replays: Sequence[Replay]) -> list[PairedMetric]:
    """Every class's mean and p95 latency, paired over the replays."""
    out = []
    classes = sorted(
        {k.split(".")[1] for k in flatten(replays[0].measured) if k.startswith("classes.")}
    )
    for cls in classes:
        for stat, bound in CLASS_BOUNDS.items():
            key = f"classes.{cls}.{stat}"
            pm = PairedMetric(name, policy, key, "relative", bound)
            for r in replays:
                p = flatten(r.predicted).get(key, float("nan"))
                m = flatten(r.measured).get(key, float("nan"))
                pm.predicted.append(p)
                pm.measured.append(m)
                pm.errors.append(signed_error(p, m, "relative"))
            out.append(pm)
    return out


def differences(
    name: str, first: str, policy: str, a: Sequence[Replay], b: Sequence[Replay]
) -> list[PairedMetric]:
    """``policy`` minus ``first``, predicted against measured, per repetition."""
    out = []
    for key in ("latency.mean", "latency.p95"):
        pm = PairedMetric(name, f"{policy} - {first}", key, "relative", DIFFERENCE_BOUND)
        for ra, rb in zip(a, b, strict=True):
            dp = flatten(rb.predicted)[key] - flatten(ra.predicted)[key]
            dm = flatten(rb.measured)[key] - flatten(ra.measured)[key]
            pm.predicted.append(dp)
            pm.measured.append(dm)
            pm.errors.append(signed_error(dp, dm, "relative"))
        out.append(pm)
    return out


def run_policies(
    file: Path,
    policies: Sequence[str],
    options: CampaignOptions,
    level: float,
    outdir: Path,
    say: Say = print,
) -> PoliciesResult:
    """Calibrate once, then replay and simulate every policy (see the module)."""
    raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    files = {p: policy_file(raw, p, outdir / "scenarios", raw["name"]) for p in policies}
    raws = {p: yaml.safe_load(f.read_text(encoding="utf-8")) for p, f in files.items()}
    bases = {p: load_scenario(f) for p, f in files.items()}
    first = bases[policies[0]]
    opts = lifecycle.default_options(stack_balancer(first), options.port)
    say(f"{first.name}: calibrating on the {policies[0]} stack at low load")
    handle = lifecycle.up(first, opts)
    try:
        cal = measure(handle, first, options, say)
    finally:
        lifecycle.down(first, opts)
    capacity = min(cal.capacity(first), node_capacity(first, cal))
    rate = round(level * capacity, 3)
    horizon = (options.warmup, replay_duration(rate, options.duration, options.min_requests))
    result = PoliciesResult(first, tuple(policies), level, rate, capacity, cal)
    say(
        f"capacity {capacity:.2f} requests/s; {len(policies)} policies × "
        f"{options.repetitions} replays at {rate:g} requests/s, {horizon[1]:g} s measured each"
    )
    result.replays = {p: [] for p in policies}
    for p in policies:
        (outdir / p).mkdir(parents=True, exist_ok=True)
    for rep in range(options.repetitions):
        for p in policies:
            base = bases[p]
            popts = lifecycle.default_options(stack_balancer(base), options.port)
            handle = lifecycle.up(base, popts)
            try:
                meter = stack_meter(collectors.ContainerCpu(handle))
                one = run_replay(
                    files[p], raws[p], base, handle, cal, meter, options, level, rate, rep,
                    horizon, outdir / p, say,
                )  # fmt: skip
            finally:
                lifecycle.down(base, popts)
            result.replays[p].append(one)
    for p in policies:
        reps = result.replays[p]
        result.metrics[p] = [*pair([r.errors for r in reps]), *class_metrics(first.name, p, reps)]
    for p in policies[1:]:
        result.differences += differences(
            first.name, policies[0], p, result.replays[policies[0]], result.replays[p]
        )
    return result
