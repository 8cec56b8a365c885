"""A Galera node killed and started again (lbsim.model.db.membership).

Hand-worked runs: a trace of arrivals, fixed CPU and query times, no
latencies, three nodes of which db2 has the outage. Each test checks one
mechanism: in-flight queries lost (2013), a dead connection (2006), a direct
connect to the down node (2002), the proxy's checks and connect retries
(2006 after 4 x 5 s: the proxy closes before the greeting), quorum and flow
control of the nodes left, IST
catch-up at the apply cost with the donor's CPU, 1047 until SYNCED.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import lbsim
from lbsim.model.db.galera import GaleraTier, flow_control_limits
from lbsim.model.db.membership import FaultyGaleraTier
from lbsim.model.db.node_state import (
    JOINER,
    PROXY_CONNECT_TIMEOUT,
    PROXY_RETRIES,
    SYNCED,
)
from lbsim.model.engine import run
from lbsim.model.stack import Stack
from lbsim.scenario.schema import Scenario
from tests.support import scenario

pytestmark = pytest.mark.unit


def galera(
    tmp_path: Path,
    arrivals: list[tuple[float, str]],
    outage: dict[str, Any] | None,
    routing: dict[str, Any] | None = None,
    duration: float = 60.0,
    timeout: float | None = None,
    **db: Any,
) -> Scenario:
    """Classes r (a 1 s read), w (a 0.01 s write) and two (2 s of PHP CPU in
    three bursts around two 0.1 s reads); 2 app nodes, 3 Galera nodes."""
    trace = tmp_path / "arrivals.csv"
    trace.write_text("".join(f"{t},{c}\n" for t, c in arrivals))
    db2: dict[str, Any] = {"name": "db2"}
    if outage is not None:
        db2["outages"] = [outage]
    workload: dict[str, Any] = {
        "trace": {"file": str(trace)},
        "classes": [
            {"name": "r", "cpu": 0.0, "queries": [{"kind": "read", "time": 1.0}]},
            {"name": "w", "cpu": 0.0, "queries": [{"kind": "write", "time": 0.01}]},
            {"name": "two", "cpu": 2.0, "queries": [{"kind": "read", "time": 0.1}] * 2},
        ],
    }
    if timeout is not None:
        workload["timeout"] = timeout
    data = {
        "duration": duration,
        "workload": workload,
        "app": {"nodes": 2, "workers": 64, "cores": 64},
        "database": {
            "engine": "galera",
            "cores": 64,
            "nodes": [{"name": "db1"}, db2, {"name": "db3"}],
            "routing": routing or {"mode": "pinned"},
            "replication_delay": 0.0,
            **db,
        },
    }
    return scenario(data)


def failed(out: dict[str, Any]) -> dict[str, int]:
    return {k: v for k, v in out["requests"]["failed"].items() if v and k != "total"}


def simulate(sc: Scenario) -> dict[str, Any]:
    return lbsim.simulate(sc).to_dict()


# --------------------------------------------------------------------------- schema


def test_outages_that_overlap_or_cost_quorum_are_refused(tmp_path: Path) -> None:
    ok = galera(tmp_path, [(0.0, "w")], {"start": 1, "duration": 2})
    assert ok.database.resolved_nodes()[1].outages[0].duration == 2  # type: ignore[union-attr]
    data = ok.model_dump(mode="json")
    data["database"]["nodes"][1]["outages"] = [
        {"start": 1, "duration": 5},
        {"start": 3, "duration": 1},
    ]
    with pytest.raises(ValidationError, match="overlap"):
        Scenario.model_validate(data)
    data["database"]["nodes"][1]["outages"] = [{"start": 1, "duration": 5}]
    data["database"]["nodes"][2]["outages"] = [{"start": 2, "duration": 1}]
    with pytest.raises(ValidationError, match="quorum"):
        Scenario.model_validate(data)
    data["database"]["nodes"] = [{"name": "a", "outages": [{"start": 1, "duration": 1}]}, {}]
    with pytest.raises(ValidationError, match="quorum"):
        Scenario.model_validate(data)


def test_only_a_scenario_with_outages_builds_the_faulty_tier(tmp_path: Path) -> None:
    plain = Stack(galera(tmp_path, [(0.0, "w")], None)).database
    assert type(plain) is GaleraTier
    assert isinstance(
        Stack(galera(tmp_path, [(0.0, "w")], {"start": 1, "duration": 1})).database,
        FaultyGaleraTier,
    )


# --------------------------------------------------------------------------- the kill


def test_a_query_running_on_the_killed_node_fails_with_2013_at_the_kill(tmp_path: Path) -> None:
    """Pinned: app2 uses db2. Its 1 s read started at 0 is cut at 0.4 s."""
    sc = galera(tmp_path, [(0.0, "r"), (0.1, "r")], {"start": 0.4, "duration": 10})
    out = simulate(sc)
    assert failed(out) == {"db_2013": 1}
    assert out["requests"]["completed"] == 1  # app1's read on db1


def test_a_new_connection_to_the_down_node_fails_at_once_with_2002(tmp_path: Path) -> None:
    """Pinned, per-request connections: app2's request at 2 s connects to db2 itself."""
    sc = galera(tmp_path, [(1.0, "r"), (2.0, "r")], {"start": 0.5, "duration": 10})
    out = simulate(sc)
    assert failed(out) == {"db_2002": 1}
    assert out["latency"]["max"] == pytest.approx(1.0)  # the failure took no time


def test_a_connection_opened_before_the_kill_is_gone_after_it(tmp_path: Path) -> None:
    """app2's request reads from db2 at 0.77-0.87 s and keeps the connection;
    its second read, at 1.53 s, after the kill at 1 s, fails with 2006."""
    sc = galera(tmp_path, [(0.0, "two"), (0.1, "two")], {"start": 1.0, "duration": 10})
    out = simulate(sc)
    assert failed(out) == {"db_2006": 1}
    assert out["requests"]["completed"] == 1


def test_the_nodes_left_keep_committing_and_recompute_flow_control(tmp_path: Path) -> None:
    arrivals = [(0.5 + 0.1 * k, "w") for k in range(100)]  # 0.5 .. 10.4 s
    sc = galera(tmp_path, arrivals, {"start": 3.0, "duration": 20}, duration=12)
    stack = Stack(sc)
    stack.source.start()
    tier = stack.database
    assert isinstance(tier, FaultyGaleraTier)
    run(stack.env, 2.9)
    assert (tier.fc_upper, tier.fc_lower) == flow_control_limits(16, 1.0, False, 3) == (28, 28)
    run(stack.env, 3.1)
    assert (tier.fc_upper, tier.fc_lower) == flow_control_limits(16, 1.0, False, 2) == (23, 23)
    assert tier.receivers == [tier.members[0], tier.members[2]]
    frozen = tier.members[1].last_committed
    run(stack.env, 12.0)
    db1, db2, db3 = tier.members
    assert db1.last_committed == db3.last_committed == tier.seqno > frozen
    assert db2.last_committed == frozen
    # every write of app1 (db1) committed; app2's (db2) fail from the kill on
    assert tier.members[0].c["local_commits"] == 50


# --------------------------------------------------------------------------- the proxy


def test_the_proxy_keeps_sending_to_the_dead_node_until_its_checks_fail(tmp_path: Path) -> None:
    """Proxy round robin, checks every 2 s (fall 3): a check of an address that
    answers nothing fails at its 2 s timeout and the next starts 2 s later, so
    db2 is marked down 9-12 s after the kill. A connection sent to it before
    that is retried 3 times at HAProxy's 5 s connect timeout: 2006 at 20 s."""
    gone = {"start": 0.0, "duration": 100, "connections": "unanswered"}
    arrivals = [(0.5 + 0.5 * k, "w") for k in range(40)]  # 0.5 .. 20 s
    sc = galera(tmp_path, arrivals, gone, routing={"mode": "proxy"}, duration=60)
    stack = Stack(sc)
    stack.source.start()
    tier = stack.database
    assert isinstance(tier, FaultyGaleraTier)
    run(stack.env, 8.0)
    assert tier.router.backends[1].up
    run(stack.env, 12.5)
    assert not tier.router.backends[1].up
    stuck = (PROXY_RETRIES + 1) * PROXY_CONNECT_TIMEOUT  # 20 s
    run(stack.env, 0.5 + stuck - 0.01)
    assert stack.observer.failed.get("db_2006", 0) == 0  # none answered before 20.5 s
    out = simulate(sc)
    lost = out["requests"]["failed"]["db_2006"]
    assert 1 <= lost <= 9 and lost + out["requests"]["completed"] == 40


def test_a_refusing_node_is_marked_down_and_skipped(tmp_path: Path) -> None:
    """A refused outage: each check of db2 fails at once, so 3 checks (at most
    6 s) mark it down; requests from 10 s on all go to db1 and db3."""
    refused = {"start": 0.0, "duration": 100, "connections": "refused"}
    arrivals = [(10.0 + 0.5 * k, "w") for k in range(10)]
    out = simulate(galera(tmp_path, arrivals, refused, routing={"mode": "proxy"}))
    assert out["requests"]["completed"] == 10


# --------------------------------------------------------------------------- rejoin


def test_the_node_rejoins_by_ist_and_is_synced_after_applying_what_it_missed(
    tmp_path: Path,
) -> None:
    """30 writes on app1 (db1) while db2 is away, each applied at 0.1 s on one
    applier: db2 restarts at 6 s, joins at 6 + rejoin (1 s), applies the 30
    missed write-sets one after the other (3 s), SYNCED at 10 s; the donor
    (db1) spends ist_send x 3 s of CPU."""
    arrivals = [(1.0 + 0.2 * k, "w") for k in range(30)]  # all to db1 (policy first)
    sc = galera(
        tmp_path,
        arrivals,
        {"start": 0.5, "duration": 5.5},
        duration=20,
        apply=0.1,
        rejoin=1.0,
        ist_send=0.2,
        routing={"mode": "proxy", "policy": "first"},
    )
    out = simulate(sc)
    ev = out["galera"]["membership"]["db2"]["1"]
    assert ev["lost"]["time"] == 0.5
    assert ev["joined"]["time"] == pytest.approx(7.0)
    assert ev["ist"] == {"writesets": 30, "donor_cpu": pytest.approx(0.2 * 3.0)}
    assert ev["synced"]["time"] == pytest.approx(10.0)
    assert ev["catch_up"] == pytest.approx(3.0)
    nodes = out["galera"]["nodes"]
    assert nodes["db2"]["wsrep_last_committed"] == nodes["db1"]["wsrep_last_committed"] == 30


def test_a_joined_node_answers_1047_until_it_is_synced(tmp_path: Path) -> None:
    """Pinned: app2's reads go to db2, which joins at 7 s and needs 3 s of
    IST; reads at 7.5 s and 9 s get 1047, one at 11 s is served."""
    writes = [(1.0 + 0.2 * k, "w") for k in range(30)]  # alternate app1/app2
    reads = [(7.4, "r"), (7.5, "r"), (8.9, "r"), (9.0, "r"), (10.9, "r"), (11.0, "r")]
    sc = galera(
        tmp_path,
        sorted(writes + reads),
        {"start": 0.5, "duration": 5.5},
        duration=20,
        apply=0.2,
        rejoin=1.0,
    )
    stack = Stack(sc)
    stack.source.start()
    tier = stack.database
    assert isinstance(tier, FaultyGaleraTier)
    run(stack.env, 7.2)
    assert tier.state[1] == JOINER
    run(stack.env, 15.0)
    assert tier.state[1] == SYNCED
    out = lbsim.simulate(sc).to_dict()
    assert out["requests"]["failed"]["db_1047"] == 2


def test_two_outages_of_one_node_and_one_of_another_each_rejoin(tmp_path: Path) -> None:
    """db2 away 1-4 s and 8-10 s, db3 (refused) 12-14 s, one at a time: each
    outage is a record of its own, every node ends SYNCED with the others."""
    arrivals = [(0.5 + 0.1 * k, "w") for k in range(190)]  # 0.5 .. 19.4 s
    sc = galera(tmp_path, arrivals, None, duration=25, rejoin=0.5)
    data = sc.model_dump(mode="json")
    data["database"]["nodes"][1]["outages"] = [
        {"start": 1, "duration": 3},
        {"start": 8, "duration": 2},
    ]
    data["database"]["nodes"][2]["outages"] = [{"start": 12, "duration": 2}]
    out = simulate(Scenario.model_validate(data))
    membership = out["galera"]["membership"]
    assert sorted(membership) == ["db2", "db3"]
    db2 = membership["db2"]
    assert sorted(db2) == ["1", "2"] and sorted(membership["db3"]) == ["1"]
    assert [db2[k]["lost"]["time"] for k in "12"] == [1.0, 8.0]
    assert [db2[k]["joined"]["time"] for k in "12"] == [4.5, 10.5]
    assert all(ev["synced"] for evs in membership.values() for ev in evs.values())
    committed = {n["wsrep_last_committed"] for n in out["galera"]["nodes"].values()}
    assert len(committed) == 1
