"""Nothing the validation tools do can hang: every request loop of the load
generator and every wait on Docker is bounded in count and in time, and a
stuck container is a clear error with the end of its log.

No Docker and no network here: the load generator runs on a virtual clock
(tests.support.virtual_time) against a fake transport, Docker is a shell
script or a fake, the readiness wait runs on a fake clock.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import lbsim
from lbsim.validation import docker as dk
from lbsim.validation import lifecycle as life
from lbsim.validation import loadgen
from lbsim.validation.lifecycle import ContainerState, StackHandle
from lbsim.validation.loadgen import (
    CONNECT_ERROR,
    NOT_SENT,
    TIMEOUT,
    read_bounded,
    send_closed_loop,
    send_open_loop,
    send_sequential,
)
from lbsim.validation.workplan import ClosedLoopPlan, MachineCosts, PlannedRequest, work_plan
from tests.support import virtual_time

pytestmark = pytest.mark.unit

MIXED = Path("scenarios/mixed.yaml")
#: nothing listens there: the transport is a fake in every test that sends
URL = "http://127.0.0.1:9/"


def _plan(rate: float = 20, duration: float = 2) -> list[PlannedRequest]:
    sc = lbsim.load_scenario(MIXED, [f"workload.open.rate={rate}"], duration=duration, warmup=0)
    return list(work_plan(sc, MachineCosts(), rows=1000))


def _closed(users: int, think: float, duration: float) -> ClosedLoopPlan:
    data = yaml.safe_load(MIXED.read_text())
    data["workload"].pop("open")
    data["workload"]["closed"] = {"users": users, "think_time": think}
    data.update(duration=duration, warmup=0)
    return ClosedLoopPlan(lbsim.Scenario.model_validate(data), MachineCosts(), rows=1000)


class Transport:
    """A fake :func:`loadgen.fetch`: ``mode`` is ``hang`` (never answers),
    ``refuse`` (the connection fails at once) or ``ok``. Records when each
    request went out (virtual time)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.sent_at: list[float] = []

    async def __call__(
        self, target: Any, path: str, headers: dict[str, str]
    ) -> tuple[int, dict[str, str]]:
        self.sent_at.append(asyncio.get_running_loop().time())
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode == "refuse":
            raise ConnectionRefusedError("refused")
        return 200, {}


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> Iterator[Transport]:
    fake = Transport("hang")
    monkeypatch.setattr(loadgen, "fetch", fake)
    with virtual_time():
        yield fake


# ---------------------------------------------------------------- the load generator
@pytest.mark.parametrize("timeout", [math.inf, math.nan, 0.0, -1.0])
def test_the_client_timeout_must_be_finite(timeout: float, transport: Transport) -> None:
    """An infinite timeout would let one request wait forever: refused before sending."""
    with pytest.raises(ValueError, match="finite number of seconds > 0"):
        send_open_loop(URL, _plan(), timeout)
    with pytest.raises(ValueError, match="finite number of seconds > 0"):
        send_closed_loop(URL, _closed(2, 1.0, 5), timeout)
    with pytest.raises(ValueError, match="finite number of seconds > 0"):
        send_sequential(URL, _plan(), timeout)
    assert transport.sent_at == []


def test_hooks_and_budgets_must_be_finite(transport: Transport) -> None:
    with pytest.raises(ValueError, match="hook's time must be finite"):
        send_open_loop(URL, _plan(), 1.0, at=[(math.inf, lambda: None)])
    with pytest.raises(ValueError, match="budget must be a finite"):
        send_sequential(URL, _plan(), 1.0, budget=math.inf)
    with pytest.raises(ValueError, match="max_requests must be between 1 and"):
        send_closed_loop(URL, _closed(2, 1.0, 5), 1.0, max_requests=0)
    assert transport.sent_at == []


def test_an_endless_plan_is_refused_before_anything_is_sent(transport: Transport) -> None:
    """The count bound: a plan is read up to its limit, never to its end."""
    item = _plan()[0]
    with pytest.raises(ValueError, match="more than 50 requests"):
        send_open_loop(URL, itertools.repeat(item), 1.0, max_requests=50)
    with pytest.raises(ValueError, match="more than 50 requests"):
        send_sequential(URL, itertools.repeat(item), 1.0, max_requests=50)
    assert transport.sent_at == []


def test_an_open_loop_against_a_silent_server_ends_one_timeout_after_its_last_send(
    transport: Transport,
) -> None:
    plan = _plan()
    records, stats = send_open_loop(URL, plan, timeout=3.0)
    assert all(r.status == TIMEOUT and r.latency == 3.0 for r in records)
    assert stats.wall == pytest.approx(plan[-1].time + 3.0, abs=1e-6)


def test_a_closed_loop_against_a_silent_server_ends_one_timeout_after_the_horizon(
    transport: Transport,
) -> None:
    plan = _closed(3, 0.5, duration=10)
    records, stats = send_closed_loop(URL, plan, timeout=4.0)
    assert records and all(r.status == TIMEOUT for r in records)
    assert all(r.scheduled < plan.horizon for r in records)
    assert stats.wall <= plan.horizon + 4.0 + 1e-6


def test_a_closed_loop_that_never_waits_stops_at_its_request_limit(
    transport: Transport,
) -> None:
    """Zero think time and connections refused at once: the clock never moves,
    only the request limit ends the loop."""
    transport.mode = "refuse"
    records, stats = send_closed_loop(URL, _closed(4, 0.0, duration=10), 1.0, max_requests=500)
    assert len(records) == 500 and {r.status for r in records} == {CONNECT_ERROR}
    assert "request limit (500)" in stats.stopped_early
    assert stats.wall < 0.1  # virtual: all of it at the first instant


def test_sequential_requests_stop_at_their_budget(transport: Transport) -> None:
    """Ten requests to a silent server with a 1 s timeout and a 3.5 s budget:
    four go out (at 0, 1, 2 and 3 s), the other six are not sent."""
    records = send_sequential(URL, _plan()[:10], timeout=1.0, budget=3.5)
    assert transport.sent_at == pytest.approx([0.0, 1.0, 2.0, 3.0])
    assert [r.status for r in records] == [TIMEOUT] * 4 + [NOT_SENT] * 6


def test_a_response_is_read_up_to_a_limit() -> None:
    async def read(data: bytes, limit: int) -> bytes:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        return await read_bounded(reader, limit)

    assert asyncio.run(read(b"HTTP/1.1 200 OK\r\n\r\nok", 1000)) == b"HTTP/1.1 200 OK\r\n\r\nok"
    with pytest.raises(ConnectionError, match="longer than 1000 bytes"):
        asyncio.run(read(b"x" * 5000, 1000))


# ---------------------------------------------------------------- docker commands
def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def test_a_command_past_its_timeout_is_killed_with_everything_it_started(
    tmp_path: Path,
) -> None:
    """`docker compose` and the build scripts start children of their own: a
    timeout kills the whole process group, not just the command."""
    pidfile = tmp_path / "child.pid"
    script = tmp_path / "stuck.sh"
    script.write_text(f"echo starting\nsleep 300 &\necho $! > {pidfile}\nsleep 300\n")
    start = time.monotonic()
    with pytest.raises(dk.DockerTimeout, match=r"did not finish within 1 s \(killed\)") as info:
        dk.run(["sh", str(script)], timeout=1.0)
    # the grace after SIGTERM is not needed (sh and sleep die of it); allow a loaded machine
    assert time.monotonic() - start < 1.0 + dk.KILL_GRACE + 30
    assert "starting" in info.value.output
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child), "the command's child outlived the timeout"


def test_a_log_tail_never_raises(tmp_path: Path) -> None:
    """It is quoted in error messages: a docker that fails must not replace them."""
    docker = tmp_path / "docker"
    docker.write_text("#!/bin/sh\necho 'daemon gone' >&2\nexit 1\n")
    os.chmod(docker, 0o755)
    compose = dk.Compose(dk.Docker(str(docker), (str(docker), "compose")), "p", tmp_path)
    assert compose.logs_tail("app1").startswith("(no log: ")


# ---------------------------------------------------------------- waiting for the stack
class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps = 0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps += 1
        self.now += seconds


class FakeCompose:
    def logs_tail(self, service: str, n: int = 30) -> str:
        return f"{service}: last words"


def _handle(tmp_path: Path, db_engine: str = "none") -> StackHandle:
    services: dict[str, Any] = {"lb": {}, "app1": {}, "app2": {}, "db1": {}}
    text = yaml.safe_dump({"services": services}, sort_keys=False)
    (tmp_path / "docker-compose.yml").write_text(text)
    meta = {"app_nodes": ["app1", "app2"], "db_nodes": ["db1"], "db_engine": db_engine}
    return StackHandle("lbsim-t", tmp_path, meta, "http://127.0.0.1:9/", FakeCompose())  # type: ignore[arg-type]


def _state(service: str, state: str = "running", health: str = "") -> ContainerState:
    return ContainerState(service, f"id-{service}", state, health, 1.0, 0)


def _running(**override: tuple[str, str]) -> dict[str, ContainerState]:
    out = {s: _state(s) for s in ("lb", "app1", "app2", "db1")}
    out.update({s: _state(s, *v) for s, v in override.items()})
    return out


def test_a_container_stuck_starting_is_an_error_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    calls = []

    def states(compose: Any) -> dict[str, ContainerState]:
        calls.append(clock.now)
        return _running(app2=("running", "starting"))

    monkeypatch.setattr(life, "containers", states)
    with pytest.raises(dk.StackError) as info:
        life.wait_ready(_handle(tmp_path), timeout=60, poll=1, clock=clock, sleep=clock.sleep)
    message = str(info.value)
    assert "app2 is running but starting after 60 s" in message
    assert "last 30 lines of app2's log:\napp2: last words" in message
    assert clock.now == pytest.approx(1060)  # no pass started after the deadline
    assert len(calls) <= 60 / 1 + 2


def test_a_docker_that_does_not_answer_is_waited_for_then_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`docker inspect` timing out is "not ready yet" until the deadline, then an error."""
    clock = FakeClock()

    def states(compose: Any) -> dict[str, ContainerState]:
        clock.now += dk.QUICK  # each query waits its whole timeout
        raise dk.DockerTimeout(f"`docker inspect` did not finish within {dk.QUICK:g} s (killed)")

    monkeypatch.setattr(life, "containers", states)
    with pytest.raises(dk.StackError, match=r"lb cannot be inspected .*after 100 s") as info:
        life.wait_ready(_handle(tmp_path), timeout=100, poll=1, clock=clock, sleep=clock.sleep)
    assert "lb: last words" in str(info.value)
    assert clock.now <= 1000 + 100 + dk.QUICK


def test_a_galera_node_that_does_not_answer_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(life, "containers", lambda compose: _running())

    def galera_state(handle: Any, node: str) -> tuple[int, str]:
        raise dk.StackError("`mysql` in db1 failed: Can't connect to local server")

    monkeypatch.setattr(life, "galera_state", galera_state)
    with pytest.raises(dk.StackError) as info:
        life.wait_ready(
            _handle(tmp_path, "galera"), timeout=30, poll=2, clock=clock, sleep=clock.sleep
        )
    message = str(info.value)
    assert "db1 does not answer SHOW STATUS (`mysql` in db1 failed" in message
    assert "after 30 s" in message and "db1: last words" in message
    assert clock.sleeps >= 10  # it waited, polling, instead of failing at once


def test_balancer_probes_stop_at_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to 8 probes per app node, each up to 5 s, would overrun a short
    timeout: the probes stop at the deadline and shrink their timeout to it."""
    clock = FakeClock()
    monkeypatch.setattr(life, "containers", lambda compose: _running())
    timeouts: list[float] = []

    def healthz(url: str, client: int, timeout: float = 5.0) -> str | None:
        timeouts.append(timeout)
        clock.now += timeout
        return None

    monkeypatch.setattr(life, "healthz", healthz)
    with pytest.raises(dk.StackError, match="lb does not answer GET"):
        life.wait_ready(_handle(tmp_path), timeout=12, poll=1, clock=clock, sleep=clock.sleep)
    assert clock.now <= 1000 + 12 + 0.5
    assert min(timeouts) >= 0.5 and len(timeouts) <= 12 / 0.5


def test_compose_up_past_its_timeout_names_the_service_it_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(life, "containers", lambda compose: _running(db1=("created", "")))
    error = life._up_failure(_handle(tmp_path), "Creating db1 ... waiting", timed_out=True)
    message = str(error)
    assert "db1 is created when compose up was killed" in message
    assert "Creating db1 ... waiting" in message
    assert "last 30 lines of db1's log:\ndb1: last words" in message
