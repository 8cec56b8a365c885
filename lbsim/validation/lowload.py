"""The low-load phases of a calibration, with the machine's background measured in each.

* **idle** (:func:`measure_idle_phase`): nothing is sent for a few seconds;
  the stack's containers' CPU is their housekeeping (database threads,
  php-fpm masters: ``Calibration.idle_cores``), and the CPU used outside
  the stack and this process is the machine's background — another
  program's work, never taken for the stack's.
* **classes** (:func:`measure_class_phase`): each class's requests, one at a
  time, between two idle gaps. The gaps measure the background before and
  after the class (its level: their mean; its drift: their difference); the
  requests' window gives each container group's CPU less its housekeeping,
  this process's CPU, and the outside CPU above the background — what the
  requests caused outside the containers (docker-proxy, the network stack:
  ``ClassCost.induced_cpu``).

A class's costs are expressed at the calibration's speed: the PHP CPU per
work unit measured in the class's own requests against the one the cost
probe measured (``MachineCosts.unit_seconds``) scales its CPU demands
(:meth:`ClassCost.at_unit`), as a replay's speed factor scales its
prediction; the two are measured over the same requests, so a speed that
moved within the phase moved both alike. A phase whose background moved more
than it can absorb is measured again (up to ``repeats`` more times, after the
machine held still) and otherwise kept with its problems, which the report
shows (:mod:`lbsim.validation.background`); its speed is shown, not judged.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

from lbsim.scenario.schema import Scenario
from lbsim.validation.background import (
    SETTLE_MOST,
    CpuReading,
    Meter,
    PhaseBackground,
    check_phase,
    outside_cores,
    phase_background,
    settle,
)
from lbsim.validation.calibration import ClassCost, ContainerGroups, _check, _mean
from lbsim.validation.loadgen import Record, send_sequential
from lbsim.validation.measured import unit_seconds
from lbsim.validation.workplan import MachineCosts, PlannedRequest, work_plan

Snapshot = Callable[[], Mapping[str, float]]
Sleep = Callable[[float], None]


def measure_idle_phase(
    meter: Meter, seconds: float = 6.0, repeats: int = 2, sleep: Sleep = time.sleep
) -> PhaseBackground:
    """The idle stack: ``.stack`` its containers' cores, ``.cores`` the background."""
    bg = PhaseBackground("idle", 0.0, math.nan, math.nan, math.nan)
    steps = max(2, round(seconds / 0.5))
    for attempt in range(1, repeats + 2):
        samples = [meter.read()]
        for _ in range(steps):  # nothing else runs here: read between sleeps
            sleep(seconds / steps)
            samples.append(meter.read())
        bg = phase_background("idle", samples)
        bg.attempt = attempt
        if not check_phase(bg):
            break
    return bg


def _group(a: Mapping[str, float], b: Mapping[str, float], names: Sequence[str]) -> float:
    return sum(b[n] - a[n] for n in names if n in a and n in b)


def class_cost(
    name: str,
    items: Sequence[PlannedRequest],
    records: Sequence[Record],
    snaps: Sequence[Mapping[str, float]],
    reads: Sequence[CpuReading],
    groups: ContainerGroups,
    attempt: int = 1,
) -> tuple[ClassCost, PhaseBackground]:
    """A class's costs from four instants: before the first gap (0), before
    the requests (1), after them (2), after the second gap (3) — the
    containers' CPU ``snaps`` and the machine's ``reads`` at each."""
    recs = records
    n = len(items)
    gap = (reads[1].t - reads[0].t) + (reads[3].t - reads[2].t)
    span = reads[2].t - reads[1].t

    def idle_rate(names: Sequence[str]) -> float:
        """The group's housekeeping cores, from the two gaps."""
        if gap <= 0:
            return 0.0
        return (_group(snaps[0], snaps[1], names) + _group(snaps[2], snaps[3], names)) / gap

    before, after = outside_cores(reads[0], reads[1]), outside_cores(reads[2], reads[3])
    background = _mean([before, after])
    app = max(_group(snaps[1], snaps[2], groups.app) - idle_rate(groups.app) * span, 0.0)
    dbs = max(_group(snaps[1], snaps[2], groups.db) - idle_rate(groups.db) * span, 0.0)
    # per node unclamped: a node's noise around 0 is data for a fit over the nodes
    per_db = {
        node: (_group(snaps[1], snaps[2], [node]) - idle_rate([node]) * span) / n
        for node in groups.db
    }
    others = max(_group(snaps[1], snaps[2], groups.other) - idle_rate(groups.other) * span, 0.0)
    own = reads[2].own - reads[1].own
    induced = max(outside_cores(reads[1], reads[2]) - background, 0.0) * span
    bg = PhaseBackground(
        f"class {name}",
        reads[3].t - reads[0].t,
        background,
        before,
        after,
        induced / max(span, 1e-9),
        idle_rate([*groups.app, *groups.db, *groups.other]),
        attempt=attempt,
    )
    cost = ClassCost(
        name=name,
        n=n,
        planned_cpu=_mean(i.cpu for i in items),
        app_cpu=app / n,
        planned_db=_mean(sum(q.demand for q in i.queries) for i in items),
        db_cpu=dbs / n,
        other_cpu=(others + own + induced) / n,
        latency=_mean(r.latency for r in recs),
        wall=_mean(r.wall for r in recs),
        db_wall=_mean(r.db for r in recs),
        writes=_mean(sum(1 for q in i.queries if q.kind == "w") for i in items),
        unit=_finite_or_zero(unit_seconds(recs)),
        induced_cpu=induced / n,
        db_node_cpu=per_db,
    )
    return cost, bg


def _finite_or_zero(x: float) -> float:
    return x if math.isfinite(x) else 0.0


def measure_class_phase(
    url: str,
    name: str,
    items: Sequence[PlannedRequest],
    cpu: Snapshot,
    meter: Meter,
    groups: ContainerGroups,
    reference_unit: float,
    gap: float = 2.5,
    repeats: int = 2,
    sleep: Sleep = time.sleep,
    settle_seconds: float = SETTLE_MOST,
) -> tuple[ClassCost, PhaseBackground]:
    """``items`` one at a time between two idle gaps of ``gap`` seconds; measured
    again while the background moved or the speed was off (at most ``repeats``
    more times, each after waiting up to ``settle_seconds`` for the machine to
    hold still: :func:`lbsim.validation.background.settle`)."""
    out: tuple[ClassCost, PhaseBackground] | None = None
    for attempt in range(1, repeats + 2):
        if attempt > 1 and settle_seconds > 0:  # not straight back into the burst
            settle(meter, settle_seconds, sleep=sleep)
        snaps, reads = [dict(cpu())], [meter.read()]
        sleep(gap)
        snaps.append(dict(cpu()))
        reads.append(meter.read())
        recs = send_sequential(url, items)
        snaps.append(dict(cpu()))
        reads.append(meter.read())
        sleep(gap)
        snaps.append(dict(cpu()))
        reads.append(meter.read())
        _check(recs, f"class {name!r}")
        cost, bg = class_cost(name, items, recs, snaps, reads, groups, attempt)
        speed = cost.unit / reference_unit if cost.unit > 0 and reference_unit > 0 else 1.0
        # the machine's speed while the class ran is measured in its own requests
        # and taken out of its costs (ClassCost.at_unit), over the same requests
        # whose CPU was counted, so a speed that moved within the phase moved both
        # alike: the phase is judged on its background, its speed is recorded
        out = cost.at_unit(reference_unit), bg
        if not check_phase(bg, speed, judge_speed=False):
            break
    assert out is not None
    return out


#: a class's requests are measured over at least this long (s), more of them
#: than ``per_class`` when they are short: the database containers'
#: housekeeping (InnoDB and Galera threads) moves by a few hundredths of a core
#: from second to second, and over the 0.55 s of 25 page requests it moved a
#: page's database CPU between 0 and 5.8 ms (2.2 ms planned) from one run to
#: the next
MIN_CLASS_SECONDS = 4.0
#: ... but with no more than this many requests of a class
MAX_CLASS_REQUESTS = 400
#: how far into the trace the requests are looked for once every class has
#: ``per_class`` (a rare class may have few)
_SCAN = 20_000


def class_items(
    url: str,
    scenario: Scenario,
    costs: MachineCosts,
    rows: int,
    per_class: int = 40,
    max_seconds: float = 60.0,
    min_seconds: float = MIN_CLASS_SECONDS,
) -> dict[str, list[PlannedRequest]]:
    """Each class's first requests of the scenario's trace: ``per_class`` of
    them, more for a class whose requests are short (enough to last
    ``min_seconds``, at most :data:`MAX_CLASS_REQUESTS`), fewer for one whose
    requests are long (they would exceed ``max_seconds``; never fewer than 5).
    Two of each are sent to time them."""
    most = max(per_class, MAX_CLASS_REQUESTS)
    by_class: dict[str, list[PlannedRequest]] = {c.name: [] for c in scenario.workload.classes}
    for seen, item in enumerate(work_plan(scenario, costs, rows)):
        bucket = by_class[item.cls_name]
        if len(bucket) < most:
            bucket.append(item)
        if all(len(b) >= per_class for b in by_class.values()) and (
            seen >= _SCAN or all(len(b) >= most for b in by_class.values())
        ):
            break
    out = {}
    for name, items in by_class.items():
        if not items:
            continue
        probe = send_sequential(url, items[:2])
        _check(probe, f"class {name!r}")
        each = max(_mean(r.latency for r in probe), 1e-3)
        wanted = max(per_class, math.ceil(min_seconds / each))
        out[name] = items[: max(5, min(len(items), wanted, int(max_seconds / each)))]
    return out


def measure_classes_phase(
    url: str,
    scenario: Scenario,
    costs: MachineCosts,
    rows: int,
    cpu: Snapshot,
    meter: Meter,
    groups: ContainerGroups,
    per_class: int = 40,
    repeats: int = 2,
    gap: float = 2.5,
    min_seconds: float = MIN_CLASS_SECONDS,
    settle_seconds: float = SETTLE_MOST,
) -> tuple[list[ClassCost], list[PhaseBackground]]:
    """Every class (:func:`measure_class_phase`), at the speed of ``costs``."""
    classes, phases = [], []
    chosen = class_items(url, scenario, costs, rows, per_class, min_seconds=min_seconds)
    for name, items in chosen.items():
        cost, bg = measure_class_phase(
            url, name, items, cpu, meter, groups, costs.unit_seconds, gap, repeats,
            settle_seconds=settle_seconds,
        )  # fmt: skip
        classes.append(cost)
        phases.append(bg)
    return classes, phases
