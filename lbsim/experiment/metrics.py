"""Metrics of one replication by name: the dotted result keys plus a few derived ones.

Derived metrics (computed per replication, so they get intervals like any other):

- ``failed``: ``requests.failed.total / requests.arrived`` (fraction of the
  requests that arrived after the warm-up and failed, any reason);
- ``cpu``, ``workers``: the busiest app node's CPU / worker utilisation (0..1);
- ``db_cpu``: the busiest database node's CPU utilisation (when there is one).

Short names: ``mean``, ``p50``, ``p95``, ``p99``, ``max`` are the latency of
all requests (``latency.p95``...), in seconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from lbsim.experiment.errors import ExperimentInputError
from lbsim.scenario.errors import did_you_mean
from lbsim.stats.replications import flatten

ALIASES = {q: f"latency.{q}" for q in ("mean", "p50", "p95", "p99", "max")}
DERIVED = ("failed", "cpu", "workers", "db_cpu")

#: units for labels: a metric's unit by its last part
_UNITS = {
    "mean": "s",
    "p50": "s",
    "p95": "s",
    "p99": "s",
    "max": "s",
    "throughput": "requests/s",
    "failed": "fraction",
    "cpu": "fraction",
    "workers": "fraction",
    "db_cpu": "fraction",
}


class MetricError(ExperimentInputError):
    """An unknown metric name; the message names it and suggests close ones."""


def resolve(name: str) -> str:
    """The dotted key of a metric name (aliases expanded)."""
    return ALIASES.get(name.strip(), name.strip())


def flat_metrics(run: Mapping[str, Any]) -> dict[str, float]:
    """Every numeric metric of one replication, derived ones included."""
    flat = flatten({k: v for k, v in run.items() if k != "run"})
    arrived = flat.get("requests.arrived", math.nan)
    failed = flat.get("requests.failed.total", math.nan)
    flat["failed"] = failed / arrived if arrived > 0 else 0.0
    for name, prefix, suffix in (
        ("cpu", "utilisation.app.", ".cpu"),
        ("workers", "utilisation.app.", ".workers"),
        ("db_cpu", "utilisation.db.", ".cpu"),
    ):
        values = [v for k, v in flat.items() if k.startswith(prefix) and k.endswith(suffix)]
        if values:
            flat[name] = max(values)
    return flat


def metric_value(run: Mapping[str, Any], name: str) -> float:
    """One metric of one replication (NaN when that replication lacks it)."""
    return flat_metrics(run).get(resolve(name), math.nan)


def check_metric(name: str, known: Iterable[str]) -> str:
    """``name`` resolved, or :class:`MetricError` if no replication has it."""
    key = resolve(name)
    keys = set(known)
    if key in keys:
        return key
    choices = sorted(keys | set(ALIASES))
    hint = did_you_mean(name, choices)
    raise MetricError(
        f"unknown metric {name!r}{hint} (short names: "
        f"{', '.join([*ALIASES, *DERIVED])}; or any result key such as latency.p95, "
        "classes.<class>.latency.p95, utilisation.app.<node>.cpu)"
    )


def unit(name: str) -> str:
    key = resolve(name)
    last = key.rsplit(".", 1)[-1]
    if key.startswith("utilisation."):
        return "fraction"
    if ".latency." in f".{key}" or key.startswith("latency."):
        return "s"
    return _UNITS.get(last, "")


def label(name: str) -> str:
    """Axis label: the metric with its unit, e.g. ``latency.p95 (s)``."""
    u = unit(name)
    return f"{resolve(name)} ({u})" if u else resolve(name)


def known_metrics(scenario: Any) -> set[str]:
    """The metric names a replication of ``scenario`` produces, from a one-second dry run."""
    from lbsim.experiment.run import run_replication

    short = scenario.model_copy(update={"duration": min(scenario.duration, 1.0), "warmup": 0.0})
    run, _ = run_replication(short, 0)
    return set(flat_metrics(run)) | set(ALIASES)


def validate(names: Iterable[str], scenario: Any) -> list[str]:
    """Resolve metric names, checking them against a dry run of ``scenario`` (if any given)."""
    names = list(names)
    if not names:
        return []
    known = known_metrics(scenario)
    return [check_metric(n, known) for n in names]
