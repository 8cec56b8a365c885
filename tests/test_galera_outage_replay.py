"""Replaying a Galera node outage (no Docker): the injector kills and starts the
node's container, the compose project accepts it and its DB proxy checks as
the model does, and a node restarted in the window leaves the wsrep counters."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from lbsim.scenario.schema import Scenario
from lbsim.validation import configs
from lbsim.validation.compose import generate_stack
from lbsim.validation.faults import Fault, Injector, planned
from lbsim.validation.policies import ReplayUnsupported
from lbsim.validation.replay import Window
from tests.support import scenario

pytestmark = pytest.mark.unit


def galera(outage: dict[str, float], **routing: object) -> Scenario:
    return scenario(
        {
            "duration": 30,
            "workload": {
                "open": {"rate": 5},
                "classes": [
                    {"name": "a", "cpu": 0.01, "queries": [{"kind": "write", "time": 0.001}]}
                ],
            },
            "database": {
                "engine": "galera",
                "nodes": [{"name": "db1"}, {"name": "db2", "outages": [outage]}, {"name": "db3"}],
                "routing": {"mode": "proxy", **routing},
            },
        }
    )


def test_a_galera_node_outage_is_planned_like_an_app_node_outage() -> None:
    assert planned(galera({"start": 5, "duration": 10})) == [Fault("db2", 5.0, 15.0)]


def test_the_injector_kills_and_starts_the_database_container() -> None:
    calls: list[list[str]] = []

    def fake(argv: Sequence[str], timeout: float) -> str:
        calls.append(list(argv))
        return "172.18.0.4/02:42:ac:12:00:04" if argv[0] == "inspect" else ""

    class Stack:
        def container_id(self, service: str) -> str:
            return f"id-{service}"

    injector = Injector.for_stack(galera({"start": 1, "duration": 2}), Stack(), fake)
    assert injector is not None
    for _, hook in injector.hooks():
        hook()
    events = injector.finish()
    assert [(e.node, e.action, e.ok) for e in events] == [
        ("db2", "kill", True),
        ("db2", "start", True),
    ]
    assert ["kill", "--signal", "KILL", "id-db2"] in calls and ["start", "id-db2"] in calls
    assert injector.problems() == []


def test_an_outage_ending_at_the_horizon_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReplayUnsupported, match="db2"):
        generate_stack(galera({"start": 5, "duration": 25}), tmp_path)
    generate_stack(galera({"start": 5, "duration": 20}), tmp_path)


def test_the_db_proxy_checks_as_the_scenario_says(tmp_path: Path) -> None:
    check = {"interval": 1.5, "fall": 2, "rise": 4}
    files = generate_stack(galera({"start": 5, "duration": 5}, health_check=check), tmp_path)
    cfg = files.files["dbproxy/haproxy.cfg"]
    assert "server db2 db2:3306 check inter 1500ms fall 2 rise 4" in cfg
    assert "redispatch" not in cfg and "retries" not in cfg  # HAProxy's retries 3, as modelled
    assert "check inter 2s fall 3 rise 2" in configs.haproxy_db_cfg("round_robin", ["db1"], "s")


def test_a_node_restarted_in_the_window_leaves_the_galera_counters() -> None:
    window = Window.__new__(Window)
    window.t_start, window.t_end = 0.0, 30.0
    status = {"uptime": "3600", "wsrep_replicated": "10", "wsrep_received": "5"}
    window.status_start = {"db1": status, "db2": status}
    window.status_end = {
        "db1": {**status, "wsrep_replicated": "50"},
        "db2": {**status, "uptime": "12"},
    }
    block = window.galera_block()
    assert list(block["nodes"]) == ["db1"]
