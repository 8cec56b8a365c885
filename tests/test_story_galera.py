"""Story 3, a slow Galera node, without Docker: the equivalent scenario the replay
runs (slowness as fewer cores), the latency as tc netem in the compose output,
the calibrated model's flow control in every variant, the paired Galera
metrics and their bounds, the story's loop with a fake stack, its report and
the CLI."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import lbsim
from lbsim.cli.app import app
from lbsim.experiment.run import simulate
from lbsim.scenario.loader import load_scenario
from lbsim.scenario.schema import Scenario
from lbsim.validation import ReplayUnsupported, StackOptions, generate_stack
from lbsim.validation.background import PhaseBackground
from lbsim.validation.calibration import Calibration, ClassCost
from lbsim.validation.campaign import CampaignOptions
from lbsim.validation.compose import db_cpu_limit
from lbsim.validation.docker import StackError
from lbsim.validation.levels import Adjust, Replay, judge, level_model
from lbsim.validation.lifecycle import parse_inspect
from lbsim.validation.slow_node import (
    GCOMM_PORT,
    apply_delays,
    delays,
    equivalent,
    netem_commands,
    replayed_lines,
)
from lbsim.validation.stories import catalogue, galera, galera_report
from lbsim.validation.stories.galera import (
    PAUSED,
    RECV_QUEUE_FLOOR,
    GaleraResult,
    node_metrics,
    on_applier,
    run_galera_story,
    variant_data,
)
from lbsim.validation.workplan import MachineCosts

pytestmark = pytest.mark.unit

STORY = catalogue.SLOW_GALERA_NODE

GALERA = """
name: g
workload:
  open: {rate: 10}
  classes:
    - name: a
      cpu: 0.01
      queries: [{kind: read, time: 0.001}, {kind: write, time: 0.002}]
database:
  engine: galera
  cores: 2
  nodes:
    - {name: db1}
    - {name: db2, applier_threads: 2}
    - {name: db3, slowness: 4.0, max_connections: 50}
"""


def _loads(text: str, *sets: str) -> tuple[dict[str, Any], Scenario]:
    raw = yaml.safe_load(text)
    return raw, lbsim.loads_scenario(text, overrides=list(sets))


# -- slowness: the equivalent scenario -----------------------------------------------------


def test_a_slow_node_is_replayed_and_predicted_as_fewer_cores_and_slowness_1() -> None:
    raw, sc = _loads(GALERA)
    data = equivalent(raw, sc)
    nodes = data["database"]["nodes"]
    assert nodes[2] == {"name": "db3", "max_connections": 50, "cores": 0.5}
    assert nodes[:2] == [{"name": "db1"}, {"name": "db2", "applier_threads": 2}]
    assert raw["database"]["nodes"][2]["slowness"] == 4.0  # the original is kept
    eq = lbsim.loads_scenario(yaml.safe_dump(data))
    db3 = eq.database.resolved_nodes()[2]  # type: ignore[union-attr]
    assert (db3.cores, db3.slowness, db3.max_connections) == (0.5, 1.0, 50)
    assert replayed_lines(sc) == [
        "db3: cores 2 x slowness 4 replayed as 0.5 cores, slowness 1 (in the model too)"
    ]


def test_a_cluster_without_a_slow_node_is_left_as_it_is() -> None:
    text = GALERA.split("  nodes:")[0] + "  nodes: 3\n"
    raw, sc = _loads(text)
    assert equivalent(raw, sc) == raw
    assert replayed_lines(sc) == []


def test_compose_refuses_slowness_naming_the_equivalent_and_runs_it(tmp_path: Path) -> None:
    raw, sc = _loads(GALERA)
    with pytest.raises(ReplayUnsupported, match=r"cores 2/4 and slowness 1.*equivalent"):
        generate_stack(sc, tmp_path, StackOptions(balancer="nginx"))
    eq = lbsim.loads_scenario(yaml.safe_dump(equivalent(raw, sc)))
    compose = yaml.safe_load(
        generate_stack(eq, tmp_path, StackOptions(balancer="nginx")).files["docker-compose.yml"]
    )
    svcs = compose["services"]
    assert [svcs[n]["cpus"] for n in ("db1", "db2")] == [2.0, 2.0]
    # below a core: the same share over a 10 ms CFS period (waits of 5 ms, not 50)
    assert (svcs["db3"]["cpu_quota"], svcs["db3"]["cpu_period"]) == (5000, 10000)
    assert "cpus" not in svcs["db3"]


@pytest.mark.parametrize(
    ("cores", "limit"),
    [
        (1.0, {"cpus": 1.0}),
        (2.5, {"cpus": 2.5}),
        (0.5, {"cpu_period": 10000, "cpu_quota": 5000}),
        (0.1, {"cpu_period": 10000, "cpu_quota": 1000}),
        (0.05, {"cpu_period": 20000, "cpu_quota": 1000}),  # the kernel's least quota
    ],
)
def test_a_database_below_one_core_gets_a_short_cfs_period(
    cores: float, limit: dict[str, float]
) -> None:
    got = db_cpu_limit(cores)
    assert got == limit
    if "cpu_quota" in got:
        assert got["cpu_quota"] / got["cpu_period"] == pytest.approx(cores)
    inspect = json.dumps([{"HostConfig": {"NanoCpus": 0, "CpuQuota": 1000, "CpuPeriod": 10000}}])
    assert parse_inspect(inspect)[0].cpus == pytest.approx(0.1)


def test_the_story_variants_are_written_as_their_equivalents() -> None:
    raw = yaml.safe_load(STORY.file.read_text())
    by = {v.name: variant_data(STORY, raw, v.overrides) for v in STORY.variants}
    slow, scenario = by["slow"]
    assert slow["database"]["nodes"][2] == {"name": "db3", "cores": 0.1}
    assert scenario.database.resolved_nodes()[2].slowness == 5.0  # type: ignore[union-attr]
    assert by["fc_limit_16"][0]["database"]["fc_limit"] == 16
    assert by["even"][0]["database"]["nodes"] == 3


# -- latency: tc netem -------------------------------------------------------------------


def test_latency_gives_that_node_alone_net_admin_and_netem_commands(tmp_path: Path) -> None:
    text = GALERA.replace("slowness: 4.0", "latency: 0.005")
    _, sc = _loads(text)
    assert delays(sc) == {"db3": 0.01}
    files = generate_stack(sc, tmp_path, StackOptions(balancer="nginx")).files
    services = yaml.safe_load(files["docker-compose.yml"])["services"]
    assert services["db3"]["cap_add"] == ["NET_ADMIN"]
    assert all("cap_add" not in services[n] for n in services if n != "db3")
    meta = json.loads(files["stack.json"])
    assert meta["netem"] == {"db3": netem_commands(0.01)}
    assert "delay db3" in files["docker-compose.yml"].splitlines()[3]
    assert "netem delay 10 ms" in replayed_lines(sc)[0]


def test_netem_delays_only_the_group_communication_port_at_either_end() -> None:
    cmds = [" ".join(c) for c in netem_commands(0.0025)]
    assert cmds[0].startswith("tc qdisc add dev eth0 root handle 1: prio bands 3 priomap 0")
    assert cmds[0].endswith(" 0" * 16)
    assert cmds[1] == "tc qdisc add dev eth0 parent 1:3 handle 30: netem delay 2500us"
    for end, cmd in zip(("dport", "sport"), cmds[2:], strict=True):
        assert f"match ip {end} {GCOMM_PORT} 0xffff flowid 1:3" in cmd


class FakeHandle:
    def __init__(self, fail_on: str = "", show: str = "qdisc netem 30: parent 1:3") -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.fail_on = fail_on
        self.show = show

    def exec(self, service: str, argv: list[str], timeout: float = 10.0) -> str:
        self.calls.append((service, argv))
        if self.fail_on and self.fail_on in argv:
            raise StackError(f"`{' '.join(argv)}` in {service} failed: {self.fail_on} refused")
        return self.show if argv[:2] == ["tc", "qdisc"] and "show" in argv else ""


def test_apply_delays_installs_netem_in_the_delayed_node_only() -> None:
    _, sc = _loads(GALERA.replace("slowness: 4.0", "latency: 0.001"))
    handle = FakeHandle()
    shown = apply_delays(handle, sc)  # type: ignore[arg-type]
    assert set(shown) == {"db3"} and "netem" in shown["db3"]
    assert {s for s, _ in handle.calls} == {"db3"}
    assert [a for _, a in handle.calls][:4] == netem_commands(0.002)


@pytest.mark.parametrize(
    ("handle", "match"),
    [
        (FakeHandle(fail_on="netem"), "db3.*latency 0.001 s.*refused: .*netem refused"),
        (FakeHandle(show="qdisc prio 1: root"), "db3.*shows no netem qdisc"),
    ],
)
def test_a_container_that_cannot_delay_makes_the_replay_unsupported(
    handle: FakeHandle, match: str
) -> None:
    _, sc = _loads(GALERA.replace("slowness: 4.0", "latency: 0.001"))
    with pytest.raises(ReplayUnsupported, match=match):
        apply_delays(handle, sc)  # type: ignore[arg-type]


def test_no_latency_no_tc() -> None:
    _, sc = _loads(GALERA)
    handle = FakeHandle()
    assert apply_delays(handle, sc) == {}  # type: ignore[arg-type]
    assert handle.calls == []


# -- the calibrated model of every variant -------------------------------------------------


def _calibration() -> Calibration:
    # the costs of scenarios/galera-writes.calibrated.yaml's machine, for this mix
    classes = [
        ClassCost("order", 25, 0.004, 0.006, 0.002, 0.0095, 0.003, 0.02, 0.017, 0.01, 4.0),
        ClassCost("view", 25, 0.004, 0.006, 0.001, 0.0015, 0.003, 0.012, 0.009, 0.002, 0.0),
    ]
    return Calibration(
        MachineCosts(9e-6, 6.7e-8),
        classes,
        host_cores=2.0,
        idle_cores=0.16,
        apply_cpu=0.00075,
        write_commit=0.0019,
        connect=0.0017,
        balancer_latency=0.0026,
        app_db=0.00027,
        background=0.05,
    )


def _model(variant: str, tmp_path: Path, seed: int = 29, applier: bool = True) -> dict[str, Any]:
    v = next(x for x in STORY.variants if x.name == variant)
    data, _ = variant_data(STORY, yaml.safe_load(STORY.file.read_text()), v.overrides)
    path = tmp_path / f"{variant}.yaml"
    path.write_text(yaml.safe_dump(data))
    base = load_scenario(path)
    cal = _calibration()
    model = level_model(
        path, data, base, cal, 40.0, cal.background, seed, (10.0, 60.0),
        tmp_path / f"{variant}.calibrated.yaml", adjust=on_applier if applier else None,
    )  # fmt: skip
    return simulate(model, replications=1).to_dict()


def test_the_calibrated_model_pauses_only_with_the_slow_node_and_fc_limit_4(
    tmp_path: Path,
) -> None:
    paused = {
        v.name: _model(v.name, tmp_path)["galera"]["flow_control"]["paused"] for v in STORY.variants
    }
    assert paused["slow"] > 0.1, paused
    assert paused["fc_limit_16"] < 0.02 and paused["even"] < 0.02, paused
    slow = _model("slow", tmp_path)
    sent = {n: c["wsrep_flow_control_sent"] for n, c in slow["galera"]["nodes"].items()}
    # db3 sends the FC_STOPs (db2, on full cores, now and then in a burst); db1 writes
    assert sent["db3"] > 100 and sent["db1"] == 0 and sent["db2"] < 0.05 * sent["db3"], sent
    assert slow["requests"]["failed"]["total"] == 0


def test_without_the_applier_assumption_a_slow_cpu_never_pauses(tmp_path: Path) -> None:
    # the calibration's receive CPU is off the queue's path: db3's queue drains at the
    # commit's pace whatever its cores (why the story sets on_applier)
    res = _model("slow", tmp_path, applier=False)
    assert res["galera"]["flow_control"]["paused"] < 0.01


def test_on_applier_moves_the_receive_cpu_onto_the_applier() -> None:
    data = {"database": {"engine": "galera", "receive": 0.00075, "apply": 0.0}}
    assert on_applier(copy.deepcopy(data))["database"] == {
        "engine": "galera",
        "receive": 0.0,
        "apply": 0.00075,
    }
    mysql = {"database": {"engine": "mysql"}}
    assert on_applier(copy.deepcopy(mysql)) == mysql


# -- the paired Galera metrics ------------------------------------------------------------


def _tree(paused: float, sent: float, queue: float, mean: float = 0.02) -> dict[str, Any]:
    node = {
        "wsrep_flow_control_paused": paused,
        "wsrep_flow_control_sent": sent,
        "wsrep_local_recv_queue_avg": queue,
    }
    quiet = {**node, "wsrep_flow_control_sent": 0.0, "wsrep_local_recv_queue_avg": 0.0}
    return {
        "throughput": 40.0,
        "latency": {"mean": mean, "p95": 3 * mean},
        "classes": {"order": {"latency": {"mean": 1.5 * mean, "p95": 4 * mean}}},
        "galera": {"nodes": {"db1": quiet, "db3": node}, "flow_control": {"paused": paused}},
        "database": {"commit_latency": {"mean": 0.005}},
    }


def _replay(rep: int, pred: dict[str, Any], meas: dict[str, Any]) -> Replay:
    bg = PhaseBackground("slow", 60.0, 0.1, 0.1, 0.1)
    errs = judge("slow-galera-node", 0.5, pred, meas)
    return Replay(0.5, 40.0, rep, 29 + rep, pred, meas, errs, bg)


def _metric(ms: list[Any], key: str) -> Any:
    return next(m for m in ms if m.metric == key)


def test_node_metrics_pair_paused_fc_stop_and_the_receive_queue() -> None:
    reps = [
        _replay(0, _tree(0.20, 800, 4.0), _tree(0.22, 700, 3.5)),
        _replay(1, _tree(0.25, 900, 4.4), _tree(0.24, 760, 4.0)),
        _replay(2, _tree(0.22, 850, 4.2), _tree(0.21, 820, 3.9)),
    ]
    ms = node_metrics("slow-galera-node", "slow", reps)
    assert [m.metric for m in ms[:3]] == [
        "galera.nodes.db1.wsrep_flow_control_paused",
        "galera.nodes.db1.wsrep_flow_control_sent",
        "galera.nodes.db1.wsrep_local_recv_queue_avg",
    ]
    paused = _metric(ms, "galera.nodes.db3.wsrep_flow_control_paused")
    assert paused.kind == "absolute" and paused.bound == 0.05
    assert paused.errors == pytest.approx([-0.02, 0.01, 0.01]) and paused.verdict == "within"
    sent = _metric(ms, "galera.nodes.db3.wsrep_flow_control_sent")
    assert sent.kind == "relative" and sent.bound == 0.25
    assert sent.errors == pytest.approx([100 / 700, 140 / 760, 30 / 820])
    # a node that sent nothing on either side: an absolute count, 0 error
    quiet = _metric(ms, "galera.nodes.db1.wsrep_flow_control_sent")
    assert quiet.kind == "absolute" and quiet.bound == 10 and quiet.errors == [0.0] * 3
    queue = _metric(ms, "galera.nodes.db3.wsrep_local_recv_queue_avg")
    assert queue.floor == RECV_QUEUE_FLOOR and queue.errors[0] == pytest.approx(0.5 / 3.5)
    empty = _metric(ms, "galera.nodes.db1.wsrep_local_recv_queue_avg")
    assert empty.errors == [0.0] * 3 and empty.verdict == "within"


def test_few_fc_stops_are_judged_in_messages_and_a_far_paused_fraction_misses() -> None:
    reps = [_replay(r, _tree(0.30 + r / 100, 12 + r, 2.0), _tree(0.05, 30, 2.0)) for r in range(3)]
    ms = node_metrics("s", "slow", reps)
    sent = _metric(ms, "galera.nodes.db3.wsrep_flow_control_sent")
    assert sent.kind == "absolute" and sent.errors == [-18.0, -17.0, -16.0]
    assert sent.verdict == "miss"
    assert _metric(ms, "galera.nodes.db3.wsrep_flow_control_paused").verdict == "miss"
    assert math.isclose(_metric(ms, "galera.nodes.db3.wsrep_local_recv_queue_avg").mean, 0.0)


def test_judge_adds_the_campaign_bounds_and_every_class() -> None:
    reps = [_replay(r, _tree(0.2, 800, 4.0), _tree(0.2, 800, 4.0, 0.03)) for r in range(3)]
    keys = [m.metric for m in galera.judge("s", "slow", reps)]
    for key in (
        "throughput",
        "latency.mean",
        PAUSED,
        "classes.order.latency.mean",
        "classes.order.latency.p95",
        "galera.nodes.db3.wsrep_flow_control_sent",
    ):
        assert key in keys
    lat = _metric(galera.judge("s", "slow", reps), "latency.mean")
    assert lat.level == "slow"
    assert lat.errors[0] == pytest.approx(-1 / 3) and lat.verdict == "miss"


# -- the story's loop, its report and the CLI (a fake stack) -------------------------------


class FakeSide:
    """Calibrates with fixed costs; 'measures' the calibrated model with another seed."""

    def __init__(self) -> None:
        self.calibrated: list[str] = []
        self.calls: list[tuple[str, int, float, Any]] = []
        self.costed: list[tuple[tuple[str, float], ...]] = []

    def calibrate(self, base: Scenario, options: CampaignOptions, say: Any) -> Calibration:
        self.calibrated.append(base.name)
        return _calibration()

    def node_costs(
        self, base: Scenario, nodes: Sequence[str], options: CampaignOptions, say: Any
    ) -> dict[str, float]:
        """db3 at 0.1 cores spends 1.2 x the calibrated cost per write-set."""
        self.costed.append(galera.db_cores(base))
        apply = _calibration().apply_cpu
        return {n: apply * (1.2 if n == "db3" else 1.0) for n in nodes}

    def replay(
        self, file: Path, raw: dict[str, Any], base: Scenario, cal: Calibration,
        options: CampaignOptions, level: float, rate: float, repetition: int,
        horizon: tuple[float, float], outdir: Path, say: Any, adjust: Adjust | None,
    ) -> Replay:  # fmt: skip
        self.calls.append((file.name, repetition, level, adjust))
        seed = base.seed + repetition
        model = level_model(
            file, raw, base, cal, rate, cal.background, seed, horizon,
            outdir / f"r{repetition}.yaml", adjust=adjust,
        )  # fmt: skip
        predicted = simulate(model, replications=1).to_dict()
        measured = simulate(model.model_copy(update={"seed": seed + 100}), replications=1).to_dict()
        bg = PhaseBackground("r", horizon[1], cal.background, cal.background, cal.background)
        errs = judge(base.name, level, predicted, measured)
        return Replay(level, rate, repetition, seed, predicted, measured, errs, bg)


def _options(**kw: Any) -> CampaignOptions:
    return CampaignOptions(levels=(), duration=15.0, warmup=5.0, repetitions=2, **kw)


def test_the_story_calibrates_once_and_interleaves_the_variants(tmp_path: Path) -> None:
    side = FakeSide()
    said: list[str] = []
    result = run_galera_story(STORY, side, _options(), tmp_path, say=said.append)
    assert side.calibrated == ["slow-galera-node"]
    assert [(f, r) for f, r, _, _ in side.calls] == [
        (f"slow-galera-node-{v}.yaml", r) for r in range(2) for v in ("slow", "fc_limit_16", "even")
    ]
    assert all(0 < lvl <= 1 for _, _, lvl, _ in side.calls)
    # the even stack is the calibrated one; slow and fc_limit_16 (db3 at 0.1 cores)
    # share one measurement of the nodes' CPU per write-set on their stack
    assert side.costed == [(("db1", 0.5), ("db2", 0.5), ("db3", 0.1))]
    assert result.cost_factors == {
        "slow": {"db2": 1.0, "db3": 1.2},
        "fc_limit_16": {"db2": 1.0, "db3": 1.2},
    }
    adjusts = {f: adj for f, _, _, adj in side.calls}
    assert adjusts["slow-galera-node-even.yaml"] is on_applier
    slow = adjusts["slow-galera-node-slow.yaml"]({"database": {"engine": "galera",
        "receive": 0.0007, "apply": 0.0, "nodes": [{"name": "db1"}, {"name": "db2"},
        {"name": "db3", "cores": 0.1}]}})  # fmt: skip
    assert slow["database"]["apply"] == 0.0007  # on the applier, as for every variant
    assert [n.get("write_set_cost") for n in slow["database"]["nodes"]] == [None, 1.0, 1.2]
    written = yaml.safe_load((tmp_path / "scenarios" / "slow-galera-node-slow.yaml").read_text())
    assert written["database"]["nodes"][2] == {"name": "db3", "cores": 0.1}
    assert result.rate == 40 and result.horizon == (5.0, 15.0)
    # 80 write-sets/s: db3 (0.1 cores) 80 x (1.2 x 0.75 ms / 0.1 + 1.9 ms), db2 (0.5) less
    assert result.appliers["slow"] == pytest.approx({"db2": 0.272, "db3": 0.872})
    assert result.appliers["even"]["db3"] == pytest.approx(0.272)
    assert result.replayed["slow"] and result.replayed["even"] == []
    assert result.mean("slow", "predicted", PAUSED) > 0.1
    assert result.mean("even", "predicted", PAUSED) < 0.02
    assert any("flow control paused" in s for s in said)
    assert set(result.metrics) == {"slow", "fc_limit_16", "even"}
    assert not result.not_valid()

    paths = galera_report.write(result, tmp_path / "report")
    data = json.loads(paths[0].read_text())
    assert data["story"] == "slow-galera-node" and data["repetitions"] == 2
    assert data["summary"]["slow"]["predicted"]["paused"] > 0.1
    md = paths[1].read_text()
    assert "db3: cores 0.5 x slowness 5 replayed as 0.1 cores" in md
    assert "| slow | galera.nodes.db3.wsrep_flow_control_paused |" in md
    assert "db3 FC_STOP sent" in md and "Verdict:" in md
    assert "busy share in the calibrated model, about: db2 27%, db3 87%" in md
    assert "(the model's write_set_cost): db2 x1, db3 x1.2" in md


def test_a_subset_of_variants_and_an_unknown_one(tmp_path: Path) -> None:
    side = FakeSide()
    result = run_galera_story(
        STORY, side, _options(), tmp_path, variants=["slow"], say=lambda s: None
    )
    assert list(result.replays) == ["slow"] and len(side.calls) == 2
    with pytest.raises(ValueError, match="no such variant"):
        run_galera_story(STORY, side, _options(), tmp_path, variants=["nope"])


def test_an_invalid_replay_fails_the_story() -> None:
    rep = _replay(0, _tree(0.2, 800, 4.0), _tree(0.2, 800, 4.0))
    rep.problems.append("the load generator fell behind")
    result = GaleraResult(STORY, _calibration(), 40.0, 80.0, (10.0, 60.0))
    result.replays = {"slow": [rep]}
    result.metrics = {"slow": galera.judge("s", "slow", [rep])}
    assert result.not_valid() == ["slow r1: the load generator fell behind"]
    assert not result.passed and result.level == 0.5


class MovedSide(FakeSide):
    """The machine moved under the first replay."""

    def replay(self, *args: Any, **kw: Any) -> Replay:
        one = super().replay(*args, **kw)
        if one.repetition == 0:
            one.problems.append("the CPU used outside the stack moved")
        return one


def test_a_replay_the_machine_moved_under_is_reported_not_judged(tmp_path: Path) -> None:
    opts = CampaignOptions(levels=(), duration=15.0, warmup=5.0, repetitions=3)
    result = run_galera_story(
        STORY, MovedSide(), opts, tmp_path, variants=["even"], say=lambda s: None
    )
    assert [r.valid for r in result.replays["even"]] == [False, True, True]
    assert result.not_valid() == ["even r1: the CPU used outside the stack moved"]
    lat = _metric(result.metrics["even"], "latency.mean")
    assert len(lat.measured) == 2  # the two valid replays
    valid = result.replays["even"][1:]
    expected = sum(r.measured["latency"]["mean"] for r in valid) / 2
    assert result.mean("even", "measured", "latency.mean") == pytest.approx(expected)
    assert not result.passed  # a story with a replay not valid does not pass


def test_cli_runs_the_galera_story_with_a_fake_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["story", "list"])
    assert "slow-galera-node" in listed.output
    monkeypatch.setattr(galera, "StackGaleraSide", FakeSide)
    monkeypatch.setattr("lbsim.validation.machine.machine", lambda: {"cpu": "test", "cores": 2})
    out = tmp_path / "story"
    done = runner.invoke(
        app,
        ["story", "slow-galera-node", "--repetitions", "1", "--duration", "10", "--out", str(out)],
    )
    assert done.exit_code in (0, 1), done.output  # 1: a metric missed (R=1, fake noise)
    data = json.loads((out / "story.json").read_text())
    assert data["duration"] == 10 and data["warmup"] == 10
    assert data["machine"]["cpu"] == "test"
    assert (done.exit_code == 0) == data["passed"]


class FakeCompose:
    """What lifecycle.up asks of compose: runs recorded, containers by service."""

    def __init__(self, directory: Path) -> None:
        self.runs: list[tuple[str, ...]] = []
        self.project = "p"
        self.directory = directory
        self.docker = type("D", (), {"docker": "docker", "compose": ["docker-compose"]})()

    def run(self, *args: str, timeout: float) -> Any:
        self.runs.append(args)

    def container_id(self, service: str) -> str:
        return f"id-{service}"


@pytest.mark.parametrize("tc_ok", [True, False])
def test_up_installs_the_delay_and_takes_the_stack_down_when_it_cannot(
    tc_ok: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from lbsim.validation import lifecycle

    monkeypatch.chdir(tmp_path)
    fake = FakeCompose(tmp_path)
    execs: list[list[str]] = []

    def run(argv: list[str], timeout: float = 0, **kw: Any) -> Any:
        if argv[:2] == ["docker", "exec"]:
            execs.append(argv[3:])
            if not tc_ok:
                return SimpleNamespace(returncode=2, stdout="", stderr="Error: qdisc kind unknown")
            return SimpleNamespace(returncode=0, stdout="qdisc netem 30:", stderr="")
        return SimpleNamespace(returncode=0, stdout="", stderr="")

    monkeypatch.setattr(lifecycle, "_compose", lambda s, o: fake)
    monkeypatch.setattr(lifecycle, "_images_missing", lambda c, o: False)
    monkeypatch.setattr(lifecycle, "_require_free_port", lambda port: None)
    monkeypatch.setattr(lifecycle, "wait_ready", lambda h, t: 0.0)
    monkeypatch.setattr(lifecycle, "run", run)
    _, sc = _loads(GALERA.replace("slowness: 4.0", "latency: 0.003"))
    opts = StackOptions(balancer="nginx")
    if tc_ok:
        handle = lifecycle.up(sc, opts)
        assert execs[:4] == netem_commands(0.006) and handle.meta["netem"]["db3"]
        assert fake.runs == [("down", "-v", "--remove-orphans")]
    else:
        with pytest.raises(ReplayUnsupported, match=r"db3.*qdisc kind unknown"):
            lifecycle.up(sc, opts)
        assert fake.runs == [("down", "-v", "--remove-orphans")] * 2
