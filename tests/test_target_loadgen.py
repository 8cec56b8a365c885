"""The load generator sending a target's own HTTP requests (method, headers,
body, expected statuses) to a loopback server, and the bytes it sends for the
built-in app's plain GET (unchanged)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import lbsim
from lbsim.target.http import HttpRequest, TargetRequest, request_bytes
from lbsim.target.loader import target_from_data
from lbsim.target.requests import TargetClosedLoopPlan, target_plan
from lbsim.validation.failures import answered_by_horizon
from lbsim.validation.loadgen import (
    UNEXPECTED_200,
    send_closed_loop,
    send_open_loop,
    send_sequential,
)
from lbsim.validation.measured import failure_reason

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parent.parent
MIXED = ROOT / "scenarios" / "mixed.yaml"


@dataclass
class Seen:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class Server:
    """A loopback HTTP/1.1 server that reads each request whole (its body by
    Content-Length) and answers the status the path asks for (``/status/302``)."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ")
            headers = [(k, v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
            length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
            body = await reader.readexactly(length) if length else b""
            self.seen.append(Seen(method, target, headers, body, head + body))
            status = 200
            if "/status/" in target:
                status = int(target.split("/status/")[1].split("?")[0].split("/")[0])
            payload = b"" if method == "HEAD" else b"ok"
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    def _serve(self) -> None:
        async def main() -> None:
            server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            async with server:
                await server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(main())

    def __enter__(self) -> Server:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the server did not start listening within 60 s")
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self._loop
        if loop is not None:

            def cancel_all() -> None:
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(cancel_all)
        self._thread.join(60)
        assert not self._thread.is_alive()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as s:
        yield s


def _item(index: int, http: HttpRequest, time: float = 0.0) -> TargetRequest:
    return TargetRequest(index, time, 0, "c", 7, "10.1.2.3", http)


# ---------------------------------------------------------------- the wire
def test_a_plain_get_is_the_same_bytes_as_before() -> None:
    headers = {"X-Forwarded-For": "10.0.0.1", "X-Lbsim-Client": "4"}
    assert request_bytes("127.0.0.1", "/?class=a&units=3", headers) == (
        b"GET /?class=a&units=3 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"X-Forwarded-For: 10.0.0.1\r\nX-Lbsim-Client: 4\r\n\r\n"
    )


def test_a_body_gets_its_length_and_a_host_header_replaces_the_default() -> None:
    raw = request_bytes(
        "127.0.0.1", "/p", {"Host": "blog.example:8080", "Content-Type": "x"}, "POST", b"a=1"
    )
    assert raw == (
        b"POST /p HTTP/1.1\r\nHost: blog.example:8080\r\nConnection: close\r\n"
        b"Content-Type: x\r\nContent-Length: 3\r\n\r\na=1"
    )
    # a POST without a body still says so (nginx answers 411 otherwise)
    assert b"Content-Length: 0\r\n" in request_bytes("h", "/", {}, "POST")
    assert b"Content-Length" not in request_bytes("h", "/", {}, "DELETE")


def test_target_requests_go_out_with_their_method_headers_and_body(server: Server) -> None:
    form = b"author=lbsim+1&comment=caf%C3%A9+%26+more"
    plan = [
        _item(0, HttpRequest("GET", "/?s=two%20words", (("Cookie", "k=v"),)), 0.0),
        _item(
            1,
            HttpRequest(
                "POST",
                "/wp-comments-post.php",
                (("Host", "127.0.0.1:9"), ("Content-Type", "application/x-www-form-urlencoded")),
                form,
                (302,),
            ),
            0.01,
        ),
        _item(2, HttpRequest("PUT", "/api/1", (), b'{"a": 1}'), 0.02),
        _item(3, HttpRequest("DELETE", "/api/1"), 0.03),
        _item(4, HttpRequest("HEAD", "/"), 0.04),
    ]
    records, _ = send_open_loop(server.url, plan, timeout=10)
    seen = sorted(server.seen, key=lambda s: s.target + s.method)
    by = {(s.method, s.target): s for s in seen}
    assert len(seen) == 5
    get = by[("GET", "/?s=two%20words")]
    assert get.header("Cookie") == "k=v" and get.body == b""
    assert get.header("Host") == "127.0.0.1" and get.header("Content-Length") is None
    assert get.header("X-Forwarded-For") == "10.1.2.3" and get.header("X-Lbsim-Client") == "7"
    post = by[("POST", "/wp-comments-post.php")]
    assert post.body == form and post.header("Content-Length") == str(len(form))
    assert post.header("Host") == "127.0.0.1:9"
    assert [k for k, _ in post.headers].count("Host") == 1
    assert post.header("Content-Type") == "application/x-www-form-urlencoded"
    assert by[("PUT", "/api/1")].body == b'{"a": 1}'
    assert by[("DELETE", "/api/1")].header("Content-Length") is None
    assert ("HEAD", "/") in by
    statuses = {r.index: (r.status, r.http_status) for r in records}
    # the POST expected 302 and got 200: a failure, not a completion
    assert statuses[1] == (UNEXPECTED_200, 200)
    assert all(statuses[i] == (200, 200) for i in (0, 2, 3, 4))


def test_statuses_outside_expect_are_failures_of_that_status(server: Server) -> None:
    cases = {
        0: ("/status/302", (302,), 200, "completed"),
        1: ("/status/200", (302,), UNEXPECTED_200, "http_200"),
        2: ("/status/404", (200,), 404, "http_404"),
        3: ("/status/503", (200, 503), 200, "completed"),
        4: ("/status/500", (200,), 500, "http_500"),
        5: ("/status/200", (200,), 200, "completed"),
    }
    plan = [
        _item(i, HttpRequest("GET", path, (), b"", expect), 0.01 * i)
        for i, (path, expect, _, _) in cases.items()
    ]
    records = send_sequential(server.url, plan, timeout=10)
    for r in records:
        path, _, status, reason = cases[r.index]
        assert r.status == status, path
        assert r.http_status == int(path.rsplit("/", 1)[1])
        assert (failure_reason(r) if r.status != 200 else "completed") == reason
    sc = lbsim.load_scenario(MIXED, duration=10, warmup=0)
    for r in records:
        r.sent, r.latency = r.scheduled, 0.001  # answered inside the window
    counts = answered_by_horizon(sc, records)
    assert counts == {
        "arrived": 6,
        "completed": 3,
        "http_200": 1,
        "http_404": 1,
        "http_500": 1,
    }


def test_a_scenario_s_trace_goes_to_the_target(server: Server) -> None:
    data = {
        "target": "t",
        "compose": {"project": "p"},
        "services": {"app": ["app1"]},
        "url": server.url,
        "requests": {
            "browse": {"path": "/b?w={word}", "words": ["x y"]},
            "search": {"path": "/s/{id}", "ids": {"range": [1, 3]}},
            "checkout": {
                "method": "POST",
                "path": "/status/302",
                "form": {"n": "{n}"},
                "expect": [302],
            },
            "report": {"path": "/status/404"},
        },
    }
    target = target_from_data(data, "<test>")
    sc = lbsim.load_scenario(MIXED, ["workload.open.rate=40"], duration=1, warmup=0)
    plan = list(target_plan(sc, target, unique="u"))
    records, _ = send_open_loop(server.url, plan, timeout=10)
    assert len(server.seen) == len(plan) == len(records) > 10
    sent = {s.target for s in server.seen}
    assert sent <= {"/b?w=x%20y", "/s/1", "/s/2", "/s/3", "/status/302", "/status/404"}
    for r in records:
        expected = 404 if r.cls == "report" else 200
        assert r.status == expected, r.cls
    posts = [s for s in server.seen if s.method == "POST"]
    assert sorted(s.body for s in posts) == sorted(
        f"n={p.index}".encode() for p in plan if p.cls_name == "checkout"
    )


def test_closed_loop_users_send_the_target_s_requests(server: Server) -> None:
    data = yaml.safe_load(MIXED.read_text())
    data["workload"].pop("open")
    data["workload"]["closed"] = {"users": 2, "think_time": 0.05}
    data.update(duration=0.5, warmup=0)
    sc = lbsim.Scenario.model_validate(data)
    target = target_from_data(
        {
            "target": "t",
            "compose": {"project": "p"},
            "services": {"app": "app1"},
            "url": server.url,
            "requests": {c: {"path": f"/{c}?u={{client}}"} for c in sc.workload.class_names},
        },
        "<test>",
    )
    records, stats = send_closed_loop(server.url, TargetClosedLoopPlan(sc, target), timeout=10)
    assert records and stats.max_in_flight <= 2
    assert len(server.seen) == len(records)
    assert {s.target for s in server.seen} <= {
        f"/{c}?u={u}" for c in sc.workload.class_names for u in (0, 1)
    }
    assert all(r.status == 200 and r.http_status == 200 for r in records)
