"""Lint and static types are part of the test command, so CI and a developer
run exactly the same checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import run_program

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.quality


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    # mypy --strict from a cold cache takes about a minute alone; on a loaded
    # 2-core machine (-n auto plus other work) several: the timeout only
    # catches a hang (the tool's process group is then killed)
    return run_program(cmd, cwd=ROOT, timeout=1200)


def test_ruff_lint() -> None:
    proc = _run(sys.executable, "-m", "ruff", "check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    proc = _run(sys.executable, "-m", "mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
