"""What keeps the load generator's sends on schedule (lbsim.validation.sender):
every thread of the process at a real-time priority where allowed (else a
raised nice value), put back afterwards; the heap alive before the sends
frozen out of the collector's passes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from lbsim.validation import sender
from lbsim.validation.sender import (
    SENDER_NICE,
    SENDER_RT_PRIORITY,
    SendPriority,
    frozen_heap,
    realtime_throttled,
    sender_priority,
)

pytestmark = pytest.mark.unit

ROOT = os.geteuid() == 0
#: where the sends run at real time: root, and a kernel that throttles real-time threads
REALTIME = ROOT and hasattr(os, "SCHED_FIFO") and realtime_throttled()


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _policy() -> tuple[int, int]:
    """The calling thread's scheduling policy (without the reset-on-fork flag) and priority."""
    tid = threading.get_native_id()
    return os.sched_getscheduler(tid) & ~os.SCHED_RESET_ON_FORK, os.sched_getparam(
        tid
    ).sched_priority


def _in_thread(fn: object) -> object:
    """Run ``fn`` on a fresh thread (nice is per thread: the test's own stays as it is)."""
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn()))  # type: ignore[operator]
    t.start()
    t.join(30)
    return out[0]


# ------------------------------------------------------------- real time
@pytest.mark.skipif(not REALTIME, reason="real-time priority needs root and a throttling kernel")
def test_the_sending_thread_runs_at_real_time_and_is_put_back() -> None:
    def body() -> tuple[tuple[int, int], SendPriority, tuple[int, int], tuple[int, int], int]:
        before = _policy()
        nice = _nice()
        with sender_priority() as priority:
            inside = _policy()
        return before, priority, inside, _policy(), nice

    before, priority, inside, after, nice = _in_thread(body)  # type: ignore[misc]
    assert priority == SendPriority(nice, SENDER_RT_PRIORITY)
    assert inside == (os.SCHED_FIFO, SENDER_RT_PRIORITY)
    assert after == before == (os.SCHED_OTHER, 0)
    assert str(priority) == f"real-time priority {SENDER_RT_PRIORITY} (SCHED_FIFO)"


@pytest.mark.skipif(not REALTIME, reason="real-time priority needs root and a throttling kernel")
def test_every_thread_runs_at_real_time_and_is_put_back() -> None:
    """A thread that holds the GIL at a normal priority would keep the sender
    waiting: the others run at real time too, and each is put back."""
    inside, seen = _during_and_after(_policy)
    assert inside == (os.SCHED_FIFO, SENDER_RT_PRIORITY)
    assert seen == [(os.SCHED_FIFO, SENDER_RT_PRIORITY), (os.SCHED_OTHER, 0)]
    assert _policy() == (os.SCHED_OTHER, 0)


@pytest.mark.skipif(not REALTIME, reason="real-time priority needs root and a throttling kernel")
def test_processes_started_from_the_block_run_at_normal_priority() -> None:
    """``docker exec`` from the block (the database counters) must not inherit
    real time: a child that spins would hold a core."""
    import subprocess
    import sys

    code = "import os; print(os.sched_getscheduler(0), os.sched_getparam(0).sched_priority)"

    def body() -> tuple[str, tuple[int, int]]:
        with sender_priority():
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 timeout=60, check=True).stdout  # fmt: skip
            return out.split(), _policy()

    (child, inside) = _in_thread(body)  # type: ignore[misc]
    assert inside == (os.SCHED_FIFO, SENDER_RT_PRIORITY)
    assert child == [str(os.SCHED_OTHER), "0"]


def test_without_the_right_to_real_time_every_thread_is_niced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def refuse(tid: int, policy: int, param: object) -> None:
        calls.append(tid)
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sender.os, "sched_setscheduler", refuse)
    monkeypatch.setattr(sender, "realtime_throttled", lambda: True)

    def body() -> tuple[int, SendPriority]:
        before = _nice()
        with sender_priority() as priority:
            pass
        return before, priority

    before, priority = _in_thread(body)  # type: ignore[misc]
    assert len(calls) == 1  # the sender's own thread tried, the others not
    expected = min(SENDER_NICE, before) if ROOT else before
    assert priority == SendPriority(expected, 0) and str(priority) == f"nice {expected}"


def test_no_real_time_where_the_kernel_does_not_throttle_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With ``sched_rt_runtime_us`` -1 a real-time thread that never sleeps
    would hold its core for ever: the sends run niced instead."""
    calls: list[int] = []
    monkeypatch.setattr(sender.os, "sched_setscheduler", lambda *a: calls.append(1))
    monkeypatch.setattr(sender, "realtime_throttled", lambda: False)
    with sender_priority() as priority:
        pass
    assert calls == [] and priority.realtime == 0


@pytest.mark.parametrize(
    ("text", "throttled"),
    [("950000\n", True), ("0\n", True), ("-1\n", False), ("x", False), (None, False)],
)
def test_the_kernel_throttle_is_read_from_its_file(
    tmp_path: pytest.TempPathFactory, text: str | None, throttled: bool
) -> None:
    path = tmp_path / "sched_rt_runtime_us"  # type: ignore[operator]
    if text is not None:
        path.write_text(text)
    assert realtime_throttled(path) is throttled


def _during_and_after(read: Callable[[], Any], **priority: int) -> tuple[Any, list[Any]]:
    """``read()`` on a fresh thread inside a ``sender_priority(**priority)``
    block, and on another thread started before it, once while the block
    runs and once after it: (the sender's reading, the other's two)."""
    seen: list[Any] = []
    go, done = threading.Event(), threading.Event()

    def other() -> None:
        go.wait(30)
        seen.append(read())
        done.wait(30)
        seen.append(read())

    def sender() -> Any:
        with sender_priority(**priority):
            go.set()
            time.sleep(0.2)  # the other thread reads its priority while the block runs
            return read()

    t = threading.Thread(target=other)
    t.start()
    try:
        inside = _in_thread(sender)
    finally:
        done.set()
        t.join(30)
    return inside, seen


# ------------------------------------------------- nice, where real time is not allowed
@pytest.mark.skipif(not ROOT, reason="raising a priority needs root")
def test_the_sending_thread_is_niced_and_put_back() -> None:
    def body() -> tuple[int, int, int, int]:
        before = _nice()
        with sender_priority(realtime=0) as priority:
            inside = _nice()
        return before, priority.nice, inside, _nice()

    before, nice, inside, after = _in_thread(body)  # type: ignore[misc]
    assert nice == inside == min(SENDER_NICE, before) and after == before


@pytest.mark.skipif(not ROOT, reason="raising a priority needs root")
def test_every_thread_of_the_process_is_niced_and_put_back() -> None:
    main_before = _nice()
    inside, seen = _during_and_after(_nice, realtime=0)
    assert inside == min(SENDER_NICE, main_before)
    assert seen == [min(SENDER_NICE, main_before), main_before] and _nice() == main_before


def test_without_any_right_the_block_runs_at_its_own_priority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sender.os, "setpriority", refuse)
    monkeypatch.setattr(sender.os, "sched_setscheduler", refuse)

    def body() -> tuple[int, SendPriority]:
        before = _nice()
        with sender_priority() as priority:
            pass
        return before, priority

    before, priority = _in_thread(body)  # type: ignore[misc]
    assert priority == SendPriority(before, 0)


def test_a_thread_already_above_it_is_not_lowered() -> None:
    calls: list[int] = []

    def body() -> int:
        with sender_priority(nice=19, realtime=0) as priority:  # 19: the lowest priority
            calls.append(priority.nice)
        return _nice()

    after = _in_thread(body)
    assert calls == [after]  # min(19, before) is before: nothing set


@pytest.mark.skipif(not ROOT, reason="raising a priority needs root")
def test_the_open_loop_reports_the_priority_its_sends_ran_at() -> None:
    from lbsim.validation.loadgen import send_open_loop
    from lbsim.validation.measured import loadgen_verdict
    from lbsim.validation.workplan import PlannedRequest
    from tests.test_validation_replay import FakeApp

    plan = [
        PlannedRequest(index=i, time=0.01 * i, cls=0, cls_name="c", client=0,
                       address="10.0.0.1", cpu=0.0, units=0, queries=())
        for i in range(5)
    ]  # fmt: skip
    with FakeApp(delay=0.0) as app:
        records, stats = _in_thread(lambda: send_open_loop(app.url, plan, 5.0))  # type: ignore[misc]
    assert len(records) == 5
    verdict = loadgen_verdict(stats)
    if REALTIME:
        assert stats.realtime == verdict["realtime"] == SENDER_RT_PRIORITY
    else:
        assert stats.realtime == verdict["realtime"] == 0
        assert stats.nice == verdict["nice"] == SENDER_NICE


def test_a_late_run_names_the_priority_it_sent_at() -> None:
    from lbsim.validation.loadgen import LoadgenStats
    from lbsim.validation.measured import loadgen_verdict

    late = LoadgenStats(wall=10.0, cpu=0.1, max_in_flight=3, not_sent=0,
                        lateness=[0.05] * 100, nice=0, realtime=10)  # fmt: skip
    verdict = loadgen_verdict(late)
    assert not verdict["valid"]
    assert (
        "p99 lateness 50.0 ms > 10 ms; the sender at real-time priority 10 (SCHED_FIFO)"
        in (verdict["problems"][0])
    )
    late.realtime, late.nice = 0, -10
    assert "the sender at nice -10" in loadgen_verdict(late)["problems"][0]


def test_the_heap_before_the_sends_is_frozen_and_put_back() -> None:
    import gc

    base = gc.get_freeze_count()
    with frozen_heap():
        frozen = gc.get_freeze_count()
        with frozen_heap():  # nested: left to the outermost
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    assert frozen > base and gc.get_freeze_count() == 0
