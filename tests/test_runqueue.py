"""The scheduler counters of the stack's threads (validation.runqueue), on fake /proc trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lbsim.validation.runqueue import (
    LOAD_GENERATOR,
    PORT_PROXY,
    RunQueue,
    Slices,
    group_delta,
    level_runqueue,
    parse_schedstat,
    parse_tasks,
    runqueue_lines,
    summarise,
    window_deltas,
)


def test_parse_schedstat_reads_run_wait_and_slices():
    s = parse_schedstat("20550063 4308498 86\n")
    assert s.run == pytest.approx(0.020550063)
    assert s.wait == pytest.approx(0.004308498)
    assert s.slices == 86


def test_parse_schedstat_refuses_a_short_line():
    with pytest.raises(ValueError, match="2 fields"):
        parse_schedstat("1 2")


def test_parse_tasks():
    assert parse_tasks("8477\n8521\n\n") == [8477, 8521]


def test_group_delta_counts_new_threads_in_full_and_reused_ids_from_zero():
    before = {1: Slices(1.0, 0.5, 10), 2: Slices(2.0, 1.0, 20), 3: Slices(9.0, 9.0, 90)}
    after = {
        1: Slices(1.5, 0.75, 15),  # ran 0.5 s, waited 0.25 s, 5 slices
        3: Slices(0.1, 0.05, 2),  # counters went back: a new thread under an old id
        4: Slices(0.2, 0.1, 3),  # started inside the window
    }  # thread 2 ended: its counts are gone
    d = group_delta(before, after)
    assert d.run == pytest.approx(0.5 + 0.1 + 0.2)
    assert d.wait == pytest.approx(0.25 + 0.05 + 0.1)
    assert d.slices == 5 + 2 + 3


def test_summarise_per_request_and_per_slice():
    out = summarise({"lb": Slices(0.2, 0.1, 400), "idle": Slices(0.0, 0.0, 0)}, requests=100)
    assert set(out) == {"lb"}  # a group that never ran is left out
    assert out["lb"]["wait_per_request"] == pytest.approx(0.001)
    assert out["lb"]["run_per_request"] == pytest.approx(0.002)
    assert out["lb"]["slices_per_request"] == pytest.approx(4.0)
    assert out["lb"]["wait_per_slice"] == pytest.approx(0.00025)
    assert summarise({"lb": Slices(0.2, 0.1, 400)}, requests=0) == {}


def _fake_proc(root: Path, threads: dict[int, tuple[str, int, int, int]], pid_of: dict[int, int]):
    """A /proc with ``threads`` (tid → comm, run ns, wait ns, slices), each in
    the process ``pid_of[tid]``."""
    for tid, (comm, run, wait, n) in threads.items():
        pid = pid_of[tid]
        (root / str(tid)).mkdir(parents=True, exist_ok=True)
        (root / str(tid) / "schedstat").write_text(f"{run} {wait} {n}\n")
        (root / str(pid) / "task" / str(tid)).mkdir(parents=True, exist_ok=True)
        (root / str(pid) / "comm").write_text(comm + "\n")
    (root / "self").mkdir(exist_ok=True)
    (root / "self" / "schedstat").write_text("1 1 1\n")


def test_run_queue_snapshots_containers_port_proxies_and_itself(tmp_path):
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    me = os.getpid()
    threads = {
        101: ("nginx", 1_000_000, 500_000, 10),
        102: ("nginx", 2_000_000, 500_000, 20),
        201: ("docker-proxy", 3_000_000, 1_000_000, 30),
        me: ("python3", 4_000_000, 2_000_000, 40),
    }
    _fake_proc(proc, threads, {101: 101, 102: 101, 201: 201, me: me})
    tasks = cgroup / "cpu" / "docker" / "abc" / "tasks"
    tasks.parent.mkdir(parents=True)
    tasks.write_text("101\n102\n")
    rq = RunQueue({"lb": "abc", "gone": "nothing-here"}, proc=proc, root=cgroup)
    assert rq.available and set(rq.tasks) == {"lb"}  # a container without a cgroup file is left out
    before = rq.snapshot()
    assert set(before) == {"lb", PORT_PROXY, LOAD_GENERATOR}
    assert before["lb"][102] == Slices(0.002, 0.0005, 20)
    (proc / "102" / "schedstat").write_text("2500000 1500000 25\n")  # waited 1 ms more in 5 runs
    deltas = window_deltas(before, rq.snapshot())
    assert deltas["lb"].wait == pytest.approx(0.001)
    assert deltas["lb"].slices == 5
    assert deltas[PORT_PROXY] == Slices(0.0, 0.0, 0)


def test_run_queue_without_schedstat_is_unavailable(tmp_path):
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    proc.mkdir()
    tasks = cgroup / "cpu" / "docker" / "abc" / "tasks"
    tasks.parent.mkdir(parents=True)
    tasks.write_text("101\n")
    rq = RunQueue({"lb": "abc"}, proc=proc, root=cgroup)
    assert not rq.available
    assert rq.snapshot() == {}


def test_level_runqueue_averages_over_the_replays_that_have_a_group():
    a = {"lb": {"wait_per_request": 0.001, "slices_per_request": 4.0}}
    b = {
        "lb": {"wait_per_request": 0.003, "slices_per_request": 6.0},
        "db1": {"wait_per_request": 0.002, "slices_per_request": 3.0},
    }
    out = level_runqueue([a, b, {}])
    assert out["lb"]["wait_per_request"] == pytest.approx(0.002)
    assert out["lb"]["slices_per_request"] == pytest.approx(5.0)
    assert out["db1"]["wait_per_request"] == pytest.approx(0.002)  # only b has it


def test_runqueue_lines_order_groups_and_total():
    rq = {
        "lb": {"wait_per_request": 0.001, "slices_per_request": 4.0},
        LOAD_GENERATOR: {"wait_per_request": 0.0005, "slices_per_request": 2.0},
    }
    lines = runqueue_lines([("30%", rq), ("60%", {})])
    header = next(line for line in lines if line.startswith("| level"))
    assert header == f"| level | {LOAD_GENERATOR} | lb | total |"
    row = next(line for line in lines if line.startswith("| 30%"))
    assert row == "| 30% | 0.50 (2.0) | 1.00 (4.0) | 1.50 |"
    assert not any(line.startswith("| 60%") for line in lines)  # a level without counters
    assert runqueue_lines([("30%", {})]) == []
