"""CFS bandwidth control in the model (``cpu_period``): a container's threads run
at full speed until its quota per period is spent, then wait for the next period.

Checked against hand-computed schedules, against a straightforward reference
(one job at a time, period by period) on random job sequences, against
processor sharing in the mean (same CPU-seconds per second under saturation),
and in whole scenarios (app nodes and Galera nodes with ``cpu_period``).
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import simpy
import yaml
from hypothesis import given
from hypothesis import strategies as st

import lbsim
from lbsim.model.cpu import BandwidthCpu, Cpu, Host
from lbsim.model.engine import later
from lbsim.model.engine import run as run_calendar
from lbsim.validation.compose import generate_stack
from lbsim.validation.policies import ReplayUnsupported
from tests.support import scenario

pytestmark = pytest.mark.unit

#: 0.1 cores in periods of 10 ms: 1 ms of CPU per period (the stack's slow DB node)
CORES, PERIOD = 0.1, 0.01


def _finishes(cpu_of: object, jobs: list[tuple[float, float]]) -> list[float]:
    """Submit ``(time, work)`` jobs; their finish times, in submission order."""
    env = simpy.Environment()
    cpu = cpu_of(env)  # type: ignore[operator]
    done: dict[int, float] = {}
    for i, (t, work) in enumerate(jobs):
        later(env, t, lambda a: cpu.submit(a[1], lambda k: done.__setitem__(k, env.now), a[0]),
              (i, work))  # fmt: skip
    run_calendar(env)
    return [done[i] for i in range(len(jobs))]


def _bandwidth(env: simpy.Environment) -> BandwidthCpu:
    return BandwidthCpu(env, "db3", CORES, PERIOD)


def test_a_short_job_runs_at_full_speed_a_long_one_waits_for_the_next_periods() -> None:
    # 0.4 ms fits in the 1 ms quota: done at 0.4 ms (processor sharing: 4 ms)
    assert _finishes(_bandwidth, [(0.0, 0.0004)]) == [pytest.approx(0.0004)]
    # 2.5 ms: 1 ms in [0, 1 ms], 1 ms in [10, 11 ms], 0.5 ms from 20 ms
    assert _finishes(_bandwidth, [(0.0, 0.0025)]) == [pytest.approx(0.0205)]


def test_two_jobs_spend_the_quota_together_on_two_cores() -> None:
    # both at a full core each: the 1 ms quota is gone at 0.5 ms, 0.5 ms each left
    got = _finishes(_bandwidth, [(0.0, 0.001), (0.0, 0.001)])
    assert got == [pytest.approx(0.0105), pytest.approx(0.0105)]


def test_a_new_period_after_idle_time_has_its_whole_quota() -> None:
    # 0.8 ms used in the first period; the job at 15.5 ms is in the second: full quota
    got = _finishes(_bandwidth, [(0.0, 0.0008), (0.0155, 0.0009)])
    assert got == [pytest.approx(0.0008), pytest.approx(0.0164)]
    # the same job inside the first period has 0.2 ms left: it waits for the second
    got = _finishes(_bandwidth, [(0.0, 0.0008), (0.005, 0.0009)])
    assert got == [pytest.approx(0.0008), pytest.approx(0.0107)]


def _reference(jobs: list[tuple[float, float]], cores: float, period: float) -> list[float]:
    """One job at a time (each submitted after the previous finished), period by period."""
    quota = cores * period
    out = []
    used, index = 0.0, -1
    for t, work in jobs:
        now, left = t, work
        while left > 1e-15:
            k = math.floor(now / period + 1e-12)
            if k != index:
                index, used = k, 0.0
            end = (k + 1) * period
            run = min(left, quota - used, end - now)
            if run <= 1e-15:  # throttled: the next period
                now = end
                continue
            now += run
            used += run
            left -= run
        out.append(now)
    return out


@given(st.lists(st.tuples(st.floats(0.0, 0.03), st.floats(1e-5, 0.004)), min_size=1, max_size=25))
def test_one_job_at_a_time_matches_the_period_by_period_reference(
    gaps_and_works: list[tuple[float, float]],
) -> None:
    # each job submitted a gap after the reference says the previous finished
    jobs: list[tuple[float, float]] = []
    t = 0.0
    for gap, work in gaps_and_works:
        t += gap
        jobs.append((t, work))
        t = _reference(jobs, CORES, PERIOD)[-1]
    assert _finishes(_bandwidth, jobs) == pytest.approx(_reference(jobs, CORES, PERIOD), abs=1e-9)


def test_saturated_it_delivers_the_same_cpu_as_processor_sharing() -> None:
    rng = random.Random(3)
    jobs = [(rng.uniform(0, 5.0), rng.expovariate(1 / 0.002)) for _ in range(400)]
    work = sum(w for _, w in jobs)  # 0.8 s of CPU offered in 5 s at 0.1 cores: saturated
    bw = _finishes(_bandwidth, jobs)
    ps = _finishes(lambda env: Cpu(env, "db3", CORES), jobs)
    # the last job leaves when all the work is done at 0.1 cores, both ways (within a period)
    assert max(bw) == pytest.approx(max(ps), abs=PERIOD)
    assert max(ps) == pytest.approx(min(t for t, _ in jobs) + work / CORES, rel=0.05)


def test_throttled_periods_are_counted_and_utilisation_is_of_the_quota() -> None:
    env = simpy.Environment()
    cpu = BandwidthCpu(env, "db3", CORES, PERIOD)
    done: list[float] = []
    cpu.submit(0.0035, lambda _: done.append(env.now), None)  # 3.5 quotas: throttled 3 times
    run_calendar(env)
    assert cpu.throttled == 3 and done == [pytest.approx(0.0305)]
    assert cpu.utilisation(done[0]) == pytest.approx(0.0035 / 0.0305 / CORES)


def test_on_a_shared_host_it_takes_its_share_while_its_quota_lasts() -> None:
    env = simpy.Environment()
    host = Host("h", 1.0)
    other = Cpu(env, "app", 1.0, host)
    bw = BandwidthCpu(env, "db", 0.5, 0.1, host)  # 50 ms of CPU per 100 ms
    done: dict[str, float] = {}
    other.submit(1.0, lambda n: done.__setitem__(n, env.now), "app")
    bw.submit(0.06, lambda n: done.__setitem__(n, env.now), "db")
    run_calendar(env)
    # half the host each: the 50 ms quota lasts the whole first period (0.05 s
    # of work at half a core), the second period's quota the db's last 10 ms
    # (20 ms at half a core); the app gets the whole core from 0.12 s
    assert done["db"] == pytest.approx(0.12)
    assert done["app"] == pytest.approx(1.0 + 0.06)


def test_a_bad_period_is_refused() -> None:
    with pytest.raises(ValueError, match="period"):
        BandwidthCpu(simpy.Environment(), "x", 0.5, 0.0)


# -- in a scenario ----------------------------------------------------------------------


def _app(cpu_period: float | None) -> dict[str, object]:
    app: dict[str, object] = {"nodes": 1, "workers": 4, "cores": 0.5}
    if cpu_period is not None:
        app["cpu_period"] = cpu_period
    return {
        "name": "cfs",
        "seed": 4,
        "duration": 300,
        "warmup": 20,
        "workload": {"open": {"rate": 2.0}, "classes": [{"name": "page", "cpu": 0.05}]},
        "app": app,
    }


def test_an_app_node_under_cfs_answers_light_load_faster_than_processor_sharing() -> None:
    ps = lbsim.simulate(scenario(_app(None))).runs[0]
    cfs = lbsim.simulate(scenario(_app(0.1))).runs[0]
    # 50 ms of CPU at 20 % of 0.5 cores: mostly within a 50 ms quota at full speed
    # (about 50 ms), processor-shared at half speed (about 100 ms and more)
    assert cfs["latency"]["mean"] < 0.75 * ps["latency"]["mean"]
    assert cfs["latency"]["mean"] >= 0.05
    # the same work done: the node's CPU utilisation agrees
    u_ps, u_cfs = (r["utilisation"]["app"]["app1"]["cpu"] for r in (ps, cfs))
    assert u_cfs == pytest.approx(u_ps, rel=0.05)


def test_a_galera_node_takes_its_own_or_the_clusters_period() -> None:
    data = {
        "name": "g",
        "seed": 2,
        "duration": 60,
        "workload": {
            "open": {"rate": 20.0},
            "classes": [{"name": "w", "cpu": 0.002, "queries": [{"kind": "write", "time": 0.001}]}],
        },
        "app": {"nodes": 2, "workers": 4, "cores": 2},
        "database": {
            "engine": "galera",
            "cpu_period": 0.1,
            "nodes": [{"name": "db1"}, {"name": "db2"}, {"name": "db3", "cores": 0.1,
                                                          "cpu_period": 0.01}],
        },
    }  # fmt: skip
    sc = scenario(data)
    nodes = sc.database.resolved_nodes()  # type: ignore[union-attr]
    assert [n.cpu_period for n in nodes] == [0.1, 0.1, 0.01]
    result = lbsim.simulate(sc).runs[0]
    assert result["requests"]["completed"] > 1000


# -- the replayed stack runs the same CFS period --------------------------------------


def test_the_stack_gives_each_container_the_scenarios_cfs_period(tmp_path: Path) -> None:
    data = {
        "name": "cfs",
        "duration": 30,
        "workload": {"open": {"rate": 1.0}, "classes": [{"name": "p", "cpu": 0.01}]},
        "app": {"nodes": 2, "workers": 4, "cores": 0.5, "cpu_period": 0.1},
        "database": {"engine": "galera", "cores": 1.5,
                     "nodes": [{"name": "db1"}, {"name": "db2"},
                               {"name": "db3", "cores": 0.1, "cpu_period": 0.02}]},
    }  # fmt: skip
    compose = yaml.safe_load(generate_stack(scenario(data), tmp_path).files["docker-compose.yml"])
    svc = compose["services"]
    assert {k: svc["app1"].get(k) for k in ("cpus", "cpu_period", "cpu_quota")} == {
        "cpus": None, "cpu_period": 100_000, "cpu_quota": 50_000,
    }  # fmt: skip
    assert (svc["db3"]["cpu_period"], svc["db3"]["cpu_quota"]) == (20_000, 2_000)
    assert svc["db1"]["cpus"] == 1.5 and "cpu_period" not in svc["db1"]
    # a period the kernel does not take is refused, naming it
    data["app"] = {"nodes": 1, "cores": 0.5, "cpu_period": 2.0}  # type: ignore[index]
    with pytest.raises(ReplayUnsupported, match="cpu_period 2 s"):
        generate_stack(scenario(data), tmp_path)
