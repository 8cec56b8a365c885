"""Live: the WordPress example stack (validation/examples/wordpress), a user's own stack.

Through its own script, as the README tells a person: ``stack.sh build``
(the layer cache makes it seconds once built), ``up single`` on port 18210,
``seed`` twice (the second adds nothing), then one request of each of the
five request classes through the balancer, each checked by what it must do:

- front page ``GET /``: 200, the newest seeded post's title;
- single post ``GET /?p=ID``: 200, that post's title as the database has it;
- search ``GET /?s=WORD``: 200, the one post holding a word seeded once, and
  nothing for the word seeded nowhere;
- comment ``POST /wp-comments-post.php``: 302 to the new comment, and the
  comment approved in wp_comments (a second comment at once is not refused
  as a flood: the mu-plugin);
- logged-in ``GET /wp-admin/profile.php`` with the seed's cookie: 200 and the
  subscriber's name; without it a redirect to the login page.

The balancer logs every request in lbsim's ``log_format`` with the client
from X-Forwarded-For. The stack is removed in a ``finally``, also when a
step fails or times out (:func:`tests.support.run_program` kills the
script's process group and fails the test).
"""

from __future__ import annotations

import html
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from lbsim.validation.configs import NGINX_LOG_FORMAT
from lbsim.validation.docker import Docker
from tests.stack_support import require_docker
from tests.support import run_program

pytestmark = pytest.mark.stack

EXAMPLE = Path(__file__).resolve().parent.parent / "validation" / "examples" / "wordpress"
STACK = EXAMPLE / "stack.sh"
PORT = 18210
PROJECT = "lbsim-wp-test"
URL = f"http://127.0.0.1:{PORT}"
#: a cold build is minutes of apt-get; warm, the layer cache answers in seconds
BUILD_TIMEOUT = 1800.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 302 itself is the answer checked


_OPENER = urllib.request.build_opener(_NoRedirect)


def _http(
    path: str,
    *,
    data: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    """One request through the balancer: (status, headers, body)."""
    body = None if data is None else urllib.parse.urlencode(data).encode()
    req = urllib.request.Request(URL + path, data=body, headers=headers or {})
    try:
        with _OPENER.open(req, timeout=60) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:  # 3xx (not followed), 4xx, 5xx
        with err:
            return err.code, dict(err.headers), err.read().decode(errors="replace")


def _stack(*args: str, timeout: float) -> str:
    env = {**os.environ, "PORT": str(PORT), "PROJECT": PROJECT}
    proc = run_program([str(STACK), *args], timeout=timeout, env=env)
    assert proc.returncode == 0, f"stack.sh {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _container(docker: Docker, service: str) -> str:
    argv = [*docker.compose, "-p", PROJECT, "-f", str(EXAMPLE / "single.yml"), "ps", "-q"]
    proc = run_program([*argv, service], timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr
    return proc.stdout.strip()


def _sql(docker: Docker, query: str) -> list[str]:
    db = _container(docker, "db")
    proc = run_program([docker.docker, "exec", db, "mariadb", "-N", "-B", "-e", query], timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def test_wordpress_example_serves_every_request_class(tmp_path: Path) -> None:
    docker = require_docker()
    started = time.monotonic()
    _stack("build", timeout=BUILD_TIMEOUT)
    built = time.monotonic()
    _stack("down", "single", timeout=120)  # what an interrupted earlier run left
    try:
        _stack("up", "single", timeout=400)
        seed_dir = tmp_path / "seed"
        _stack("seed", "single", str(seed_dir), timeout=600)
        first = json.loads((seed_dir / "seed.json").read_text())
        cookie = (seed_dir / "cookie.txt").read_text().strip()
        _stack("seed", "single", str(tmp_path / "again"), timeout=600)
        again = json.loads((tmp_path / "again" / "seed.json").read_text())
        seeded = time.monotonic()
        _check_seed(first, again, cookie, (tmp_path / "again" / "cookie.txt").read_text())
        _check_classes(docker, first, cookie)
        _check_access_log(docker)
    finally:
        _stack("down", "single", timeout=120)
    print(
        f"build {built - started:.0f} s, up + seed twice {seeded - built:.0f} s, "
        f"in all {time.monotonic() - started:.0f} s"
    )


def _check_seed(first: dict[str, Any], again: dict[str, Any], cookie: str, cookie2: str) -> None:
    posts, comments, users = first["posts"], first["comments"], first["users"]
    assert (posts["first_id"], posts["last_id"], posts["count"]) == (101, 300, 200)
    assert comments["seeded"] >= 1000 and users["count"] >= 20
    assert first["search_words"]["quokka"] == 1 and first["search_words"]["xylophone"] == 0
    # the second run adds nothing and keeps the cookie's session
    assert (again["posts"]["new"], again["comments"]["new"], again["users"]["new"]) == (0, 0, 0)
    assert again["comments"]["in_database"] == comments["in_database"]
    assert again["search_words"] == first["search_words"]
    assert cookie2.strip() == cookie


def _check_classes(docker: Docker, seed: dict[str, Any], cookie: str) -> None:
    # front page: the newest seeded post (WordPress's own "Hello world!" is newer)
    newest = _sql(docker, "SELECT post_title FROM lbsim.wp_posts WHERE ID = 300")[0]
    status, _, body = _http("/")
    assert status == 200 and html.escape(newest) in body, f"front page {status}"

    # single post: the title the database holds
    title = _sql(docker, "SELECT post_title FROM lbsim.wp_posts WHERE ID = 150")[0]
    status, _, body = _http("/?p=150")
    assert status == 200 and html.escape(title) in body, f"post 150 {status}"

    # search: the only post with the word seeded once, and nothing for the absent word
    (holder,) = _sql(
        docker,
        "SELECT post_title FROM lbsim.wp_posts WHERE post_status = 'publish' "
        "AND post_content LIKE '%quokka%'",
    )
    status, _, body = _http("/?s=quokka")
    assert status == 200 and html.escape(holder) in body, f"search {status}"
    status, _, body = _http("/?s=xylophone")
    assert status == 200 and "Seeded post" not in body, f"empty search {status}"

    # comments: two at once from one address (no flood refusal), each approved
    for n in range(2):
        text = f"live test comment {n} {time.time_ns()}"
        form = {
            "comment_post_ID": "150",
            "author": f"Live Test {n}",
            "email": "live@example.com",
            "comment": text,
        }
        status, headers, body = _http("/wp-comments-post.php", data=form)
        assert status == 302, f"comment {n}: {status} {body[-500:]}"
        assert "?p=150#comment-" in headers["Location"], headers["Location"]
        rows = _sql(
            docker,
            "SELECT comment_post_ID, comment_approved FROM lbsim.wp_comments "
            f"WHERE comment_content = '{text}'",
        )
        assert rows == ["150\t1"], rows

    # logged in: the subscriber's profile with the seed's cookie, the login page without
    name = seed["cookie"]["display_name"]
    status, _, body = _http("/wp-admin/profile.php", headers={"Cookie": cookie})
    assert status == 200, f"profile {status}"
    assert html.escape(name) in body and 'value="reader01"' in body
    status, headers, _ = _http("/wp-admin/profile.php")
    assert status == 302 and "wp-login.php" in headers["Location"]


def _check_access_log(docker: Docker) -> None:
    lb = _container(docker, "lb")
    conf = run_program([docker.docker, "exec", lb, "cat", "/etc/nginx/nginx.conf"], timeout=60)
    assert f"log_format lbsim '{NGINX_LOG_FORMAT}';" in conf.stdout
    status, _, _ = _http("/?s=zither", headers={"X-Forwarded-For": "203.0.113.7"})
    assert status == 200
    deadline = time.monotonic() + 10
    while True:
        logs = run_program([docker.docker, "logs", lb], timeout=60).stdout
        line = [x for x in logs.splitlines() if '"GET /?s=zither HTTP/1.1" 200' in x]
        if line or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert line and line[-1].startswith("203.0.113.7 - - ["), logs[-2000:]
