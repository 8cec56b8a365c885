"""Replay a scenario on the user's stack (``lbsim replay/calibrate --target``).

The same replay as on the built-in stack (:mod:`lbsim.validation.replay`):
the scenario's own arrival trace (same seed: same times, classes, clients)
sent open loop — or its closed-loop users — with each request the target's
HTTP request for its class (:func:`lbsim.target.requests.target_plan`); the
containers' CPU from cgroups and, on Galera, every node's status counters
over the measured window; the results under the keys of ``lbsim run``.

What the user's application cannot say is left out rather than guessed: it
sends no server-side timings, so the results have no per-node request counts
or worker occupancy (the balancer picks the node). The machine's speed
during the replay is the app containers' CPU per request of each class over
the calibration's (:func:`lbsim.target.costs.app_speed`), stored as
``meta.unit_seconds`` in units of the calibration's speed. It mixes the
machine's speed with the requests the replay drew (an application's requests
of one class differ: a post with 40 comments costs 5× one with 8), so it is
applied to the model but does not invalidate a phase (``speed_source``).
The machine's own speed comes from the speed probe
(:mod:`lbsim.validation.speedprobe`): ``meta.machine_speed`` and
``meta.unit_moved`` are recorded beside the background (which alone judges
the phase): they tell a slower machine from heavier requests.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from typing import Any

from lbsim import __version__
from lbsim.scenario.schema import Scenario
from lbsim.target.costs import app_speed
from lbsim.target.requests import TargetClosedLoopPlan, target_plan
from lbsim.target.schema import TargetSpec
from lbsim.validation.calibration import Calibration
from lbsim.validation.loadgen import send_closed_loop, send_open_loop
from lbsim.validation.measured import loadgen_verdict, summarise
from lbsim.validation.replay import MAX_USERS, ReplayRun, Window, bounded
from lbsim.validation.speedprobe import SpeedProbe, speed_of


def _speed(
    cal: Calibration | None,
    scenario: Scenario,
    records: list[Any],
    cpu: dict[str, float],
    app: list[str],
) -> float:
    """The app's CPU per request over the window against the calibration's
    (nan without a calibration or a completed request)."""
    if cal is None:
        return math.nan
    warm, horizon = scenario.warmup, scenario.horizon
    done = Counter(
        r.cls for r in records if r.status == 200 and warm <= r.sent + r.latency < horizon
    )
    used = sum(cpu.get(n, math.nan) for n in app)
    return app_speed(cal, done, used)


def replay_target(
    scenario: Scenario,
    stack: Any,
    target: TargetSpec,
    cal: Calibration | None = None,
    replication: int = 0,
    max_requests: int = 200_000,
    probe: SpeedProbe | None = None,
) -> Any:
    """Send ``scenario``'s trace (replication ``replication``) to the user's
    ``stack`` (a :class:`lbsim.target.containers.TargetHandle`) with the
    target's requests; at most ``max_requests`` requests. ``cal``: the
    calibration the machine's speed is measured against; ``probe``: the speed
    probe running since the calibration (the machine's own speed and its drift
    within the window, against ``cal.probe_seconds``)."""
    closed = scenario.workload.closed
    if closed is not None and closed.users > MAX_USERS:
        raise ValueError(
            f"workload.closed.users: {closed.users} users would hold {closed.users} "
            f"connections at once; the replay runs at most {MAX_USERS}"
        )
    timeout = scenario.workload.timeout or 3600.0
    galera = target.database is not None and target.database.engine == "galera"
    window = Window(stack, galera)
    hooks = [(scenario.warmup, window.open), (scenario.horizon, window.close)]
    unique = f"{int(time.time())}"
    started = time.time()
    if closed is not None:
        users = TargetClosedLoopPlan(scenario, target, replication, unique)
        records, stats = send_closed_loop(stack.url, users, timeout, max_requests, at=hooks)
    else:
        plan = bounded(target_plan(scenario, target, replication, unique), max_requests)
        records, stats = send_open_loop(stack.url, plan, timeout, at=hooks)
    window.finish()
    cpu = window.cpu_seconds()
    results = summarise(scenario, records, cpu, window.galera_block())
    speed = _speed(cal, scenario, records, cpu, list(stack.app_nodes))
    machine, moved = math.nan, math.nan
    if probe is not None and cal is not None and cal.probe_seconds > 0:
        machine, moved = speed_of(probe.between(window.t_start, window.t_end), cal.probe_seconds)
    results["replications"] = 1
    results["meta"] = {
        "source": "replay",
        "target": target.target,
        "version": __version__,
        "seed": scenario.seed,
        "replication": replication,
        "started": started,
        "wall_time": stats.wall,
        "url": stack.url,
        # the app's CPU per request over the calibration's (1: as calibrated)
        "unit_seconds": speed,
        # which mixes the machine's speed with the requests drawn (a heavier post,
        # a longer search): applied to the model, never a reason to repeat the phase
        "speed_source": "app_cpu",
        # the machine's own speed (the speed probe's cost over the calibration's) and
        # its drift within the window (last quarter over first); NaN: not probed
        "machine_speed": machine,
        "unit_moved": moved,
        "loadgen": loadgen_verdict(stats),
        "collector_errors": window.errors,
        "faults": [],
        "fault_problems": [],
        "cpu_seconds": cpu,
        "machine_cores": window.machine_cores(),
        # how long each container's threads waited for a core, per request answered
        "runqueue": window.waiting_for_a_core(results["requests"]["completed"]),
        "window": {"start": window.t_start, "end": window.t_end, "collected": window.t_collected},
    }
    results["scenario"] = scenario.model_dump(mode="json")
    return ReplayRun(scenario, records, results)
