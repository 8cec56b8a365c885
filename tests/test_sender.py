"""What keeps the load generator's sends on schedule (lbsim.validation.sender):
the sending thread at a raised priority where allowed, put back afterwards;
the heap alive before the sends frozen out of the collector's passes."""

from __future__ import annotations

import os
import threading
import time

import pytest

from lbsim.validation import sender
from lbsim.validation.sender import SENDER_NICE, frozen_heap, sender_priority

pytestmark = pytest.mark.unit

ROOT = os.geteuid() == 0


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _in_thread(fn: object) -> object:
    """Run ``fn`` on a fresh thread (nice is per thread: the test's own stays as it is)."""
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn()))  # type: ignore[operator]
    t.start()
    t.join(30)
    return out[0]


@pytest.mark.skipif(not ROOT, reason="raising a priority needs root")
def test_the_sending_thread_is_raised_and_put_back() -> None:
    def body() -> tuple[int, int, int, int]:
        before = _nice()
        with sender_priority() as nice:
            inside = _nice()
        return before, nice, inside, _nice()

    before, nice, inside, after = _in_thread(body)  # type: ignore[misc]
    assert nice == inside == min(SENDER_NICE, before) and after == before


@pytest.mark.skipif(not ROOT, reason="raising a priority needs root")
def test_every_thread_of_the_process_is_raised_and_put_back() -> None:
    """A thread that holds the GIL at a normal priority would keep the raised
    sender waiting: the others are raised too, and each is put back."""
    seen: list[int] = []
    go, done = threading.Event(), threading.Event()

    def other() -> None:
        go.wait(30)
        seen.append(_nice())
        done.wait(30)
        seen.append(_nice())

    t = threading.Thread(target=other)
    main_before = _nice()
    t.start()
    try:
        inside = _in_thread(lambda: _raised_then(go))
    finally:
        done.set()
        t.join(30)
    assert inside == min(SENDER_NICE, main_before)
    assert seen == [min(SENDER_NICE, main_before), main_before] and _nice() == main_before


def _raised_then(go: threading.Event) -> int:
    with sender_priority():
        go.set()
        time.sleep(0.2)  # the other thread reads its nice while the block runs
        return _nice()


def _raised_nice() -> int:
    with sender_priority():
        return _nice()


def test_without_the_right_the_block_runs_at_its_own_priority(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(which: int, who: int, prio: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sender.os, "setpriority", refuse)

    def body() -> tuple[int, int]:
        before = _nice()
        with sender_priority() as nice:
            pass
        return before, nice

    before, nice = _in_thread(body)  # type: ignore[misc]
    assert nice == before


def test_a_thread_already_above_it_is_not_lowered() -> None:
    calls: list[int] = []

    def body() -> int:
        with sender_priority(nice=19) as nice:  # 19: the lowest priority
            calls.append(nice)
        return _nice()

    after = _in_thread(body)
    assert calls == [after]  # min(19, before) is before: nothing set


@pytest.mark.skipif(not ROOT, reason="raising a priority needs root")
def test_the_open_loop_reports_the_nice_its_sends_ran_at() -> None:
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
    assert len(records) == 5 and stats.nice == SENDER_NICE
    assert loadgen_verdict(stats)["nice"] == SENDER_NICE


def test_the_heap_before_the_sends_is_frozen_and_put_back() -> None:
    import gc

    base = gc.get_freeze_count()
    with frozen_heap():
        frozen = gc.get_freeze_count()
        with frozen_heap():  # nested: left to the outermost
            assert gc.get_freeze_count() == frozen
        assert gc.get_freeze_count() == frozen
    assert frozen > base and gc.get_freeze_count() == 0
