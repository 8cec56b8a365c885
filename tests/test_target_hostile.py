"""Hostile and mistaken target files (issue 14), one case each, through ``lbsim check``.

The promise is the scenario's (issue 12): a target file that cannot be used
is refused with exit 2 and a message that names the file, the line, the key
and what is wrong, never a traceback; legitimate YAML (anchors, merge keys,
quoted words) is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lbsim.cli.app import app

pytestmark = pytest.mark.cli

MIXED = Path(__file__).resolve().parent.parent / "scenarios" / "mixed.yaml"

#: a minimal valid target, key by key (a case replaces or removes keys)
BASE = {
    "target": "t",
    "compose": "{project: wp}",
    "services": "{app: [app1], database: [db]}",
    "url": "http://127.0.0.1:8080",
    "requests": '{a: {path: "/"}}',
    "database": "{engine: mysql}",
}


def doc(**keys: str | None) -> str:
    merged = {**BASE, **keys}
    return "".join(f"{k}: {v}\n" for k, v in merged.items() if v is not None)


def req(spec: str) -> str:
    return "{a: " + spec + "}"


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    #: words the message must hold
    expect: tuple[str, ...]
    #: the line the message must name (0: the file without a line)
    line: int
    code: int = 2


def _cases() -> list[Case]:
    cases: list[Case] = []

    def bad(id: str, text: str, line: int, *expect: str) -> None:
        cases.append(Case(id, text, expect, line))

    def good(id: str, text: str) -> None:
        cases.append(Case(id, text, (), 0, 0))

    # -- wrong types: booleans are not numbers, numbers not strings
    bad(
        "range-bool",
        doc(requests=req('{path: "/{id}", ids: {range: [true, 5]}}')),
        5,
        "requests.a.ids.range[0]",
        "expected a whole number, got a boolean",
    )
    bad("start-number", doc(compose="{project: wp, start: 1}"), 2, "compose.start", "true or false")
    bad(
        "timeout-yes",
        doc(compose="{project: wp, start_timeout: yes}"),
        2,
        "compose.start_timeout",
        "got a boolean",
    )
    bad(
        "expect-quoted",
        doc(requests=req('{path: /, expect: ["302"]}')),
        5,
        "requests.a.expect[0]",
        "write a number without quotes",
    )
    bad(
        "expect-99", doc(requests=req("{path: /, expect: [99]}")), 5, "greater than or equal to 100"
    )
    bad("range-float", doc(requests=req('{path: "/{id}", ids: {range: [0, 1e3]}}')), 5, "whole")
    bad(
        "range-huge",
        doc(requests=req('{path: "/{id}", ids: {range: [0, 100000000000000000000]}}')),
        5,
        "less than or equal to",
    )
    bad("target-bool", doc(target="yes"), 1, "target:", "got a boolean")
    bad(
        "word-bool",
        doc(requests=req('{path: "/{word}", words: [yes, no]}')),
        5,
        "requests.a.words[0]",
        "quote the word",
    )
    bad("password-number", doc(database="{engine: mysql, password: 1234}"), 6, "expected a string")
    # -- unknown keys, with a hint
    bad("urls", doc(urls="x"), 7, "urls: unknown key; did you mean 'url'?")
    bad("projet", doc(compose="{projet: wp}"), 2, "compose.projet: unknown key", "'project'")
    bad("paths", doc(requests="{a: {paths: /}}"), 5, "requests.a.paths: unknown key", "'path'")
    # -- the url
    bad("remote", doc(url="http://10.0.0.5:8080"), 4, "url:", "loopback", "'10.0.0.5'")
    bad("https", doc(url="https://127.0.0.1:8443"), 4, "scheme 'https'")
    bad("url-path", doc(url="http://127.0.0.1:8080/blog"), 4, "the url is the entry point only")
    bad("url-port", doc(url="http://127.0.0.1:99999"), 4, "not a port number")
    bad("url-user", doc(url="http://me:pw@127.0.0.1:8080"), 4, "user or password")
    # -- placeholders and their sources
    bad(
        "file-missing", doc(requests=req('{path: "/{file:nope.txt}"}')), 5, "nope.txt: no such file"
    )
    bad("placeholder-case", doc(requests=req('{path: "/{ID}"}')), 5, "unknown placeholder {ID}")
    bad("lone-brace", doc(requests=req('{path: "/{"}')), 5, "a lone '{'")
    bad("empty-range", doc(requests=req('{path: "/{id}", ids: {range: [5, 1]}}')), 5, "empty")
    bad("id-no-ids", doc(requests=req('{path: "/?p={id}"}')), 5, "uses {id} but", "no ids")
    bad("word-no-words", doc(requests=req('{path: "/?s={word}"}')), 5, "uses {word} but")
    bad("no-words", doc(requests=req('{path: "/{word}", words: []}')), 5, "at least 1 item")
    bad(
        "ids-file-empty",
        doc(requests=req('{path: "/{id}", ids_file: empty.txt}')),
        5,
        "empty.txt: no entries",
    )
    bad(
        "words-file-missing",
        doc(requests=req('{path: "/{word}", words_file: w.txt}')),
        5,
        "w.txt: no such file",
    )
    bad(
        "ids-and-file",
        doc(requests=req('{path: "/{id}", ids: {range: [1, 2]}, ids_file: ids.txt}')),
        5,
        "give ids or ids_file, not both",
    )
    bad("dir-as-file", doc(requests=req('{path: "/{file:sub}"}')), 5, "is a directory")
    # -- requests
    bad("no-slash", doc(requests=req("{path: index.php}")), 5, "a path starts with '/'")
    bad("get-form", doc(requests=req("{path: /, form: {a: b}}")), 5, "a GET request sends no body")
    bad(
        "form-and-body",
        doc(requests=req("{method: POST, path: /, form: {a: b}, body: x}")),
        5,
        "give form or body, not both",
    )
    bad("lower-method", doc(requests=req("{method: post, path: /}")), 5, "'POST'")
    bad("form-bool", doc(requests=req("{method: POST, path: /, form: {a: on}}")), 5, "boolean")
    bad("no-requests", doc(requests="{}"), 5, "at least 1 item")
    bad("dup-request", doc(requests='{a: {path: "/"}, a: {path: "/x"}}'), 5, "duplicate key 'a'")
    # -- headers
    bad(
        "content-length",
        doc(requests=req("{path: /, headers: {Content-Length: '5'}}")),
        5,
        "sets Content-Length itself",
    )
    bad(
        "header-newline-file",
        doc(requests=req('{path: /, headers: {Cookie: "{file:two-lines.txt}"}}')),
        5,
        "line break",
    )
    bad("header-latin1", doc(requests=req("{path: /, headers: {X-Name: 'Ω'}}")), 5, "Latin-1")
    bad(
        "header-name", doc(requests=req("{path: /, headers: {'X Name': a}}")), 5, "a header name is"
    )
    bad("header-twice", doc(headers="{Host: a, host: b}"), 7, "repeats Host")
    bad("top-header-id", doc(headers='{X-Id: "{id}"}'), 7, "drawn per class")
    # -- services, compose and the database
    bad("no-app", doc(services="{app: []}"), 3, "services.app", "at least 1 item")
    bad("two-roles", doc(services="{app: [db], database: [db]}"), 3, "already named as app[0]")
    bad("project-case", doc(compose="{project: WP}"), 2, "compose project name", "'WP'")
    bad("service-name", doc(services="{app: ['app 1'], database: db}"), 3, "compose service name")
    bad("start-no-file", doc(compose="{project: wp, start: true}"), 2, "needs the compose file")
    bad("compose-missing", doc(compose="{project: wp, file: dc.yml}"), 2, "dc.yml: no such file")
    bad("no-database", doc(database=None), 3, "services.database: names database nodes")
    bad("database-unused", doc(services="{app: app1}"), 6, "there is no services.database")
    bad("engine", doc(database="{engine: postgres}"), 6, "'mysql' or 'galera'")
    bad(
        "two-passwords",
        doc(database="{engine: mysql, password: a, password_file: pw}"),
        6,
        "give password or password_file, not both",
    )
    bad("fpm-status", doc(fpm_status="status"), 7, "fpm_status: a path starting with '/'")
    # -- the document itself
    bad("list", "- target: t\n", 0, "a target file is a mapping of keys, not a list")
    bad("syntax", doc() + "requests: [\n", 8, "YAML syntax error")
    # -- legitimate YAML and values
    good("quoted-words", doc(requests=req('{path: "/{word}", words: ["yes", "no", "1e3"]}')))
    good(
        "merge",
        doc(requests='{a: &a {path: "/{id}", ids: {range: [1, 9]}}, b: {<<: *a, expect: [304]}}'),
    )
    good("braces", doc(requests=req('{path: "/{{literal}}"}')))
    good("localhost", doc(url="http://localhost:8080/"))
    return cases


CASES = _cases()


def test_there_are_at_least_twenty_refusals() -> None:
    assert sum(1 for c in CASES if c.code == 2) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case: Case, tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    (tmp_path / "ids.txt").write_text("1\n")
    (tmp_path / "two-lines.txt").write_text("a\nb\n")
    (tmp_path / "pw").write_text("x\n")
    (tmp_path / "sub").mkdir()
    path = tmp_path / "t.yaml"
    path.write_text(case.text)
    # a document that is not a mapping has no target: key: it is checked as a --target
    args = (
        ["check", str(MIXED), "--target", str(path)] if case.id == "list" else ["check", str(path)]
    )
    result = CliRunner().invoke(app, args)
    assert "Traceback" not in result.output
    assert result.exit_code == case.code, result.output
    if case.code == 0:
        assert "is valid" in result.stdout
        return
    err = " ".join(result.stderr.split())
    assert "error: invalid target file" in err
    where = f"{path}:{case.line}:" if case.line else f"{path}:"
    assert where in err, err
    for words in case.expect:
        assert words in err, err
