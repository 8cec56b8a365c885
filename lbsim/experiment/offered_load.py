"""Operational analysis before simulating: the offered load of every resource.

utilisation = arrival rate × demand per request / capacity (the utilisation
law). Requests are assumed split among app nodes in proportion to their
weights, as round robin does; hashing, ``first`` and load-aware policies can
skew the split, which the simulation then shows. Worker occupancy counts the
time a worker holds a request without contention (CPU + queries + hops to the
database), so it is a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from lbsim.scenario.schema import Scenario


@dataclass(frozen=True)
class ResourceLoad:
    resource: str
    utilisation: float
    detail: str


def arrival_rate(scenario: Scenario) -> tuple[float, float, str]:
    """(mean rate, peak rate, how it was found) in requests per second."""
    wl = scenario.workload
    horizon = scenario.horizon
    if wl.open is not None:
        mean = wl.open.mean_rate(horizon)
        return mean, wl.open.peak_rate(horizon), "open loop"
    if wl.trace is not None:
        n = sum(1 for t, _, _ in wl.trace.rows if t < horizon)
        return n / horizon, n / horizon, "trace"
    assert wl.closed is not None
    demand = sum(p * d for p, d in zip(_class_probs(scenario), _residence(scenario), strict=True))
    rate = wl.closed.users / (wl.closed.think_time.mean + demand)
    return rate, rate, "closed loop, upper bound N/(Z+D)"


def _class_probs(scenario: Scenario) -> list[float]:
    weights = [c.weight for c in scenario.workload.classes]
    total = sum(weights)
    return [w / total for w in weights]


def _residence(scenario: Scenario) -> list[float]:
    """Uncontended time a worker holds a request of each class (s)."""
    hop = scenario.network.app_db.mean
    return [
        c.cpu.mean + sum(q.time.mean + 2 * hop for q in c.queries)
        for c in scenario.workload.classes
    ]


def offered_load(scenario: Scenario, use_peak: bool = False) -> list[ResourceLoad]:
    mean, peak, _ = arrival_rate(scenario)
    lam = peak if use_peak else mean
    probs = _class_probs(scenario)
    cpu = sum(p * c.cpu.mean for p, c in zip(probs, scenario.workload.classes, strict=True))
    hold = sum(p * r for p, r in zip(probs, _residence(scenario), strict=True))
    nodes = scenario.app.resolved_nodes()
    total_weight = sum(n.weight for n in nodes)
    out: list[ResourceLoad] = []
    host_work: dict[str, float] = {}
    for n in nodes:
        lam_i = lam * n.weight / total_weight
        out.append(
            ResourceLoad(
                f"app {n.name} cpu",
                lam_i * cpu / n.cores,
                f"{lam_i:.4g}/s × {cpu:.4g} s / {n.cores:g} cores",
            )
        )
        out.append(
            ResourceLoad(
                f"app {n.name} workers",
                lam_i * hold / n.workers,
                f"{lam_i:.4g}/s × {hold:.4g} s / {n.workers} workers",
            )
        )
        if n.host is not None:
            host_work[n.host] = host_work.get(n.host, 0.0) + lam_i * cpu
    for h in scenario.hosts:
        if h.name in host_work:
            out.append(
                ResourceLoad(
                    f"host {h.name} cpu",
                    host_work[h.name] / h.cores,
                    f"{host_work[h.name]:.4g} core-s/s / {h.cores:g} cores",
                )
            )
    return out


def bottleneck(loads: list[ResourceLoad]) -> ResourceLoad:
    return max(loads, key=lambda r: r.utilisation)
