"""``lbsim workload from-log`` through the real command: outputs, exit codes,
error messages naming the file, line or option, and refusal to overwrite."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from lbsim.cli.app import app
from lbsim.scenario.schema import read_trace
from tests.support import run_program

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "accesslog"
LBSIM_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $msec $request_time "$upstream_response_time"'
)
CLASSES = [
    "-c",
    "front=GET /$",
    "-c",
    "post=GET /?p=*",
    "-c",
    "search=GET /?s=*",
    "-c",
    "comment=POST /wp-comments-post.php",
]


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, ["workload", "from-log", *(str(a) for a in args)])
    assert "Traceback" not in result.output
    return result


def test_writes_fragment_trace_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "wl"
    result = invoke(DATA / "combined.log", *CLASSES, "--out", out, "--max-malformed", "0.2")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["summary.json", "trace.csv", "workload.yaml"]
    # the malformed line is shown with its number and reason
    assert f"{DATA / 'combined.log'}:8: does not match the log format" in result.output
    assert "1 requests matched no pattern: class other" in result.output
    workload = yaml.safe_load((out / "workload.yaml").read_text())["workload"]
    assert workload["open"] == {"shape": "step", "schedule": [[0, 0.1], [60, 0.0459519]]}
    assert [(c["name"], c["weight"]) for c in workload["classes"]] == [
        ("front", 0.25),
        ("post", 0.375),
        ("search", 0.125),
        ("comment", 0.125),
        ("other", 0.125),
    ]
    assert workload["clients"] == {"count": 5, "subnets": 4}  # no heavy: within noise
    text = (out / "workload.yaml").read_text()
    assert (
        "cpu and queries are not in a log" in " ".join(text.split())
        and "10 read, 8 used, 1 malformed, 1 blank" in text
    )
    rows = read_trace(out / "trace.csv")
    assert rows[0] == (0.0, "front", 0) and rows[-1] == (90.583333, "front", 4)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["lines"]["malformed"] == 1 and summary["arrivals"] == 8
    assert summary["malformed_examples"][0]["line"] == 8
    assert summary["heavy"]["reported"] is False


def test_nginx_format_string_and_heavy_users(tmp_path: Path) -> None:
    out = tmp_path / "wl"
    result = invoke(
        DATA / "lbsim-nginx.log",
        "--format",
        LBSIM_FORMAT,
        "-c",
        "browse=GET /?class=browse&*",
        "-c",
        "checkout=POST /?class=checkout&*",
        "-c",
        "search=GET /?class=search&*",
        "--heavy-class",
        "browse",
        "--bin",
        "1",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    text = (out / "workload.yaml").read_text()
    workload = yaml.safe_load(text)["workload"]
    # browse per client: 3, 1, 0 (mean 4/3): 10.1.0.1 sends 3 of 4, Hoover 0.417
    # against Poisson(1.33)'s 0.351: reported
    assert workload["clients"]["heavy"] == {
        "fraction": 0.333333,
        "share": 0.75,
        "classes": ["browse"],
    }
    assert "response time (s) from $request_time" in text
    assert "checkout        1    0.7000" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-c", "front GET /"], "--classes 'front GET /': expected NAME=PATTERN"),
        (["-c", "a b=/"], "--classes 'a b=/': class name 'a b'"),
        (["-c", "a=/", "--format", "nonsense"], "--format: unknown format 'nonsense'"),
        (["-c", "a=/", "--format", "$remote_addr"], "--format: the log format has no time"),
        (["-c", "a=/", "--heavy-class", "b"], "--heavy-class 'b': not a class"),
    ],
)
def test_bad_options_exit_2_naming_the_option(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = invoke(DATA / "combined.log", *args, "--out", tmp_path / "wl")
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "wl").exists()  # nothing written before the options are right


def test_malformed_over_the_threshold_exits_2_naming_the_file(tmp_path: Path) -> None:
    out = tmp_path / "wl"
    result = invoke(DATA / "haproxy.log", "--format", "haproxy", "-c", "all=/", "--out", out)
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert f"{DATA / 'haproxy.log'}: 1 of 5 lines are malformed" in text
    assert "line 4: bad request (<BADREQ>)" in text
    assert list(out.iterdir()) == []  # the trace's temporary file is gone too


def test_missing_log_and_wrong_format(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nope.log", "-c", "a=/", "--out", tmp_path / "wl")
    assert result.exit_code == 2 and "nope.log: no such file" in result.output
    result = invoke(
        DATA / "combined.log", "--format", "haproxy", "-c", "a=/", "--out", tmp_path / "wl"
    )
    assert result.exit_code == 2
    assert "no request could be read as haproxy" in " ".join(result.output.split())


def test_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "wl"
    out.mkdir()
    mine = out / "workload.yaml"
    mine.write_text("# my own file\n")
    args = [DATA / "lbsim-nginx.log", "-c", "a=/", "--out", out, "-q"]
    args[1:1] = ["--format", LBSIM_FORMAT]
    result = invoke(*args)
    assert result.exit_code == 2
    assert "already exist; refusing to overwrite" in " ".join(result.output.split())
    assert mine.read_text() == "# my own file\n"
    assert sorted(p.name for p in out.iterdir()) == ["workload.yaml"]
    # --force replaces them; the log itself is never an output
    assert invoke(*args, "--force").exit_code == 0
    assert mine.read_text().startswith("# Workload measured")
    log = out / "trace.csv"
    log.write_text((DATA / "combined.log").read_text())
    result = invoke(log, *CLASSES, "--out", out, "--force", "--max-malformed", "0.2")
    assert result.exit_code == 2 and "input of this command" in result.output


def test_real_process() -> None:
    proc = run_program(
        [sys.executable, "-m", "lbsim", "workload", "from-log", "--help"], cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0 and "--classes" in proc.stdout


def test_readme_example_is_the_real_output(tmp_path: Path) -> None:
    """The README's "From your access logs" shows this command's workload.yaml."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## From your access logs", 1)[1]
    shown = section.split("```yaml\n", 1)[1].split("```", 1)[0].splitlines()
    out = tmp_path / "wl"
    result = invoke(DATA / "combined.log", "--out", out, "--max-malformed", "0.2", *CLASSES)
    assert result.exit_code == 0, result.output
    written = (out / "workload.yaml").read_text().splitlines()
    assert shown[1:] == written[written.index("workload:") :]
    assert shown[0] in written
