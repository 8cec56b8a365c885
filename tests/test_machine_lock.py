"""The suite's machine lock (tests/conftest.py) covers a test's whole protocol.

A module-scoped fixture is set up inside the protocol of the first test that
needs it: it must already hold the lock (shared for an ordinary test,
exclusive for a live one), or a live module's stack and story run beside the
rest of the suite (CI measured 1.5 cores outside the stack in such a story).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import LOCK

pytestmark = pytest.mark.unit

#: exit 0 if LOCK can be taken exclusively at once, 1 if someone holds it
_TRY_EXCLUSIVE = (
    "import fcntl, sys\n"
    "with open(sys.argv[1], 'a') as fh:\n"
    "    try:\n"
    "        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
    "    except BlockingIOError:\n"
    "        sys.exit(1)\n"
)


def _held() -> bool:
    done = subprocess.run([sys.executable, "-c", _TRY_EXCLUSIVE, str(LOCK)], timeout=60)
    assert done.returncode in (0, 1)
    return done.returncode == 1


@pytest.fixture(scope="module")
def held_during_module_setup() -> bool:
    return _held()


def test_a_module_fixture_is_set_up_under_the_lock(held_during_module_setup: bool) -> None:
    assert held_during_module_setup


def test_a_test_runs_under_the_lock() -> None:
    assert _held()
