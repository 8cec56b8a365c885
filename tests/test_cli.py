"""The ``lbsim`` command: ``run`` and ``check`` through typer's CliRunner, and one
real process (``python -m lbsim``) as a smoke test."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import lbsim
from lbsim.cli.app import app
from lbsim.scenario.loader import scenario_from_data
from tests.support import run_program

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parent.parent
MIXED = ROOT / "scenarios" / "mixed.yaml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TINY = """\
name: tiny
seed: 3
duration: 20
warmup: 2
workload:
  open: {rate: 20}
  timeout: 5
  classes:
    - {name: fast, weight: 0.8, cpu: {dist: exponential, mean: 0.01}}
    - {name: slow, weight: 0.2, cpu: {dist: gamma, mean: 0.05, cv: 0.5}}
app: {nodes: 2, workers: 4, cores: 2}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def ok(*args: str | Path) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert result.exception is None, result.exc_info
    return result


def flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, name + "."))
        else:
            out[name] = value
    return out


def run_json(*args: str | Path, path: Path) -> dict[str, Any]:
    ok("run", *args, "--quiet", "--json", path)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


CONTRACT = [
    "requests.arrived",
    "requests.completed",
    "requests.in_flight",
    "requests.failed.timeout",
    "requests.failed.total",
    "throughput",
    "latency.mean",
    "latency.p50",
    "latency.p95",
    "latency.p99",
    "latency.max",
]


# ----------------------------------------------------------------- run: tables


def test_run_prints_the_tables(tiny: Path) -> None:
    out = ok("run", tiny).stdout
    for text in ("Offered load", "bottleneck:", "Latency (ms) — tiny", "Requests", "Utilisation"):
        assert text in out
    for row in ("all", "fast", "slow", "app app1", "app app2"):
        assert row in out
    assert "warning" not in out  # offered load 0.09: no overload warning


def test_quiet_prints_nothing(tiny: Path, tmp_path: Path) -> None:
    result = ok("run", tiny, "--quiet", "--json", tmp_path / "r.json")
    assert result.output == ""


# ----------------------------------------------------------------- run: JSON contract


def test_json_has_the_contract_keys(tiny: Path, tmp_path: Path) -> None:
    data = run_json(tiny, path=tmp_path / "r.json")
    keys = flat(data)
    for key in CONTRACT:
        assert key in keys, key
        assert isinstance(keys[key], int | float), key
    for cls in ("fast", "slow"):
        assert f"classes.{cls}.throughput" in keys
        for q in ("mean", "p50", "p95", "p99", "max"):
            assert f"classes.{cls}.latency.{q}" in keys
    for node in ("app1", "app2"):
        for what in ("workers", "cpu"):
            assert 0 <= keys[f"utilisation.app.{node}.{what}"] <= 1
    assert "ci95" not in data  # one replication: no confidence intervals

    req = data["requests"]
    failed = req["failed"]
    assert req["arrived"] == req["completed"] + failed["total"] + req["in_flight"]
    assert failed["total"] == sum(v for k, v in failed.items() if k != "total")
    assert req["arrived"] > 300  # 20 req/s for 20 s
    assert all(isinstance(req[k], int) for k in ("arrived", "completed", "in_flight"))
    lat = data["latency"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert lat["mean"] <= lat["max"]
    classes = data["classes"]
    assert sum(c["throughput"] for c in classes.values()) == pytest.approx(data["throughput"])
    # the slow class really is slower: 0.05 s of CPU against 0.01 s
    assert classes["slow"]["latency"]["mean"] > classes["fast"]["latency"]["mean"]
    assert data["meta"]["seed"] == 3
    assert data["meta"]["duration"] == 20


def test_json_into_missing_directories_creates_them(tiny: Path, tmp_path: Path) -> None:
    path = tmp_path / "new" / "deeper" / "r.json"
    data = run_json(tiny, path=path)
    assert data["requests"]["arrived"] > 0


def test_json_under_a_file_fails_cleanly_before_simulating(tiny: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    result = invoke("run", tiny, "--json", blocker / "r.json")
    assert result.exit_code == 2
    assert f"error: {blocker}: cannot create directory" in result.stderr
    assert "Latency" not in result.output  # it failed before simulating


def test_out_on_a_file_and_json_on_a_directory_fail(tiny: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    result = invoke("run", tiny, "--out", blocker)
    assert result.exit_code == 2
    assert f"{blocker}: exists and is not a directory" in result.stderr
    result = invoke("run", tiny, "--json", tmp_path)
    assert result.exit_code == 2
    assert f"{tmp_path}: exists and is a directory" in result.stderr


def test_run_rejects_an_invalid_scenario(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("workload: {open: {rate: 0}, classes: [{name: a}]}\n")
    result = invoke("run", path, "--json", tmp_path / "r.json")
    assert result.exit_code == 2
    assert f"{path}:1:19: workload.open.rate: Input should be greater than 0" in result.stderr
    assert not (tmp_path / "r.json").exists()


# ----------------------------------------------------------------- replications


def test_replications_give_confidence_intervals(tiny: Path, tmp_path: Path) -> None:
    data = run_json(tiny, "--replications", "3", "--jobs", "2", path=tmp_path / "r.json")
    assert data["replications"] == 3
    assert data["meta"]["replications"] == 3
    ci = flat(data["ci95"])
    for key in ("throughput", "latency.mean", "latency.p95", "utilisation.app.app1.cpu"):
        assert key in ci, key
        assert ci[key] >= 0
    assert ci["latency.mean"] > 0  # three different replications disagree a little
    # in worker processes or here: the same numbers
    here = run_json(tiny, "--replications", "3", "--jobs", "1", path=tmp_path / "h.json")
    assert flat(here)["latency.mean"] == flat(data)["latency.mean"]
    assert here["ci95"] == data["ci95"]


# ----------------------------------------------------------------- --out


def test_out_writes_summary_timeseries_and_plots(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = ok("run", tiny, "--out", out)
    assert "wrote" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    meta = summary["meta"]
    assert meta["seed"] == 3
    assert meta["lbsim_version"] == lbsim.__version__
    assert isinstance(meta["wall_time"], float)
    assert meta["wall_time"] > 0
    # the embedded scenario is the run's, and is itself a valid scenario
    scenario = summary["scenario"]
    assert scenario["name"] == "tiny"
    assert scenario_from_data(scenario, "summary.json") == lbsim.load_scenario(tiny)
    assert summary["requests"]["arrived"] > 0

    lines = (out / "timeseries.csv").read_text().splitlines()
    header = lines[0].split(",")
    assert "time" in header
    assert len(lines) > 10
    assert all(len(line.split(",")) == len(header) for line in lines[1:])

    for name in ("latency_cdf.png", "utilisation.png", "queues.png"):
        data = (out / name).read_bytes()
        png = out / name
        assert data.startswith(PNG_MAGIC), png
        assert len(data) > 1000


# ----------------------------------------------------------------- overrides and seeds


def test_set_changes_the_number_of_nodes(tiny: Path, tmp_path: Path) -> None:
    data = run_json(tiny, "--set", "app.nodes=3", path=tmp_path / "r.json")
    assert sorted(data["utilisation"]["app"]) == ["app1", "app2", "app3"]
    assert data["scenario"]["app"]["nodes"] == 3
    table = ok("run", tiny, "--set", "app.nodes=3", "-s", "app.workers=2").stdout
    assert "app app3" in table
    assert "/ 2 workers" in table


def _without_wall_time(data: dict[str, Any]) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    del data["meta"]["wall_time"]
    return data


def test_seed_makes_runs_reproducible(tiny: Path, tmp_path: Path) -> None:
    a = run_json(tiny, "--seed", "5", path=tmp_path / "a.json")
    b = run_json(tiny, "--seed", "5", path=tmp_path / "b.json")
    c = run_json(tiny, "--seed", "6", path=tmp_path / "c.json")
    assert a["meta"]["seed"] == 5
    assert _without_wall_time(a) == _without_wall_time(b)
    assert a["latency"] != c["latency"]
    assert c["meta"]["seed"] == 6
    assert c["scenario"]["seed"] == 6


def test_duration_and_replications_options(tiny: Path, tmp_path: Path) -> None:
    data = run_json(tiny, "--duration", "7.5", path=tmp_path / "r.json")
    assert data["meta"]["duration"] == 7.5
    assert data["scenario"]["duration"] == 7.5
    assert data["requests"]["arrived"] < 300  # 20 req/s for 7.5 s


def test_overload_warning(tmp_path: Path) -> None:
    path = tmp_path / "hot.yaml"
    path.write_text(
        "name: hot\nduration: 5\nworkload:\n  open: {rate: 300}\n  timeout: 2\n"
        "  classes: [{name: a, cpu: {dist: exponential, mean: 0.01}}]\n"
        "app: {nodes: 1, workers: 8, cores: 2, backlog: 100}\n"
    )
    for command in ("run", "check"):
        result = ok(command, path)
        # the warning goes to stderr, so that --quiet (tables off) keeps it
        assert "warning: offered load of app app1 cpu is 1.50 ≥ 1" in result.stderr
        assert "warning:" not in result.stdout
        assert "bottleneck: app app1 cpu at 1.500" in result.stdout
    quiet = ok("run", path, "-q")
    assert "warning: offered load of app app1 cpu is 1.50 ≥ 1" in quiet.stderr
    assert quiet.stdout == ""


# ----------------------------------------------------------------- check, version


def test_check_the_example_scenario() -> None:
    result = ok("check", MIXED)
    assert f"ok {MIXED}: scenario 'mixed' is valid" in result.stdout
    assert "Offered load (open loop, 55 requests/s)" in result.stdout
    assert "bottleneck:" in result.stdout
    assert result.stderr == ""


def test_check_does_not_run(tiny: Path) -> None:
    out = ok("check", tiny).stdout
    assert "Latency" not in out
    assert "is valid" in out


def test_version() -> None:
    result = ok("--version")
    assert result.stdout.strip() == f"lbsim {lbsim.__version__} (pure Python)"


# ----------------------------------------------------------------- a real process


def test_python_m_lbsim_smoke(tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    cmd = [sys.executable, "-m", "lbsim", "run", str(MIXED), "--duration", "20"]
    # alone about 3 s; a loaded 2-core machine (-n auto plus other work) can take
    # many times that: the timeout only catches a hang (its process group is killed)
    proc = run_program([*cmd, "--quiet", "--json", str(path)], timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    data = json.loads(path.read_text())
    assert data["meta"]["duration"] == 20
    req = data["requests"]
    assert req["arrived"] == req["completed"] + req["failed"]["total"] + req["in_flight"]
    assert sorted(data["classes"]) == ["browse", "checkout", "report", "search"]
    assert 40 < data["throughput"] < 70  # 55 req/s offered, far from saturation
