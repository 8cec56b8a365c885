"""The catalogue of hostile and extreme inputs (issue 12), one test per case.

lbsim's promise: bad input gets a clear error (file, line, key, what is wrong,
exit 2, no traceback), a run never silently does something other than what
was written, and nothing a user wrote is lost. Each case below is an input a
user could give; the expected outcome is either a valid run (exit 0) or exit 2
with the words that let the user find and fix the problem. The families follow
the issue: lost data, wrong types, legitimate YAML, sizes, extreme values,
warnings, messages that say where.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lbsim.cli.app import app
from lbsim.report import atomic
from tests.support import spawn

pytestmark = pytest.mark.cli

#: a small valid workload the cases change one key of
W = "workload: {open: {rate: 5}, classes: [{name: a, cpu: 0.01}]}\n"
#: the same with a database query (for database keys)
WDB = (
    "workload: {open: {rate: 5}, classes: [{name: a, cpu: 0.01, "
    "queries: [{kind: write, time: 0.001, keys: 1, hot_keys: 10}]}]}\n"
)
SHORT = "duration: 2\nwarmup: 0\n"


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    #: words the message must hold (the key path, what is wrong)
    expect: tuple[str, ...]
    command: str = "check"
    args: tuple[str, ...] = ()
    code: int = 2


def _cases() -> list[Case]:
    cases: list[Case] = []

    def bad(id: str, text: str, *expect: str, command: str = "check", args: tuple[str, ...] = ()):
        cases.append(Case(id, text, expect, command, args, 2))

    def good(id: str, text: str, *expect: str, command: str = "check", args: tuple[str, ...] = ()):
        cases.append(Case(id, text, expect, command, args, 0))

    # -- family 2: booleans and strings are not numbers (each YAML 1.1 boolean spelling)
    numeric_keys = [
        (
            "rate",
            "workload: {open: {rate: VALUE}, classes: [{name: a, cpu: 0.01}]}\n",
            "workload.open.rate",
        ),
        (
            "cpu",
            "workload: {open: {rate: 5}, classes: [{name: a, cpu: VALUE}]}\n",
            "workload.classes[0].cpu",
        ),
        (
            "class-weight",
            "workload: {open: {rate: 5}, classes: [{name: a, weight: VALUE, cpu: 0.01}]}\n",
            "workload.classes[0].weight",
        ),
        (
            "timeout",
            "workload: {open: {rate: 5}, timeout: VALUE, classes: [{name: a}]}\n",
            "workload.timeout",
        ),
        (
            "users",
            "workload: {closed: {users: VALUE, think_time: 1}, classes: [{name: a, cpu: 0.01}]}\n",
            "workload.closed.users",
        ),
        (
            "think",
            "workload: {closed: {users: 2, think_time: VALUE}, classes: [{name: a, cpu: 0.01}]}\n",
            "workload.closed.think_time",
        ),
        (
            "clients",
            "workload: {open: {rate: 5}, clients: {count: VALUE}, classes: [{name: a}]}\n",
            "workload.clients.count",
        ),
        ("seed", W + "seed: VALUE\n", "seed"),
        ("duration", W + "duration: VALUE\n", "duration"),
        ("warmup", W + "warmup: VALUE\n", "warmup"),
        ("replications", W + "replications: VALUE\n", "replications"),
        ("workers", W + "app: {workers: VALUE}\n", "app.workers"),
        ("cores", W + "app: {cores: VALUE}\n", "app.cores"),
        ("backlog", W + "app: {backlog: VALUE}\n", "app.backlog"),
        ("nodes", W + "app: {nodes: VALUE}\n", "app.nodes"),
        ("weight", W + "app: {weight: VALUE}\n", "app.weight"),
        ("max-conns", W + "app: {max_conns: VALUE}\n", "app.max_conns"),
        ("max-fails", W + "balancer: {max_fails: VALUE}\n", "balancer.max_fails"),
        (
            "hc-interval",
            W + "balancer: {health_check: {interval: VALUE}}\n",
            "balancer.health_check.interval",
        ),
        ("db-nodes", WDB + "database: {engine: galera, nodes: VALUE}\n", "database.nodes"),
        ("report-interval", W + "report: {interval: VALUE}\n", "report.interval"),
    ]
    for word in ("true", "yes", "on", "off", '"5"'):
        for id, template, key in numeric_keys:
            if word in ("on", "off") and id not in ("seed", "workers", "rate", "duration"):
                continue  # every key with true/yes/"5"; on/off on a few
            bad(
                f"type-{id}-{word.strip(chr(34))}", template.replace("VALUE", word), key, "expected"
            )
    bad(
        "type-query-keys",
        WDB.replace("keys: 1,", "keys: yes,") + "database: {engine: mysql}\n",
        "workload.classes[0].queries[0].keys",
        "boolean",
    )
    bad(
        "type-hot-keys",
        WDB.replace("hot_keys: 10", "hot_keys: on") + "database: {engine: mysql}\n",
        "hot_keys",
        "boolean",
    )
    bad(
        "type-dist-mean",
        W.replace("cpu: 0.01", "cpu: {dist: exponential, mean: yes}"),
        "workload.classes[0].cpu.mean",
        "boolean",
    )
    bad(
        "type-dist-cv",
        W.replace("cpu: 0.01", "cpu: {dist: gamma, mean: 0.01, cv: true}"),
        "cv",
        "boolean",
    )
    bad(
        "type-policy-choices",
        W + "balancer: {policy: power_of_d, policy_options: {choices: true}}\n",
        "choices",
    )
    bad("type-name-yes", W + "name: yes\n", "name", "boolean", "quote")
    bad("type-name-number", W + "name: 5\n", "name", "string")
    bad(
        "type-class-name-no",
        W.replace("name: a", "name: no"),
        "workload.classes[0].name",
        "boolean",
    )
    bad(
        "type-percentile-error-bool",
        W + "report: {percentile_error: true}\n",
        "report.percentile_error",
    )
    bad("type-float-for-int", W + "app: {workers: 2.5}\n", "app.workers", "whole number")
    bad("type-list-for-number", W + "app: {workers: [1, 2]}\n", "app.workers", "list")
    bad("type-mapping-for-number", W + "app: {workers: {a: 1}}\n", "app.workers", "mapping")
    bad("type-null-for-number", W + "duration:\n", "duration", "null")
    bad("type-set-seed-yes", W, "seed", "boolean", args=("--set", "seed=yes"))
    bad("type-set-workers-true", W, "app.workers", args=("--set", "app.workers=true"))

    # -- family 2: command-line options validated like the file
    for opt, value, words in [
        ("--jobs", "-3", ("--jobs",)),
        ("--jobs", "many", ("--jobs",)),
        ("--replications", "0", ("--replications",)),
        ("--replications", "-2", ("--replications",)),
        ("--replications", "two", ("--replications",)),
        ("--duration", "0", ("--duration",)),
        ("--duration", "-5", ("--duration",)),
        ("--duration", "inf", ("--duration",)),
        ("--duration", "nan", ("--duration",)),
        ("--seed", "-1", ("--seed",)),
        ("--seed", "1.5", ("--seed",)),
        ("--seed", str(2**70), ("--seed",)),
    ]:
        bad(f"option{opt}={value}", W + SHORT, *words, command="run", args=(opt, value, "-q"))

    # -- family 3: legitimate YAML
    good("yaml-merge-key", W + "app:\n  <<: &d {workers: 4, cores: 2}\n  nodes: 2\n")
    good("yaml-merge-override", W + "app:\n  <<: {workers: 4, cores: 2}\n  workers: 6\n")
    good("yaml-merge-list", W + "app:\n  <<: [{workers: 4}, {cores: 2, workers: 9}]\n  nodes: 3\n")
    good(
        "yaml-anchor-alias",
        "workload:\n  open: {rate: 5}\n  classes:\n    - {name: a, cpu: &c {dist: exponential, "
        "mean: 0.01}}\n    - {name: b, cpu: *c}\n",
    )
    good("yaml-float-exponent", W + "duration: 1e2\nwarmup: 5E+0\n")
    good("yaml-document-markers", "---\n" + W + "...\n")
    good("yaml-comments-flow", "# a comment\n" + W + "app: {nodes: 2}  # two\n")
    good(
        "yaml-block-style",
        "workload:\n  open:\n    rate: 5\n  classes:\n    - name: a\n      cpu: 0.01\n",
    )
    bad(
        "yaml-merge-then-duplicate",
        W + "app:\n  <<: {workers: 4}\n  cores: 2\n  cores: 3\n",
        "duplicate key 'cores'",
    )
    bad("yaml-duplicate-key", W + "seed: 1\nseed: 2\n", "duplicate key 'seed'", "line 2")
    bad("yaml-tabs", W + "app:\n\tworkers: 4\n", "YAML syntax error")
    bad("yaml-two-documents", W + "---\n" + W, "single document")
    bad("yaml-list-key", W + "? [a, b]\n: 1\n", "plain value")
    bad("yaml-empty", "", "empty")
    bad("yaml-comment-only", "# nothing\n", "empty")
    bad("yaml-scalar", "hello\n", "mapping")
    bad("yaml-list", "- a\n- b\n", "mapping")
    bad("yaml-unknown-key-hint", W + "app: {worker: 4}\n", "app.worker", "did you mean 'workers'")
    bad("yaml-unknown-top-key", W + "databse: {engine: mysql}\n", "databse", "database")
    bad("yaml-bad-indent", "workload:\n  open: {rate: 5}\n classes: []\n", "YAML")
    bad("yaml-unclosed-flow", "workload: {open: {rate: 5}\n", "YAML syntax error")
    bad("yaml-python-tag", W + "name: !!python/object:os.system {}\n", "YAML")

    # -- family 4: sizes that would hang or eat memory
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 10)
    )
    bad(
        "size-alias-bomb",
        W + "extra:\n" + "".join("  " + line + "\n" for line in bomb.splitlines()),
        "expands to more than",
    )
    bad("size-alias-bomb-top", bomb + W, "expands to more than")
    bad("size-deep-nesting", W + "x: " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply")
    bad("size-app-nodes", W + "app: {nodes: 100000}\n", "app.nodes", "memory")
    bad("size-workers", W + "app: {workers: 1000000000}\n", "app.workers", "memory")
    bad("size-duration", W + "duration: 1e12\n", "workload.open", "--insist")
    bad("size-replications", W + "replications: 1000000\n", "replications", "--insist")
    bad("size-report-interval", W + "report: {interval: 1e-6}\n", "report.interval", "memory")
    bad(
        "size-rate",
        "workload: {open: {rate: 1e12}, classes: [{name: a, cpu: 0.01}]}\n",
        "workload.open",
        "--insist",
    )
    bad(
        "size-schedule-rate",
        "workload: {open: {schedule: [[0, 1], [10, 1e11]]}, classes: [{name: a, cpu: 0.01}]}\n",
        "workload.open",
        "--insist",
    )
    bad(
        "size-closed-users",
        "workload: {closed: {users: 10000000, think_time: 1}, classes: [{name: a, cpu: 0.01}]}\n",
        "workload.closed.users",
        "memory",
    )
    bad(
        "size-zero-time-loop",
        "workload: {closed: {users: 10, think_time: 0}, classes: [{name: a, cpu: 0}]}\n",
        "workload.closed.think_time",
        "infinitely many",
    )
    bad(
        "size-zero-time-loop-run",
        "workload: {closed: {users: 10, think_time: 0}, classes: [{name: a, cpu: 0}]}\n" + SHORT,
        "workload.closed.think_time",
        command="run",
    )
    bad(
        "size-hot-keys",
        WDB.replace("hot_keys: 10", "hot_keys: 100000000") + "database: {engine: mysql, skew: 1}\n",
        "hot_keys",
        "less than or equal",
    )
    bad(
        "size-ring-weight",
        W + "app:\n  nodes: [{weight: 1000000000}, {weight: 1}]\n"
        "balancer: {policy: consistent_hash}\n",
        "app.weight",
        "memory",
    )
    bad(
        "size-power-of-d",
        W + "app: {nodes: 4}\nbalancer: {policy: power_of_d, "
        "policy_options: {choices: 1000000000}}\n",
        "choices",
        "100",
    )
    bad(
        "size-agent-interval",
        W + "app: {nodes: 2}\nbalancer: {product: haproxy, policy: "
        "least_load, policy_options: {interval: 1e-9}}\n",
        "balancer.policy_options.interval",
        command="run",
        args=("-q",),
    )
    bad(
        "size-health-interval",
        W + "balancer: {health_check: {interval: 1e-9}}\n",
        "balancer.health_check.interval",
        command="run",
        args=("-q",),
    )
    bad(
        "size-subnets",
        "workload: {open: {rate: 5}, clients: {subnets: 1000000000}, "
        "classes: [{name: a, cpu: 0.01}]}\n",
        "workload.clients.subnets",
        "1000000",
    )
    bad(
        "size-trace-fifo",
        "workload: {trace: {file: fifo}, classes: [{name: a}]}\n",
        "workload.trace.file",
        "FIFO",
    )
    bad(
        "size-empirical-fifo",
        "workload: {open: {rate: 5}, classes: [{name: a, cpu: {dist: empirical, file: fifo}}]}\n",
        "file",
        "FIFO",
    )
    bad(
        "size-trace-missing",
        "workload: {trace: {file: nowhere.csv}, classes: [{name: a}]}\n",
        "workload.trace.file",
        "no such file",
    )
    bad(
        "size-sweep-grid",
        W + SHORT,
        "more than 10,000",
        command="sweep",
        args=("--param", "app.workers=1..10000", "--param", "app.cores=1..10000", "-q"),
    )
    bad(
        "size-vary-values",
        W + SHORT,
        "more than 10000",
        command="compare",
        args=("--vary", "app.workers=1..100000", "-q"),
    )

    # -- family 5: extreme values: valid and working, or refused at their key
    bad(
        "extreme-percentile-error",
        W + "report: {percentile_error: 1e-12}\n",
        "report.percentile_error",
        "greater than or equal to 0.0001",
    )
    good(
        "extreme-percentile-error-min",
        W + SHORT + "report: {percentile_error: 1e-4}\n",
        command="run",
        args=("-q",),
    )
    bad(
        "extreme-least-load-inf",
        W + "balancer: {product: haproxy, policy: least_load, policy_options: {interval: .inf}}\n",
        "balancer.policy_options.interval",
        "finite",
    )
    bad(
        "extreme-rate-inf",
        "workload: {open: {rate: .inf}, classes: [{name: a}]}\n",
        "workload.open.rate",
        "finite",
    )
    bad(
        "extreme-rate-nan",
        "workload: {open: {rate: .nan}, classes: [{name: a}]}\n",
        "workload.open.rate",
        "finite",
    )
    bad("extreme-cores-inf", W + "app: {cores: .inf}\n", "app.cores", "finite")
    bad("extreme-duration-zero", W + "duration: 0\n", "duration", "greater than 0")
    bad("extreme-duration-negative", W + "duration: -1\n", "duration", "greater than 0")
    bad("extreme-workers-zero", W + "app: {workers: 0}\n", "app.workers")
    bad("extreme-nodes-zero", W + "app: {nodes: 0}\n", "app.nodes")
    bad("extreme-cpu-negative", W.replace("cpu: 0.01", "cpu: -0.01"), "workload.classes[0].cpu")
    bad("extreme-seed-negative", W + "seed: -1\n", "seed")
    good("extreme-seed-huge", W + SHORT + f"seed: {2**62}\n", command="run", args=("-q",))
    good(
        "extreme-backlog-huge",
        W + SHORT + "app: {backlog: 1000000000}\n",
        command="run",
        args=("-q",),
    )
    good("extreme-cores-tiny", W + SHORT + "app: {cores: 0.001}\n", command="run", args=("-q",))
    good(
        "extreme-subnets-one",
        "workload: {open: {rate: 5}, clients: {subnets: 1}, "
        "classes: [{name: a, cpu: 0.01}]}\n" + SHORT,
        command="run",
        args=("-q",),
    )
    good(
        "extreme-subnets-max",
        "workload: {open: {rate: 5}, clients: {subnets: 1000000}, "
        "classes: [{name: a, cpu: 0.01}]}\n" + SHORT,
        command="check",
    )
    good(
        "extreme-timeout-tiny",
        W.replace("open:", "timeout: 0.000001, open:") + SHORT,
        command="run",
        args=("-q",),
    )
    bad(
        "extreme-heavy-fraction-one",
        "workload: {open: {rate: 5}, clients: {heavy: "
        "{fraction: 1, share: 0.5, classes: [a]}}, classes: [{name: a}]}\n",
        "fraction",
    )
    bad(
        "extreme-class-weights-zero",
        W.replace("name: a,", "name: a, weight: 0,"),
        "workload.classes",
        "total weight",
    )
    good(
        "extreme-closed-zero-think",
        "workload: {closed: {users: 2, think_time: 0}, classes: [{name: a, cpu: 0.01}]}\n" + SHORT,
        command="run",
        args=("-q",),
    )

    good(
        "extreme-rate-tiny",
        "workload: {open: {rate: 2.2250738585072014e-308}, classes: [{name: a, cpu: 0.01}]}\n"
        + SHORT,
        command="run",
        args=("-q",),
    )
    # -- family 6: warnings survive --quiet
    good(
        "warn-quiet-overload",
        "workload: {open: {rate: 500}, classes: [{name: a, cpu: 0.01}]}\n" + SHORT,
        "warning: offered load",
        command="run",
        args=("-q",),
    )
    good(
        "warn-check-overload",
        "workload: {open: {rate: 500}, classes: [{name: a, cpu: 0.01}]}\n",
        "warning: offered load",
    )

    # -- family 7: messages that say where
    bad(
        "where-galera-duplicate",
        WDB + "database:\n  engine: galera\n  nodes:\n    - {name: x}\n    - {name: x}\n",
        "database.nodes[1].name",
        "unique",
    )
    bad(
        "where-galera-writer",
        WDB + "database: {engine: galera, nodes: 3, routing: "
        "{read_write_split: true, writer: 5}}\n",
        "database.routing.writer",
        "3 nodes",
    )
    bad(
        "where-routing-policy",
        WDB + "database: {engine: galera, nodes: 3, routing: {policy: bogus}}\n",
        "database.routing.policy",
        "valid",
    )
    bad(
        "where-app-duplicate",
        W + "app:\n  nodes: [{name: n}, {name: n}]\n",
        "app.nodes[1].name",
        "unique",
    )
    bad(
        "where-class-duplicate",
        W.replace("classes: [{name: a, cpu: 0.01}]", "classes: [{name: a}, {name: a}]"),
        "workload.classes[1].name",
    )
    bad(
        "where-unknown-policy",
        W + "balancer: {policy: round_robbin}\n",
        "balancer.policy",
        "round_robin",
    )
    bad(
        "where-policy-option",
        W + "balancer: {policy: power_of_d, policy_options: {choice: 2}}\n",
        "balancer.policy_options.choice",
        "choices",
    )
    bad(
        "where-unknown-dist",
        W.replace("cpu: 0.01", "cpu: {dist: normal, mean: 1}"),
        "workload.classes[0].cpu",
        "unknown distribution",
    )
    bad("where-queries-without-db", WDB, "queries")
    bad(
        "where-schedule-order",
        "workload: {open: {schedule: [[0, 1], [5, 2], [3, 1]]}, classes: [{name: a}]}\n",
        "workload.open.schedule[2]",
        "increase",
    )
    bad(
        "where-two-arrival-kinds",
        "workload: {open: {rate: 5, interarrival: 0.2}, classes: [{name: a}]}\n",
        "workload.open",
        "exactly one",
    )
    bad("where-set-bad-key", W, "--set", args=("--set", "app..workers=2"))
    bad("where-set-no-equals", W, "--set", args=("--set", "app.workers"))
    bad("where-set-list-index", W, "no list item", args=("--set", "workload.classes.5.cpu=1"))
    return cases


CASES = _cases()


def test_the_catalogue_is_broad() -> None:
    assert len(CASES) + len(FILE_CASES) + 6 >= 150
    assert len({c.id for c in CASES}) == len(CASES), "case ids repeat"


def _invoke(tmp_path: Path, case: Case) -> tuple[int, str]:
    scenario = tmp_path / "c.yaml"
    scenario.write_text(case.text, encoding="utf-8")
    os.mkfifo(tmp_path / "fifo")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        args = [case.command, "c.yaml", *case.args]
        if case.command in ("compare", "sweep"):
            args += ["--out", str(tmp_path / "out")]
        result = CliRunner().invoke(app, args)
    finally:
        os.chdir(cwd)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{case.id}: raised {result.exception!r}\n{output}")
    return result.exit_code, " ".join(output.split())


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input(tmp_path: Path, case: Case) -> None:
    code, output = _invoke(tmp_path, case)
    assert code == case.code, output
    for words in case.expect:
        assert words in output, f"{words!r} not in: {output}"
    if case.code == 2 and case.command != "run" and not case.args:
        assert "c.yaml" in output, output  # the file is named


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        ("fifo", lambda p: os.mkfifo(p), "FIFO"),
        ("directory", lambda p: p.mkdir(), "is a directory"),
        ("missing", lambda p: None, "no such file"),
        ("latin1", lambda p: p.write_bytes(b"name: caf\xe9\n"), "not UTF-8"),
        ("binary", lambda p: p.write_bytes(bytes(range(256))), "not UTF-8"),
        ("huge", lambda p: p.write_text("# x\n" * 1_200_000), "at most 4 MiB"),
    ],
)
def test_scenario_files_that_cannot_be_read(tmp_path: Path, name: str, make, words: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{name}.yaml"
    make(path)
    code, out = _cli(tmp_path, "check", str(path))
    assert code == 2, out
    assert words in out and f"{name}.yaml" in out, out


# ----------------------------------------------------------------- family 1: lost data


def _cli(tmp_path: Path, *args: str) -> tuple[int, str]:
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(cwd)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    return result.exit_code, " ".join(output.split())


@pytest.fixture
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(W + SHORT, encoding="utf-8")
    return path


def _results(tmp_path: Path) -> Path:
    code, out = _cli(tmp_path, "run", "s.yaml", "-q", "--out", "res")
    assert code == 0, out
    return tmp_path / "res"


def case_run_json_over_scenario(tmp_path: Path) -> tuple[list[str], Path]:
    return ["run", "s.yaml", "--json", "s.yaml", "-q"], tmp_path / "s.yaml"


def case_run_json_through_dotdot(tmp_path: Path) -> tuple[list[str], Path]:
    (tmp_path / "d").mkdir()
    return ["run", "s.yaml", "--json", "d/../s.yaml", "-q"], tmp_path / "s.yaml"


def case_run_json_absolute(tmp_path: Path) -> tuple[list[str], Path]:
    return ["run", "s.yaml", "--json", str(tmp_path / "s.yaml"), "-q"], tmp_path / "s.yaml"


def case_run_json_symlink(tmp_path: Path) -> tuple[list[str], Path]:
    (tmp_path / "link.json").symlink_to(tmp_path / "s.yaml")
    return ["run", "s.yaml", "--json", "link.json", "-q"], tmp_path / "s.yaml"


def case_run_json_hardlink(tmp_path: Path) -> tuple[list[str], Path]:
    os.link(tmp_path / "s.yaml", tmp_path / "hard.json")
    return ["run", "s.yaml", "--json", "hard.json", "-q"], tmp_path / "s.yaml"


def case_run_scenario_via_symlink(tmp_path: Path) -> tuple[list[str], Path]:
    (tmp_path / "alias.yaml").symlink_to(tmp_path / "s.yaml")
    return ["run", "alias.yaml", "--json", "s.yaml", "-q"], tmp_path / "s.yaml"


def case_run_out_is_scenario(tmp_path: Path) -> tuple[list[str], Path]:
    return ["run", "s.yaml", "--out", "s.yaml", "-q"], tmp_path / "s.yaml"


def case_run_json_inside_out(tmp_path: Path) -> tuple[list[str], Path]:
    res = _results(tmp_path)
    return ["run", "s.yaml", "--out", "res", "--json", "res/summary.json", "-q"], res / "cdf.json"


def case_report_over_summary(tmp_path: Path) -> tuple[list[str], Path]:
    res = _results(tmp_path)
    return ["report", "res", "-o", "res/summary.json"], res / "summary.json"


def case_report_over_meta(tmp_path: Path) -> tuple[list[str], Path]:
    res = _results(tmp_path)
    return ["report", "res", "-o", "res/meta.json"], res / "meta.json"


def case_report_over_timeseries(tmp_path: Path) -> tuple[list[str], Path]:
    res = _results(tmp_path)
    return ["report", "res", "--output", str(res / "timeseries.csv")], res / "timeseries.csv"


def case_compare_out_is_scenario(tmp_path: Path) -> tuple[list[str], Path]:
    args = ["compare", "s.yaml", "--vary", "app.workers=2,4", "--out", "s.yaml", "-q"]
    return args, tmp_path / "s.yaml"


def case_sweep_out_is_scenario(tmp_path: Path) -> tuple[list[str], Path]:
    args = ["sweep", "s.yaml", "--param", "app.workers=2,4", "--out", "s.yaml", "-q"]
    return args, tmp_path / "s.yaml"


def case_plan_out_is_scenario(tmp_path: Path) -> tuple[list[str], Path]:
    args = ["plan", "s.yaml", "--slo", "p95<1", "--out", "s.yaml", "-q"]
    return args, tmp_path / "s.yaml"


FILE_CASES = [
    case_run_json_over_scenario,
    case_run_json_through_dotdot,
    case_run_json_absolute,
    case_run_json_symlink,
    case_run_json_hardlink,
    case_run_scenario_via_symlink,
    case_run_out_is_scenario,
    case_run_json_inside_out,
    case_report_over_summary,
    case_report_over_meta,
    case_report_over_timeseries,
    case_compare_out_is_scenario,
    case_sweep_out_is_scenario,
    case_plan_out_is_scenario,
]


@pytest.mark.parametrize("make", FILE_CASES, ids=[f.__name__[5:] for f in FILE_CASES])
def test_no_command_writes_over_its_input(tmp_path: Path, scenario: Path, make) -> None:  # type: ignore[no-untyped-def]
    args, protected = make(tmp_path)
    before = protected.read_bytes()
    code, out = _cli(tmp_path, *args)
    assert code == 2, out
    assert "refusing" in out or "also written" in out, out
    assert protected.read_bytes() == before


def test_results_in_the_scenarios_own_directory_are_fine(tmp_path: Path, scenario: Path) -> None:
    code, out = _cli(tmp_path, "run", "s.yaml", "-q", "--out", ".", "--json", "r.json")
    assert code == 0, out
    assert (tmp_path / "summary.json").exists() and (tmp_path / "r.json").exists()
    assert scenario.read_text(encoding="utf-8") == W + SHORT


def test_an_interrupted_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "results.json"
    target.write_text('{"good": true}\n')
    with pytest.raises(RuntimeError), atomic.replacing(target) as fh:
        fh.write('{"half')
        raise RuntimeError("killed mid-write")
    assert target.read_text() == '{"good": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left


def test_an_atomic_write_has_the_usual_permissions(tmp_path: Path) -> None:
    target = tmp_path / "new.json"
    atomic.write_text(target, "{}\n")
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_killed_run_leaves_the_previous_json(tmp_path: Path, scenario: Path) -> None:
    """SIGKILL in the middle of a long run: the earlier results file is intact."""
    long = tmp_path / "long.yaml"
    long.write_text(W.replace("rate: 5", "rate: 2000") + "duration: 3000\n")
    results = tmp_path / "r.json"
    results.write_text('{"earlier": 1}\n')
    with spawn(
        [sys.executable, "-m", "lbsim", "run", str(long), "-q", "--json", str(results)]
    ) as p:
        time.sleep(4)  # started and simulating (a 6,000,000-request run)
        assert p.poll() is None
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=60)
    assert results.read_text() == '{"earlier": 1}\n'
    assert sorted(x.name for x in tmp_path.iterdir()) == ["long.yaml", "r.json", "s.yaml"]
