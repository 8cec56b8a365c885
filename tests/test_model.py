"""Behaviour of the model's components, each in a tiny deterministic run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

import lbsim
from lbsim.model.cpu import Cpu, Host, _water_fill
from lbsim.model.engine import later
from lbsim.model.engine import run as run_calendar
from lbsim.model.stack import Stack
from lbsim.model.streams import RandomStreams
from lbsim.model.workload import ClientPopulation, arrival_trace
from lbsim.scenario.schema import Clients
from tests.support import scenario

pytestmark = pytest.mark.unit


def base(**over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "name": "t",
        "seed": 5,
        "duration": 200,
        "workload": {"open": {"rate": 2.0}, "classes": [{"name": "job", "cpu": 0.1}]},
        "app": {"nodes": 2, "workers": 2, "cores": 2},
    }
    data.update(over)
    return data


def run(data: dict[str, object]) -> dict[str, object]:
    return lbsim.simulate(scenario(data)).runs[0]


# --------------------------------------------------------------------------- CPU


def test_processor_sharing_completion_times() -> None:
    env = simpy.Environment()
    cpu = Cpu(env, "c", 1.0)
    done: dict[str, float] = {}

    def submit(arg: tuple[str, float]) -> None:
        cpu.submit(arg[1], lambda name: done.__setitem__(name, env.now), arg[0])

    later(env, 0, submit, ("a", 1.0))
    later(env, 0, submit, ("b", 2.0))
    later(env, 0.5, submit, ("c", 0.1))
    run_calendar(env)
    # 0-0.5: a,b at 1/2; 0.5-0.8: three at 1/3 (c done); then a needs 0.65 at 1/2
    assert done["c"] == pytest.approx(0.8)
    assert done["a"] == pytest.approx(2.1)
    assert done["b"] == pytest.approx(3.1)


def test_fractional_cores_slow_a_single_job() -> None:
    env = simpy.Environment()
    cpu = Cpu(env, "c", 0.5)
    done: list[float] = []
    cpu.submit(1.0, lambda _: done.append(env.now), None)
    run_calendar(env)
    assert done == [pytest.approx(2.0)]


def test_cancelled_job_frees_its_share() -> None:
    env = simpy.Environment()
    cpu = Cpu(env, "c", 1.0)
    done: dict[str, float] = {}
    job = cpu.submit(10.0, lambda n: done.__setitem__(n, env.now), "long")
    cpu.submit(1.0, lambda n: done.__setitem__(n, env.now), "short")
    later(env, 1.0, lambda _: cpu.cancel(job))
    run_calendar(env)
    assert "long" not in done
    assert done["short"] == pytest.approx(1.5)  # half speed for 1 s, then full speed


def test_water_filling_gives_equal_shares_up_to_demand() -> None:
    assert _water_fill([3.0, 0.5], 2.0) == [1.5, 0.5]
    assert _water_fill([2.0, 2.0, 2.0], 3.0) == [1.0, 1.0, 1.0]
    assert sum(_water_fill([4.0, 1.0, 0.2], 2.0)) == pytest.approx(2.0)


def test_host_shares_cores_between_containers() -> None:
    env = simpy.Environment()
    host = Host("h", 1.0)
    a = Cpu(env, "a", 1.0, host)
    b = Cpu(env, "b", 1.0, host)
    done: dict[str, float] = {}
    a.submit(1.0, lambda n: done.__setitem__(n, env.now), "a")
    b.submit(1.0, lambda n: done.__setitem__(n, env.now), "b")
    run_calendar(env)
    assert done == {"a": pytest.approx(2.0), "b": pytest.approx(2.0)}
    assert host.busy.integral(env.now) == pytest.approx(2.0)


def test_scenario_hosts_cap_node_cpus() -> None:
    data = base(
        hosts=[{"name": "box", "cores": 1}],
        app={"nodes": 2, "workers": 4, "cores": 2, "host": "box"},
        workload={"open": {"rate": 4.0}, "classes": [{"name": "job", "cpu": 0.2}]},
    )
    out = run(data)
    host_util = out["utilisation"]["hosts"]["box"]["cpu"]
    assert host_util == pytest.approx(0.8, abs=0.05)  # 4/s × 0.2 s on one core
    node_cores = sum(v["cpu"] * 2 for v in out["utilisation"]["app"].values())
    assert node_cores == pytest.approx(host_util, rel=1e-6)


# --------------------------------------------------------------------------- failures


def test_client_timeout_fails_request_but_work_goes_on() -> None:
    data = base(
        workload={"open": {"rate": 1.0}, "timeout": 0.5, "classes": [{"name": "job", "cpu": 1.0}]}
    )
    out = run(data)
    assert out["requests"]["completed"] == 0
    assert (
        out["requests"]["failed"]["timeout"]
        == out["requests"]["arrived"] - out["requests"]["in_flight"]
    )
    assert sum(n["served"] for n in out["app"].values()) > 150  # servers still worked
    assert out["utilisation"]["app"]["app1"]["cpu"] > 0.2


def test_upstream_timeout_gives_504() -> None:
    data = base(
        balancer={"upstream_timeout": 0.5, "max_fails": 0},
        workload={"open": {"rate": 1.0}, "classes": [{"name": "job", "cpu": 1.0}]},
    )
    out = run(data)
    req = out["requests"]
    assert req["completed"] == 0
    assert req["failed"]["http_504"] == req["arrived"] - req["in_flight"]


def test_request_terminate_timeout_kills_worker_and_gives_502() -> None:
    data = base(
        app={"nodes": 1, "workers": 2, "cores": 2, "request_timeout": 0.5},
        balancer={"max_fails": 0},
        workload={
            "open": {"rate": 1.0},
            "classes": [{"name": "a", "cpu": 1.0, "weight": 1}, {"name": "b", "cpu": 0.1}],
        },
    )
    out = run(data)
    assert out["classes"]["a"]["completed"] == 0
    assert out["classes"]["b"]["completed"] > 0
    assert out["requests"]["failed"]["http_502"] == out["app"]["app1"]["killed"] > 50


def test_full_backlog_refuses_and_retries_on_another_node() -> None:
    data = base(
        balancer={"max_fails": 0},
        app={"nodes": [{"workers": 1, "backlog": 0}, {"workers": 50, "cores": 50}]},
        workload={"open": {"rate": 5.0}, "classes": [{"name": "job", "cpu": 1.0}]},
    )
    out = run(data)
    assert out["requests"]["failed"]["total"] == 0
    assert out["app"]["app1"]["refused"] > 100


def test_single_server_refusals_are_502_and_nginx_never_ejects_it() -> None:
    """nginx ignores max_fails for the only server of a group: every request is tried."""
    data = base(
        balancer={"max_fails": 1, "fail_timeout": 10},
        app={"nodes": 1, "workers": 1, "cores": 1, "backlog": 0},
        workload={"open": {"rate": 5.0}, "classes": [{"name": "job", "cpu": 1.0}]},
    )
    out = run(data)
    failed = out["requests"]["failed"]
    assert failed["http_503"] == 0
    assert failed["http_502"] == out["app"]["app1"]["refused"] > 0
    check_invariants_loose(out)


def test_haproxy_retries_a_refused_connection_then_503() -> None:
    data = base(
        balancer={"product": "haproxy", "retries": 2},
        app={"nodes": 1, "workers": 1, "cores": 1, "backlog": 0},
        workload={"open": {"rate": 5.0}, "classes": [{"name": "job", "cpu": 1.0}]},
    )
    out = run(data)
    failed = out["requests"]["failed"]
    assert failed["http_502"] == 0
    assert failed["http_503"] > 0
    # three connection attempts (1 + 2 retries, 1 s apart) per failed request,
    # and some requests got in on a retry
    assert out["app"]["app1"]["refused"] > 3 * failed["http_503"]
    check_invariants_loose(out)


def check_invariants_loose(out: dict[str, object]) -> None:
    req = out["requests"]
    assert isinstance(req, dict)
    assert req["arrived"] == req["completed"] + req["failed"]["total"] + req["in_flight"]


def test_haproxy_max_conns_queues_then_503_after_queue_timeout() -> None:
    data = base(
        balancer={"product": "haproxy", "queue_timeout": 2.0},
        app={"nodes": 1, "workers": 4, "cores": 4, "max_conns": 1},
        workload={"open": {"rate": 3.0}, "classes": [{"name": "job", "cpu": 1.0}]},
    )
    out = run(data)
    req = out["requests"]
    assert req["failed"]["http_503"] > 0
    assert req["completed"] == pytest.approx(200, abs=5)  # one at a time, 1 s each
    assert out["utilisation"]["app"]["app1"]["workers"] == pytest.approx(0.25, abs=0.01)
    assert out["queues"]["balancer"] > 1
    check_invariants_loose(out)


def test_outage_is_detected_and_traffic_moves_to_the_healthy_node() -> None:
    data = base(
        duration=300,
        balancer={"health_check": {"interval": 2, "fall": 3, "rise": 2}},
        app={
            "nodes": [{"outages": [{"start": 100, "duration": 100}]}, {}],
            "workers": 4,
            "cores": 4,
        },
    )
    out = run(data)
    failed = out["requests"]["failed"]
    assert failed["total"] <= 8  # at most those held by app1 at the crash
    assert failed["total"] == failed["http_502"]
    served = {k: v["served"] for k, v in out["app"].items()}
    # app1 is down a third of the time
    assert served["app1"] == pytest.approx(served["app2"] / 2, rel=0.15)


# --------------------------------------------------------------------------- workload


def test_every_run_is_deterministic_for_a_seed() -> None:
    a = lbsim.simulate(scenario(base())).runs[0]
    b = lbsim.simulate(scenario(base())).runs[0]
    c = lbsim.simulate(scenario(base(seed=6))).runs[0]
    a.pop("run"), b.pop("run"), c.pop("run")
    assert a == b
    assert a != c


def test_a_run_freezes_the_collector_only_when_nobody_else_has() -> None:
    import gc

    during: list[int] = []
    stack = Stack(scenario(base()), replication=0)
    stack.run(progress=lambda t, horizon: during.append(gc.get_freeze_count()))
    assert min(during) > 0  # the objects made before the run left the full passes
    assert gc.get_freeze_count() == 0  # and came back after it
    gc.freeze()
    try:
        Stack(scenario(base()), replication=0).run()
        assert gc.get_freeze_count() > 0  # the caller's freeze is kept (not unfrozen)
    finally:
        gc.unfreeze()


def test_arrival_trace_does_not_depend_on_the_policy() -> None:
    one = scenario(base(balancer={"policy": "round_robin"}))
    two = scenario(base(balancer={"policy": "power_of_d"}))
    assert list(arrival_trace(one)) == list(arrival_trace(two))
    assert list(arrival_trace(one, 0)) != list(arrival_trace(one, 1))


def test_warmup_is_discarded() -> None:
    out = run(
        base(
            warmup=100,
            duration=100,
            workload={"open": {"rate": 10.0}, "classes": [{"name": "job", "cpu": 0.01}]},
        )
    )
    assert out["requests"]["arrived"] == pytest.approx(1000, rel=0.1)


def test_step_schedule_follows_the_rate() -> None:
    sc = scenario(
        base(
            duration=300,
            workload={
                "open": {"schedule": [[0, 10], [100, 0], [200, 30]]},
                "classes": [{"name": "job", "cpu": 0.01}],
            },
        )
    )
    times = np.array([t for t, _, _ in arrival_trace(sc)])
    assert np.sum(times < 100) == pytest.approx(1000, rel=0.1)
    assert np.sum((times >= 100) & (times < 200)) == 0
    assert np.sum(times >= 200) == pytest.approx(3000, rel=0.06)


def test_linear_ramp_follows_the_rate() -> None:
    sc = scenario(
        base(
            duration=100,
            workload={
                "open": {"schedule": [[0, 0], [100, 100]], "shape": "linear"},
                "classes": [{"name": "job", "cpu": 0.01}],
            },
        )
    )
    times = np.array([t for t, _, _ in arrival_trace(sc)])
    # ∫ rate = t²/2: 1250 in the first half, 3750 in the second
    assert np.sum(times < 50) == pytest.approx(1250, rel=0.08)
    assert np.sum(times >= 50) == pytest.approx(3750, rel=0.05)


def test_closed_loop_follows_the_response_time_law() -> None:
    """X = N / (Z + R): with 20 users, think 1 s and no queueing (R = 0.1 s)."""
    data = base(
        duration=1000,
        workload={
            "closed": {"users": 20, "think_time": {"dist": "exponential", "mean": 1.0}},
            "classes": [{"name": "job", "cpu": 0.1}],
        },
        app={"nodes": 1, "workers": 100, "cores": 100},
    )
    out = run(data)
    assert out["throughput"] == pytest.approx(20 / 1.1, rel=0.03)
    assert out["latency"]["mean"] == pytest.approx(0.1, rel=1e-6)


def test_trace_replay_sends_the_given_arrivals(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "trace.csv"
    path.write_text("time,class,client\n0.5,a,1\n1.0,b,2\n1.0,a,1\n7.25,b,\n")
    data = base(
        duration=10,
        workload={
            "trace": {"file": str(path)},
            "classes": [{"name": "a", "cpu": 0.1}, {"name": "b", "cpu": 0.2}],
        },
    )
    sc = scenario(data)
    trace = list(arrival_trace(sc))
    assert [(t, c) for t, c, _ in trace] == [(0.5, 0), (1.0, 1), (1.0, 0), (7.25, 1)]
    assert [cl for _, _, cl in trace[:3]] == [1, 2, 1]
    out = run(data)
    assert out["requests"]["completed"] == 4
    assert out["classes"]["b"]["latency"]["mean"] == pytest.approx(0.2, rel=0.01)


def test_heavy_users_send_their_share_of_heavy_requests() -> None:
    spec = Clients(count=1000, heavy={"fraction": 0.1, "share": 0.9, "classes": ["report"]})
    pop = ClientPopulation(spec, ("browse", "report"), RandomStreams(1))
    heavy_picks = [pop.pick(1) for _ in range(20000)]
    light_picks = [pop.pick(0) for _ in range(20000)]
    assert np.mean(np.array(heavy_picks) < 100) == pytest.approx(0.9, abs=0.01)
    assert np.mean(np.array(light_picks) < 100) == pytest.approx(0.1, abs=0.01)


def test_subnets_group_clients_into_slash_24s() -> None:
    pop = ClientPopulation(Clients(count=1000, subnets=10), ("a",), RandomStreams(1))
    prefixes = {pop.ip(c)[:3] for c in range(1000)}
    assert len(prefixes) <= 10
    assert pop.ip(3) == pop.ip(3)


def test_network_delays_add_to_latency() -> None:
    data = base(
        network={"client_lb": 0.01, "lb_app": 0.002},
        balancer={"latency": 0.001},
        workload={"open": {"rate": 0.5}, "classes": [{"name": "job", "cpu": 0.1}]},
    )
    out = run(data)
    # client→LB→app→LB→client: 2×0.01 + 2×0.002 + 0.001 + 0.1
    assert out["latency"]["mean"] == pytest.approx(0.125, rel=1e-6)
    assert out["latency"]["p50"] == pytest.approx(0.125, rel=0.006)


def test_timeseries_has_one_row_per_interval() -> None:
    result = lbsim.simulate(scenario(base(duration=100, report={"interval": 10})))
    assert len(result.timeseries) == 10
    assert result.timeseries[-1]["time"] == pytest.approx(100)
    total = sum(r["throughput"] * 10 for r in result.timeseries)
    assert total == pytest.approx(result.runs[0]["requests"]["completed"], abs=3)


def test_replications_report_t_intervals() -> None:
    result = lbsim.simulate(scenario(base(duration=100)), replications=4)
    d = result.to_dict()
    assert d["replications"] == 4
    vals = [r["latency"]["mean"] for r in result.runs]
    mean = sum(vals) / 4
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / 3)
    assert d["ci95"]["latency"]["mean"] == pytest.approx(3.182446 * sd / 2, rel=1e-5)


def test_local_processes_give_the_same_results() -> None:
    sc = scenario(base(duration=50))
    one = lbsim.simulate(sc, replications=3, jobs=1)
    two = lbsim.simulate(sc, replications=3, jobs=2)
    strip = lambda runs: [{k: v for k, v in r.items() if k != "run"} for r in runs]  # noqa: E731
    assert strip(one.runs) == strip(two.runs)


def test_stack_refuses_to_run_unwired_components() -> None:
    from lbsim.model.app import AppNode
    from lbsim.model.database import NoDatabase
    from lbsim.model.request import Request

    env = simpy.Environment()
    node = AppNode(env, 0, "n", 1, 1, Cpu(env, "c", 1), None, NoDatabase())
    with pytest.raises(RuntimeError, match="not wired"):
        node.accept(Request(1, 0, 0, (1, 2, 3, 4), 0.0, 0.0, (), True), 1)


def test_stack_builds_one_backend_per_node() -> None:
    st = Stack(scenario(base(app={"nodes": 3})))
    assert [b.name for b in st.balancer.backends] == ["app1", "app2", "app3"]


def test_connections_sent_while_a_node_answers_wait_for_a_free_worker() -> None:
    """The answer that frees a worker may bring two connections at once (a
    balancer's queue draining into the freed slot): the first takes the
    worker, the second waits in the backlog instead of a worker that does
    not exist (HAProxy least_load with max_conns crashed here)."""
    from lbsim.model.app import AppNode
    from lbsim.model.database import NoDatabase
    from lbsim.model.engine import run as run_calendar
    from lbsim.model.request import Request

    env = simpy.Environment()
    node = AppNode(env, 0, "n", 1, 4, Cpu(env, "c", 1), None, NoDatabase())
    answered: list[tuple[int, int]] = []
    pending = [Request(i, 0, 0, (1, 2, 3, 4), 0.0, 0.0, (0.1,), True) for i in (2, 3)]

    def respond(answer: tuple[Request, int, int]) -> None:
        answered.append((answer[0].id, answer[2]))
        while pending:  # both sent before the node's worker looks at its backlog
            assert node.accept(pending.pop(0), 1)
            assert node.busy <= node.workers

    node.respond = respond
    assert node.accept(Request(1, 0, 0, (1, 2, 3, 4), 0.0, 0.0, (0.1,), True), 1)
    run_calendar(env)
    assert answered == [(1, 200), (2, 200), (3, 200)]
    assert node.busy == 0 and not node.backlog
