"""The target file (lbsim.target): schema, placeholders, rendering, and the
target's requests on the scenario's own arrival trace."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import yaml

import lbsim
from lbsim.target.loader import TargetFileError, load_target, loads_target, target_from_data
from lbsim.target.requests import (
    MissingRequests,
    TargetClosedLoopPlan,
    extra_requests,
    missing_requests,
    target_plan,
)
from lbsim.target.schema import TargetSpec
from lbsim.target.templates import Slot, TemplateError, parse_template
from lbsim.validation.workplan import ClosedLoopPlan, MachineCosts, work_plan

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
MIXED = ROOT / "scenarios" / "mixed.yaml"

#: the brief's example, with mixed.yaml's class names
WORDPRESS = """\
target: wordpress
compose:
  project: lbsim-wp
services:
  balancer: lb
  app: [app1, app2]
  database: [db]
url: http://127.0.0.1:18200
requests:
  browse: {method: GET, path: /, expect: [200]}
  search: {path: "/?s={word}", words: [lorem, "two words", "a&b"]}
  checkout:
    method: POST
    path: /wp-comments-post.php
    form: {comment_post_ID: "{id}", author: "lbsim {n}", email: "u{n}@example.com",
           comment: "load test {n} {uuid}"}
    ids: {range: [1, 200]}
    expect: [302]
  report: {path: /wp-admin/profile.php, headers: {Cookie: "{file:cookie.txt}"}}
database:
  engine: mysql
  user: root
  password: secret
fpm_status: /status
"""


@pytest.fixture
def wp(tmp_path: Path) -> Path:
    (tmp_path / "cookie.txt").write_text("wordpress_logged_in=abc%7C1\n")
    path = tmp_path / "wp.yaml"
    path.write_text(WORDPRESS)
    return path


def _data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(WORDPRESS)
    data["requests"]["report"] = {"path": "/wp-admin/profile.php"}
    data.update(changes)
    return data


def _target(**changes: Any) -> TargetSpec:
    return target_from_data(_data(**changes), "<test>")


def _problems(data: dict[str, Any]) -> str:
    with pytest.raises(TargetFileError) as err:
        target_from_data(data, "t.yaml")
    return str(err.value)


# ---------------------------------------------------------------- the file
def test_the_example_loads_with_its_defaults(wp: Path) -> None:
    t = load_target(wp)
    assert t.target == "wordpress"
    assert t.url == "http://127.0.0.1:18200/"
    assert t.host_header == "127.0.0.1:18200"
    assert t.services.all == ("lb", "app1", "app2", "db")
    assert t.compose.start is False and t.compose.file is None
    assert t.requests["browse"].method == "GET" and t.requests["search"].expect == (200,)
    assert t.requests["checkout"].expect == (302,)
    assert t.requests["checkout"].placeholders == {"id", "n", "uuid"}
    assert t.requests["report"].files == {"file:cookie.txt": "wordpress_logged_in=abc%7C1"}
    assert t.database is not None and t.database.secret == "secret"
    assert "secret" not in repr(t)  # the password never shows
    assert t.fpm_status == "/status" and t.fpm_listen == "127.0.0.1:9000"


def test_a_single_service_name_is_a_list_of_one() -> None:
    data = _data()
    data["services"] = {"app": "app1", "database": "db"}
    t = target_from_data(data, "<test>")
    assert t.services.app == ("app1",) and t.services.database == ("db",)
    assert t.services.balancer is None


def test_anchors_and_merge_keys_are_accepted() -> None:
    text = WORDPRESS.replace("{file:cookie.txt}", "x").replace(
        "requests:\n",
        "requests:\n"
        "  post: &post {path: '/?p={id}', ids: {range: [1, 5]}}\n"
        "  again: {<<: *post, expect: [200, 304]}\n",
    )
    t = loads_target(text, "t.yaml")
    assert t.requests["again"].path == "/?p={id}"
    assert t.requests["again"].expect == (200, 304)
    assert t.requests["again"].ids is not None and t.requests["again"].ids.range == (1, 5)


def test_errors_name_the_file_the_line_and_the_key(wp: Path) -> None:
    text = wp.read_text().replace("method: POST", "method: PUSH")
    wp.write_text(text)
    with pytest.raises(TargetFileError) as err:
        load_target(wp)
    msg = str(err.value)
    assert f"{wp}:13:5: requests.checkout.method:" in msg
    assert "'GET'" in msg and "'POST'" in msg


def test_an_unknown_key_under_a_request_gets_a_hint() -> None:
    data = _data()
    data["requests"]["browse"]["metod"] = "GET"
    assert "requests.browse.metod: unknown key; did you mean 'method'?" in _problems(data)
    data = _data()
    data["database"]["pasword"] = "x"
    assert "database.pasword: unknown key; did you mean 'password'?" in _problems(data)


def test_files_resolve_from_the_target_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    (sub / "ids.txt").write_text("# post ids\n12\n\n  40  \nhello-world\n")
    (sub / "words.txt").write_text("alpha\nbeta\n")
    (sub / "pw").write_text("s3cret\n")
    data = _data()
    data["requests"]["browse"] = {"path": "/{id}", "ids_file": "ids.txt"}
    data["requests"]["search"] = {"path": "/?s={word}", "words_file": "words.txt"}
    data["database"] = {"engine": "galera", "password_file": "pw"}
    path = sub / "t.yaml"
    path.write_text(yaml.safe_dump(data))
    t = load_target(path)
    assert t.requests["browse"].id_values == ("12", "40", "hello-world")
    assert t.requests["search"].word_values == ("alpha", "beta")
    assert t.database is not None and t.database.secret == "s3cret"
    assert "password_file" in t.database.password_source and "s3cret" not in str(t.database)


def test_compose_start_needs_an_existing_file(tmp_path: Path) -> None:
    data = _data(compose={"project": "wp", "start": True})
    assert "compose.file: start: true needs the compose file" in _problems(data)
    (tmp_path / "docker-compose.yml").write_text("services: {}\n")
    data = _data(compose={"project": "wp", "start": True, "file": "docker-compose.yml"})
    t = TargetSpec.model_validate(data, context={"base_dir": tmp_path})
    assert t.compose.path == tmp_path / "docker-compose.yml"


# ---------------------------------------------------------------- templates
def test_templates_parse_slots_literals_and_escaped_braces() -> None:
    t = parse_template("/a/{id}?q={{x}}&f={file:c.txt}")
    assert t.parts == ("/a/", Slot("id"), "?q={x}&f=", Slot("file:c.txt"))
    assert t.names == {"id", "file:c.txt"} and t.files == ("c.txt",)
    assert t.render({"id": "7", "file:c.txt": "C"}) == "/a/7?q={x}&f=C"
    for bad, words in [
        ("/{nope}", "unknown placeholder {nope}"),
        ("/{", "a lone '{'"),
        ("/}", "a lone '}'"),
        ("/{file:}", "needs a file name"),
    ]:
        with pytest.raises(TemplateError, match=words):
            parse_template(bad)


# ---------------------------------------------------------------- rendering
def _plan(t: TargetSpec, n: int = 200, unique: str = "u", **over: Any) -> list[Any]:
    sc = lbsim.load_scenario(MIXED, [f"{k}={v}" for k, v in over.items()])
    return list(itertools.islice(target_plan(sc, t, unique=unique), n))


def test_the_plan_is_the_simulated_trace_with_the_target_s_requests(wp: Path) -> None:
    t = load_target(wp)
    sc = lbsim.load_scenario(MIXED)
    mine = list(itertools.islice(target_plan(sc, t, unique="u"), 300))
    theirs = list(itertools.islice(work_plan(sc, MachineCosts(), rows=1000), 300))
    assert [(p.index, p.time, p.cls_name, p.client, p.address) for p in mine] == [
        (p.index, p.time, p.cls_name, p.client, p.address) for p in theirs
    ]
    assert all(p.units == 0 and p.path() == p.http.path for p in mine)


def test_drawing_is_reproducible_and_replications_differ(wp: Path) -> None:
    t = load_target(wp)
    sc = lbsim.load_scenario(MIXED)
    a = [p.http for p in itertools.islice(target_plan(sc, t, unique="u"), 200)]
    b = [p.http for p in itertools.islice(target_plan(sc, t, unique="u"), 200)]
    c = [p.http for p in itertools.islice(target_plan(sc, t, 1, unique="u"), 200)]
    assert a == b and a != c
    # {uuid} alone differs between runs unless they share ``unique``
    d = [p.http for p in itertools.islice(target_plan(sc, t), 200)]
    e = [p.http for p in itertools.islice(target_plan(sc, t), 200)]
    assert [x.path for x in d] == [x.path for x in a] and d != e


def test_rendered_requests_encode_paths_and_forms(wp: Path) -> None:
    t = load_target(wp)
    plan = _plan(t)
    by = {cls: [p for p in plan if p.cls_name == cls] for cls in t.requests}
    assert {p.http.path for p in by["search"]} == {"/?s=lorem", "/?s=two%20words", "/?s=a%26b"}
    for p in by["checkout"]:
        h = p.http
        assert h.method == "POST" and h.expect == (302,)
        assert ("Content-Type", "application/x-www-form-urlencoded") in h.headers
        form = dict(parse_qsl(h.body.decode("ascii")))
        assert 1 <= int(form["comment_post_ID"]) <= 200
        assert form["author"] == f"lbsim {p.index}" and form["email"] == f"u{p.index}@example.com"
        assert form["comment"].startswith(f"load test {p.index} ")
    uuids = {dict(parse_qsl(p.http.body.decode()))["comment"].split()[-1] for p in by["checkout"]}
    assert len(uuids) == len(by["checkout"])  # unique per request
    for p in by["report"]:
        assert dict(p.http.headers)["Cookie"] == "wordpress_logged_in=abc%7C1"
    for p in plan:
        assert dict(p.http.headers)["Host"] == "127.0.0.1:18200"
        assert (p.http.body == b"") == (p.cls_name != "checkout")


def test_ids_are_drawn_uniformly_over_the_whole_range() -> None:
    data = _data()
    data["requests"]["browse"] = {"path": "/?p={id}&c={client}", "ids": {"range": [3, 6]}}
    t = target_from_data(data, "<test>")
    plan = [p for p in _plan(t, 4000) if p.cls_name == "browse"]
    ids = [int(p.http.path.split("=")[1].split("&")[0]) for p in plan]
    assert set(ids) == {3, 4, 5, 6}
    assert all(ids.count(k) > len(ids) / 4 * 0.8 for k in range(3, 7))
    assert all(p.http.path.endswith(f"&c={p.client}") for p in plan)


def test_literal_path_characters_are_encoded_and_delimiters_kept() -> None:
    data = _data()
    data["requests"]["browse"] = {"path": "/café/a b?x=1&y=[z]#frag"}
    t = target_from_data(data, "<test>")
    p = next(p for p in _plan(t) if p.cls_name == "browse")
    assert p.http.path == "/caf%C3%A9/a%20b?x=1&y=%5Bz%5D%23frag"


def test_request_headers_override_the_target_s_and_host_can_be_set() -> None:
    data = _data(headers={"Host": "blog.example", "X-Env": "all", "Accept": "text/html"})
    data["requests"]["browse"] = {"path": "/", "headers": {"x-env": "mine"}}
    t = target_from_data(data, "<test>")
    plan = _plan(t)
    browse = next(p for p in plan if p.cls_name == "browse")
    assert browse.http.headers == (
        ("Host", "blog.example"),
        ("x-env", "mine"),
        ("Accept", "text/html"),
    )
    other = next(p for p in plan if p.cls_name == "search")
    assert dict(other.http.headers) == {
        "Host": "blog.example",
        "X-Env": "all",
        "Accept": "text/html",
    }


def test_a_raw_body_is_sent_as_written() -> None:
    data = _data()
    data["requests"]["checkout"] = {
        "method": "PUT",
        "path": "/api/{id}",
        "ids": {"range": [1, 1]},
        "headers": {"Content-Type": "application/json"},
        "body": '{{"n": {n}, "who": "{client}"}}',
    }
    t = target_from_data(data, "<test>")
    p = next(p for p in _plan(t) if p.cls_name == "checkout")
    assert p.http.method == "PUT" and p.http.path == "/api/1"
    assert p.http.body == f'{{"n": {p.index}, "who": "{p.client}"}}'.encode()


def test_missing_and_extra_classes() -> None:
    data = _data()
    del data["requests"]["report"]
    data["requests"]["extra"] = {"path": "/x"}
    t = target_from_data(data, "<test>")
    sc = lbsim.load_scenario(MIXED)
    assert missing_requests(sc, t) == ["report"]
    assert extra_requests(sc, t) == ["extra"]
    with pytest.raises(MissingRequests, match="no request for class report"):
        next(target_plan(sc, t))
    with pytest.raises(MissingRequests):
        TargetClosedLoopPlan(sc, t)


def test_a_closed_loop_plan_draws_what_the_model_s_users_draw() -> None:
    t = _target()
    data = yaml.safe_load(MIXED.read_text())
    data["workload"].pop("open")
    data["workload"]["closed"] = {"users": 3, "think_time": {"dist": "exponential", "mean": 0.2}}
    sc = lbsim.Scenario.model_validate(data)
    mine = TargetClosedLoopPlan(sc, t, unique="u")
    theirs = ClosedLoopPlan(sc, MachineCosts(), rows=1000)
    assert (mine.users, mine.horizon) == (theirs.users, theirs.horizon)
    assert [mine.think() for _ in range(3)] == [theirs.think() for _ in range(3)]
    for i in range(50):
        a, b = mine.request(i % 3, float(i)), theirs.request(i % 3, float(i))
        assert (a.index, a.cls_name, a.client, a.address) == (
            b.index,
            b.cls_name,
            b.client,
            b.address,
        )
        assert a.http.path.startswith("/")


def test_every_numeric_and_boolean_key_of_the_target_file_is_strict() -> None:
    from pydantic import Strict

    from tests.test_strict_numbers import _models, _numeric_leaves

    models = list(_models(TargetSpec, set()))
    assert {"TargetSpec", "ComposeSpec", "Services", "RequestSpec", "IdRange"} <= {
        m.__name__ for m in models
    }
    loose = []
    for model in models:
        for name, field in model.model_fields.items():
            strict = any(isinstance(m, Strict) for m in field.metadata)
            where = f"{model.__name__}.{name}"
            loose += [w for w, ok in _numeric_leaves(field.annotation, strict, where) if not ok]
            if field.annotation is bool:
                assert strict, where  # StrictBool: 1 or "yes" is not true
    assert loose == []
