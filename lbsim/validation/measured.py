"""A replay's measurements under the same keys as ``lbsim run`` (DESIGN.md contract).

The simulation counts requests by arrival cohort after the warm-up and
throughput by completions inside the measured window; the replay does the
same with the scheduled send times and the answers' arrival times, so the
two results compare key by key (:mod:`lbsim.validation.errors`).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from lbsim.model.observer import BASE_REASONS
from lbsim.report import atomic
from lbsim.scenario.database import Galera, MySQL, NoDatabase
from lbsim.scenario.schema import Scenario
from lbsim.validation.loadgen import (
    CONNECT_ERROR,
    NOT_SENT,
    TIMEOUT,
    UNEXPECTED_200,
    LoadgenStats,
    Record,
)
from lbsim.validation.sender import SendPriority

#: the run is not a measurement of the stack when sends lag their schedule by more
LATENESS_P99_LIMIT = 0.010  # s
#: ... or the generator used more than this share of one core
LOADGEN_CPU_LIMIT = 0.5


def failure_reason(record: Record) -> str:
    """The model's name (``requests.failed.<reason>``) for a failed answer."""
    if record.status == TIMEOUT:
        return "timeout"
    if record.status == CONNECT_ERROR:
        return "connect_error"
    if record.status == UNEXPECTED_200:  # a target request whose class expects another status
        return "http_200"
    if record.db_error:
        return f"db_{record.db_error}"
    return f"http_{record.status}"


def _latency(values: Sequence[float]) -> dict[str, float]:
    if not values:
        nan = math.nan
        return {"mean": nan, "p50": nan, "p95": nan, "p99": nan, "max": nan}
    a = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {
        "mean": float(a.mean()),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "max": float(a.max()),
    }


def _finish(r: Record) -> float:
    return r.sent + r.latency


def unit_seconds(records: Iterable[Record]) -> float:
    """PHP CPU per work unit while these requests ran (s): the app's
    getrusage time of its work loop (``X-Lbsim-Work``) over the units asked
    for. NaN when no answer carries both."""
    work = units = 0.0
    for r in records:
        if r.status == 200 and r.units > 0 and math.isfinite(r.work):
            work += r.work
            units += r.units
    return work / units if units else math.nan


def unit_cost_moved(records: Iterable[Record]) -> float:
    """How far the PHP CPU per work unit moved over a run: that of the last quarter
    of its answered requests (by send time) over that of the first, less 1; NaN
    with fewer than 8 such requests."""
    done = sorted(
        (r for r in records if r.status == 200 and r.units > 0 and math.isfinite(r.work)),
        key=lambda r: r.sent,
    )
    if len(done) < 8:
        return math.nan
    q = len(done) // 4
    first, last = unit_seconds(done[:q]), unit_seconds(done[-q:])
    if not (math.isfinite(first) and math.isfinite(last) and first > 0):
        return math.nan
    return last / first - 1.0


def loadgen_verdict(stats: LoadgenStats) -> dict[str, Any]:
    """Lateness and own CPU of the generator, and whether the run is valid."""
    late = np.asarray(stats.lateness or [0.0], dtype=float)
    cpu_share = stats.cpu / stats.wall if stats.wall > 0 else 0.0
    p99 = float(np.percentile(late, 99))
    problems = []
    if stats.not_sent:
        problems.append(f"{stats.not_sent} requests not sent (in-flight limit reached)")
    if stats.stopped_early:
        problems.append(stats.stopped_early)
    if p99 > LATENESS_P99_LIMIT:
        problems.append(
            f"sends lagged their schedule (p99 lateness {p99 * 1e3:.1f} ms > "
            f"{LATENESS_P99_LIMIT * 1e3:.0f} ms; the sender at "
            f"{SendPriority(stats.nice, stats.realtime)})"
        )
    if cpu_share > LOADGEN_CPU_LIMIT:
        problems.append(
            f"the load generator used {cpu_share:.0%} of a core (> {LOADGEN_CPU_LIMIT:.0%})"
        )
    return {
        "valid": not problems,
        "problems": problems,
        "lateness": {
            "mean": float(late.mean()),
            "p99": p99,
            "max": float(late.max()),
        },
        "cpu_seconds": stats.cpu,
        "cpu_share": cpu_share,
        "max_in_flight": stats.max_in_flight,
        "not_sent": stats.not_sent,
        "nice": stats.nice,
        "realtime": stats.realtime,
    }


def summarise(
    scenario: Scenario,
    records: Sequence[Record],
    cpu_seconds: Mapping[str, float] | None = None,
    db_counters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The contract keys of ``lbsim run`` from one replay.

    ``cpu_seconds``: CPU each container used during the measured window (by
    service name); ``db_counters``: the ``galera`` block measured from the
    database's status counters (:func:`lbsim.validation.collectors`).
    """
    warm, horizon = scenario.warmup, scenario.horizon
    duration = scenario.duration
    cohort = [r for r in records if warm <= r.scheduled < horizon and r.status != NOT_SENT]
    ok = [r for r in cohort if r.status == 200]
    failed: Counter[str] = Counter(dict.fromkeys(BASE_REASONS, 0))
    for r in cohort:
        if r.status != 200:
            failed[failure_reason(r)] += 1
    in_window = [r for r in records if r.status == 200 and warm <= _finish(r) < horizon]
    names = scenario.workload.class_names
    out: dict[str, Any] = {
        "requests": {
            "arrived": len(cohort),
            "completed": len(ok),
            "in_flight": 0,
            "failed": {**dict(failed), "total": sum(failed.values())},
        },
        "throughput": len(in_window) / duration,
        "latency": _latency([r.latency for r in ok]),
        "classes": {},
    }
    for name in names:
        mine = [r for r in ok if r.cls == name]
        out["classes"][name] = {
            "completed": len(mine),
            "throughput": sum(1 for r in in_window if r.cls == name) / duration,
            "latency": _latency([r.latency for r in mine]),
        }
    app: dict[str, Any] = {}
    util_app: dict[str, Any] = {}
    for node in scenario.app.resolved_nodes():
        served = [r for r in cohort if r.node == node.name]
        busy = sum(r.wall for r in served if math.isfinite(r.wall))
        util_app[node.name] = {"workers": busy / duration / node.workers}
        if cpu_seconds is not None and node.name in cpu_seconds:
            util_app[node.name]["cpu"] = cpu_seconds[node.name] / duration / node.cores
        app[node.name] = {
            "served": len(served),
            "refused": sum(1 for r in served if r.status == 503),
        }
    out["utilisation"] = {"app": util_app}
    db_util = {
        name: {"cpu": cpu_seconds[name] / duration / cores}
        for name, cores in database_cores(scenario).items()
        if cpu_seconds is not None and name in cpu_seconds
    }
    if db_util:
        out["utilisation"]["db"] = db_util
    out["app"] = app
    if db_counters:
        out["galera"] = dict(db_counters)
    return out


def database_cores(scenario: Scenario) -> dict[str, float]:
    db = scenario.database
    if isinstance(db, MySQL):
        return {"db1": db.cores}
    if isinstance(db, Galera):
        return {n.name: n.cores for n in db.resolved_nodes()}
    assert isinstance(db, NoDatabase)
    return {}


def write_requests_csv(records: Iterable[Record], path: Path) -> Path:
    """The raw per-request measurements, one row per planned request."""
    names = [f.name for f in fields(Record)]
    with atomic.replacing(path, newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=names)
        w.writeheader()
        for r in records:
            w.writerow(asdict(r))
    return path


def read_requests_csv(path: Path) -> list[Record]:
    types = {f.name: f.type for f in fields(Record)}
    out = []
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            kw: dict[str, Any] = {}
            for k, v in row.items():
                t = types[k]
                kw[k] = v if t == "str" else int(v) if t == "int" else float(v)
            out.append(Record(**kw))
    return out
