"""The HTML report in a real browser: headless Chromium renders it to a screenshot.

CI needs the Debian package ``chromium``; without it these tests skip (and say so).
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lbsim.cli.app import app
from tests.support import run_program

pytestmark = pytest.mark.browser

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)

TINY = """\
name: tiny
seed: 3
duration: 15
warmup: 2
workload:
  open: {rate: 30}
  classes:
    - {name: fast, weight: 0.8, cpu: {dist: exponential, mean: 0.01}}
    - {name: slow, weight: 0.2, cpu: {dist: gamma, mean: 0.05, cv: 0.5}}
app: {nodes: 2, workers: 4, cores: 1}
"""


def screenshot(page: Path, png: Path, profile: Path) -> tuple[int, int]:
    """Render ``page`` in headless Chromium; returns the screenshot's width and height."""
    assert CHROMIUM is not None
    # Chromium starts a zygote, GPU and renderer processes that outlive a killed
    # parent: it runs in its own process group, all killed if it hangs. A
    # screenshot takes a few seconds alone; the timeout allows for a loaded
    # 2-core machine (-n auto plus other work) and only catches a hang.
    proc = run_program(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            "--window-size=1280,2000",
            page.as_uri(),
        ],
        timeout=600,
    )
    assert png.exists(), proc.stdout + proc.stderr
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# .ci/run installs chromium, so in CI a missing browser is a failure, not a skip
@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="chromium is not installed (apt-get install chromium)",
)
@pytest.mark.parametrize("kind", ["sweep", "plan"])
def test_report_renders_in_chromium(kind: str, tmp_path: Path) -> None:
    assert CHROMIUM is not None, "chromium is missing: .ci/run must install it"
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY)
    out = tmp_path / kind
    args = {
        "sweep": [
            "sweep",
            str(scenario),
            "--param",
            "workload.open.rate=10:50:20",
            "--param",
            "app.nodes=1,2",
            "--replications",
            "2",
        ],
        "plan": [
            "plan",
            str(scenario),
            "--slo",
            "p95<0.2",
            "--slo",
            "failed<0.01",
            "--vary",
            "app.nodes=1..3",
            "--replications",
            "3",
        ],
    }[kind]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    png = tmp_path / f"{kind}.png"
    width, height = screenshot(out / "report.html", png, tmp_path / "profile")
    assert (width, height) == (1280, 2000)
    # a rendered page with tables and figures, not a blank one
    assert png.stat().st_size > 60_000
