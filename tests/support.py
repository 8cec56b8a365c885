"""Helpers shared by the tests: build scenarios from dicts, replicate, and run
other programs so that nothing they start outlives the test."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import math
import os
import selectors
import signal
import subprocess
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from scipy import stats

import lbsim
from lbsim.scenario.loader import scenario_from_data


def scenario(data: dict[str, Any], **top: Any) -> lbsim.Scenario:
    d = copy.deepcopy(data)
    d.update(top)
    return scenario_from_data(d, "<test>")


def queue(
    rate: float,
    service: Any,
    *,
    nodes: int = 1,
    workers: int = 1,
    cores: float | None = None,
    policy: str = "round_robin",
    policy_options: dict[str, Any] | None = None,
    duration: float = 5000.0,
    warmup: float = 500.0,
    seed: int | None = None,
) -> dict[str, Any]:
    """A textbook queue as a scenario: Poisson arrivals at ``rate`` (total), no latencies.

    Unless given, the seed is derived from the queue's parameters, so that
    different checks draw independent streams (a shared seed would make all
    of them err in the same direction together).
    """
    if seed is None:
        key = repr((rate, service, nodes, workers, cores, policy, policy_options, duration))
        seed = zlib.crc32(key.encode())
    return {
        "name": "theory",
        "seed": seed,
        "duration": duration,
        "warmup": warmup,
        "workload": {"open": {"rate": rate}, "classes": [{"name": "job", "cpu": service}]},
        # a textbook queue: no upstream timeout, no passive ejection
        "balancer": {
            "policy": policy,
            "policy_options": policy_options or {},
            "upstream_timeout": 1e9,
            "max_fails": 0,
        },
        "app": {
            "nodes": nodes,
            "workers": workers,
            "cores": cores if cores is not None else workers,
            "backlog": 10_000_000,
        },
    }


class Estimate:
    """Mean over replications with a Student-t interval."""

    def __init__(self, values: list[float], confidence: float = 0.99):
        self.values = values
        n = len(values)
        self.mean = sum(values) / n
        var = sum((v - self.mean) ** 2 for v in values) / (n - 1)
        self.half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(var / n)

    def covers(self, target: float) -> bool:
        return abs(self.mean - target) <= self.half

    def __repr__(self) -> str:
        return f"{self.mean:.4f} ± {self.half:.4f} (n={len(self.values)})"


def replicate(data: dict[str, Any], key: str, reps: int) -> tuple[Estimate, lbsim.Result]:
    result = lbsim.simulate(scenario(data), replications=reps)
    values = [float(_get(r, key)) for r in result.runs]
    return Estimate(values), result


def _get(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def check_invariants(result: lbsim.Result) -> None:
    """Conservation, no failures, and Little's law on every replication."""
    for run in result.runs:
        req = run["requests"]
        assert req["failed"]["total"] == 0
        assert req["arrived"] == req["completed"] + req["failed"]["total"] + req["in_flight"]
        little = run["little"]
        duration = result.scenario.duration
        # Little's law as an exact identity over the window (edge terms included)
        identity = little["answered"] / duration * little["W"] + little["edge"]
        assert little["L"] == _approx(identity, rel=1e-6)
        # and the edge terms are small next to L for these long runs
        assert abs(little["edge"]) < 0.05 * little["L"] + 0.05


def _approx(value: float, rel: float) -> Any:
    import pytest

    return pytest.approx(value, rel=rel)


# ----------------------------------------------------------------- child processes
#
# A test that starts a program must stop it, and everything it started, however
# the test ends (failure, timeout, Ctrl-C): a leftover keeps a core busy, holds
# files and pipes, and its ``ResourceWarning`` ("subprocess N is still running")
# fires whenever the garbage collector gets to it -- in some later, unrelated
# test, which the warnings-as-errors configuration then fails. So every program
# is started in a session (process group) of its own and the whole group is
# killed, reaped and its pipes closed on the way out.
#
# Timeouts are for hangs, not for speed: the suite runs with ``-n auto`` on
# 2-core machines that also run other work (tests/run_busy.sh keeps a core
# busy), where a program that takes 10 s alone can take several times that.
# They are sized for that machine, with a margin, and say so where they are set.


def stop_group(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """Kill ``proc``'s whole process group (SIGTERM, then SIGKILL after ``grace``
    seconds), reap ``proc`` and close its pipes. Safe to call more than once."""
    if proc.returncode is None:
        # the group is the child's own (start_new_session): its pgid is its pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    # SIGKILL the group even when the leader is gone: its children may remain
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=60)  # SIGKILL cannot be ignored: this only waits for the kernel
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@contextlib.contextmanager
def spawn(
    argv: Sequence[str | Path],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[str]]:
    """``argv`` running in its own session, stdout and stderr piped (text).

    On leaving the block, normally or by an exception, the process and all it
    started are killed (:func:`stop_group`), so nothing survives the test.
    It gets SIGINT as a terminal's foreground command has it (the default
    action): a test run started in the background by a non-interactive shell
    (``cmd &``, as a busy-machine loop is) ignores SIGINT in everything it
    starts, and a Python started with SIGINT ignored ignores Ctrl-C for good —
    the Ctrl-C test then saw its sweep finish with exit 0.
    """
    proc = subprocess.Popen(
        [str(a) for a in argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )
    try:
        yield proc
    finally:
        stop_group(proc)


def _default_sigint() -> None:  # in the child, between fork and exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """Wait up to ``timeout`` s for ``proc`` to exit and close its pipes: (stdout, stderr).

    Past the timeout the whole process group is killed and the test fails,
    quoting the end of what the program wrote.
    """
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    out = err = ""
    # what it wrote so far (communicate() keeps it); the killed group closes the pipes
    with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
        out, err = proc.communicate(timeout=30)
    stop_group(proc)
    pytest.fail(
        f"`{_shown(proc.args)}` did not finish within {timeout:g} s; its process group was "
        f"killed.\n--- stdout (end) ---\n{(out or '')[-3000:]}\n--- stderr (end) ---\n"
        f"{(err or '')[-3000:]}",
        pytrace=False,
    )


def run_program(
    argv: Sequence[str | Path],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Like ``subprocess.run(argv, capture_output=True, text=True)`` but the
    program runs in its own session and, on a timeout or any failure of the
    test, its whole process group is killed (``subprocess.run`` kills only the
    program itself, and then waits for grandchildren that hold its pipes)."""
    with spawn(argv, env=env, cwd=cwd) as proc:
        out, err = finish(proc, timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _shown(args: Any) -> str:
    return " ".join(str(a) for a in args) if isinstance(args, list | tuple) else str(args)


# ----------------------------------------------------------------- virtual time
class _InstantSelector(selectors.DefaultSelector):
    """Never blocks: when nothing is ready, the loop's clock jumps to the next timer."""

    loop: VirtualClockLoop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready:
            return ready
        if timeout is None:
            # no timer and no I/O: a real loop would wait forever -- fail instead
            raise RuntimeError("virtual clock: the loop waits for I/O that never comes")
        self.loop.advance(timeout)
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop on a virtual clock: ``asyncio.sleep(5)`` returns at once
    with ``loop.time()`` 5 s later. Scheduling logic is then checked exactly,
    whatever the machine's load (real sockets must not be used: nothing waits
    for them)."""

    def __init__(self) -> None:
        selector = _InstantSelector()
        super().__init__(selector)
        selector.loop = self
        self._now = 0.0

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)


class _VirtualPolicy(asyncio.DefaultEventLoopPolicy):
    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        return VirtualClockLoop()


@contextlib.contextmanager
def virtual_time() -> Iterator[None]:
    """Within the block, every new event loop (``asyncio.run``) runs on a virtual clock."""
    before = asyncio.get_event_loop_policy()
    asyncio.set_event_loop_policy(_VirtualPolicy())
    try:
        yield
    finally:
        asyncio.set_event_loop_policy(before)
