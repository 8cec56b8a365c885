"""The calibration of a user's stack (``lbsim calibrate --target``) without Docker:
the statements per request from status counters, the user's topology in the
scenario, queries placed for classes the scenario left without, the capacity
of the first resource to saturate, the speed from the app's CPU, and the
measured requests carrying the model's demands of the same request."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from lbsim.scenario import loads_scenario
from lbsim.target.campaign import MeasuredRequest, _absolute_trace, measured_items
from lbsim.target.costs import TARGET_COSTS, app_speed, balancer_residual, first_per_class
from lbsim.target.http import TargetRequest
from lbsim.target.loader import loads_target
from lbsim.target.requests import target_plan
from lbsim.target.topology import (
    ClassStatements,
    NodeShape,
    Topology,
    apply_topology,
    own_status_counts,
    place_queries,
    statements_from_status,
    target_capacity,
)
from lbsim.validation.calibration import Calibration, ClassCost
from lbsim.validation.workplan import MachineCosts, work_plan

SCENARIO = """
name: wp
seed: 7
duration: 20
warmup: 0
workload:
  open: {rate: 10}
  classes:
    - {name: front, weight: 3, cpu: {dist: lognormal, mean: 0.05, cv: 1}}
    - {name: comment, weight: 1, cpu: 0.02, queries: [{kind: write, time: 0.001}]}
app: {nodes: 1, workers: 4, cores: 2}
database: {engine: mysql}
"""

TARGET = """
target: wp
compose: {project: wp}
services: {app: [app1, app2], database: [db]}
url: http://127.0.0.1:18299
requests:
  front: {path: /}
  comment:
    method: POST
    path: /wp-comments-post.php
    form: {comment_post_ID: "{id}", comment: "hello {n} {uuid}"}
    ids: {range: [1, 50]}
    expect: [302]
database: {engine: mysql, user: root, password: x}
"""


def _cost(name: str, app: float, db: float, latency: float, n: int = 10) -> ClassCost:
    return ClassCost(name, n, 0.05, app, 0.001, db, 0.0, latency, math.nan, math.nan, 0.0)


def _cal(*classes: ClassCost, cores: float = 2.0) -> Calibration:
    return Calibration(TARGET_COSTS, list(classes), cores, idle_cores=0.0)


def _status(**counters: int) -> dict[str, str]:
    return {k: str(v) for k, v in counters.items()}


def test_statements_per_request_less_what_reading_the_status_adds() -> None:
    first = {"db": _status(com_select=100, com_insert=5, connections=10)}
    second = {"db": _status(com_select=100, com_insert=5, connections=11)}
    own = own_status_counts(first, second)
    assert own["connections"] == 1 and own["com_select"] == 0
    before = {"db": _status(com_select=200, com_insert=5, com_update=1, connections=20)}
    # 10 requests: 25 selects each, 1 insert + 1 update each, one connection each;
    # the reading after them adds one connection of its own
    after = {"db": _status(com_select=450, com_insert=15, com_update=11, connections=31)}
    s = statements_from_status("front", 10, before, after, own)
    assert s == ClassStatements("front", 10, 25.0, 2.0, 1.0)


def test_statements_sum_over_galera_nodes_and_ignore_a_node_missing_after() -> None:
    before = {"db1": _status(com_select=0), "db2": _status(com_select=0), "db3": _status()}
    after = {"db1": _status(com_select=30), "db2": _status(com_select=10)}
    s = statements_from_status("x", 20, before, after, {})
    assert s.reads == 2.0 and s.writes == 0.0


def test_topology_replaces_the_app_nodes_with_the_containers() -> None:
    data = yaml.safe_load(SCENARIO)
    topo = Topology(
        [NodeShape("app1", 0.5, 4), NodeShape("app2", None, 8)],
        [NodeShape("db", 0.75, None, 151)],
        2.0,
    )
    out = apply_topology(data, topo)
    assert out["app"]["nodes"] == [
        {"name": "app1", "cores": 0.5, "workers": 4},
        {"name": "app2", "workers": 8},
    ]
    assert out["database"]["cores"] == 0.75 and out["database"]["max_connections"] == 151
    assert data["app"]["nodes"] == 1  # the input is not changed
    scenario = loads_scenario(yaml.safe_dump(out))
    nodes = scenario.app.resolved_nodes()
    assert [(n.name, n.cores, n.workers) for n in nodes] == [("app1", 0.5, 4), ("app2", 2, 8)]


def test_topology_models_a_quota_under_one_core_as_cfs_bandwidth() -> None:
    data = yaml.safe_load(SCENARIO)
    topo = Topology(
        [NodeShape("app1", 0.5, 4, cpu_period=0.1), NodeShape("app2", 2.0, 8, cpu_period=0.1)],
        [NodeShape("db", 0.75, None, 151, cpu_period=0.01)],
        2.0,
    )
    out = apply_topology(data, topo)
    # under one core by a quota: the kernel's period; a quota of 2 cores: shared
    assert out["app"]["nodes"] == [
        {"name": "app1", "cores": 0.5, "workers": 4, "cpu_period": 0.1},
        {"name": "app2", "cores": 2.0, "workers": 8},
    ]
    assert out["database"]["cpu_period"] == 0.01
    scenario = loads_scenario(yaml.safe_dump(out))
    assert [n.cpu_period for n in scenario.app.resolved_nodes()] == [0.1, None]
    galera = yaml.safe_load(SCENARIO)
    galera["database"] = {"engine": "galera", "nodes": 3}
    shapes = [NodeShape("db1", 1.0, cpu_period=0.1), NodeShape("db2", 0.1, cpu_period=0.01)]
    nodes = apply_topology(galera, Topology([NodeShape("app1")], shapes, 2.0))["database"]["nodes"]
    assert nodes == [
        {"name": "db1", "cores": 1.0},
        {"name": "db2", "cores": 0.1, "cpu_period": 0.01},
    ]


def test_topology_of_a_galera_target_names_its_nodes() -> None:
    data = yaml.safe_load(SCENARIO)
    data["database"] = {"engine": "galera", "nodes": 3}
    topo = Topology([NodeShape("app1")], [NodeShape(f"db{i}", 0.5) for i in (1, 2, 3)], 2.0)
    scenario = loads_scenario(yaml.safe_dump(apply_topology(data, topo)))
    db = scenario.database
    assert [n.name for n in db.resolved_nodes()] == ["db1", "db2", "db3"]  # type: ignore[union-attr]


def test_a_class_without_queries_gets_the_measured_database_time() -> None:
    data = yaml.safe_load(SCENARIO)
    cal = _cal(_cost("front", 0.05, 0.004, 0.06), _cost("comment", 0.02, 0.003, 0.03))
    stmts = [ClassStatements("front", 10, 30.0, 0.0, 1.0), ClassStatements("comment", 10, 5, 3, 1)]
    out, notes = place_queries(data, cal, stmts)
    front = out["workload"]["classes"][0]
    assert front["queries"] == [{"kind": "read", "time": 0.004}]
    # comment had its own queries: untouched (calibrate_scenario rescales them)
    assert out["workload"]["classes"][1]["queries"] == [{"kind": "write", "time": 0.001}]
    assert len(notes) == 1 and "front" in notes[0] and "30.0 reads" in notes[0]
    loads_scenario(yaml.safe_dump(out))


def test_reads_and_writes_share_the_database_time_by_count() -> None:
    data = yaml.safe_load(SCENARIO)
    data["workload"]["classes"][1].pop("queries")
    cal = _cal(_cost("front", 0.05, 0.0, 0.06), _cost("comment", 0.02, 0.004, 0.03))
    stmts = [ClassStatements("comment", 10, 3.0, 1.0, 1.0)]
    out, _ = place_queries(data, cal, stmts)
    assert out["workload"]["classes"][1]["queries"] == [
        {"kind": "read", "time": 0.003},
        {"kind": "write", "time": 0.001},
    ]
    assert "queries" not in out["workload"]["classes"][0]  # no database CPU: nothing placed


def test_capacity_is_the_first_resource_to_saturate() -> None:
    scenario = loads_scenario(SCENARIO)
    cal = _cal(_cost("front", 0.05, 0.001, 0.06), _cost("comment", 0.05, 0.001, 0.06), cores=8)
    # app: 2 × 0.5 cores / 0.05 s = 20/s; the machine: 8 / 0.051 = 157/s; db: 2 / 0.001
    topo = Topology([NodeShape("app1", 0.5), NodeShape("app2", 0.5)], [NodeShape("db", 2)], 8)
    assert target_capacity(cal, scenario, topo) == pytest.approx(20.0)
    # no CPU limits: each app container may use the whole machine; the machine limits
    free = Topology([NodeShape("app1"), NodeShape("app2")], [NodeShape("db")], 8)
    assert target_capacity(cal, scenario, free) == pytest.approx(8 / 0.051)
    # a slow database limits
    slow = _cal(_cost("front", 0.01, 0.2, 0.3), _cost("comment", 0.01, 0.2, 0.3), cores=8)
    tight = Topology([NodeShape("app1", 4)], [NodeShape("db", 1)], 8)
    assert target_capacity(slow, scenario, tight) == pytest.approx(5.0)


def test_speed_is_the_app_cpu_over_the_calibrated_cost_of_what_completed() -> None:
    cal = _cal(_cost("front", 0.05, 0, 0.06), _cost("comment", 0.02, 0, 0.03))
    assert app_speed(cal, {"front": 10, "comment": 5}, 0.6) == pytest.approx(1.0)
    assert app_speed(cal, {"front": 10, "comment": 5}, 0.72) == pytest.approx(1.2)
    assert math.isnan(app_speed(cal, {}, 1.0))


def test_balancer_latency_is_what_latency_holds_beyond_the_cpu() -> None:
    classes = [_cost("front", 0.05, 0.004, 0.06), _cost("comment", 0.02, 0.003, 0.035)]
    # residuals 6 ms and 12 ms, weights 3:1
    assert balancer_residual(classes, {"front": 3, "comment": 1}) == pytest.approx(0.0075)
    assert balancer_residual([_cost("x", 0.05, 0, 0.04)], {"x": 1}) == 0.0


def test_measured_requests_carry_their_classes_mean_demands() -> None:
    """A real request costs what the application does for it, not the model's
    draw: the measured mean of a class is set against its distribution's mean
    (with the draws, a sample of 15 posts above the mean made the calibrated
    WordPress post class 10 % cheaper than measured)."""
    scenario = loads_scenario(SCENARIO)
    target = loads_target(TARGET)
    items = list(measured_items(scenario, target))
    plans = list(work_plan(scenario, MachineCosts(), 1))
    requests = list(target_plan(scenario, target))
    assert len(items) == len(plans) == len(requests) > 100
    for item, plan, req in zip(items, plans, requests, strict=True):
        assert isinstance(item, TargetRequest)
        assert (item.index, item.time, item.cls_name, item.client) == (
            plan.index,
            plan.time,
            plan.cls_name,
            plan.client,
        )
        assert item.cpu == {"front": 0.05, "comment": 0.02}[item.cls_name]
        assert [q.demand for q in item.queries] == ([0.001] if item.cls_name == "comment" else [])
        assert [q.kind for q in item.queries] == [q.kind for q in plan.queries]
        assert item.http.method == req.http.method and item.http.expect == req.http.expect
    batches = first_per_class(items, ["front", "comment"], 5)
    assert {k: len(v) for k, v in batches.items()} == {"front": 5, "comment": 5}
    assert all(i.cls_name == k for k, v in batches.items() for i in v)
    assert isinstance(batches["comment"][0], MeasuredRequest)
    # a Galera target's writing class gets more of its requests, in trace order
    more = first_per_class(items, ["front", "comment"], 5, {"comment": 12})
    assert {k: len(v) for k, v in more.items()} == {"front": 5, "comment": 12}
    assert more["comment"][:5] == batches["comment"]
    assert [i.index for i in more["comment"]] == sorted(i.index for i in more["comment"])


def test_a_relative_trace_is_made_absolute_for_the_topology_scenario(tmp_path: Path) -> None:
    raw = {"workload": {"trace": "t.csv"}}
    assert _absolute_trace(raw, tmp_path)["workload"]["trace"] == str(tmp_path / "t.csv")


def _calibration_json(path: Path, cal: Calibration, **extra: object) -> Path:
    import json

    path.write_text(json.dumps({**cal.to_dict(), "capacity": 12.0, **extra}))
    return path


def test_a_what_if_reads_the_class_costs_and_statements_of_an_earlier_calibration(
    tmp_path: Path,
) -> None:
    from lbsim.target.campaign import earlier_calibration

    cal = _cal(_cost("front", 0.05, 0.004, 0.06), _cost("comment", 0.02, 0.003, 0.03))
    stmts = [{"name": "comment", "n": 10, "reads": 18.0, "writes": 2.0, "connections": 1.0}]
    path = _calibration_json(
        tmp_path / "calibration.json", cal, target={"name": "wp-single", "statements": stmts}
    )
    got, statements, source = earlier_calibration(path, loads_scenario(SCENARIO))
    assert got.by_name()["front"].app_cpu == 0.05 and got.costs == cal.costs
    assert statements == [ClassStatements("comment", 10, 18.0, 2.0, 1.0)]
    assert source == "wp-single"
    built_in = _calibration_json(tmp_path / "built-in.json", cal)  # lbsim's own stack
    assert earlier_calibration(built_in, loads_scenario(SCENARIO))[1:] == ([], "lbsim's stack")


def test_a_what_if_refuses_costs_without_every_class_or_not_a_calibration(
    tmp_path: Path,
) -> None:
    from lbsim.target.campaign import earlier_calibration
    from lbsim.validation.calibration import CalibrationError

    scenario = loads_scenario(SCENARIO)
    only_front = _calibration_json(tmp_path / "a.json", _cal(_cost("front", 0.05, 0.0, 0.06)))
    with pytest.raises(CalibrationError, match=r"a\.json: no costs for class\(es\) comment"):
        earlier_calibration(only_front, scenario)
    results = tmp_path / "results.json"
    results.write_text('{"throughput": 3.0}')
    with pytest.raises(CalibrationError, match=r"results\.json: not a calibration\.json"):
        earlier_calibration(results, scenario)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(CalibrationError, match=r"broken\.json: not a calibration\.json"):
        earlier_calibration(broken, scenario)


def test_the_low_load_trace_is_long_enough_for_a_rare_class() -> None:
    from lbsim.scenario.loader import load_scenario
    from lbsim.target.campaign import low_load_trace
    from lbsim.target.costs import LOW_LOAD_TRACE_SECONDS

    root = Path(__file__).resolve().parent.parent
    short = load_scenario(root / "validation" / "examples" / "wordpress" / "wordpress-galera.yaml")
    assert short.duration < LOW_LOAD_TRACE_SECONDS
    long = low_load_trace(short)
    assert long.duration == LOW_LOAD_TRACE_SECONDS
    assert long.workload == short.workload and long.seed == short.seed
    assert low_load_trace(long) is long
