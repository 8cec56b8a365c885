"""Live-stack tests measure latency and CPU on this machine: they run alone.

Under ``pytest -n auto`` the live tests (marker ``stack``) all go to one
worker (xdist group ``stack``, with ``--dist loadgroup`` in the pytest
options), so two stacks never run at once; and a machine-wide lock keeps
every other test off the CPU while a live test runs (other tests hold it
shared, a live test exclusively), so the measurements the live tests compare
with the model are not disturbed by the rest of the suite.

No test may leave a process behind (:func:`_no_leftover_processes`): a
leftover would load the machine for the tests after it, and its
``ResourceWarning`` would fail whichever test runs when it is collected.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import resource
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

LOCK = Path(tempfile.gettempdir()) / "lbsim-live-stack.lock"
#: a live test waiting for LOCK holds GATE, and other tests pass GATE before
#: taking LOCK shared: flock grants shared locks while an exclusive one waits,
#: so without the gate a busy suite (-n auto, test after test) starved a live
#: test for as long as the suite ran
GATE = Path(tempfile.gettempdir()) / "lbsim-live-stack.gate"


# Hypothesis' own timeouts fail a property on a loaded machine, not a bug: no
# per-example deadline, and slow data generation is not an error. (Loaded
# here, before the test modules build their settings from the default.)
# In CI (CI=true) the examples are derandomized: the same examples every run, so a
# CI verdict never hangs on which random examples a run drew; locally they stay
# random, which is where new cases are found (a case found there becomes a
# regression test, e.g. in tests/test_overload_properties.py).
settings.register_profile(
    "lbsim",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI", "").lower() in ("1", "true"),
)
settings.load_profile("lbsim")

#: the most memory (private writable mappings, RLIMIT_DATA) one test process,
#: or a program it starts, may take. The suite needs well under 1 GiB a
#: process; an input that should be refused but is simulated instead (a
#: billion workers) then fails its own test with MemoryError, instead of
#: growing until the kernel kills a worker (losing every result of the run)
#: or another program on the shared machine.
MEMORY_LIMIT = 4 << 30


def pytest_configure(config: pytest.Config) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = MEMORY_LIMIT if hard == resource.RLIM_INFINITY else min(MEMORY_LIMIT, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A test that reaches :data:`MEMORY_LIMIT` fails alone.

    Its frames, which hold what it allocated, are referenced by the
    MemoryError's traceback (and ``sys.last_traceback``): they are let go
    before pytest builds the report, which would otherwise fail for want of
    memory too and take the xdist worker, and the run's results, with it.
    """
    try:
        return (yield)
    except MemoryError as exc:
        seen: BaseException | None = exc
        while seen is not None:  # the chain: handling one MemoryError can raise another
            seen.__traceback__ = None
            seen = seen.__context__
        for name in ("last_type", "last_value", "last_traceback"):
            if hasattr(sys, name):
                delattr(sys, name)
    gc.collect()
    pytest.fail(
        f"{item.nodeid} ran out of memory (the test processes' limit is "
        f"{MEMORY_LIMIT >> 30} GiB, tests/conftest.py)",
        pytrace=False,
    )


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("stack") is not None:
            item.add_marker(pytest.mark.xdist_group("stack"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[object]:
    """The machine lock around a test's whole protocol: its setup (a module- or
    session-scoped fixture it is the first to need, such as a stack brought up
    for a module or a story measured once for its tests), its call and its
    teardown (the module's fixtures torn down after its last test).

    An autouse function fixture took the lock before: fixtures of a wider
    scope are set up *before* it, so a module's stack, and the slow-galera
    story's whole 5-minute measurement, ran unlocked beside the rest of the
    suite — CI measured 1.5 cores "outside the stack" during that story and
    its load generator lagged (both CI runs that failed it)."""
    live = item.get_closest_marker("stack") is not None
    with LOCK.open("a") as fh:
        with GATE.open("a") as gate:
            if live:  # close the gate, wait for the tests inside, open it again
                fcntl.flock(gate, fcntl.LOCK_EX)
                fcntl.flock(fh, fcntl.LOCK_EX)
            else:  # wait while a live test waits or runs
                fcntl.flock(gate, fcntl.LOCK_SH)
                fcntl.flock(fh, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            return (yield)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---------------------------------------------------------------- leftover processes
#: helpers multiprocessing keeps for the life of the process that started them
#: (one each, by design): not leftovers of the test that happened to start them
_LONG_LIVED = ("multiprocessing.forkserver", "multiprocessing.resource_tracker")
#: how long a test's processes may take to exit after it ends (pools shut
#: down without waiting, killed groups being reaped) on a loaded machine
_EXIT_GRACE = 30.0


def _descendants(root: int) -> dict[int, str]:
    """The live (not zombie) descendants of ``root``: pid -> command line."""
    parent: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:  # exited meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # the name, in (), may hold spaces
        if fields[0] not in ("Z", "X"):
            parent[int(entry.name)] = int(fields[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        for child, ppid in parent.items():
            if ppid == pid and child not in found:
                try:
                    raw = Path(f"/proc/{child}/cmdline").read_bytes()
                except OSError:
                    continue
                found[child] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
                frontier.append(child)
    return found


@pytest.fixture(autouse=True)
def _no_leftover_processes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test that leaves a process running (and kill the process).

    Processes that were running when the test started (a module's Dask
    cluster, multiprocessing's fork server) are not the test's.
    """
    if not Path("/proc/self/stat").exists():  # pragma: no cover - Linux only
        yield
        return
    me = os.getpid()
    before = set(_descendants(me))
    yield
    deadline = time.monotonic() + _EXIT_GRACE
    while True:
        left = {
            pid: cmd
            for pid, cmd in _descendants(me).items()
            if pid not in before and not any(name in cmd for name in _LONG_LIVED)
        }
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shown = "; ".join(f"{pid}: {cmd[:200]}" for pid, cmd in sorted(left.items()))
        pytest.fail(
            f"{request.node.nodeid} left {len(left)} process(es) running "
            f"{_EXIT_GRACE:g} s after it ended (now killed): {shown}",
            pytrace=False,
        )
