"""Replay and calibration without Docker: the work plan is the simulation's trace,
the load generator keeps its schedule against a local fake app, measured results
carry the run's keys, calibration arithmetic and accuracy bounds."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

import lbsim
from lbsim.cli.app import app
from lbsim.model.stack import Stack
from lbsim.scenario.database import Galera
from lbsim.scenario.distributions import DIST_SPECS, AnyDist, coerce_distribution
from lbsim.validation import loadgen
from lbsim.validation.accuracy import compare, error
from lbsim.validation.calibration import (
    MIN_QUERY_CPU,
    Calibration,
    ClassCost,
    calibrate_scenario,
    calibrated_path,
    measure_log_flush,
    parse_dd_seconds,
    scale_dist,
)
from lbsim.validation.loadgen import (
    NOT_SENT,
    TIMEOUT,
    Record,
    send_closed_loop,
    send_open_loop,
    send_sequential,
)
from lbsim.validation.measured import (
    loadgen_verdict,
    read_requests_csv,
    summarise,
    write_requests_csv,
)
from lbsim.validation.replay import MAX_USERS, replay
from lbsim.validation.workplan import (
    ClosedLoopPlan,
    MachineCosts,
    PlannedQuery,
    PlannedRequest,
    work_plan,
)
from tests.support import virtual_time

MIXED = Path("scenarios/mixed.yaml")
#: where the virtual-time tests "send" (their transport is a fake: nothing listens)
VIRTUAL_URL = "http://127.0.0.1:9/"


# --------------------------------------------------------------------------- the plan


def _simulated_requests(sc: lbsim.Scenario) -> list[tuple[float, int, int, float]]:
    """(arrival time, class, client, PHP CPU demand) of every request the model makes."""
    stack = Stack(sc)
    seen: list[tuple[float, int, int, float]] = []
    factory = stack.source._factory
    make = factory.make

    def recording(now: float, cls: int, client: int) -> Any:
        req = make(now, cls, client)
        seen.append((now, cls, client, sum(p for p in req.phases if isinstance(p, float))))
        return req

    factory.make = recording  # type: ignore[method-assign]
    stack.run()
    return seen


@pytest.mark.unit
def test_the_replay_plan_is_the_simulated_trace() -> None:
    """Same seed: the replay sends the model's arrivals, classes, clients and CPU demands."""
    sc = lbsim.load_scenario(MIXED, ["workload.open.rate=20"], duration=30, warmup=5)
    simulated = _simulated_requests(sc)
    plan = list(work_plan(sc, MachineCosts(), rows=100_000))
    assert len(plan) == len(simulated) > 500
    for p, (t, cls, client, cpu) in zip(plan, simulated, strict=True):
        assert p.time == t and p.cls == cls and p.client == client
        assert p.cpu == pytest.approx(cpu, rel=1e-12)


@pytest.mark.unit
def test_another_replication_is_another_trace() -> None:
    sc = lbsim.load_scenario(MIXED, duration=10, warmup=0)
    a = [p.time for p in work_plan(sc, MachineCosts(), 1000, replication=0)]
    b = [p.time for p in work_plan(sc, MachineCosts(), 1000, replication=1)]
    assert a != b


@pytest.mark.unit
def test_work_units_and_benchmark_iterations_follow_the_costs() -> None:
    sc = lbsim.load_scenario(MIXED, duration=20, warmup=0)
    costs = MachineCosts(unit_seconds=1e-5, db_iteration_seconds=1e-7)
    plan = list(work_plan(sc, costs, rows=1000))
    for p in plan[:200]:
        assert p.units == round(p.cpu / 1e-5)
        for q in p.queries:
            assert q.iterations == round(q.demand / len(q.rows) / 1e-7)
            assert all(1 <= r <= 1000 for r in q.rows)
        assert p.path().startswith(f"/?class={p.cls_name}&units={p.units}")
    checkout = next(p for p in plan if p.cls_name == "checkout")
    assert [q.kind for q in checkout.queries] == ["r", "w", "w"]
    # hot rows: the stock write draws from the first 200 keys
    stock = [p.queries[1].rows[0] for p in plan if p.cls_name == "checkout"]
    assert max(stock) <= 200


@pytest.mark.unit
def test_the_request_path_escapes_what_php_would_decode() -> None:
    """'+' joins row ids: sent raw, PHP's query-string decoding would make it a space."""
    query = PlannedQuery("w", (3, 9), 7, 0.0)
    req = PlannedRequest(0, 0.0, 0, "a b", 1, "10.0.0.1", 0.0, 5, (query,))
    assert query.spec() == "w3+9:7"
    assert req.path() == "/?class=a%20b&units=5&q=w3%2B9:7"


@pytest.mark.unit
def test_client_rows_live_after_the_drawn_rows() -> None:
    sc = lbsim.load_scenario(Path("scenarios/read-after-write.yaml"), duration=5, warmup=0)
    own = [
        q
        for p in work_plan(sc, MachineCosts(), rows=500)
        for q in p.queries
        if any(r > 500 for r in q.rows)
    ]
    assert own, "read-after-write uses the client's own row"
    assert all(len(q.rows) == 1 for q in own)


# --------------------------------------------------------------------------- the load generator


class FakeApp:
    """A loopback HTTP server answering like validation/app/index.php after ``delay``."""

    def __init__(self, delay: float = 0.02, status: int = 200):
        self.delay = delay
        self.status = status
        self.paths: list[str] = []
        self.forwarded: list[str] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            self.paths.append(lines[0].split(" ")[1])
            for line in lines[1:]:
                if line.lower().startswith("x-forwarded-for:"):
                    self.forwarded.append(line.split(":", 1)[1].strip())
            await asyncio.sleep(self.delay)
            body = b"ok\n"
            writer.write(
                (
                    f"HTTP/1.1 {self.status} X\r\nContent-Length: {len(body)}\r\n"
                    "X-Lbsim-Node: app1\r\nX-Lbsim-Cpu: 0.004000\r\nX-Lbsim-Wall: 0.019000\r\n"
                    "X-Lbsim-Db: 0.002000\r\nX-Lbsim-Retries: 1\r\n"
                    + ("X-Lbsim-Db-Error: 1040\r\n" if self.status == 500 else "")
                    + "Connection: close\r\n\r\n"
                ).encode()
                + body
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up first
        finally:
            writer.close()

    def _serve(self) -> None:
        async def main() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            async with server:
                await server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(main())

    # Thread start and stop take milliseconds alone; the waits allow for a
    # loaded 2-core machine (-n auto plus other work) and only catch a hang.
    def __enter__(self) -> FakeApp:
        self._thread.start()
        if not self._ready.wait(60):
            self.__exit__()
            raise RuntimeError("the fake app did not start listening within 60 s")
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is not None:
            # cancel every task from the loop's own thread (all_tasks is not thread-safe)
            def cancel_all() -> None:
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(cancel_all)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the fake app's thread did not stop within 60 s"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture
def fake_app() -> Iterator[FakeApp]:
    with FakeApp() as server:
        yield server


@pytest.mark.unit
def test_open_loop_keeps_the_schedule_and_reads_the_timings(fake_app: FakeApp) -> None:
    sc = lbsim.load_scenario(MIXED, ["workload.open.rate=100"], duration=2, warmup=0)
    plan = list(work_plan(sc, MachineCosts(), rows=1000))
    fired: list[float] = []
    records, stats = send_open_loop(
        fake_app.url, plan, timeout=5, at=[(1.0, lambda: fired.append(1.0))]
    )
    assert len(records) == len(plan) == len(fake_app.paths)
    assert fired == [1.0]
    assert sorted(fake_app.paths) == sorted(p.path() for p in plan)
    assert set(fake_app.forwarded) <= {p.address for p in plan}
    for r in records:
        assert r.status == 200 and r.node == "app1"
        assert r.cpu == 0.004 and r.wall == 0.019 and r.db == 0.002 and r.retries == 1
        # answers take the server's 20 ms, never shorter; how much longer, and how
        # late the sends were, depends on the machine's load: exact in virtual time
        # (test_open_loop_sends_exactly_on_schedule)
        assert 0.02 <= r.latency < 5
    assert stats.max_in_flight >= 2  # the next request did not wait for the previous answer


@pytest.mark.unit
def test_a_slow_server_does_not_slow_the_arrivals() -> None:
    sc = lbsim.load_scenario(MIXED, ["workload.open.rate=50"], duration=1, warmup=0)
    plan = list(work_plan(sc, MachineCosts(), rows=1000))
    # answers take 2 s: a generator that waited for them would be 2 s late from
    # the second send on. The bounds are half that, for a loaded machine where
    # the event loop itself runs late; exact in virtual time
    # (test_a_slow_server_does_not_slow_the_arrivals_exactly)
    with FakeApp(delay=2.0) as server:
        records, stats = send_open_loop(server.url, plan, timeout=5)
    sends = [r.sent for r in records]
    assert all(r.status == 200 for r in records)
    assert max(abs(r.lateness) for r in records) < 1.0
    assert sends[-1] < 2.0  # the whole second of arrivals went out well before any answer
    assert stats.max_in_flight > 10


@pytest.mark.unit
def test_timeouts_and_not_sent_are_recorded() -> None:
    sc = lbsim.load_scenario(MIXED, ["workload.open.rate=40"], duration=0.5, warmup=0)
    plan = list(work_plan(sc, MachineCosts(), rows=1000))
    with FakeApp(delay=1.0) as server:
        records, stats = send_open_loop(server.url, plan, timeout=0.2, max_in_flight=5)
    assert {r.status for r in records} <= {TIMEOUT, NOT_SENT}
    assert stats.not_sent == sum(1 for r in records if r.status == NOT_SENT) > 0
    assert not loadgen_verdict(stats)["valid"]


def _closed(users: int, think: Any, duration: float, **extra: Any) -> lbsim.Scenario:
    """mixed.yaml's classes, clients and database, driven by ``users`` closed-loop users."""
    data = yaml.safe_load(MIXED.read_text())
    data["workload"].pop("open")
    data["workload"]["closed"] = {"users": users, "think_time": think}
    data.update(duration=duration, warmup=0, **extra)
    return lbsim.Scenario.model_validate(data)


@pytest.mark.unit
def test_a_closed_loop_user_sends_what_the_model_s_user_sends() -> None:
    """One user: the model and the plan draw think times, classes and demands in
    the same order, so the k-th request is the same request (class, client, CPU)."""
    sc = _closed(1, {"dist": "exponential", "mean": 0.2}, duration=60)
    simulated = _simulated_requests(sc)
    plan = ClosedLoopPlan(sc, MachineCosts(), rows=1000)
    first = plan.think()
    assert first == pytest.approx(simulated[0][0])  # the first send is the first think time
    made = [plan.request(0, float(i)) for i in range(len(simulated))]
    assert len(simulated) > 100
    assert [(p.cls, p.client) for p in made] == [(c, u) for _, c, u, _ in simulated]
    # the model splits the demand into bursts around the queries: equal up to rounding
    assert [p.cpu for p in made] == pytest.approx([d for *_, d in simulated], rel=1e-12)


@pytest.mark.unit
def test_closed_loop_users_wait_for_their_answer_and_think(fake_app: FakeApp) -> None:
    """Each user has at most one request in flight, sends again one think time
    after its answer, and sends nothing from the horizon on."""
    think = 0.1
    sc = _closed(4, think, duration=1.5)
    fired: list[int] = []
    records, stats = send_closed_loop(
        fake_app.url,
        ClosedLoopPlan(sc, MachineCosts(), rows=1000),
        timeout=5,
        at=[(0.5, lambda: fired.append(1))],
    )
    assert fired == [1]
    assert len(records) == len(fake_app.paths)
    assert stats.max_in_flight <= 4 and not stats.stopped_early
    assert [r.index for r in records] == list(range(len(records)))
    for user in range(4):
        mine = sorted((r for r in records if r.client == user), key=lambda r: r.sent)
        # a cycle is the think time plus at least the fake app's 20 ms: at most 12
        # in 1.5 s (exactly 12 in virtual time; fewer on a loaded machine)
        assert 1 <= len(mine) <= 12
        assert mine[0].scheduled == pytest.approx(think)
        for a, b in itertools.pairwise(mine):
            answered = a.sent + a.latency
            assert b.sent >= answered  # never two requests of one user in flight
            assert b.scheduled >= answered + think - 1e-9  # thinks after the answer
    assert all(r.status == 200 and r.scheduled < sc.horizon for r in records)


# ------------------------------------------- the same claims exactly, in virtual time
#
# On a real clock, how late a send is and how long an answer takes depend on
# the machine's load (the suite runs on busy 2-core machines). The scheduling
# logic itself is checked here on a virtual clock (tests.support.virtual_time)
# against a fake transport: every send must then be exactly on time.


class FakeFetch:
    """Stands in for :func:`lbsim.validation.loadgen.fetch`: answers like the
    fake app after ``delay`` (virtual) seconds, counting requests in flight."""

    def __init__(self, delay: float, status: int = 200):
        self.delay = delay
        self.status = status
        self.paths: list[str] = []
        self.in_flight = 0
        self.peak = 0

    async def __call__(
        self, target: Any, path: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str]]:
        self.paths.append(path)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        return self.status, {"x-lbsim-node": "app1", "x-lbsim-cpu": "0.004"}


@pytest.fixture
def fake_fetch(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeFetch]:
    fetch = FakeFetch(0.02)
    monkeypatch.setattr(loadgen, "fetch", fetch)
    with virtual_time():
        yield fetch


@pytest.mark.unit
def test_open_loop_sends_exactly_on_schedule(fake_fetch: FakeFetch) -> None:
    sc = lbsim.load_scenario(MIXED, ["workload.open.rate=100"], duration=2, warmup=0)
    plan = list(work_plan(sc, MachineCosts(), rows=1000))
    fired: list[float] = []
    records, stats = send_open_loop(
        VIRTUAL_URL, plan, timeout=5, at=[(1.0, lambda: fired.append(1.0))]
    )
    assert fired == [1.0]
    assert sorted(fake_fetch.paths) == sorted(p.path() for p in plan)
    for r, p in zip(records, plan, strict=True):
        assert r.status == 200 and r.cpu == 0.004
        assert r.sent == pytest.approx(p.time, abs=1e-9)
        assert r.latency == pytest.approx(0.02, abs=1e-9)
    verdict = loadgen_verdict(stats)
    assert verdict["lateness"]["max"] < 1e-9
    assert stats.max_in_flight == fake_fetch.peak >= 2
    assert stats.wall == pytest.approx(plan[-1].time + 0.02, abs=1e-6)


@pytest.mark.unit
def test_a_slow_server_does_not_slow_the_arrivals_exactly(fake_fetch: FakeFetch) -> None:
    fake_fetch.delay = 0.5
    sc = lbsim.load_scenario(MIXED, ["workload.open.rate=50"], duration=1, warmup=0)
    plan = list(work_plan(sc, MachineCosts(), rows=1000))
    records, stats = send_open_loop(VIRTUAL_URL, plan, timeout=5)
    assert max(abs(r.lateness) for r in records) < 1e-9
    times = [p.time for p in plan]
    # every request is in flight for exactly 0.5 s from its scheduled time
    overlap = max(sum(1 for u in times if u <= t < u + 0.5) for t in times)
    assert stats.max_in_flight == overlap > 10


@pytest.mark.unit
def test_timeouts_and_not_sent_exactly(fake_fetch: FakeFetch) -> None:
    fake_fetch.delay = 1.0
    sc = lbsim.load_scenario(MIXED, ["workload.open.rate=40"], duration=0.5, warmup=0)
    plan = list(work_plan(sc, MachineCosts(), rows=1000))
    records, stats = send_open_loop(VIRTUAL_URL, plan, timeout=0.2, max_in_flight=5)
    sent = [r for r in records if r.status != NOT_SENT]
    assert sent and all(r.status == TIMEOUT and r.latency == 0.2 for r in sent)
    assert stats.not_sent == len(records) - len(sent) > 0
    assert stats.max_in_flight == 5
    assert stats.wall == pytest.approx(sent[-1].sent + 0.2, abs=1e-6)


@pytest.mark.unit
def test_closed_loop_users_think_exactly_after_their_answer(fake_fetch: FakeFetch) -> None:
    think = 0.1
    sc = _closed(4, think, duration=1.5)
    records, stats = send_closed_loop(
        VIRTUAL_URL, ClosedLoopPlan(sc, MachineCosts(), rows=1000), timeout=5
    )
    assert stats.max_in_flight == 4 and not stats.stopped_early
    for user in range(4):
        mine = sorted((r for r in records if r.client == user), key=lambda r: r.sent)
        # a cycle is the think time plus the fake's 20 ms: sends at 0.1 + 0.12 k < 1.5
        assert len(mine) == 12
        assert [r.sent for r in mine] == pytest.approx([think + 0.12 * k for k in range(12)])
        for a, b in itertools.pairwise(mine):
            assert b.scheduled == pytest.approx(a.sent + a.latency + think, abs=1e-9)
    assert loadgen_verdict(stats)["lateness"]["max"] < 1e-9


@pytest.mark.unit
def test_a_closed_loop_stops_at_its_request_limit(fake_app: FakeApp) -> None:
    sc = _closed(2, 0.0, duration=5)
    records, stats = send_closed_loop(
        fake_app.url, ClosedLoopPlan(sc, MachineCosts(), rows=1000), timeout=5, max_requests=10
    )
    assert len(records) == 10
    assert "request limit (10)" in stats.stopped_early
    verdict = loadgen_verdict(stats)
    assert not verdict["valid"] and stats.stopped_early in verdict["problems"]


@pytest.mark.unit
def test_replay_refuses_more_users_than_it_can_hold() -> None:
    sc = _closed(MAX_USERS + 1, 1.0, duration=5)
    with pytest.raises(ValueError, match=r"workload.closed.users: 4097 users"):
        replay(sc, handle=None, costs=MachineCosts())  # type: ignore[arg-type]


@pytest.mark.unit
def test_replay_refuses_other_hosts() -> None:
    with pytest.raises(ValueError, match="loopback"):
        send_sequential("http://192.0.2.1:80/", [])


# --------------------------------------------------------------------------- measured results


def _records(sc: lbsim.Scenario) -> list[Record]:
    out = []
    for p in work_plan(sc, MachineCosts(), 1000):
        r = Record(p.index, p.cls_name, p.client, p.time, sent=p.time, latency=0.05)
        r.status, r.node, r.wall = 200, "app1" if p.index % 2 else "app2", 0.04
        out.append(r)
    return out


@pytest.mark.unit
def test_measured_results_have_the_keys_of_lbsim_run(tmp_path: Path) -> None:
    sc = lbsim.load_scenario(MIXED, ["workload.open.rate=20"], duration=30, warmup=5)
    records = _records(sc)
    first = next(i for i, r in enumerate(records) if r.scheduled >= 5)
    records[first].status, records[first].db_error = 500, 1040
    records[first + 1].status = TIMEOUT
    measured = summarise(sc, records, {"app1": 6.0, "app2": 3.0, "db1": 1.5})
    simulated = lbsim.simulate(sc).to_dict()

    def keys(d: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            if isinstance(v, dict):
                out |= keys(v, f"{prefix}{k}.")
            else:
                out.add(prefix + k)
        return out

    wanted = {"throughput", "latency.mean", "latency.p95", "requests.arrived"}
    wanted |= {f"classes.{c}.latency.p95" for c in sc.workload.class_names}
    wanted |= {"utilisation.app.app1.cpu", "utilisation.app.app2.workers"}
    assert wanted <= keys(measured) & keys(simulated)
    cohort = [r for r in records if r.scheduled >= 5]
    assert measured["requests"]["arrived"] == len(cohort)
    assert measured["requests"]["failed"]["db_1040"] == 1
    assert measured["requests"]["failed"]["timeout"] == 1
    assert measured["requests"]["completed"] == len(cohort) - 2
    assert measured["utilisation"]["app"]["app1"]["cpu"] == pytest.approx(6.0 / 30 / 2)
    assert measured["utilisation"]["db"]["db1"]["cpu"] == pytest.approx(1.5 / 30 / 2)
    assert measured["latency"]["mean"] == pytest.approx(0.05)
    path = write_requests_csv(records, tmp_path / "r.csv")
    again = read_requests_csv(path)
    assert [(r.index, r.status, r.db_error, r.cls) for r in again] == [
        (r.index, r.status, r.db_error, r.cls) for r in records
    ]


# --------------------------------------------------------------------------- calibration


def _dist(spec: Any) -> AnyDist:
    data = coerce_distribution(spec)
    return DIST_SPECS[data["dist"]].model_validate(data)  # type: ignore[return-value]


@pytest.mark.unit
@pytest.mark.parametrize(
    "spec",
    [
        0.02,
        {"dist": "exponential", "mean": 0.01},
        {"dist": "lognormal", "mean": 0.015, "cv": 1.0},
        {"dist": "gamma", "mean": 0.04, "cv": 1.5},
        {"dist": "uniform", "low": 0.01, "high": 0.03},
        {"dist": "hyperexponential", "probs": [0.9, 0.1], "means": [0.01, 0.1]},
        {"dist": "empirical", "values": [0.01, 0.02, 0.05]},
    ],
)
def test_scaling_a_distribution_scales_every_draw(spec: Any) -> None:
    from lbsim.model.distributions import Sampler

    d0, d1 = _dist(spec), _dist(scale_dist(spec, 1.7))
    a = Sampler(d0, np.random.default_rng(3)).sample(500)
    b = Sampler(d1, np.random.default_rng(3)).sample(500)
    assert np.allclose(b, 1.7 * a, rtol=1e-9)
    assert d1.mean == pytest.approx(1.7 * d0.mean)


def _calibration() -> Calibration:
    classes = [
        ClassCost("browse", 40, 0.015, 0.018, 0.004, 0.006, 0.001, 0.03, 0.028, 0.006, 0.0),
        ClassCost("search", 40, 0.04, 0.042, 0.01, 0.012, 0.001, 0.06, 0.058, 0.014, 0.0),
        ClassCost("checkout", 40, 0.06, 0.066, 0.008, 0.014, 0.001, 0.09, 0.088, 0.015, 2.0),
        ClassCost("report", 10, 0.35, 0.36, 0.15, 0.16, 0.002, 0.6, 0.59, 0.16, 0.0),
    ]
    return Calibration(
        MachineCosts(7.5e-6, 5e-8),
        classes,
        host_cores=2.0,
        idle_cores=0.05,
        apply_cpu=0.0005,
        write_commit=0.001,
        log_flush=0.0002,
        connect=0.0012,
        balancer_latency=0.002,
        app_db=0.0003,
    )


@pytest.mark.unit
def test_the_calibrated_scenario_rescales_demands_and_shares_one_host(tmp_path: Path) -> None:
    raw = yaml.safe_load(MIXED.read_text())
    sc = lbsim.load_scenario(MIXED)
    cal = _calibration()
    data = calibrate_scenario(raw, sc, cal, rate=20.0)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    calibrated = lbsim.load_scenario(path)
    classes = {c.name: c for c in calibrated.workload.classes}
    original = {c.name: c for c in sc.workload.classes}
    assert classes["browse"].cpu.mean == pytest.approx(original["browse"].cpu.mean * 0.018 / 0.015)
    # checkout's database CPU on its path: measured minus the write-sets' CPU on 2
    # other nodes and the handshakes of its two connections (a read, a write)
    handshake = 0.0012 - 2 * 0.0003
    factor = (0.014 - 2.0 * 2 * 0.0005 - 2 * handshake) / 0.008
    assert classes["checkout"].queries[1].time.mean == pytest.approx(0.003 * factor)
    assert calibrated.hosts[0].cores == 2.0
    # Galera write path: the extra write time is every node's in-order commit (the
    # loopback group round inside it); the others' CPU per write-set is `receive`,
    # off the applier's path to visibility
    db = calibrated.database
    assert isinstance(db, Galera)
    assert db.commit.mean == pytest.approx(0.001)
    assert db.replication_delay.mean == 0.0
    assert db.receive is not None and db.receive.mean == pytest.approx(0.0005)
    assert db.apply is not None and db.apply.mean == 0.0
    assert calibrated.network.app_db.mean == pytest.approx(0.0003)
    assert db.handshake is not None and db.handshake.mean == pytest.approx(handshake)
    assert calibrated.hosts[0].background == pytest.approx(
        0.05 + 20.0 * cal.other_cpu_per_request(sc), abs=1e-4
    )
    assert all(n.host == "machine" for n in calibrated.app.resolved_nodes())
    assert calibrated.database.host == "machine"  # type: ignore[union-attr]
    assert calibrated.workload.open is not None and calibrated.workload.open.rate == 20.0
    assert calibrated.seed == sc.seed
    assert cal.capacity(sc) == pytest.approx((2.0 - 0.05) / cal.cpu_per_request(sc))
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    assert calibrated_path(MIXED) == Path("scenarios/mixed.calibrated.yaml")


@pytest.mark.unit
def test_a_level_is_predicted_at_the_speed_it_ran() -> None:
    """The classes' demands were measured at one CPU speed (their work units'
    cost then); a level that ran slower or faster is predicted with every CPU
    demand scaled by the ratio, latencies and idle load kept."""
    from lbsim.validation.campaign import speed_factor
    from lbsim.validation.measured import unit_seconds

    cal = _calibration()
    assert cal.reference_unit() == cal.costs.unit_seconds  # nothing measured: the costs'
    cal.classes[0].unit, cal.classes[3].unit = 8e-6, 10e-6
    assert cal.reference_unit() == pytest.approx((40 * 8e-6 + 10 * 10e-6) / 50)
    ran = [
        Record(0, "browse", 1, 0.0, status=200, work=0.009, units=1000),
        Record(1, "browse", 1, 0.1, status=200, work=0.027, units=3000),
        Record(2, "browse", 1, 0.2, status=502, work=0.5, units=1000),  # no answer: ignored
    ]
    assert unit_seconds(ran) == pytest.approx(9e-6)
    factor = speed_factor(unit_seconds(ran), 8e-6)
    assert factor == pytest.approx(1.125)
    assert speed_factor(math.nan, 8e-6) == 1.0
    slow = cal.at_speed(factor)
    assert slow.classes[1].app_cpu == pytest.approx(cal.classes[1].app_cpu * 1.125)
    assert slow.classes[2].db_cpu == pytest.approx(cal.classes[2].db_cpu * 1.125)
    assert slow.apply_cpu == pytest.approx(cal.apply_cpu * 1.125)
    assert (slow.idle_cores, slow.write_commit, slow.balancer_latency) == (
        cal.idle_cores,
        cal.write_commit,
        cal.balancer_latency,
    )


@pytest.mark.unit
def test_dd_summaries_give_the_flush_time() -> None:
    out = (
        "200+0 records in\n200+0 records out\n"
        "819200 bytes (819 kB, 800 KiB) copied, 0.0407247 s, 20.1 MB/s\n"
    )
    assert parse_dd_seconds(out) == pytest.approx(0.0407247)
    assert measure_log_flush(lambda argv: out, n=200) == pytest.approx(0.0407247 / 200)
    with pytest.raises(ValueError, match="no elapsed time"):
        parse_dd_seconds("dd: failed to open 'x': Read-only file system")


@pytest.mark.unit
def test_errors_relative_absolute_and_missing_metrics() -> None:
    pred = {
        "throughput": 10.0,
        "latency": {"mean": 0.1, "p95": 0.3},
        "utilisation": {"app": {"a": {"cpu": 0.5}, "b": {"cpu": 0.2}}},
    }
    meas = {
        "throughput": 10.2,
        "latency": {"mean": 0.13, "p95": 0.3},
        "utilisation": {"app": {"a": {"cpu": 0.6}, "b": {"cpu": 0.25}}},
    }
    errs = {e.metric: e for e in compare("s", "30%", pred, meas)}
    assert set(errs) == {
        "throughput",
        "latency.mean",
        "latency.p95",
        "utilisation.app.a.cpu",
        "utilisation.app.b.cpu",
    }
    assert errs["throughput"].error == pytest.approx(0.2 / 10.2) and errs["throughput"].ok
    assert errs["latency.mean"].error == pytest.approx(0.03 / 0.13) and not errs["latency.mean"].ok
    assert (
        errs["utilisation.app.a.cpu"].error == pytest.approx(0.1)
        and not errs["utilisation.app.a.cpu"].ok
    )
    assert errs["utilisation.app.b.cpu"].ok
    assert math.isinf(error(1.0, 0.0, "relative")) and error(0.0, 0.0, "relative") == 0.0
    assert math.isnan(error(math.nan, 1.0, "absolute"))


# --------------------------------------------------------------------------- CLI without Docker


@pytest.mark.cli
def test_calibrate_refuses_bad_levels_before_touching_docker() -> None:
    result = CliRunner().invoke(app, ["calibrate", str(MIXED), "--levels", "0.3,abc"])
    assert result.exit_code == 2
    assert "--levels" in result.output and "Traceback" not in result.output


@pytest.mark.cli
def test_replay_refuses_an_unreadable_costs_file(tmp_path: Path) -> None:
    bad = tmp_path / "calibration.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(app, ["replay", str(MIXED), "--costs", str(bad)])
    assert result.exit_code == 2
    assert "calibration.json" in result.output and "Traceback" not in result.output


@pytest.mark.cli
def test_replay_never_overwrites_an_access_log(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("a log of the user's\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["replay", str(MIXED), "--access-log", str(log), "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "--access-log" in result.output and "exists" in result.output
    assert "Traceback" not in result.output
    assert log.read_text() == "a log of the user's\n" and not out.exists()


@pytest.mark.cli
def test_calibrate_refuses_a_closed_loop_scenario(tmp_path: Path) -> None:
    sc = tmp_path / "closed.yaml"
    sc.write_text(
        "workload: {closed: {users: 5, think_time: 1}, classes: [{name: a, cpu: 0.01}]}\n"
    )
    result = CliRunner().invoke(app, ["calibrate", str(sc)])
    assert result.exit_code == 2
    assert "open-loop" in result.output
    assert "Traceback" not in result.output


@pytest.mark.unit
def test_a_class_measured_at_no_database_cpu_keeps_a_querys_least_cost(tmp_path: Path) -> None:
    # a live run measured a page's reads at or below its handshake: the path CPU
    # left was <= 0, and the calibrated file (time.mean 0) failed to load
    raw = yaml.safe_load(MIXED.read_text())
    sc = lbsim.load_scenario(MIXED)
    cal = _calibration()
    browse = cal.classes[0]
    cal.classes[0] = dataclasses.replace(browse, db_cpu=0.0)
    data = calibrate_scenario(raw, sc, cal, rate=20.0)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    calibrated = lbsim.load_scenario(path)  # loads: every mean > 0
    classes = {c.name: c for c in calibrated.workload.classes}
    queries = classes["browse"].queries
    total = sum(q.time.mean for q in queries)
    assert total == pytest.approx(MIN_QUERY_CPU * len(queries))


@pytest.mark.unit
@pytest.mark.parametrize(
    ("app", "expected"),
    [
        # Docker cpus 0.5: a CFS quota of 50 ms per 100 ms, not half-speed workers
        ({"nodes": 2, "cores": 0.5}, [0.1, 0.1]),
        # a period the scenario gives (or a target read) is kept
        ({"nodes": 2, "cores": 0.5, "cpu_period": 0.02}, [0.02, 0.02]),
        # a core or more: a busy worker gets a whole core either way
        ({"nodes": 2, "cores": 1.0}, [None, None]),
        # per node: only the node under a core
        ({"nodes": [{"cores": 0.25}, {"cores": 2}], "cores": 1}, [0.1, None]),
        ({"nodes": [{"cores": 0.5, "cpu_period": 0.05}, {}], "cores": 0.5}, [0.05, 0.1]),
    ],
)
def test_calibration_runs_app_nodes_under_a_core_as_the_stack_does(
    tmp_path: Path, app: dict[str, Any], expected: list[float | None]
) -> None:
    """The stack limits an app container with ``cpus``: under one core the
    calibrated model runs it under CFS bandwidth control in Docker's 100 ms
    periods (CPUS_PERIOD), where processor sharing said 14-15 ms for a view
    the stack served in 9-10 ms (the slow-galera-node story, 2026-12-07)."""
    raw = yaml.safe_load(MIXED.read_text())
    raw["app"] = {**raw["app"], **app}
    src = tmp_path / "s.yaml"
    src.write_text(yaml.safe_dump(raw))
    sc = lbsim.load_scenario(src)
    data = calibrate_scenario(raw, sc, _calibration(), rate=20.0)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    calibrated = lbsim.load_scenario(path)
    assert [n.cpu_period for n in calibrated.app.resolved_nodes()] == expected
    assert [n.cores for n in calibrated.app.resolved_nodes()] == [
        n.cores for n in sc.app.resolved_nodes()
    ]
    assert raw["app"] == {**yaml.safe_load(MIXED.read_text())["app"], **app}  # not changed


@pytest.mark.unit
def test_a_stacks_costs_measure_the_benchmark_iteration_on_its_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every story and `lbsim validate` measured the work unit only, leaving a
    BENCHMARK() iteration at the default 50 ns: on a machine where it takes
    95 ns the stack's queries ran twice their planned time."""
    import lbsim.validation.calibration as calibration
    from lbsim.validation import collectors
    from lbsim.validation.workplan import MachineCosts

    seen: list[Any] = []

    def fake_costs(url: str, db_cpu: Any, n: int = 20) -> MachineCosts:
        seen.append((url, db_cpu() if db_cpu is not None else None))
        return MachineCosts(unit_seconds=1e-5)

    class FakeCpu:
        def __init__(self, handle: Any, services: Any = None) -> None:
            self.services = list(services)

        def snapshot(self) -> dict[str, float]:
            return {s: 1.0 for s in self.services}

    class Handle:
        url = "http://127.0.0.1:1"

        def __init__(self, db: list[str]) -> None:
            self.db_nodes = db

    monkeypatch.setattr(calibration, "measure_costs", fake_costs)
    monkeypatch.setattr(collectors, "ContainerCpu", FakeCpu)
    calibration.measure_stack_costs(Handle(["db1", "db2"]))  # type: ignore[arg-type]
    calibration.measure_stack_costs(Handle([]))  # type: ignore[arg-type]
    assert seen == [("http://127.0.0.1:1", {"db1": 1.0, "db2": 1.0}), ("http://127.0.0.1:1", None)]


@pytest.mark.unit
def test_the_benchmark_measurement_counts_only_answered_requests() -> None:
    """A stack whose persistent connections outnumber max_connections refuses
    some of the measurement's requests (1040): the cost is measured on the
    answered ones; fewer than five answered is still an error naming it."""
    from lbsim.validation.calibration import CalibrationError, _answered
    from lbsim.validation.loadgen import Record

    def recs(ok: int, refused: int) -> list[Record]:
        return [Record(i, "calibrate", 0, 0.0, status=200) for i in range(ok)] + [
            Record(ok + i, "calibrate", 0, 0.0, status=500, db_error=1040) for i in range(refused)
        ]

    assert _answered(recs(15, 5), "database baseline") == 15
    with pytest.raises(CalibrationError, match="database baseline: 17 of 20 requests failed"):
        _answered(recs(3, 17), "database baseline")
