"""``lbsim compare / sweep / plan / report / plot`` through typer's CliRunner, their error
messages (exit 2, no traceback), and Ctrl-C on a real process (exit 130, then resume)."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

import lbsim
from lbsim.cli.app import app
from lbsim.cli.progress import ProgressBar
from tests.support import finish, run_program, spawn

pytestmark = pytest.mark.cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

TINY = """\
name: tiny
seed: 3
duration: 15
warmup: 2
workload:
  open: {rate: 30}
  timeout: 5
  classes:
    - {name: fast, weight: 0.8, cpu: {dist: exponential, mean: 0.01}}
    - {name: slow, weight: 0.2, cpu: {dist: gamma, mean: 0.05, cv: 0.5}}
balancer: {policy: round_robin}
app: {nodes: 2, workers: 4, cores: 1}
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
    return result


def fails(*args: str | Path) -> str:
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return " ".join(result.output.split())  # unwrap the console's line breaks


# ----------------------------------------------------------------------- the commands


def test_compare_policies(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    result = ok(
        "compare",
        tiny,
        "--policy",
        "round_robin,least_conn",
        "--replications",
        "3",
        "--jobs",
        "1",
        "--out",
        out,
    )
    text = " ".join(result.output.split())
    assert "Paired difference against round_robin" in text
    assert "least_conn" in text
    assert "lowest p95 latency" in text
    table = pd.read_csv(out / "compare.csv")
    assert set(table["variant"]) == {"round_robin", "least_conn"}
    assert {"diff", "diff_ci95", "ci95"} <= set(table.columns)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "compare"
    assert meta["seed"] == 3
    assert meta["lbsim_version"] == lbsim.__version__
    assert "--policy round_robin,least_conn" in meta["command"]
    assert meta["status"] == "complete"
    assert meta["wall_time"] > 0
    for png in ("compare.png", "compare_diff.png", "compare_cdf.png"):
        assert (out / png).read_bytes().startswith(PNG_MAGIC)


def test_compare_vary_and_metric(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    ok(
        "compare",
        tiny,
        "--vary",
        "app.cores=1,2",
        "--metric",
        "p99",
        "--metric",
        "cpu",
        "--replications",
        "2",
        "-q",
        "--out",
        out,
    )
    table = pd.read_csv(out / "compare.csv")
    assert set(table["metric"]) == {"latency.p99", "cpu"}
    assert [str(v) for v in dict.fromkeys(table["variant"])] == ["1", "2"]


def test_sweep_writes_tidy_csv_and_parquet(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "sw"
    result = ok(
        "sweep",
        tiny,
        "--param",
        "workload.open.rate=20:60:20",
        "--param",
        "app.nodes=1,2",
        "--replications",
        "2",
        "--out",
        out,
    )
    assert "Knee" in result.output
    frame = pd.read_parquet(out / "results.parquet")
    assert list(frame.columns) == [
        "point",
        "workload.open.rate",
        "app.nodes",
        "replication",
        "metric",
        "value",
    ]
    # one row per point × replication × metric (more nodes, more metrics)
    sizes = frame.groupby(["point", "replication"]).size().unstack()
    assert (sizes[0] == sizes[1]).all()
    assert frame["point"].nunique() == 6
    assert set(frame["replication"]) == {0, 1}
    assert {"latency.p95", "failed", "cpu", "utilisation.app.app1.cpu"} <= set(frame["metric"])
    csv = pd.read_csv(out / "results.csv")
    assert len(csv) == len(frame)
    knee = json.loads((out / "knee.json").read_text())
    assert [k["curve"] for k in knee] == ["nodes=1", "nodes=2"]
    for png in ("sweep_latency.png", "sweep_utilisation.png", "sweep_failures.png"):
        assert (out / png).read_bytes().startswith(PNG_MAGIC)


def test_plan_finds_the_cheapest_configuration(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan"
    result = ok(
        "plan",
        tiny,
        "--slo",
        "p95<0.25",
        "--slo",
        "failed<0.01",
        "--vary",
        "app.nodes=1..4",
        "--replications",
        "3",
        "--out",
        out,
    )
    text = " ".join(result.output.split())
    assert "Cheapest configuration meeting every SLO" in text
    decision = json.loads((out / "plan.json").read_text())
    chosen = decision["chosen"]
    assert chosen is not None
    assert chosen["met"] is True
    assert {s["slo"] for s in chosen["slos"]} == {"p95<0.25", "failed<0.01"}
    assert all(s["confidence"] >= 0.95 for s in chosen["slos"])
    costs = [c["cost"] for c in decision["candidates"]]
    assert costs == sorted(costs)
    cheaper = [c for c in decision["candidates"] if c["cost"] < chosen["cost"]]
    assert all(c["evaluated"] and not c["met"] for c in cheaper)
    assert (out / "plan.png").read_bytes().startswith(PNG_MAGIC)


def test_report_and_plot_for_every_kind(tiny: Path, tmp_path: Path) -> None:
    dirs = {
        "run": ["run", tiny, "-q", "--out", tmp_path / "run"],
        "compare": [
            "compare",
            tiny,
            "--policy",
            "round_robin,random",
            "--replications",
            "2",
            "-q",
            "--out",
            tmp_path / "compare",
        ],
        "sweep": [
            "sweep",
            tiny,
            "--param",
            "app.nodes=1,2",
            "--replications",
            "2",
            "-q",
            "--out",
            tmp_path / "sweep",
        ],
        "plan": [
            "plan",
            tiny,
            "--slo",
            "p95<1",
            "--vary",
            "app.nodes=1,2",
            "--replications",
            "2",
            "-q",
            "--out",
            tmp_path / "plan",
        ],
    }
    for kind, args in dirs.items():
        ok(*args)
        folder = tmp_path / kind
        for png in folder.glob("*.png"):
            png.unlink()
        written = ok("plot", folder).output
        pngs = sorted(p.name for p in folder.glob("*.png"))
        assert pngs, kind
        assert all(name in " ".join(written.split()) for name in pngs)
        ok("report", folder)
        page = (folder / "report.html").read_text()
        assert page.startswith("<!DOCTYPE html>")
        assert f"lbsim {kind}" in page
        assert "<td>seed</td><td>3</td>" in page
        assert lbsim.__version__ in page
        assert "name: tiny" in page  # the scenario
        assert "<script" not in page and "http" not in page  # self-contained
        images = page.split('src="data:image/png;base64,')[1:]
        assert images, kind
        assert base64.b64decode(images[0].split('"', 1)[0]).startswith(PNG_MAGIC)


def test_report_to_another_file(tiny: Path, tmp_path: Path) -> None:
    ok(
        "sweep",
        tiny,
        "--param",
        "app.nodes=1,2",
        "--replications",
        "1",
        "-q",
        "--out",
        tmp_path / "sw",
    )
    ok("report", tmp_path / "sw", "--output", tmp_path / "page.html")
    assert (tmp_path / "page.html").read_text().startswith("<!DOCTYPE html>")


# ----------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "{tiny}"], "nothing to compare: give --policy a,b or --vary key=v1,v2"),
        (["compare", "{tiny}", "--policy", "round_robin"], "give at least two values"),
        (["compare", "{tiny}", "--vary", "app.nodes"], "--vary: expected key=v1,v2,..."),
        (["compare", "{tiny}", "--vary", "app.nodes=2..1"], "--vary app.nodes: last 1 is below"),
        (
            ["compare", "{tiny}", "--vary", "app.nodez=1,2"],
            "app.nodez: unknown key; did you mean 'nodes'? (in variant app.nodez=1)",
        ),
        (
            ["compare", "{tiny}", "--policy", "round_robin,lest_conn"],
            "balancer.policy",
        ),
        (
            ["compare", "{tiny}", "--policy", "round_robin,random", "--metric", "p59"],
            "unknown metric 'p59'",
        ),
        (
            ["compare", "{tiny}", "--policy", "round_robin,random", "--target-ci", "p95"],
            "--target-ci: expected metric=half-width",
        ),
        (
            [
                "compare",
                "{tiny}",
                "--policy",
                "round_robin,random",
                "--target-ci",
                "p95=0.1",
                "--replications",
                "3",
            ],
            "either a fixed number of replications or --target-ci",
        ),
        (
            ["compare", "{tiny}", "--policy", "round_robin,random", "--max-replications", "9"],
            "--max-replications needs --target-ci",
        ),
        (
            ["compare", "{tiny}", "--policy", "round_robin,random", "--target-ci", "p9=0.1"],
            "unknown metric 'p9'",
        ),
        (["sweep", "{tiny}"], "nothing to sweep: give --param"),
        (
            ["sweep", "{tiny}", "--param", "workload.open.rate=10:5:1"],
            "--param workload.open.rate: stop 5 is below start 10",
        ),
        (
            ["sweep", "{tiny}", "--param", "workload.open.rate=-5,10"],
            "workload.open.rate",
        ),
        (["sweep", "{tiny}", "--param", "app.nodes=1,2", "--knee-factor", "1"], "> 1"),
        (["plan", "{tiny}", "--vary", "app.nodes=1,2"], "no SLO: give at least one --slo"),
        (["plan", "{tiny}", "--slo", "p95<0.3"], "nothing to plan over"),
        (["plan", "{tiny}", "--slo", "p95", "--vary", "app.nodes=1,2"], "--slo 'p95': expected"),
        (
            ["plan", "{tiny}", "--slo", "latency.p59<0.3", "--vary", "app.nodes=1,2"],
            "unknown metric 'latency.p59'; did you mean",
        ),
        (
            [
                "plan",
                "{tiny}",
                "--slo",
                "p95<0.3",
                "--vary",
                "app.nodes=1,2",
                "--replications",
                "1",
            ],
            "plan needs at least 2 replications",
        ),
        (
            ["sweep", "{tiny}", "--param", "app.nodes=1,2", "--dask", "not an address"],
            "--dask: 'not an address' is not a scheduler address",
        ),
        (["compare", "{missing}", "--policy", "a,b"], "no such file"),
        (["report", "{tmp}"], "not an lbsim results directory"),
        (["plot", "{missing}"], "not a directory"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    args: list[str], message: str, tiny: Path, tmp_path: Path
) -> None:
    fill = {"tiny": str(tiny), "missing": str(tmp_path / "missing.yaml"), "tmp": str(tmp_path)}
    text = (
        fails(*(a.format(**fill) for a in args), "--out", str(tmp_path / "o"))
        if args[0] not in ("report", "plot")
        else fails(*(a.format(**fill) for a in args))
    )
    assert message in text


def test_a_directory_of_another_kind(tiny: Path, tmp_path: Path) -> None:
    ok("sweep", tiny, "--param", "app.nodes=1,2", "--replications", "1", "-q", "--out", tmp_path)
    text = fails("compare", tiny, "--policy", "round_robin,random", "--out", tmp_path)
    assert "holds sweep results, not compare; choose another --out directory" in text


# ----------------------------------------------------------------------- progress and Ctrl-C


def test_progress_bar_shows_on_a_terminal_only() -> None:
    buf = io.StringIO()
    bar = ProgressBar(Console(file=buf, force_terminal=True, width=100), "sweep")
    bar(0, 8)
    bar(4, 8)
    bar.stop()
    assert "sweep" in buf.getvalue()
    assert "ETA" in buf.getvalue()
    quiet = io.StringIO()
    off = ProgressBar(Console(file=quiet, force_terminal=False), "sweep")
    off(1, 2)
    off.stop()
    assert quiet.getvalue() == ""


@pytest.mark.slow
def test_ctrl_c_keeps_finished_points_and_the_same_command_resumes(
    tiny: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sw"
    cmd = [
        sys.executable,
        "-m",
        "lbsim",
        "sweep",
        str(tiny),
        "--param",
        "workload.open.rate=10:120:10",
        "--replications",
        "2",
        "--jobs",
        "2",
        "--duration",
        "40",
        "--out",
        str(out),
    ]
    env = {**os.environ, "COLUMNS": "200"}
    # Timeouts for a loaded 2-core machine (-n auto plus other work): alone, the
    # first point is kept after about 5 s and the whole sweep takes about 30 s;
    # with both cores contended either can take several times that. The sweep
    # runs in its own process group, killed (with its workers) however the
    # test ends, so a timeout here never leaves a process to a later test.
    with spawn(cmd, env=env) as proc:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "points").exists() and any((out / "points").glob("*.json")):
                break
            time.sleep(0.05)
        # still running with a point kept: neither finished nor stuck
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        assert any((out / "points").glob("*.json")), "no point kept within 300 s"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = finish(proc, timeout=300)
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stderr
    text = " ".join(stderr.split())
    assert "interrupted:" in text
    assert f"kept in {out}" in text
    assert "Run the same command again to resume" in text
    meta = json.loads((out / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    kept = {p.name: len(json.loads(p.read_text())["runs"]) for p in (out / "points").glob("*.json")}
    assert sum(kept.values()) >= 1
    done = run_program(cmd, env=env, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    frame = pd.read_csv(out / "results.csv")
    assert frame["point"].nunique() == 12
    assert set(frame["replication"]) == {0, 1}
    assert json.loads((out / "meta.json").read_text())["status"] == "complete"
