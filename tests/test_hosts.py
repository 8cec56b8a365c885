"""Database servers placed on hosts: they share the host's cores with the app containers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import lbsim
from lbsim.experiment.offered_load import offered_load
from lbsim.model.stack import Stack
from lbsim.scenario.database import Galera
from tests.support import Estimate, scenario

EXP = {"dist": "exponential", "mean": 0.1}

# two classes with the same exponential CPU demand: one is pure PHP work, the
# other a single read on the MySQL server (no PHP CPU); no latencies, no limits
TWO_CONTAINERS: dict[str, Any] = {
    "name": "two-containers",
    "seed": 11,
    "duration": 3000,
    "warmup": 300,
    "workload": {
        "open": {"rate": 8},
        "classes": [
            {"name": "php", "cpu": EXP},
            {"name": "sql", "cpu": 0, "queries": [{"kind": "read", "time": EXP}]},
        ],
    },
    "balancer": {"upstream_timeout": 1e9, "max_fails": 0},
    "app": {"nodes": 1, "workers": 256, "cores": 1, "backlog": 10_000_000},
    "database": {"engine": "mysql", "cores": 1, "max_connections": 1_000_000},
}

GALERA: dict[str, Any] = {
    "name": "galera-hosts",
    "seed": 5,
    "duration": 200,
    "warmup": 20,
    "workload": {
        "open": {"rate": 60},
        "classes": [
            {
                "name": "browse",
                "weight": 3,
                "cpu": {"dist": "gamma", "mean": 0.01, "cv": 1.5},
                "queries": [{"kind": "read", "time": {"dist": "exponential", "mean": 0.004}}],
            },
            {
                "name": "buy",
                "weight": 1,
                "cpu": {"dist": "exponential", "mean": 0.02},
                "queries": [
                    {"kind": "read", "time": 0.003},
                    {
                        "kind": "write",
                        "time": {"dist": "exponential", "mean": 0.005},
                        "keys": 2,
                        "hot_keys": 20,
                    },
                ],
            },
        ],
    },
    "app": {"nodes": 2, "workers": 4, "cores": 1},
    "database": {"engine": "galera", "nodes": 3, "cores": 1, "replication_delay": 0.002},
}


def on_host(data: dict[str, Any], cores: float) -> dict[str, Any]:
    """``data`` with every app node and database server on one host of ``cores``."""
    d = copy.deepcopy(data)
    d["hosts"] = [{"name": "box", "cores": cores}]
    d["app"]["host"] = "box"
    d["database"]["host"] = "box"
    return d


def without_hosts(run: dict[str, Any]) -> dict[str, Any]:
    r = copy.deepcopy(run)
    r["utilisation"].pop("hosts")
    r.pop("run")  # wall time
    return r


# -- schema ----------------------------------------------------------------------------------


@pytest.mark.unit
def test_galera_nodes_take_the_cluster_host_unless_they_name_their_own() -> None:
    sc = scenario(
        {
            "workload": {"open": {"rate": 1}, "classes": [{"name": "a"}]},
            "hosts": [{"name": "h1", "cores": 2}, {"name": "h2", "cores": 2}],
            "database": {
                "engine": "galera",
                "host": "h1",
                "nodes": [{"name": "a"}, {"name": "b", "host": "h2"}, {"name": "c"}],
            },
        }
    )
    db = sc.database
    assert isinstance(db, Galera)
    assert [n.host for n in db.resolved_nodes()] == ["h1", "h2", "h1"]


@pytest.mark.unit
def test_stack_attaches_database_cpus_to_their_hosts() -> None:
    d = on_host(GALERA, 2)
    d["hosts"].append({"name": "other", "cores": 1})
    d["database"]["nodes"] = [{}, {}, {"host": "other"}]
    stack = Stack(scenario(d))
    box, other = stack.hosts["box"], stack.hosts["other"]
    assert sorted(c.name for c in box.members) == ["app1", "app2", "db1", "db2"]
    assert [c.name for c in other.members] == ["db3"]


# -- metamorphic -----------------------------------------------------------------------------


@pytest.mark.metamorphic
@pytest.mark.parametrize("workers", [4, 1])
def test_a_host_with_enough_cores_changes_nothing(workers: int) -> None:
    """Containers whose cores add up to at most the host's never compete: same run exactly."""
    data = copy.deepcopy(GALERA)
    data["app"]["workers"] = workers  # 1: the app CPUs take their dedicated-core path alone
    alone = lbsim.simulate(scenario(data), replications=1).runs[0]
    # 2 app nodes + 3 database nodes of one core each: 5 cores, and more
    for cores in (5, 64):
        hosted = lbsim.simulate(scenario(on_host(data, cores)), replications=1).runs[0]
        assert without_hosts(hosted) == without_hosts(alone)
        total = sum(u["cpu"] for u in alone["utilisation"]["app"].values()) + sum(
            u["cpu"] for u in alone["utilisation"]["db"].values()
        )
        assert hosted["utilisation"]["hosts"]["box"]["cpu"] * cores == pytest.approx(
            total, rel=1e-9
        )


@pytest.mark.metamorphic
def test_database_and_app_on_one_core_compete() -> None:
    """One core for both: the host is busy for the sum of both, and requests wait longer."""
    data = copy.deepcopy(TWO_CONTAINERS)
    data["duration"] = 1000
    apart = lbsim.simulate(scenario(data), replications=1).runs[0]
    shared = lbsim.simulate(scenario(on_host(data, 1)), replications=1).runs[0]
    util = shared["utilisation"]
    app_busy = util["app"]["app1"]["cpu"]  # fractions of one core each
    db_busy = util["db"]["db1"]["cpu"]
    assert util["hosts"]["box"]["cpu"] == pytest.approx(app_busy + db_busy, rel=1e-9)
    assert 0.3 < app_busy < 0.5 and 0.3 < db_busy < 0.5  # 4/s × 0.1 s each
    # same work (common random numbers), one core instead of two: every class slows
    assert shared["requests"]["completed"] > 0.95 * apart["requests"]["arrived"]
    assert shared["latency"]["mean"] > 1.5 * apart["latency"]["mean"]
    for name in ("php", "sql"):
        assert (
            shared["classes"][name]["latency"]["mean"]
            > 1.5 * apart["classes"][name]["latency"]["mean"]
        )


# -- theory ----------------------------------------------------------------------------------


@pytest.mark.theory
def test_app_and_mysql_on_one_core_are_one_mm1_server() -> None:
    """PHP work and MySQL reads, both Exp(mean 0.1 s), on one shared core at ρ = 0.8.

    The host never idles while a job is present (water-filling is work
    conserving) and every job, in either container, completes at rate 1/0.1
    whatever the split of the core: so the number of requests is the M/M/1
    birth–death chain and the mean latency is s/(1−ρ) = 0.5 s for both classes,
    as in M/M/1-PS. Apart, each container is an M/M/1-PS queue at ρ/2:
    0.1/0.6 = 0.167 s.
    """
    result = lbsim.simulate(scenario(on_host(TWO_CONTAINERS, 1)), replications=10)
    runs = result.runs
    latency = Estimate([r["latency"]["mean"] for r in runs])
    assert latency.covers(0.5), latency
    assert latency.half < 0.05, latency
    for name in ("php", "sql"):
        per_class = Estimate([r["classes"][name]["latency"]["mean"] for r in runs])
        assert per_class.covers(0.5), (name, per_class)
    host = Estimate([r["utilisation"]["hosts"]["box"]["cpu"] for r in runs])
    assert host.covers(0.8), host
    assert host.half < 0.01, host
    apart = lbsim.simulate(scenario(TWO_CONTAINERS), replications=6)
    separate = Estimate([r["latency"]["mean"] for r in apart.runs])
    assert separate.covers(0.1 / 0.6), separate


# -- offered load ----------------------------------------------------------------------------


@pytest.mark.unit
def test_offered_load_of_a_host_includes_its_database_servers() -> None:
    d = on_host(GALERA, 4)
    d["hosts"].append({"name": "other", "cores": 2})
    d["database"]["nodes"] = [{}, {}, {"host": "other", "slowness": 2.0}]
    d["database"]["apply"] = 0.001
    loads = {r.resource: r.utilisation for r in offered_load(scenario(d))}
    lam = 60.0
    php = lam * (0.75 * 0.01 + 0.25 * 0.02)  # core-s/s of PHP CPU
    reads = lam * (0.75 * 0.004 + 0.25 * 0.003)
    writes = lam * 0.25 * 0.005
    write_sets = lam * 0.25
    # each node: a third of the reads and writes, and applies the other two thirds' write-sets
    per_node = reads / 3 + writes / 3 + write_sets * 2 / 3 * 0.001
    assert loads["db db1 cpu"] == pytest.approx(per_node)
    assert loads["db db3 cpu"] == pytest.approx(2 * per_node)
    assert loads["host box cpu"] == pytest.approx((php + 2 * per_node) / 4)
    assert loads["host other cpu"] == pytest.approx(2 * per_node / 2)


@pytest.mark.unit
def test_offered_load_of_a_host_with_a_mysql_server() -> None:
    loads = {r.resource: r.utilisation for r in offered_load(scenario(on_host(TWO_CONTAINERS, 1)))}
    # 4/s × 0.1 s of PHP and 4/s × 0.1 s of reads on one core
    assert loads["host box cpu"] == pytest.approx(0.8)
    assert loads["db db1 cpu"] == pytest.approx(0.4)
    assert loads["app app1 cpu"] == pytest.approx(0.4)


@pytest.mark.metamorphic
def test_background_cores_are_cores_taken_away() -> None:
    """A host of 3 cores with 1 busy outside the model is a host of 2 cores for its
    containers: the same latencies; its utilisation counts the background too."""
    base = copy.deepcopy(TWO_CONTAINERS) | {"duration": 400, "warmup": 20}
    base["database"]["host"] = "m"
    base["app"]["host"] = "m"
    two = lbsim.simulate(scenario(base | {"hosts": [{"name": "m", "cores": 1.0}]}))
    bg = lbsim.simulate(
        scenario(base | {"hosts": [{"name": "m", "cores": 3.0, "background": 2.0}]})
    )
    assert bg.value("latency.mean") == pytest.approx(two.value("latency.mean"), rel=1e-9)
    assert bg.value("throughput") == two.value("throughput")
    busy_two = two.value("utilisation.hosts.m.cpu")
    assert 0.5 < busy_two < 1.0
    assert bg.value("utilisation.hosts.m.cpu") == pytest.approx((busy_two + 2.0) / 3.0, rel=1e-6)
