"""Live-stack tests measure latency and CPU on this machine: they run alone.

Under ``pytest -n auto`` the live tests (marker ``stack``) all go to one
worker (xdist group ``stack``, with ``--dist loadgroup`` in the pytest
options), so two stacks never run at once; and a machine-wide lock keeps
every other test off the CPU while a live test runs (other tests hold it
shared, a live test exclusively), so the measurements the live tests compare
with the model are not disturbed by the rest of the suite.
"""

from __future__ import annotations

import fcntl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

LOCK = Path(tempfile.gettempdir()) / "lbsim-live-stack.lock"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("stack") is not None:
            item.add_marker(pytest.mark.xdist_group("stack"))


@pytest.fixture(autouse=True)
def _machine_to_ourselves(request: pytest.FixtureRequest) -> Iterator[None]:
    live = request.node.get_closest_marker("stack") is not None
    with LOCK.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX if live else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
