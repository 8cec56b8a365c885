"""Every invalid scenario fails with a clear message: file, line, key path, what is wrong.

Each file in ``tests/scenarios/invalid/`` starts with ``# expect: <substring>``
lines; ``lbsim check FILE`` must exit 2, print each substring and no traceback,
and :func:`lbsim.load_scenario` must raise a :class:`lbsim.ScenarioError`
saying the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import lbsim
from lbsim.cli.app import app
from lbsim.scenario.errors import format_path

pytestmark = pytest.mark.cli

INVALID = Path(__file__).parent / "scenarios" / "invalid"
FILES = sorted(INVALID.glob("*.yaml"))


def expectations(path: Path) -> list[str]:
    prefix = "# expect:"
    return [
        line.removeprefix(prefix).strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith(prefix)
    ]


def check(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["check", *args])
    # typer's CliRunner (click >= 8.2) keeps stderr apart and also mixes it into .output
    assert result.stderr in result.output
    return result.exit_code, result.stdout, result.stderr


def test_the_directory_covers_the_error_cases() -> None:
    assert len(FILES) >= 20
    for path in FILES:
        expects = expectations(path)
        assert expects, f"{path.name} has no '# expect:' line"
        assert any(path.name in e for e in expects), f"{path.name}: no expectation names the file"


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_check_reports_the_error(path: Path) -> None:
    code, stdout, stderr = check(str(path))
    assert code == 2, stdout + stderr
    for expected in expectations(path):
        assert expected in stderr, f"missing {expected!r} in:\n{stderr}"
    assert "Traceback" not in stdout + stderr
    assert "ok" not in stdout
    assert stderr.startswith("error: invalid scenario\n")


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_python_api_raises_scenario_error(path: Path) -> None:
    with pytest.raises(lbsim.ScenarioError) as info:
        lbsim.load_scenario(path)
    message = str(info.value)
    assert info.value.file == str(path)
    assert info.value.problems
    for line in message.splitlines():
        assert line.startswith(str(path)), line
    for expected in expectations(path):
        assert expected in message


def test_problem_lines_are_not_wrapped_or_repeated() -> None:
    """One problem, one line, however long (editors and grep read file:line:col)."""
    path = INVALID / "policy-unknown.yaml"
    _, _, stderr = check(str(path))
    lines = stderr.splitlines()
    assert lines[0] == "error: invalid scenario"
    assert len(lines) == 2
    assert len(lines[1]) > 120  # longer than the default 80-column console
    assert lines[1].endswith("static_rr")


def test_a_failed_list_item_reports_only_itself() -> None:
    """pydantic also counts the list as empty once its only item fails; that echo is hidden."""
    path = INVALID / "lognormal-cv-negative.yaml"
    _, _, stderr = check(str(path))
    problems = stderr.splitlines()[1:]
    assert len(problems) == 1, stderr
    assert "classes[0].cpu.cv" in problems[0]
    assert "at least 1 item" not in stderr


@pytest.mark.parametrize("missing", ["no-such-scenario.yaml", "sub/dir/gone.yaml"])
def test_missing_file(tmp_path: Path, missing: str) -> None:
    path = tmp_path / missing
    code, stdout, stderr = check(str(path))
    assert code == 2
    assert f"{path}: (top level): no such file" in stderr
    assert "Traceback" not in stdout + stderr
    with pytest.raises(lbsim.ScenarioError, match="no such file") as info:
        lbsim.load_scenario(path)
    assert str(path) in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    code, _, stderr = check(str(tmp_path))
    assert code == 2
    assert f"{tmp_path}: (top level): is a directory, not a scenario file" in stderr


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # chmod 0 does not stop root, so the read itself is made to fail
    path = tmp_path / "secret.yaml"
    path.write_text("workload: {}\n")
    real_read_text = Path.read_text

    def denied(self: Path, *args: Any, **kwargs: Any) -> str:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", denied)
    code, stdout, stderr = check(str(path))
    assert code == 2
    assert f"{path}: (top level): permission denied" in stderr
    assert "Traceback" not in stdout + stderr


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    code, _, stderr = check(str(path))
    assert code == 2
    assert f"{path}: (top level): not UTF-8 text" in stderr


# ----------------------------------------------------------------- line numbers


def _line_of(text: str, needle: str) -> int:
    lines = enumerate(text.splitlines(), start=1)
    (line,) = [n for n, s in lines if needle in s and not s.startswith("#")]
    return line


@pytest.mark.parametrize(
    ("name", "needle", "key"),
    [
        ("unknown-nested-key.yaml", "worker:", "app.worker"),
        ("gamma-cv-negative.yaml", "cv: -1", "workload.classes[1].cpu.cv"),
        ("class-duplicate.yaml", "cpu: 0.03", "workload.classes[2].name"),
        ("schedule-not-increasing.yaml", "[30, 5]", "workload.open.schedule[2]"),
        ("policy-option-bad-value.yaml", "choices: 1", "balancer.policy_options.choices"),
        ("queries-without-database.yaml", "queries:", "workload.classes[1].queries"),
        ("heavy-unknown-class.yaml", "reprot", "workload.clients.heavy.classes[1]"),
    ],
)
def test_error_points_at_the_offending_line(name: str, needle: str, key: str) -> None:
    path = INVALID / name
    line = _line_of(path.read_text(encoding="utf-8"), needle)
    with pytest.raises(lbsim.ScenarioError) as info:
        lbsim.load_scenario(path)
    (problem,) = info.value.problems
    assert format_path(problem.path) == key
    assert problem.line == line
    _, _, stderr = check(str(path))
    assert f"{path}:{line}:" in stderr


def test_line_and_column_of_a_deep_key_in_block_style() -> None:
    text = (
        "workload:\n"
        "  open:\n"
        "    rate: 10\n"
        "  classes:\n"
        "    - name: a\n"
        "    - name: b\n"
        "      cpu:\n"
        "        dist: lognormal\n"
        "        mean: 0.02\n"
        "        cv: -3\n"
    )
    with pytest.raises(lbsim.ScenarioError) as info:
        lbsim.loads_scenario(text, file="deep.yaml")
    assert str(info.value) == (
        "deep.yaml:10:9: workload.classes[1].cpu.cv: Input should be greater than or equal to 0"
    )


def test_every_problem_of_a_file_is_reported() -> None:
    text = (
        "duraton: 60\n"
        "workload:\n"
        "  open: {rate: -1}\n"
        "  classes: [{name: a, cpu: 0.01}]\n"
        "app: {workers: 0}\n"
    )
    with pytest.raises(lbsim.ScenarioError) as info:
        lbsim.loads_scenario(text, file="many.yaml")
    assert sorted(str(info.value).splitlines()) == [
        "many.yaml:1:1: duraton: unknown key; did you mean 'duration'?",
        "many.yaml:3:10: workload.open.rate: Input should be greater than 0",
        "many.yaml:5:7: app.workers: Input should be greater than or equal to 1",
    ]


def test_override_errors_name_the_override(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("workload: {open: {rate: 1}, classes: [{name: a}]}\n")
    code, _, stderr = check(str(path), "--set", "app.nodes=0")
    assert code == 2
    assert "app.nodes: Input should be greater than or equal to 1" in stderr
    code, _, stderr = check(str(path), "--set", "app.nodes")
    assert code == 2
    assert "--set: expected dotted.key=value, got 'app.nodes'" in stderr
    code, _, stderr = check(str(path), "--set", "app.nodez=3")
    assert code == 2
    assert "app.nodez: unknown key; did you mean 'nodes'?" in stderr
