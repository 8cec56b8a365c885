"""Experiments without simulating: variant grids, paired intervals, the knee, SLOs,
the cost model, plan selection and the sequential stopping rule (hand-computed values)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest

from lbsim.experiment.compare import paired_difference
from lbsim.experiment.cost import cost
from lbsim.experiment.knee import find_knee
from lbsim.experiment.metrics import MetricError, check_metric, flat_metrics, metric_value
from lbsim.experiment.plan import Plan, evaluate, order_by_cost
from lbsim.experiment.slo import SLOError, check_slo, joint_confidence, parse_slo
from lbsim.experiment.stopping import Fixed, TargetHalfWidth, make_rule, parse_target
from lbsim.experiment.store import PointResult
from lbsim.experiment.variants import VariantSpace, VaryError, parse_axes, parse_axis
from lbsim.scenario import ScenarioError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent

BASE: dict[str, Any] = {
    "name": "unit",
    "seed": 5,
    "duration": 10,
    "workload": {"open": {"rate": 10}, "classes": [{"name": "job", "cpu": 0.01}]},
    "balancer": {"policy": "round_robin"},
    "app": {"nodes": 2, "workers": 4, "cores": 2},
}

# Student-t quantiles with 2 degrees of freedom in closed form: (2p-1)/sqrt(2p(1-p))
T2_975 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # 4.302652729911275
T2_95 = 0.9 / math.sqrt(2 * 0.95 * 0.05)  # 2.919985580353725


def space() -> VariantSpace:
    return VariantSpace(copy.deepcopy(BASE), "<unit>")


# ----------------------------------------------------------------------- variants


@pytest.mark.parametrize(
    ("text", "key", "values"),
    [
        (
            "balancer.policy=round_robin,least_conn",
            "balancer.policy",
            ("round_robin", "least_conn"),
        ),
        ("workload.open.rate=50:400:25", "workload.open.rate", tuple(range(50, 401, 25))),
        ("workload.open.rate=0.5:1.5:0.25", "workload.open.rate", (0.5, 0.75, 1.0, 1.25, 1.5)),
        ("workload.open.rate=10:25:10", "workload.open.rate", (10, 20)),
        ("app.nodes=1..12", "app.nodes", tuple(range(1, 13))),
        ("app.nodes=3", "app.nodes", (3,)),
        ("database.sync_wait=true,false", "database.sync_wait", (True, False)),
        (
            "balancer.policy_options={interval: 1, metric: cpu},{interval: 4}",
            "balancer.policy_options",
            ({"interval": 1, "metric": "cpu"}, {"interval": 4}),
        ),
    ],
)
def test_parse_axis(text: str, key: str, values: tuple[Any, ...]) -> None:
    axis = parse_axis(text)
    assert axis.key == key
    assert axis.values == values


def test_integer_ranges_stay_integers() -> None:
    assert all(isinstance(v, int) for v in parse_axis("app.nodes=1:7:2").values)
    assert all(isinstance(v, int) for v in parse_axis("app.nodes=2..4").values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("app.nodes", "--vary: expected key=v1,v2,..."),
        ("=1,2", "--vary: expected key=v1,v2"),
        ("app.nodes=", "--vary app.nodes: no values"),
        ("app..nodes=1", "empty key part in 'app..nodes'"),
        ("app.nodes=1,,2", "--vary app.nodes: empty value"),
        ("app.nodes=5..1", "--vary app.nodes: last 1 is below first 5"),
        ("app.nodes=1..x", "--vary app.nodes: last must be a number, got 'x'"),
        ("app.nodes=1.5..3", "first..last takes whole numbers"),
        ("workload.open.rate=10:5:1", "stop 5 is below start 10"),
        ("workload.open.rate=1:5:0", "step must be > 0"),
        ("workload.open.rate=a:5:1", "--vary workload.open.rate: start must be a number, got 'a'"),
        ("workload.open.rate=0:1e9:1", "more than 10000"),
        ("app.nodes=2,2", "value 2 is given twice"),
    ],
)
def test_parse_axis_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(VaryError) as err:
        parse_axis(text)
    assert message in str(err.value)


def test_a_key_varied_twice_is_an_error() -> None:
    with pytest.raises(VaryError, match=r"--param app\.nodes: the key is varied twice"):
        parse_axes(["app.nodes=1,2", "app.nodes=3"], "--param")


def test_grid_is_every_combination_first_axis_slowest_and_base_untouched() -> None:
    sp = space()
    before = sp.data()
    axes = parse_axes(["app.nodes=1,2", "balancer.policy=round_robin,least_conn,random"])
    variants = sp.grid(axes)
    assert [(v.scenario.app.nodes, v.scenario.balancer.policy) for v in variants] == [
        (1, "round_robin"),
        (1, "least_conn"),
        (1, "random"),
        (2, "round_robin"),
        (2, "least_conn"),
        (2, "random"),
    ]
    assert variants[4].label == "nodes=2, policy=least_conn"
    assert variants[4].assignments == {"app.nodes": 2, "balancer.policy": "least_conn"}
    assert sp.data() == before  # the base was not mutated
    assert sp.base.app.nodes == 2
    # the same seed everywhere: common random numbers
    assert {v.scenario.seed for v in variants} == {5}


def test_one_axis_labels_are_the_values() -> None:
    variants = space().grid(parse_axes(["balancer.policy=round_robin,least_conn"]))
    assert [v.label for v in variants] == ["round_robin", "least_conn"]


def test_variant_key_ignores_replications_but_not_the_scenario() -> None:
    sp = space()
    a = sp.variant({"app.nodes": 3})
    b = sp.variant({"app.nodes": 3, "replications": 7})
    c = sp.variant({"app.nodes": 4})
    assert a.key == b.key
    assert a.key != c.key


def test_a_bad_variant_is_a_scenario_error_naming_the_key() -> None:
    with pytest.raises(ScenarioError) as err:
        space().grid(parse_axes(["app.nodes=2,0"]))
    text = str(err.value)
    assert "app.nodes" in text
    assert "(in variant app.nodes=0)" in text
    with pytest.raises(ScenarioError) as err:
        space().grid(parse_axes(["app.nodez=2,3"]))
    assert "app.nodez: unknown key; did you mean 'nodes'?" in str(err.value)
    with pytest.raises(ScenarioError) as err:
        space().grid(parse_axes(["balancer.policy=round_robin,lest_conn"]))
    assert "balancer.policy" in str(err.value)
    assert "lest_conn" in str(err.value)


def test_variants_of_a_file_keep_its_overrides(tmp_path: Path) -> None:
    sp = VariantSpace.from_file(ROOT / "scenarios" / "mixed.yaml", ["app.workers=5"], seed=9)
    (v,) = sp.grid(parse_axes(["app.nodes=4"]))
    assert (v.scenario.app.nodes, v.scenario.app.workers, v.scenario.seed) == (4, 5, 9)


# ----------------------------------------------------------------------- paired CI


def test_paired_difference_by_hand() -> None:
    # d = [1, 2, 2]: mean 5/3, s² = 1/3, s/√n = 1/3, t(0.975, 2) = 4.3027
    mean, half = paired_difference([1.0, 2.0, 3.0], [2.0, 4.0, 5.0])
    assert mean == pytest.approx(5 / 3, rel=1e-12)
    assert half == pytest.approx(T2_975 / 3, rel=1e-9)
    assert half == pytest.approx(1.434217576637, rel=1e-9)


def test_paired_difference_is_narrower_than_unpaired_under_common_noise() -> None:
    noise = [0.0, 10.0, -7.0, 3.0]
    base = [5 + n for n in noise]
    other = [4 + n for n in noise]  # shifted by exactly -1 in every replication
    mean, half = paired_difference(base, other)
    assert mean == pytest.approx(-1.0)
    assert half == pytest.approx(0.0)


def test_paired_difference_needs_pairs() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        paired_difference([1.0, 2.0], [1.0])
    mean, half = paired_difference([1.0], [3.0])
    assert mean == 2.0
    assert math.isnan(half)


# ----------------------------------------------------------------------- knee


def test_knee_is_first_point_above_factor_times_low_load() -> None:
    x = [50, 100, 150, 200, 250]
    y = [0.10, 0.12, 0.19, 0.21, 0.90]
    knee = find_knee(x, y)
    assert knee is not None
    assert (knee.index, knee.x, knee.y, knee.baseline, knee.threshold) == (3, 200, 0.21, 0.1, 0.2)


def test_knee_in_unsorted_input_and_other_factor() -> None:
    knee = find_knee([250, 50, 150], [0.9, 0.1, 0.19], factor=1.5)
    assert knee is not None
    assert (knee.index, knee.x) == (2, 150)


def test_no_knee() -> None:
    assert find_knee([1, 2, 3], [0.1, 0.15, 0.2]) is None  # never above 2× (0.2 is not > 0.2)
    assert find_knee([1], [0.1]) is None
    assert find_knee([1, 2], [0.0, 5.0]) is None  # no positive baseline
    assert find_knee([1, 2, 3], [0.1, math.nan, 0.3]) is not None
    with pytest.raises(ValueError, match="factor must be > 1"):
        find_knee([1, 2], [1, 2], factor=1)


# ----------------------------------------------------------------------- metrics, SLOs


def run(p95: float, failed: int = 0, arrived: int = 1000, cpu: tuple[float, ...] = (0.5,)) -> dict:
    return {
        "requests": {"arrived": arrived, "failed": {"total": failed}},
        "latency": {"p95": p95},
        "utilisation": {"app": {f"app{i + 1}": {"cpu": c} for i, c in enumerate(cpu)}},
        "run": {"replication": 0, "wall_time": 1.0},
    }


def test_derived_metrics() -> None:
    r = run(0.3, failed=5, arrived=1000, cpu=(0.4, 0.9))
    assert metric_value(r, "failed") == 0.005
    assert metric_value(r, "cpu") == 0.9
    assert metric_value(r, "p95") == 0.3
    assert "run.wall_time" not in flat_metrics(r)
    assert metric_value(run(0.1, arrived=0), "failed") == 0.0
    assert math.isnan(metric_value(r, "db_cpu"))


def test_unknown_metric_names_suggest() -> None:
    with pytest.raises(
        MetricError, match=r"unknown metric 'latency\.p59'; did you mean 'latency\.p95'"
    ):
        check_metric("latency.p59", flat_metrics(run(0.1)))
    assert check_metric("p95", flat_metrics(run(0.1))) == "latency.p95"


@pytest.mark.parametrize(
    ("text", "metric", "op", "threshold"),
    [
        ("p95<0.3", "latency.p95", "<", 0.3),
        ("failed < 0.001", "failed", "<", 0.001),
        ("cpu<=0.8", "cpu", "<=", 0.8),
        ("throughput>50", "throughput", ">", 50.0),
        ("classes.report.latency.p99<2", "classes.report.latency.p99", "<", 2.0),
    ],
)
def test_parse_slo(text: str, metric: str, op: str, threshold: float) -> None:
    slo = parse_slo(text)
    assert (slo.metric, slo.op, slo.threshold) == (metric, op, threshold)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p95", "--slo 'p95': expected metric<threshold"),
        ("p95<fast", "--slo 'p95<fast': the threshold 'fast' is not a number"),
        ("p95=0.3", "expected metric<threshold"),
        ("p95<inf", "the threshold must be finite"),
    ],
)
def test_parse_slo_errors(text: str, message: str) -> None:
    with pytest.raises(SLOError) as err:
        parse_slo(text)
    assert message in str(err.value)


def test_slo_confidence_by_hand() -> None:
    # values 0.2, 0.25, 0.3: mean 0.25, s = 0.05, s/√3 = 0.028868; t = 0.05/0.028868 = √3
    # t-distribution CDF with 2 df: 1/2 + t / (2 √(2 + t²)) = 0.5 + √3 / (2 √5)
    chk = check_slo(parse_slo("p95<0.3"), [0.2, 0.25, 0.3])
    se = 0.05 / math.sqrt(3)
    assert chk.mean == pytest.approx(0.25)
    assert chk.confidence == pytest.approx(0.5 + math.sqrt(3) / (2 * math.sqrt(5)), rel=1e-9)
    assert chk.bound == pytest.approx(0.25 + T2_95 * se, rel=1e-9)
    assert chk.headroom == pytest.approx((0.3 - chk.bound) / 0.3, rel=1e-9)
    assert not chk.met  # 0.887 < 0.95: the bound 0.334 is above 0.3
    loose = check_slo(parse_slo("p95<0.4"), [0.2, 0.25, 0.3])
    assert loose.met
    assert loose.bound == pytest.approx(chk.bound)


def test_slo_floor_and_degenerate_cases() -> None:
    floor = check_slo(parse_slo("throughput>10"), [12.0, 13.0, 14.0])
    assert floor.met
    assert floor.bound == pytest.approx(13 - T2_95 * 1 / math.sqrt(3))
    zero = check_slo(parse_slo("failed<0.001"), [0.0, 0.0, 0.0])
    assert (zero.confidence, zero.bound, zero.headroom, zero.met) == (1.0, 0.0, 1.0, True)
    over = check_slo(parse_slo("failed<0.001"), [0.01, 0.01])
    assert (over.confidence, over.met) == (0.0, False)
    one = check_slo(parse_slo("p95<1"), [0.1])
    assert math.isnan(one.confidence)
    assert not one.met
    missing = check_slo(parse_slo("p95<1"), [0.1, math.nan])
    assert not missing.met


def test_joint_confidence_is_bonferroni() -> None:
    a = check_slo(parse_slo("p95<0.4"), [0.2, 0.25, 0.3])
    b = check_slo(parse_slo("failed<0.001"), [0.0, 0.0, 0.0])
    assert joint_confidence([a, b]) == pytest.approx(a.confidence)
    c = check_slo(parse_slo("p95<0.3"), [0.2, 0.25, 0.3])
    assert joint_confidence([a, c]) == pytest.approx(max(0, a.confidence + c.confidence - 1))


# ----------------------------------------------------------------------- cost and plan


def test_cost_is_cores_of_app_and_database_nodes() -> None:
    sp = space()
    assert cost(sp.base) == 4  # 2 app nodes × 2 cores
    v = sp.variant({"app.nodes": 3, "app.cores": 4})
    assert cost(v.scenario) == 12
    galera = sp.variant({"database": {"engine": "galera", "nodes": 3, "cores": 2}, "app.nodes": 1})
    assert cost(galera.scenario) == 2 + 6
    mysql = sp.variant({"database": {"engine": "mysql", "cores": 8}})
    assert cost(mysql.scenario) == 4 + 8
    hosted = sp.variant(
        {
            "hosts": [{"name": "big", "cores": 6}],
            "app.nodes": [{"host": "big"}, {"host": "big"}, {}],
        }
    )
    assert cost(hosted.scenario) == 6 + 2  # the host once, plus the unplaced node


def plan_of(p95_by_nodes: dict[int, list[float]], slos: list[str]) -> Plan:
    sp = space()
    axes = parse_axes([f"app.nodes={','.join(str(n) for n in p95_by_nodes)}"])
    candidates = order_by_cost(sp.grid(axes))
    parsed = [parse_slo(s) for s in slos]
    for c in candidates:
        values = p95_by_nodes[c.variant.scenario.app.nodes]
        c.point = PointResult(c.variant, {r: run(v) for r, v in enumerate(values)})
        c.checks = evaluate(parsed, c.point)
    return Plan(parsed, axes, candidates)


def test_plan_chooses_the_cheapest_configuration_meeting_every_slo() -> None:
    plan = plan_of(
        {
            4: [0.10, 0.11, 0.12],
            1: [2.0, 2.5, 3.0],
            3: [0.20, 0.25, 0.30],  # mean within 0.3 but not with 95 % confidence
            2: [0.9, 1.0, 1.1],
        },
        ["p95<0.3", "failed<0.001"],
    )
    assert [c.cost for c in plan.candidates] == [2, 4, 6, 8]  # cheapest first
    chosen = plan.chosen
    assert chosen is not None
    assert chosen.variant.scenario.app.nodes == 4
    assert chosen.confidence == pytest.approx(chosen.checks[0].confidence)
    assert [c.met for c in plan.candidates] == [False, False, False, True]
    frame = plan.frame
    assert list(frame["met"]) == [False, False, False, True]
    assert plan.to_dict()["chosen"]["assignments"] == {"app.nodes": 4}


def test_plan_with_nothing_meeting_the_slos() -> None:
    plan = plan_of({1: [1.0, 1.1], 2: [0.9, 1.0]}, ["p95<0.3"])
    assert plan.chosen is None
    assert plan.to_dict()["chosen"] is None


def test_order_by_cost_keeps_grid_order_on_ties() -> None:
    sp = space()
    cands = order_by_cost(sp.grid(parse_axes(["app.nodes=4,2,1", "app.cores=1,2"])))
    assert [(c.variant.scenario.app.nodes, c.variant.scenario.app.cores) for c in cands] == [
        (1, 1),
        (2, 1),
        (1, 2),
        (4, 1),  # 4 cores, before (2, 2) which comes later in the grid
        (2, 2),
        (4, 2),
    ]


# ----------------------------------------------------------------------- stopping rules


def test_fixed_rule() -> None:
    rule = Fixed(4)
    assert rule.next_count([]) == 4
    assert rule.next_count([run(0.1)] * 6) == 6
    with pytest.raises(ValueError, match="replications must be >= 1"):
        Fixed(0)


def test_sequential_rule_by_hand() -> None:
    rule = TargetHalfWidth("p95", 0.05, maximum=10)
    assert rule.next_count([]) == 3
    assert rule.next_count([run(0.1)]) == 3
    # half-width of [1, 2, 3] is t(0.975, 2) · 1/√3 = 2.484; (2.484/0.05)² · 3 ≫ 6: doubles
    assert rule.next_count([run(1.0), run(2.0), run(3.0)]) == 6
    # small spread: done
    assert rule.next_count([run(1.0), run(1.001), run(1.002)]) == 3
    # projection below doubling: h = 4.3027 · 0.01/√3 = 0.02484 vs 0.02 → ceil(3 · 1.543) = 5
    tight = TargetHalfWidth("p95", 0.02, maximum=10)
    assert tight.next_count([run(1.0), run(1.01), run(1.02)]) == 5
    # the cap
    assert rule.next_count([run(float(i)) for i in range(8)]) == 10
    assert rule.next_count([run(float(i)) for i in range(10)]) == 10


def test_rule_options() -> None:
    assert make_rule(None, None, 3) == Fixed(3)
    assert make_rule(5, None, 3) == Fixed(5)
    rule = make_rule(None, "p95=0.01", 3, 12)
    assert rule == TargetHalfWidth("p95", 0.01, maximum=12)
    with pytest.raises(ValueError, match="either a fixed number of replications or --target-ci"):
        make_rule(4, "p95=0.01", 3)
    with pytest.raises(ValueError, match="--target-ci p95: the half-width must be a number"):
        parse_target("p95=small", 10)
    with pytest.raises(ValueError, match="--target-ci: expected metric=half-width"):
        parse_target("p95", 10)
    with pytest.raises(ValueError, match="the half-width must be > 0"):
        parse_target("p95=0", 10)
    with pytest.raises(ValueError, match="--max-replications must be >= 3"):
        parse_target("p95=0.1", 2)
