"""The database tier: single server against queueing theory, locks and
connection limits; Galera against its limits, flow control, certification
and stale reads (shared/reference/galera.md)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lbsim
from lbsim.model.db.galera import flow_control_limits
from tests.support import Estimate, check_invariants, scenario

EXP1 = {"dist": "exponential", "mean": 1.0}


def db_queue(
    rate: float, threads: int, *, duration: float = 4000, seed: int = 11, **db: Any
) -> dict[str, Any]:
    """Requests that only run one read on a MySQL server with ``threads`` threads."""
    return {
        "name": "db-queue",
        "seed": seed,
        "duration": duration,
        "warmup": 400,
        "workload": {
            "open": {"rate": rate},
            "classes": [{"name": "q", "queries": [{"kind": "read", "time": EXP1}]}],
        },
        "balancer": {"upstream_timeout": 1e9, "max_fails": 0},
        "app": {"nodes": 1, "workers": 100_000, "cores": 1, "backlog": 10_000_000},
        "database": {
            "engine": "mysql",
            "threads": threads,
            "cores": threads,
            "max_connections": 10_000_000,
            **db,
        },
    }


def galera(
    rate_write: float,
    rate_read: float = 0.0,
    *,
    duration: float = 600,
    seed: int = 3,
    app_nodes: int = 1,
    **db: Any,
) -> dict[str, Any]:
    classes = [
        {
            "name": "write",
            "weight": rate_write,
            "queries": [{"kind": "write", "time": 0.001, "keys": 1, "hot_keys": 0}],
        }
    ]
    if rate_read:
        classes.append(
            {
                "name": "read",
                "weight": rate_read,
                "queries": [{"kind": "read", "time": 0.0, "keys": 1, "hot_keys": 0}],
            }
        )
    return {
        "name": "galera",
        "seed": seed,
        "duration": duration,
        "warmup": 50,
        "workload": {"open": {"rate": rate_write + rate_read}, "classes": classes},
        "balancer": {"upstream_timeout": 1e9, "max_fails": 0},
        "app": {"nodes": app_nodes, "workers": 100_000, "cores": 64, "backlog": 10_000_000},
        "database": {
            "engine": "galera",
            "nodes": 3,
            "max_connections": 10_000_000,
            "replication_delay": 0.001,
            **db,
        },
    }


def simulate(data: dict[str, Any], reps: int = 1) -> lbsim.Result:
    return lbsim.simulate(scenario(data), replications=reps)


def erlang_c_wait(c: int, rho: float) -> float:
    a = c * rho
    top = a**c / math.factorial(c) / (1 - rho)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top) / (c * (1 - rho))


# --------------------------------------------------------------------------- single server


@pytest.mark.theory
@pytest.mark.parametrize(("threads", "rho"), [(1, 0.7), (3, 0.8)])
def test_single_server_threads_form_an_mmc_queue(threads: int, rho: float) -> None:
    result = simulate(db_queue(threads * rho, threads), reps=10)
    est = Estimate([r["latency"]["mean"] for r in result.runs])
    target = 1.0 + erlang_c_wait(threads, rho)
    assert est.covers(target), (est, target)
    check_invariants(result)


@pytest.mark.unit
def test_max_connections_gives_1040_and_nothing_is_lost() -> None:
    data = db_queue(20.0, 4, duration=200, max_connections=5)
    data["workload"]["classes"][0]["queries"][0]["time"] = 0.5
    result = simulate(data)
    run = result.runs[0]
    assert run["requests"]["failed"]["db_1040"] > 100
    assert run["database"]["nodes"]["db1"]["connections_max"] == 5
    assert (
        run["database"]["nodes"]["db1"]["connection_errors"] >= run["requests"]["failed"]["db_1040"]
    )
    req = run["requests"]
    assert req["arrived"] == req["completed"] + req["failed"]["total"] + req["in_flight"]


@pytest.mark.unit
def test_persistent_connections_grow_to_one_per_worker() -> None:
    data = db_queue(5.0, 4, duration=300)
    data["app"] = {"nodes": 2, "workers": 40, "cores": 40, "backlog": 1000}
    data["workload"]["classes"][0]["queries"][0]["time"] = 0.1
    per_request = simulate(data).runs[0]["database"]["nodes"]["db1"]
    data["database"]["connect"] = "persistent"
    persistent = simulate(data).runs[0]["database"]["nodes"]["db1"]
    assert per_request["connections_max"] < 15
    assert persistent["connections_max"] == 80  # every worker of both nodes keeps one
    data["database"]["max_connections"] = 60
    run = simulate(data).runs[0]
    assert run["requests"]["failed"]["db_1040"] > 0  # the seed's lock-up


@pytest.mark.unit
def test_hot_row_writes_serialise_and_time_out_with_1205() -> None:
    data = db_queue(3.0, 8, duration=300, lock_wait_timeout=2.0)
    data["workload"]["classes"][0]["queries"] = [
        {"kind": "write", "time": 0.5, "keys": 1, "hot_keys": 1}
    ]
    run = simulate(data).runs[0]
    # one hot row: at most 2 writes/s get through, the rest wait and time out
    assert run["classes"]["q"]["throughput"] == pytest.approx(2.0, rel=0.05)
    assert run["requests"]["failed"]["db_1205"] > 100
    assert run["database"]["nodes"]["db1"]["row_lock_waits"] > 100


@pytest.mark.unit
def test_commit_cost_adds_to_write_latency() -> None:
    data = db_queue(0.2, 8, duration=500, commit=0.05)
    data["workload"]["classes"][0]["queries"] = [{"kind": "write", "time": 0.01}]
    run = simulate(data).runs[0]
    assert run["latency"]["mean"] == pytest.approx(0.06, rel=1e-6)
    assert run["database"]["commit_latency"]["mean"] == pytest.approx(0.05, rel=1e-6)


# --------------------------------------------------------------------------- Galera


@pytest.mark.unit
@pytest.mark.parametrize(
    ("n", "factor", "single", "upper", "lower"),
    [
        (3, 1.0, False, 28, 28),
        (3, 0.5, False, 28, 14),
        (5, 1.0, False, 36, 36),
        (5, 0.5, False, 36, 18),
        (5, 0.8, False, 36, 29),
        (3, 1.0, True, 16, 16),
        (1, 1.0, False, 16, 16),
    ],
)
def test_flow_control_limits_follow_gcs(
    n: int, factor: float, single: bool, upper: int, lower: int
) -> None:
    assert flow_control_limits(16, factor, single, n) == (upper, lower)
    expected_upper = math.floor(16 * (1 if single else math.sqrt(n)) + 0.5)
    assert upper == expected_upper
    assert lower == math.floor(expected_upper * factor + 0.5)


def one_writer(lam: float, s: float, fc_factor: float) -> dict[str, Any]:
    """One writer session offering a write-set every 1/λ s whenever flow control lets
    it (closed loop, deterministic think time, instant local work), all on db1; the
    two other nodes apply each write-set in ``s`` seconds with one applier."""
    data = galera(
        1.0,
        duration=300,
        apply={"dist": "deterministic", "value": s},
        routing={"mode": "proxy", "policy": "first"},
        replication_delay=0.0,
        fc_factor=fc_factor,
    )
    data["workload"] = {
        "closed": {"users": 1, "think_time": 1.0 / lam},
        "classes": [{"name": "write", "queries": [{"kind": "write", "time": 0.0}]}],
    }
    return data


@pytest.mark.theory
@pytest.mark.parametrize(("lam", "s"), [(100.0, 0.02), (150.0, 0.01)])
def test_one_slow_applier_throttles_the_cluster(lam: float, s: float) -> None:
    """λ·s > 1: committed writes → 1/s and flow_control_paused → 1 − 1/(λ s).

    With fc_factor 0.5 the queue swings between lower = 14 and upper = 28: it fills
    at λ − 1/s while open and drains at 1/s while paused, so the paused share of
    each cycle is exactly 1 − 1/(λs).
    """
    run = simulate(one_writer(lam, s, 0.5)).runs[0]
    commits = run["galera"]["nodes"]["db1"]["wsrep_local_commits"] / 300
    assert commits == pytest.approx(1 / s, rel=0.01)
    paused = run["galera"]["flow_control"]["paused"]
    assert paused == pytest.approx(1 - 1 / (lam * s), abs=0.02)
    for node in ("db2", "db3"):
        counters = run["galera"]["nodes"][node]
        assert counters["wsrep_flow_control_sent"] > 50
        assert counters["wsrep_flow_control_paused"] == paused
        # arriving write-sets see the queue anywhere between lower and upper
        assert 14 <= counters["wsrep_local_recv_queue_avg"] <= 28


@pytest.mark.theory
def test_without_hysteresis_flow_control_pauses_at_least_the_fluid_share() -> None:
    """fc_factor 1.0 (the default): CONT at upper, and the writer that waited
    goes at once, so STOP follows at once; throughput is still 1/s and the paused
    share can only be larger than 1 − 1/(λs)."""
    lam, s = 100.0, 0.02
    run = simulate(one_writer(lam, s, 1.0)).runs[0]
    assert run["galera"]["nodes"]["db1"]["wsrep_local_commits"] / 300 == pytest.approx(
        1 / s, rel=0.01
    )
    assert run["galera"]["flow_control"]["paused"] >= 1 - 1 / (lam * s)
    assert run["galera"]["nodes"]["db2"]["wsrep_local_recv_queue_avg"] == pytest.approx(28, abs=1)


@pytest.mark.unit
def test_flow_control_is_off_below_capacity() -> None:
    run = simulate(galera(20.0, apply=0.01)).runs[0]
    assert run["galera"]["flow_control"]["paused"] == 0
    assert all(n["wsrep_flow_control_sent"] == 0 for n in run["galera"]["nodes"].values())


@pytest.mark.property
@settings(max_examples=8, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    writes=st.floats(5.0, 80.0),
    reads=st.floats(0.0, 80.0),
    nodes=st.integers(2, 5),
    pinned=st.booleans(),
)
def test_counters_are_consistent_without_failures(
    seed: int, writes: float, reads: float, nodes: int, pinned: bool
) -> None:
    data = galera(
        writes,
        reads,
        duration=60,
        seed=seed,
        app_nodes=3,
        routing={"mode": "pinned"} if pinned else {"mode": "proxy"},
    )
    data["database"]["nodes"] = nodes
    run = simulate(data).runs[0]
    assert run["requests"]["failed"]["total"] == 0
    counters = run["galera"]["nodes"]
    replicated = {k: v["wsrep_replicated"] for k, v in counters.items()}
    # counters restart at the end of the warm-up, as after FLUSH STATUS: a write-set
    # replicated just before (or still on its way at the end of the run) is counted
    # on one side only. At ≤ 80 writes/s and 1 ms of replication that is a handful.
    edge = 3
    for name, c in counters.items():
        # every write-set replicated elsewhere is received here, and each local one commits
        others = sum(v for k, v in replicated.items() if k != name)
        assert abs(c["wsrep_received"] - others) <= edge
        assert abs(c["wsrep_local_commits"] - c["wsrep_replicated"]) <= edge
    committed = sum(v["wsrep_local_commits"] for v in counters.values())
    # commits counted in the window vs write requests of the arrival cohort: equal
    # but for the few in flight at the window's edges
    assert committed == pytest.approx(run["classes"]["write"]["completed"], abs=10)
    last = [v["wsrep_last_committed"] for v in counters.values()]
    assert max(last) - min(last) <= 3


def hotspot(policy: str, write_rate: float, hot: int, seed: int = 5) -> dict[str, Any]:
    data = galera(
        write_rate,
        duration=300,
        seed=seed,
        app_nodes=3,
        routing={"mode": "proxy", "policy": policy},
        replication_delay=0.005,
        retry_autocommit=0,
    )
    data["workload"]["classes"][0]["queries"][0].update({"keys": 2, "hot_keys": hot, "time": 0.002})
    return data


def conflicts(run: dict[str, Any]) -> int:
    return sum(
        n["wsrep_local_cert_failures"] + n["wsrep_local_bf_aborts"]
        for n in run["galera"]["nodes"].values()
    )


@pytest.mark.unit
def test_single_writer_never_fails_certification() -> None:
    run = simulate(hotspot("first", 100.0, 5)).runs[0]
    assert conflicts(run) == 0
    assert run["requests"]["failed"]["total"] == 0
    multi = simulate(hotspot("round_robin", 100.0, 5)).runs[0]
    assert conflicts(multi) > 100
    assert multi["requests"]["failed"]["db_1213"] > 0


@pytest.mark.metamorphic
def test_conflicts_grow_with_write_rate_hotter_rows_and_writers() -> None:
    by_rate = [conflicts(simulate(hotspot("round_robin", r, 50)).runs[0]) for r in (20, 60, 180)]
    assert by_rate == sorted(by_rate) and by_rate[0] < by_rate[-1]
    by_heat = [conflicts(simulate(hotspot("round_robin", 60, h)).runs[0]) for h in (500, 50, 5)]
    assert by_heat == sorted(by_heat) and by_heat[0] < by_heat[-1]
    one = conflicts(simulate(hotspot("first", 60, 50)).runs[0])
    many = conflicts(simulate(hotspot("round_robin", 60, 50)).runs[0])
    assert one == 0 < many


def stale_setup(
    sync_wait: bool, apply: float = 0.05, w: float = 2.0, r: float = 20.0, seed: int = 9
) -> dict[str, Any]:
    """Writes on db1, reads half on db1 and half on db2 (two app nodes pinned)."""
    data = galera(
        w,
        r,
        duration=3000,
        seed=seed,
        app_nodes=2,
        apply=apply,
        sync_wait=sync_wait,
        routing={"mode": "pinned", "read_write_split": True, "writer": 0},
    )
    for c in data["workload"]["classes"]:
        c["queries"][0].update({"hot_keys": 1, "time": 0.0})
    return data


@pytest.mark.theory
def test_low_load_stale_read_fraction_matches_the_apply_window() -> None:
    """Writes are acknowledged on db1 when delivered; db2's applier (one thread,
    deterministic apply time a) is busy exactly while an acknowledged write is not
    yet applied there. A read on db2 is stale iff it arrives while that applier is
    busy: by PASTA, with probability ρ = λ_w·a. Half of the reads land on db2
    (db1 is never stale), so the stale fraction is λ_w·a / 2."""
    result = simulate(stale_setup(False), reps=6)
    est = Estimate([r["galera"]["stale_read_fraction"] for r in result.runs])
    target = 0.5 * 2.0 * 0.05
    assert est.covers(target), (est, target)
    staleness = result.runs[0]["galera"]["staleness"]
    # most stale reads missed a write acknowledged less than one apply time ago
    assert 0 < staleness["p50"] <= 0.05 * 1.01
    assert staleness["max"] < 1.0


@pytest.mark.unit
def test_sync_wait_reads_are_never_stale_but_slower() -> None:
    plain = simulate(stale_setup(False, seed=2)).runs[0]
    causal = simulate(stale_setup(True, seed=2)).runs[0]
    assert plain["galera"]["stale_read_fraction"] > 0.02
    assert plain["galera"]["read_after_write_stale_fraction"] > 0
    assert causal["galera"]["stale_read_fraction"] == 0
    assert causal["galera"]["read_after_write_stale_fraction"] == 0
    assert (
        causal["classes"]["read"]["latency"]["mean"] > plain["classes"]["read"]["latency"]["mean"]
    )


@pytest.mark.unit
def test_causal_read_timeout_gives_1205() -> None:
    data = galera(
        150.0,
        10.0,
        duration=100,
        apply=0.02,
        sync_wait=True,
        causal_read_timeout=0.5,
        app_nodes=2,
        routing={"mode": "pinned", "read_write_split": True, "writer": 0},
    )
    run = simulate(data).runs[0]
    assert run["requests"]["failed"]["db_1205"] > 0


@pytest.mark.unit
def test_slow_node_throttles_everyone() -> None:
    fast = galera(60.0, duration=200, apply=0.01, routing={"mode": "proxy", "policy": "first"})
    slow = galera(
        60.0,
        duration=200,
        apply=0.01,
        routing={"mode": "proxy", "policy": "first"},
        nodes=[{}, {}, {"slowness": 3.0}],
    )
    for data in (fast, slow):
        data["app"]["workers"] = 16  # bounded sessions, as max_children bounds them
    r_fast, r_slow = simulate(fast).runs[0], simulate(slow).runs[0]
    assert r_fast["galera"]["flow_control"]["paused"] == 0
    assert r_slow["galera"]["flow_control"]["paused"] > 0.4
    sent = {k: v["wsrep_flow_control_sent"] for k, v in r_slow["galera"]["nodes"].items()}
    # the slow node sends every STOP: the burst released by a CONT (at most 16
    # sessions) never pushes a fast node's queue past upper = 28
    assert sent["db3"] > 50
    assert sent["db2"] == 0
    assert r_slow["latency"]["mean"] > 10 * r_fast["latency"]["mean"]


@pytest.mark.unit
def test_receive_work_loads_the_other_nodes_but_not_the_apply_path() -> None:
    """``receive`` is CPU each other node spends per write-set off the applier's
    path: with cores to spare it raises their CPU by λ_w·receive / cores and
    leaves the stale fraction (the apply window) exactly as it was."""
    base = stale_setup(False, seed=4)
    loaded = stale_setup(False, seed=4)
    loaded["database"]["receive"] = 0.2
    loaded["database"]["cores"] = 8
    base["database"]["cores"] = 8
    plain, busy = simulate(base).runs[0], simulate(loaded).runs[0]
    assert busy["galera"]["stale_read_fraction"] == plain["galera"]["stale_read_fraction"]
    for node in ("db2", "db3"):
        extra = busy["utilisation"]["db"][node]["cpu"] - plain["utilisation"]["db"][node]["cpu"]
        assert extra == pytest.approx(2.0 * 0.2 / 8, rel=0.1), node
    # the writer receives nothing of its own
    writer = busy["utilisation"]["db"]["db1"]["cpu"] - plain["utilisation"]["db"]["db1"]["cpu"]
    assert writer == pytest.approx(0.0, abs=1e-9)
    for key in ("wsrep_received", "wsrep_local_commits"):
        assert busy["galera"]["nodes"]["db2"][key] == plain["galera"]["nodes"]["db2"][key]


@pytest.mark.unit
def test_offered_load_counts_receive_work_on_the_cpu_not_the_appliers() -> None:
    from lbsim.experiment.offered_load import offered_load

    data = stale_setup(False)
    data["database"].update(receive=0.2, cores=8)
    rows = {r.resource: r.utilisation for r in offered_load(scenario(data))}
    data["database"].pop("receive")
    plain = {r.resource: r.utilisation for r in offered_load(scenario(data))}
    assert rows["db db2 cpu"] - plain["db db2 cpu"] == pytest.approx(2.0 * 0.2 / 8)
    assert rows["db db1 cpu"] == pytest.approx(plain["db db1 cpu"])
    assert rows["db db2 appliers"] == pytest.approx(plain["db db2 appliers"])


@pytest.mark.unit
def test_a_connection_handshake_costs_server_cpu_and_a_round_trip() -> None:
    """A new connection costs ``handshake`` CPU on the server plus one round trip
    (2 × app_db) before its first query; a kept persistent connection costs
    neither. At low load the latencies differ by exactly that much."""

    def run(connect: str, handshake: float | None) -> dict[str, Any]:
        data = db_queue(2.0, 4, duration=2000, handshake=handshake, connect=connect)
        data["workload"]["classes"][0]["queries"][0]["time"] = 0.001
        data["network"] = {"app_db": 0.0005}
        data["app"]["workers"] = 1
        data["workload"]["open"] = {"interarrival": 1.0}  # one request at a time
        return simulate(data).runs[0]

    plain = run("per_request", None)
    shaken = run("per_request", 0.004)
    kept = run("persistent", 0.004)
    base = plain["latency"]["mean"]
    assert base == pytest.approx(0.001 + 2 * 0.0005)
    assert shaken["latency"]["mean"] == pytest.approx(base + 0.004 + 2 * 0.0005)
    # one worker keeps one connection: only its first request shook hands
    assert kept["latency"]["max"] == pytest.approx(base, rel=1e-6)
    cpu = shaken["utilisation"]["db"]["db1"]["cpu"] - plain["utilisation"]["db"]["db1"]["cpu"]
    assert cpu == pytest.approx(1.0 * 0.004 / 4, rel=0.02)


@pytest.mark.unit
def test_offered_load_counts_handshakes_per_connection_role() -> None:
    from lbsim.experiment.offered_load import offered_load

    data = stale_setup(False)  # writes on db1, reads split: reads and writes connect apart
    data["database"].update(cores=8)
    plain = {r.resource: r.utilisation for r in offered_load(scenario(data))}
    data["database"]["handshake"] = 0.01
    shaken = {r.resource: r.utilisation for r in offered_load(scenario(data))}
    # 2 writes/s connect to the writer db1; 20 reads/s spread over 3 nodes
    assert shaken["db db1 cpu"] - plain["db db1 cpu"] == pytest.approx((2 + 20 / 3) * 0.01 / 8)
    assert shaken["db db2 cpu"] - plain["db db2 cpu"] == pytest.approx(20 / 3 * 0.01 / 8)
