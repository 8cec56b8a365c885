"""``lbsim check TARGET`` and ``lbsim check SCENARIO --target TARGET`` through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from lbsim.cli.app import app

pytestmark = pytest.mark.cli

ROOT = Path(__file__).resolve().parent.parent
MIXED = ROOT / "scenarios" / "mixed.yaml"

TARGET = """\
target: wordpress
compose: {project: lbsim-wp}
services: {balancer: lb, app: [app1, app2], database: db}
url: http://127.0.0.1:18200
requests:
  browse: {path: /}
  search: {path: "/?s={word}", words: [lorem, ipsum]}
  checkout:
    method: POST
    path: /wp-comments-post.php
    form: {comment_post_ID: "{id}", author: "lbsim {n}", comment: "{uuid}"}
    ids: {range: [1, 200]}
    expect: [302]
  report: {path: /wp-admin/profile.php, headers: {Cookie: "{file:cookie.txt}"}}
database: {engine: mysql, user: root, password_file: db.pw}
fpm_status: /status
"""


@pytest.fixture
def target(tmp_path: Path) -> Path:
    (tmp_path / "cookie.txt").write_text("session=abc\n")
    (tmp_path / "db.pw").write_text("secret\n")
    path = tmp_path / "wp.yaml"
    path.write_text(TARGET)
    return path


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result


def test_check_a_target_file_prints_its_summary(target: Path) -> None:
    result = invoke("check", target)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"ok {target}: target 'wordpress' is valid" in out
    assert "compose project lbsim-wp: lbsim never starts, stops or changes it" in out
    assert "services: balancer lb; app app1, app2; database db" in out
    assert "url: http://127.0.0.1:18200/" in out
    assert "database: mysql, user root (password: database.password_file (db.pw))" in out
    assert "secret" not in out
    assert "php-fpm status: /status at 127.0.0.1:9000" in out
    assert "requests (4):" in out
    assert "checkout  POST /wp-comments-post.php  (expect 302; form comment_post_ID" in out
    assert "{id} 1..200" in out and "{word} 2 words" in out
    assert "e.g. /?s=" in out
    assert "placeholders: {file:cookie.txt}, {id}, {n}, {uuid}, {word}" in out
    assert result.stderr == ""


def test_check_a_scenario_with_its_target(target: Path) -> None:
    result = invoke("check", MIXED, "--target", target)
    assert result.exit_code == 0, result.output
    assert f"ok {MIXED}: scenario 'mixed' is valid" in result.stdout
    assert f"ok {target}: target 'wordpress' is valid" in result.stdout
    assert result.stderr == ""


def test_a_class_without_a_request_is_named_and_exits_2(target: Path) -> None:
    target.write_text(
        TARGET.replace("  browse: {path: /}\n", "").replace(
            "  report:", "  extra: {path: /x}\n  report:"
        )
    )
    result = invoke("check", MIXED, "--target", target)
    assert result.exit_code == 2
    assert "does not perform every class of the scenario" in result.stderr
    assert (
        f"{target}:5:1: requests: no request for class browse (scenario {MIXED})" in result.stderr
    )
    assert "is valid" not in result.stdout  # refused before anything is shown


def test_a_request_for_a_class_the_scenario_lacks_is_a_warning(target: Path) -> None:
    target.write_text(TARGET.replace("  report:", "  extra: {path: /x}\n  report:"))
    result = invoke("check", MIXED, "--target", target)
    assert result.exit_code == 0, result.output
    assert (
        f"warning: {target}:14:3: requests.extra: the scenario {MIXED} has no class 'extra': "
        "this request is never sent"
    ) in result.stderr


def test_an_invalid_target_exits_2_with_file_line_and_key(target: Path) -> None:
    target.write_text(TARGET.replace("expect: [302]", "expect: [true]"))
    for args in (("check", target), ("check", MIXED, "--target", target)):
        result = invoke(*args)
        assert result.exit_code == 2
        assert "error: invalid target file" in result.stderr
        assert (
            f"{target}:13:14: requests.checkout.expect[0]: expected a whole number, got a boolean"
            in (result.stderr)
        )


def test_options_that_go_with_a_scenario_are_refused_with_a_target_file(target: Path) -> None:
    result = invoke("check", target, "--target", target)
    assert (
        result.exit_code == 2 and "is a target file; --target goes with a scenario" in result.stderr
    )
    result = invoke("check", target, "--set", "seed=3")
    assert result.exit_code == 2 and "--set goes with a scenario file" in result.stderr


def test_a_scenario_given_as_target_is_an_invalid_target(tmp_path: Path) -> None:
    result = invoke("check", MIXED, "--target", MIXED)
    assert result.exit_code == 2
    assert "error: invalid target file" in result.stderr
    assert f"{MIXED}: (top level): this is a scenario, not a target file" in result.stderr


def test_a_missing_target_file_is_named(tmp_path: Path) -> None:
    result = invoke("check", MIXED, "--target", tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert f"{tmp_path / 'nope.yaml'}: (top level): no such file" in result.stderr


def test_the_readme_s_target_file_and_its_check_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README "The target file": the example file, checked, prints what the README shows."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### The target file\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    shown = section.split("```text\n", 1)[1].split("```", 1)[0]
    (tmp_path / "wordpress.yaml").write_text(example)
    (tmp_path / "cookie.txt").write_text("wordpress_logged_in=...\n")
    (tmp_path / "db-password.txt").write_text("secret\n")
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    monkeypatch.chdir(tmp_path)
    result = invoke("check", "wordpress.yaml")
    assert result.exit_code == 0, result.output
    assert result.stdout == shown


def test_checking_a_target_imports_no_plotting_or_dataframes(target: Path) -> None:
    from tests.test_imports import _loaded

    loaded = _loaded("", ["check", str(target)])
    assert loaded["heavy"] == []
    assert "lbsim.target.schema" in loaded["modules"]  # it did check


def test_a_what_if_needs_a_target_and_a_real_calibration(target: Path, tmp_path: Path) -> None:
    """``lbsim calibrate --costs/--set`` are a what-if on your own stack: without
    --target they are refused; a costs file that is not a calibration (or lacks
    a class of the scenario) is refused with its name before Docker is asked."""
    result = invoke("calibrate", MIXED, "--costs", tmp_path / "c.json")
    assert result.exit_code == 2 and "--costs and --set go with --target" in result.output
    result = invoke("calibrate", MIXED, "--set", "app.nodes=3")
    assert result.exit_code == 2 and "--costs and --set go with --target" in result.output
    (tmp_path / "r.json").write_text('{"throughput": 3}')
    out = tmp_path / "report"
    args = ["calibrate", MIXED, "--target", target, "--out", out, "--set", "app.nodes=3"]
    result = invoke(*args, "--costs", tmp_path / "r.json")
    assert result.exit_code == 2, result.output
    assert "r.json: not a calibration.json" in " ".join(result.output.split())
    result = invoke(*args, "--set", "app.nodes=-1", "--costs", tmp_path / "r.json")
    assert result.exit_code == 2 and "app.nodes" in result.output
