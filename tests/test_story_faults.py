"""Story app-node-crash without Docker: the per-second timeline (burst, dip,
recovery) on synthetic series, the kill/start hooks with a fake docker, the
model side on the story's scenario, the paired timeline metrics, the report
and the CLI with a fake live side."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lbsim.cli.app import app
from lbsim.scenario.database import Galera
from lbsim.scenario.loader import loads_scenario
from lbsim.scenario.schema import Scenario
from lbsim.validation import timeline as tl
from lbsim.validation.docker import StackError
from lbsim.validation.faults import (
    STATE_TIMES,
    Fault,
    Injector,
    as_injected,
    docker_time,
    planned,
)
from lbsim.validation.loadgen import CONNECT_ERROR, NOT_SENT, TIMEOUT, Record
from lbsim.validation.stories import catalogue, faults_report
from lbsim.validation.stories import faults as story_faults
from lbsim.validation.stories.faults import (
    FaultModelSide,
    Timeline,
    duration_bound,
    fault_window,
    live_series,
    phase_counts,
    run_fault_story,
    timeline_metrics,
)
from lbsim.validation.stories.harness import Counts

STORY = catalogue.APP_NODE_CRASH
WORKLOAD = "workload: {open: {rate: 1}, classes: [{name: a, cpu: 0.01}]}\n"
WINDOW = tl.FaultWindow(warmup=5.0, start=20.0, end=35.0, horizon=60.0)


# -- the timeline ---------------------------------------------------------------------


def _series(completed: Sequence[int], failed: Sequence[int] | None = None) -> tl.Series:
    return tl.Series(list(completed), list(failed or [0] * len(completed)))


def test_answers_are_binned_by_the_second_they_reached_the_client() -> None:
    s = tl.bin_answers(
        [(0.0, "completed"), (0.99, "completed"), (1.0, "http_502"), (2.5, "timeout"),
         (3.0, "completed"), (-1.0, "completed"), (math.nan, "completed")],
        horizon=3.0,
    )  # fmt: skip
    assert s.completed == [2, 0, 0] and s.failed == [0, 1, 1]
    assert s.by_reason == {"http_502": [0, 1, 0], "timeout": [0, 0, 1]}


def test_bursts_join_failing_seconds_at_most_join_apart() -> None:
    failed = [1, 0, 0, 2, 1, 0, 0, 1, 0, 0, 0, 0, 5]
    # from bin 3: 3, 4, 7 (3 apart: joined), then 12 (5 apart: a new burst)
    found = tl.bursts(failed, from_bin=3)
    assert [(b.first, b.last, b.failures) for b in found] == [(3, 7, 4), (12, 12, 5)]
    assert found[0].duration == 5.0
    assert len(tl.bursts(failed, from_bin=3, join=2)) == 3
    assert tl.bursts([0, 0, 0]) == []


def test_summary_of_a_crash_burst_dip_and_recovery() -> None:
    completed = [30] * 60
    failed = [0] * 60
    completed[20:24] = [20, 18, 15, 19]  # the dead node's share fails until ejected
    failed[20:24] = [10, 12, 15, 11]
    failed[30] = 1  # one probe after fail_timeout: 6 s later, another burst
    completed[35:38] = [24, 25, 26]  # after the restart: back within 10 % from 38
    s = tl.summarise(_series(completed, failed), WINDOW)
    assert s.pre_fault == 30.0
    assert s.burst_count == 2 and s.bursts == [(20, 23, 48), (30, 30, 1)]
    assert s.burst_duration == 11.0  # first failing second 20 to the end of 30
    assert s.first_failure == 0.0 and s.failures == 49
    assert s.dip_min == 15.0 and s.dip == pytest.approx(0.5)
    # 35..37 averages 25 < 27; 36..38 averages 27 >= 27: recovered 1 s after the restart
    assert s.recovery == 1.0


def test_no_failure_no_burst_and_a_run_that_never_recovers() -> None:
    completed = [30] * 20 + [10] * 40
    s = tl.summarise(_series(completed), WINDOW)
    assert s.burst_count == 0 and s.burst_duration == 0.0 and math.isnan(s.first_failure)
    # never back within 10 %: censored at the horizon (60 - 35 s), a lower bound
    assert s.recovery == 25.0 and not s.recovered and s.dip_min == 10.0
    assert math.isnan(tl.recovery_time([30] * 10, 2.0, math.nan))


def test_recovery_is_counted_from_the_restart_not_from_its_bin() -> None:
    # restart at 35.4: the bin 35 already meets the target, recovery floors at 0
    assert tl.recovery_time([30] * 60, 35.4, 30.0) == 0.0
    assert tl.recovery_time([0] * 36 + [30] * 24, 35.0, 30.0) == 1.0


def test_model_rows_become_a_per_second_series() -> None:
    rows = [{"time": t + 1.0, "throughput": 30.0, "failure_rate": float(t == 2)} for t in range(4)]
    s = tl.from_rows(rows, 4.0)
    assert s.completed == [30, 30, 30, 30] and s.failed == [0, 0, 1, 0]
    with pytest.raises(ValueError, match="1 s"):
        tl.from_rows([{"time": 2.0, "throughput": 1.0, "failure_rate": 0.0}] * 1, 10.0)


def test_live_records_are_binned_by_answer_time_with_their_reason() -> None:
    def rec(sent: float, latency: float, status: int) -> Record:
        return Record(0, "page", 0, sent, sent=sent, latency=latency, status=status)

    records = [rec(1.0, 0.5, 200), rec(1.2, 10.0, TIMEOUT), rec(2.0, 0.1, CONNECT_ERROR),
               rec(2.1, 0.1, 502), Record(0, "page", 0, 3.0, status=NOT_SENT)]  # fmt: skip
    s = live_series(records, 20.0)
    assert s.completed[1] == 1 and s.failed[11] == 1 and s.failed[2] == 2
    assert set(s.by_reason) == {"timeout", "connect_error", "http_502"}
    counts = phase_counts(s, tl.FaultWindow(0.0, 2.0, 10.0, 20.0))
    assert counts == {"failed_outage": 2, "failed_after": 1}


# -- the hooks ----------------------------------------------------------------------


class FakeDocker:
    """Records docker commands; ``slow`` seconds per kill; fails what ``fail`` names."""

    def __init__(
        self,
        slow: float = 0.0,
        fail: str = "",
        addresses: Sequence[str] = (),
        states: dict[str, str] | None = None,
    ) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.slow = slow
        self.fail = fail
        self.addresses = list(addresses) or ["172.18.0.3"]
        #: State.FinishedAt / StartedAt by action (docker's zero time: unknown)
        self.states = states or {}
        self.lock = threading.Lock()

    def __call__(self, argv: Sequence[str], timeout: float) -> str:
        assert 0 < timeout <= 60
        with self.lock:
            self.calls.append(tuple(argv))
        for action, template in STATE_TIMES.items():
            if argv[0] == "inspect" and argv[2] == template:
                return self.states.get(action, "0001-01-01T00:00:00Z") + "\n"
        if argv[0] == "inspect":
            with self.lock:
                return self.addresses.pop(0) if len(self.addresses) > 1 else self.addresses[0]
        if argv[0] == "kill" and self.slow:
            time.sleep(self.slow)
        if argv[0] == self.fail:
            raise StackError(f"`docker {' '.join(argv)}` failed: no such container")
        return ""

    def actions(self) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[0] != "inspect"]


def _injector(
    docker: FakeDocker, faults: list[Fault] | None = None, wall: float | None = None
) -> Injector:
    faults = faults or [Fault("app2", 20.0, 35.0)]
    extra = {} if wall is None else {"wall": lambda: wall}
    injector = Injector(faults, {"app2": "cid2", "app3": "cid3"}, docker, horizon=60.0, **extra)
    injector.remember()  # as for_stack does, before the replay
    return injector


def test_docker_state_times_are_read_to_the_nanosecond_digit_python_keeps() -> None:
    assert docker_time("1970-01-01T00:16:40.080000000Z") == pytest.approx(1000.08, abs=1e-6)
    assert docker_time("1970-01-01T01:16:40.5+01:00\n") == pytest.approx(1000.5, abs=1e-6)
    assert docker_time("1970-01-01T00:16:40Z") == 1000.0
    assert docker_time("1970-01-01T00:16:40") == 1000.0  # no zone: UTC, as docker writes
    assert math.isnan(docker_time("0001-01-01T00:00:00Z"))  # never died / started
    assert math.isnan(docker_time("<no value>"))


def test_the_injector_records_when_the_container_died_and_started() -> None:
    """A kill hook fired at wall time 1000 (due 20 s); docker says the process
    exited at 1000.08: it died at 20.08 s on the replay's clock. A state time
    outside the command's own span is another kill's, and not taken."""
    docker = FakeDocker(
        states={"kill": "1970-01-01T00:16:40.080000000Z", "start": "1970-01-01T00:16:40.150Z"}
    )
    inj = _injector(docker, wall=1000.0)
    for _, hook in inj.hooks():
        hook()
    kill, start = inj.finish()
    assert kill.at == pytest.approx(20.08, abs=1e-6)
    assert start.at == pytest.approx(35.15, abs=1e-6)
    stale = FakeDocker(states={"kill": "1970-01-01T00:16:30Z"})  # 10 s before the hook
    inj = _injector(stale, wall=1000.0)
    for _, hook in inj.hooks():
        hook()
    kill, start = inj.finish()
    assert math.isnan(kill.at) and math.isnan(start.at)


def test_the_outages_of_a_scenario_are_planned_in_time_order() -> None:
    s = loads_scenario(
        f"name: f\nduration: 50\n{WORKLOAD}"
        "app: {nodes: [{name: a, outages: [{start: 30, duration: 5}]}, "
        "{name: b, outages: [{start: 10, duration: 2}]}, {name: c}]}\n"
    )
    assert planned(s) == [Fault("b", 10.0, 12.0), Fault("a", 30.0, 35.0)]


def test_hooks_kill_then_start_the_container_and_never_block_the_sender() -> None:
    docker = FakeDocker(slow=0.3)
    inj = _injector(docker)
    hooks = inj.hooks()
    assert [(t, h.__name__) for t, h in hooks] == [(20.0, "hook"), (35.0, "hook")]
    began = time.monotonic()
    for _, hook in hooks:  # the load generator calls them on its loop
        hook()
    assert time.monotonic() - began < 0.1  # the slow kill runs on a thread
    events = inj.finish()
    # the start waited for the kill: never a start before the kill
    assert docker.actions() == [("kill", "--signal", "KILL", "cid2"), ("start", "cid2")]
    assert [(e.action, e.ok) for e in events] == [("kill", True), ("start", True)]
    assert events[0].done >= 20.3 and events[0].address == "172.18.0.3"
    assert inj.problems() == []


def test_a_replay_that_fails_before_the_restart_still_starts_the_node() -> None:
    docker = FakeDocker()
    inj = _injector(docker)
    kill, _ = inj.hooks()
    kill[1]()  # the replay dies after the kill, before the start hook fires
    events = inj.finish()
    assert docker.actions()[-1] == ("start", "cid2")
    assert [e.action for e in events] == ["kill", "start (cleanup)"] and events[-1].ok


def test_an_outage_past_the_horizon_is_ended_by_finish() -> None:
    docker = FakeDocker()
    inj = _injector(docker, [Fault("app3", 50.0, 90.0)])
    hooks = inj.hooks()
    assert [t for t, _ in hooks] == [50.0]
    hooks[0][1]()
    inj.finish()
    assert docker.actions() == [("kill", "--signal", "KILL", "cid3"), ("start", "cid3")]


def test_failed_commands_and_a_new_address_are_problems() -> None:
    docker = FakeDocker(fail="start")
    inj = _injector(docker)
    for _, hook in inj.hooks():
        hook()
    inj.finish()
    problems = inj.problems()
    assert any("start app2 at 35 s failed" in p for p in problems)
    # the cleanup tried once more
    assert docker.actions().count(("start", "cid2")) == 2

    same_ip = FakeDocker(addresses=["172.18.0.3/02:42:ac:12:00:03", "172.18.0.3/02:42:00:00:00:09"])
    inj = _injector(same_ip)
    for _, hook in inj.hooks():
        hook()
    inj.finish()
    assert inj.problems() == []  # a new MAC only: recorded, not a problem
    moved = FakeDocker(addresses=["172.18.0.3", "172.18.0.9"])
    inj = _injector(moved)
    for _, hook in inj.hooks():
        hook()
    inj.finish()
    assert any("came back at 172.18.0.9, not 172.18.0.3" in p for p in inj.problems())


def test_an_injector_is_made_only_for_a_scenario_with_outages() -> None:
    class Stack:
        def container_id(self, service: str) -> str:
            return f"id-{service}"

    s = STORY.scenario(STORY.variants[0])
    inj = Injector.for_stack(s, Stack(), FakeDocker())
    assert inj is not None and inj.ids == {"app2": "id-app2"}
    plain = loads_scenario(f"name: p\nduration: 10\n{WORKLOAD}")
    assert Injector.for_stack(plain, Stack(), FakeDocker()) is None


def _events(kill: float, start: float, node: str = "app2") -> list[dict[str, object]]:
    return [
        {"node": node, "action": "kill", "due": 20.0, "at": kill, "ok": True},
        {"node": node, "action": "start", "due": 35.0, "at": start, "ok": True},
    ]


def test_outages_move_to_when_the_container_died_and_started() -> None:
    s = STORY.scenario(STORY.variants[0])
    moved = as_injected(s, _events(20.19, 35.39))
    (outage,) = next(n for n in moved.app.resolved_nodes() if n.name == "app2").outages
    assert outage.start == pytest.approx(20.19) and outage.duration == pytest.approx(15.2)
    assert outage.connections == "unanswered"
    assert [n.outages for n in moved.app.resolved_nodes() if n.name != "app2"] == [(), ()]
    # a start not read keeps the planned length; a kill not read, the plan
    (outage,) = next(
        n for n in as_injected(s, _events(20.19, math.nan)).app.resolved_nodes() if n.name == "app2"
    ).outages
    assert (outage.start, outage.duration) == pytest.approx((20.19, 15.0))
    assert as_injected(s, _events(math.nan, 35.39)).app == s.app
    assert as_injected(s, _events(20.19, 35.39, node="app3")).app == s.app
    assert as_injected(s, []).app == s.app


def test_a_galera_nodes_outage_moves_alike() -> None:
    galera = catalogue.GALERA_NODE_CRASH
    s = galera.scenario(galera.variants[0])
    db = s.database
    assert isinstance(db, Galera)
    (planned_outage,) = next(g for g in db.resolved_nodes() if g.name == "db2").outages
    due = planned_outage.start
    events = [
        {"node": "db2", "action": "kill", "due": due, "at": due + 0.2, "ok": True},
        {
            "node": "db2",
            "action": "start",
            "due": due + planned_outage.duration,
            "at": due + planned_outage.duration + 0.4,
            "ok": True,
        },
    ]
    moved = as_injected(s, events).database
    assert isinstance(moved, Galera)
    (outage,) = next(g for g in moved.resolved_nodes() if g.name == "db2").outages
    assert outage.start == pytest.approx(due + 0.2)
    assert outage.duration == pytest.approx(planned_outage.duration + 0.2)


def test_the_model_side_simulates_the_crash_the_replay_had() -> None:
    """Timed by the stack side, the model runs the outage when the replay's
    container died and started, and counts over the planned window."""

    class Replayed:
        def __init__(self) -> None:
            self.last_notes = {"faults": _events(20.19, 35.39)}

    s = STORY.scenario(STORY.variants[0])
    timed = FaultModelSide(timed_by=Replayed())  # type: ignore[arg-type]
    plain = FaultModelSide()
    assert timed(s, 1) == plain(as_injected(s, _events(20.19, 35.39)), 1) | phase_counts(
        plain.timelines[-1].series, fault_window(s)
    )


# -- the model side on the story's scenario -----------------------------------------


def _model(variant: str, replication: int = 0) -> tuple[Counts, tl.FaultSummary]:
    v = next(v for v in STORY.variants if v.name == variant)
    side = FaultModelSide()
    counts = side(STORY.scenario(v), replication)
    return counts, side.timelines[-1].summary


def test_the_story_scenario_kills_app2_from_20_to_35_s() -> None:
    s = STORY.scenario(STORY.variants[0])
    assert fault_window(s) == tl.FaultWindow(5.0, 20.0, 35.0, 60.0)
    assert [v.name for v in STORY.variants] == ["nginx", "haproxy"]
    assert STORY.scenario(STORY.variants[1]).balancer.product == "haproxy"
    app2 = s.app.resolved_nodes()[1]
    assert app2.outages[0].connections == "unanswered"  # docker kill: the address is gone


def test_nginx_depends_on_whether_the_kill_caught_a_request() -> None:
    """max_fails 1 counts a reset: if app2 held a request at the kill, nginx
    takes it out at once and sends it one probe per fail_timeout; otherwise
    nothing fails before the 60 s connect timeout, a third of the requests
    wait for app2 and those sent more than 10 s before it is back (and its
    SYN is answered) time out at the client."""
    outcomes = []
    for r in range(3):
        counts, summary = _model("nginx", r)
        if counts.get("timeout", 0) > 30:
            assert 50 <= counts["timeout"] <= 130
            assert summary.first_failure == pytest.approx(10.0)  # the client's timeout
            assert 6.0 <= summary.burst_duration <= 11.0
            outcomes.append("timeouts")
        else:
            assert counts.get("timeout", 0) <= 3
            outcomes.append("ejected")
    assert sorted(set(outcomes)) == ["ejected", "timeouts"]  # replications 0-2 show both


def test_haproxy_fails_until_its_checks_take_the_node_out() -> None:
    """Round robin sends a third of the requests to app2 until 3 checks have
    timed out (every two intervals of 2 s: about 10 s after the kill); each of
    those waits out its connects (5 s, retried at once) and the client gives
    up at 10 s: a burst of client timeouts from 10 s after the kill."""
    for r in range(3):
        counts, summary = _model("haproxy", r)
        assert 55 <= counts["timeout"] <= 110 and counts.get("http_503", 0) == 0
        assert summary.burst_count == 1
        assert summary.first_failure == pytest.approx(10.0)
        assert 7.0 <= summary.burst_duration <= 11.0
        assert counts["failed_after"] > 0  # answered after the restart at 35 s


def test_haproxy_ejects_later_than_it_would_a_node_that_refuses() -> None:
    v = STORY.variants[1]
    side = FaultModelSide()
    gone = side(STORY.scenario(v), 0)
    refused = STORY.scenario(
        v,
        [
            "app.nodes=[{name: app1}, {name: app2, outages: [{start: 20, duration: 15}]}, "
            "{name: app3}]"
        ],
    )
    counts = side(refused, 0)
    late, early = (t.summary for t in side.timelines)
    # refused: 503 after 3 retries 1 s apart (from 3 s after the kill), ejected
    # after ~3 intervals; gone: client timeouts from 10 s, ejected after ~5
    assert counts["http_503"] > 20 and counts.get("timeout", 0) == 0
    assert gone["timeout"] > counts["http_503"] and gone.get("http_503", 0) == 0
    assert early.first_failure == pytest.approx(3.0) and late.first_failure == pytest.approx(10.0)
    assert late.burst_duration > early.burst_duration


# -- pairing and the report ---------------------------------------------------------


def _summary(
    duration: float, recovery: float, count: int = 1, dip: float = 15.0
) -> tl.FaultSummary:
    return tl.FaultSummary(30.0, count, duration, 3.0, 40, dip, 0.5, recovery)


def test_timeline_metrics_have_their_bounds() -> None:
    pairs = [(_summary(6.0, 1.0), _summary(12.0, 2.0)), (_summary(6.0, 0.0), _summary(13.0, 2.0)),
             (_summary(5.0, 1.0), _summary(11.0, 3.0))]  # fmt: skip
    metrics = {m.metric: m for m in timeline_metrics("s", "v", pairs)}
    dur = metrics["burst.duration"]
    assert dur.kind == "absolute" and dur.bound == 3.0  # 25 % of 12 s > 2 s
    assert dur.mean == pytest.approx(-19 / 3) and dur.verdict == "miss"
    assert duration_bound([1.0, 2.0]) == 2.0
    rec = metrics["recovery"]
    # relative over max(measured, 4 s): (1 - 2) / 4, (0 - 2) / 4, (1 - 3) / 4
    assert rec.errors == pytest.approx([-0.25, -0.5, -0.5])
    assert metrics["burst.count"].errors == [0.0, 0.0, 0.0]
    assert metrics["burst.count"].verdict == "within"


class FakeStack:
    """The live side, played by the model (to test the plumbing)."""

    def __init__(self, port: int = 0, say: object = None) -> None:
        self.model = FaultModelSide()
        self.last_notes: dict[str, object] = {}
        self.timelines: list[Timeline] = []

    def __call__(self, scenario: Scenario, replication: int) -> Counts:
        counts = self.model(scenario, replication)
        self.timelines.append(self.model.timelines[-1])
        self.last_notes = {
            "valid": True,
            "problems": [],
            "faults": [{"node": "app2", "action": "kill", "due": 20.0, "done": 20.2, "ok": True}],
        }
        return counts


def test_a_fault_story_pairs_counts_and_timelines_and_writes_its_report(tmp_path: Path) -> None:
    result = run_fault_story(
        STORY, FakeStack(), FaultModelSide(), repetitions=2, say=lambda _: None
    )
    assert result.story.passed  # the model against itself
    for vr in result.story.variants:
        names = [m.metric for m in vr.metrics]
        assert "burst.duration" in names and "recovery" in names and "requests.completed" in names
        assert len(result.predicted[vr.variant.name]) == 2
    paths = faults_report.write(result, tmp_path)
    assert [p.name for p in paths] == ["story.json", "story.md", "timeline.json", "timeline.md"]
    md = (tmp_path / "timeline.md").read_text()
    assert "## haproxy" in md and "docker kill app2: due 20 s, done 20.20 s, ok" in md
    data = json.loads((tmp_path / "timeline.json").read_text())
    assert len(data["variants"]["haproxy"]["measured"][0]["series"]["completed"]) == 60
    story_md = (tmp_path / "story.md").read_text()
    assert "| haproxy | burst.duration |" in story_md


def test_cli_runs_the_fault_story_with_a_fake_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["story", "list"])
    assert "app-node-crash" in listed.output
    monkeypatch.setattr(story_faults, "FaultStackSide", FakeStack)
    monkeypatch.setattr("lbsim.validation.machine.machine", lambda: {"cpu": "test", "cores": 2})
    out = tmp_path / "crash"
    done = runner.invoke(app, ["story", "app-node-crash", "--repetitions", "2", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert (out / "timeline.md").is_file()
    assert json.loads((out / "story.json").read_text())["passed"]


# -- the replay kills and restarts, and cleans up when it fails ---------------------


class _Window:
    """Stands in for the replay's collectors (no containers to read)."""

    def __init__(self, handle: object, galera: bool) -> None:
        self.errors: list[str] = []
        self.t_start = self.t_end = self.t_collected = 0.0

    def open(self) -> None: ...
    def close(self) -> None: ...
    def finish(self) -> None: ...
    def cpu_seconds(self) -> dict[str, float]:
        return {}

    def machine_cores(self) -> dict[str, float]:
        return {}

    def galera_block(self) -> dict[str, object]:
        return {}

    def waiting_for_a_core(self, requests: int) -> dict[str, dict[str, float]]:
        return {}


class _Docker:
    docker = "docker"


class _Compose:
    docker = _Docker()


class _Handle:
    """What replay() reads of a stack: its URL, meta, docker client, container ids."""

    url = "http://127.0.0.1:18091/"
    compose = _Compose()

    def __init__(self) -> None:
        self.meta: dict[str, object] = {"rows": 1}

    def container_id(self, service: str) -> str:
        return f"id-{service}"


def _short_crash() -> Scenario:
    return STORY.scenario(
        STORY.variants[1],
        ["duration=15", "app.nodes=[{name: app1}, {name: app2, outages: "
         "[{start: 6, duration: 4, connections: unanswered}]}]"],
    )  # fmt: skip


@pytest.mark.parametrize("fails", [False, True])
def test_replay_fires_the_hooks_and_restarts_the_node_even_when_it_fails(
    monkeypatch: pytest.MonkeyPatch, fails: bool
) -> None:
    from lbsim.validation import replay as replay_module
    from lbsim.validation.loadgen import LoadgenStats
    from lbsim.validation.workplan import MachineCosts

    docker = FakeDocker()
    seen: list[float] = []

    def send(url: str, plan: list[object], timeout: float, at: list[tuple[float, object]]):  # type: ignore[no-untyped-def]
        for when, hook in sorted(at, key=lambda h: h[0]):
            seen.append(when)
            hook()  # type: ignore[operator]
            if fails and when == 6.0:
                raise OSError("the load generator died after the kill")
        return [], LoadgenStats(wall=1.0, cpu=0.1, max_in_flight=1, not_sent=0)

    monkeypatch.setattr(replay_module, "send_open_loop", send)
    monkeypatch.setattr(replay_module, "Window", _Window)
    monkeypatch.setattr(replay_module, "docker_runner", lambda _: docker)
    if fails:
        with pytest.raises(OSError, match="died after the kill"):
            replay_module.replay(_short_crash(), _Handle(), MachineCosts())  # type: ignore[arg-type]
    else:
        run = replay_module.replay(_short_crash(), _Handle(), MachineCosts())  # type: ignore[arg-type]
        events = run.results["meta"]["faults"]
        assert [(e["action"], e["ok"]) for e in events] == [("kill", True), ("start", True)]
        assert run.results["meta"]["fault_problems"] == []
    assert 6.0 in seen
    # killed at 6 s and started again: at 10 s, or by the cleanup after the failure
    assert docker.actions() == [("kill", "--signal", "KILL", "id-app2"), ("start", "id-app2")]
