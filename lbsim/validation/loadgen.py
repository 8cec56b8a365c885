"""The load generator: sends planned requests to the stack's balancer, open or
closed loop.

Open loop means the schedule is the plan's, whatever the stack does: a slow
server never delays the next send (each request is its own task on one
asyncio loop, with its own TCP connection, as distinct internet clients
have). The generator measures how late each send was against its schedule
and its own CPU time, so a run where the generator itself was the bottleneck
is flagged instead of reported as a measurement of the stack.

Closed loop (:func:`send_closed_loop`) is the model's closed workload: each
user thinks, sends, waits for the answer (or gives up at the client timeout)
and thinks again, so the stack's speed sets the arrival rate. Lateness is
then how far a send lags the end of its think time.

HTTP/1.1 is spoken directly over asyncio streams: one request per
connection, ``Connection: close``, the response read to EOF. That is all the
app needs and keeps the generator's CPU per request small. A
:class:`~lbsim.target.http.TargetRequest` (the user's stack) carries its own
method, headers, body and expected statuses: an answer its class expects is
recorded as completed (``status`` 200), any other as a failure of its status
(``http_status`` keeps the answer's own).

Every loop here is bounded in count and in time, whatever the stack does: a
request (connect, send, read) is given up at the client timeout, which must
be finite; a response is read up to :data:`MAX_RESPONSE_BYTES`; a run sends
at most :data:`MAX_REQUESTS` requests (fewer where the caller says); the open
loop ends one timeout after its last send, the closed loop one timeout after
the horizon, and :func:`send_sequential` stops sending after ``budget``
seconds.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import resource
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from lbsim.target.http import ClosedPlan, HttpRequest, Planned, TargetRequest, request_bytes
from lbsim.validation.sender import frozen_heap, sender_priority

#: status of a request the client gave up on (the model's ``timeout``)
TIMEOUT = -1
#: status of a request whose connection the balancer refused or reset
CONNECT_ERROR = -2
#: status of a request the generator did not send (its own in-flight limit)
NOT_SENT = -3
#: status of a target request answered 200 where its class expects another status
#: (``requests.failed.http_200``; the answer's status is in ``Record.http_status``)
UNEXPECTED_200 = -4

#: the app's server-side timing headers (lower-cased: HAProxy lowercases them)
TIMING_HEADERS = ("cpu", "work", "db", "connect", "wall", "queue")

#: the most requests one run sends (a plan longer than this is refused)
MAX_REQUESTS = 2_000_000
#: a response longer than this is an error (the app answers a few hundred bytes)
MAX_RESPONSE_BYTES = 1 << 20


@dataclass
class Record:
    """One request as the client saw it, with the app's server-side timings."""

    index: int
    cls: str
    client: int
    scheduled: float  # s from the start of the run
    sent: float = float("nan")  # s from the start of the run
    latency: float = float("nan")  # s, send → last byte of the answer
    status: int = NOT_SENT
    node: str = ""
    cpu: float = float("nan")
    work: float = float("nan")
    db: float = float("nan")
    connect: float = float("nan")
    wall: float = float("nan")
    queue: float = float("nan")
    retries: int = 0
    db_error: int = 0
    units: int = 0  # PHP work units asked for (the plan's)
    #: the answer's own HTTP status (0: no answer); ``status`` is the outcome
    http_status: int = 0

    @property
    def lateness(self) -> float:
        return self.sent - self.scheduled


def _record(item: Planned, scheduled: float) -> Record:
    return Record(item.index, item.cls_name, item.client, scheduled, units=item.units)


@dataclass
class LoadgenStats:
    """How well the generator kept its schedule."""

    wall: float  # s from the first scheduled send to the last answer
    cpu: float  # the generator's own CPU seconds (this process)
    max_in_flight: int
    not_sent: int
    lateness: list[float] = field(default_factory=list)
    #: why sending stopped before the horizon (closed loop at its request limit)
    stopped_early: str = ""
    #: the sending thread's nice value (validation.sender: raised where allowed)
    nice: int = 0
    #: its real-time (SCHED_FIFO) priority while it sent; 0: a normal thread at ``nice``
    realtime: int = 0


@dataclass(frozen=True)
class Target:
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Target:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(
                f"replay traffic goes to loopback only (the stack's published port), not {host!r}"
            )
        return cls(host, parts.port or 80)


def _parse_response(raw: bytes) -> tuple[int, dict[str, str]]:
    head, _, _ = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/"):
        raise ConnectionError(f"not an HTTP response: {lines[0][:60] if lines else ''!r}")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return status, headers


def _fill(
    record: Record, status: int, headers: dict[str, str], expect: tuple[int, ...] | None = None
) -> None:
    record.http_status = status
    if expect is not None:  # a target request: its class says what success is
        status = 200 if status in expect else UNEXPECTED_200 if status == 200 else status
    record.status = status
    record.node = headers.get("x-lbsim-node", "")
    for name in TIMING_HEADERS:
        value = headers.get(f"x-lbsim-{name}")
        if value is not None:
            setattr(record, name, float(value))
    record.retries = int(headers.get("x-lbsim-retries", "0") or 0)
    record.db_error = int(headers.get("x-lbsim-db-error", "0") or 0)


async def fetch(
    target: Target,
    path: str,
    headers: dict[str, str],
    method: str = "GET",
    body: bytes = b"",
) -> tuple[int, dict[str, str]]:
    """One request on a fresh connection; (status, lower-cased headers).

    Not bounded in time itself: callers wrap it in ``asyncio.wait_for``.
    """
    reader, writer = await asyncio.open_connection(target.host, target.port)
    try:
        writer.write(request_bytes(target.host, path, headers, method, body))
        raw = await read_bounded(reader)
    finally:
        writer.close()
    return _parse_response(raw)


async def read_bounded(reader: asyncio.StreamReader, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    """Everything up to EOF, or :class:`ConnectionError` past ``limit`` bytes
    (each read returns at least one byte, so at most ``limit + 1`` reads)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await reader.read(65536)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise ConnectionError(f"response longer than {limit} bytes")
        chunks.append(chunk)


def _check_bounds(timeout: float, max_requests: int, at: list[tuple[float, Any]]) -> None:
    """The arguments that bound a run: a finite positive timeout, a request
    limit within :data:`MAX_REQUESTS`, hooks at finite times."""
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        raise ValueError(
            f"the client timeout must be a finite number of seconds > 0, not {timeout!r}"
        )
    if not 1 <= max_requests <= MAX_REQUESTS:
        raise ValueError(f"max_requests must be between 1 and {MAX_REQUESTS}, not {max_requests}")
    for when, _ in at:
        if not math.isfinite(when):
            raise ValueError(f"a hook's time must be finite, not {when!r}")


async def _one(target: Target, item: Planned, record: Record, t0: float, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    record.sent = start - t0
    headers = {"X-Forwarded-For": item.address, "X-Lbsim-Client": str(item.client)}
    http: HttpRequest | None = item.http if isinstance(item, TargetRequest) else None
    if http is None:
        call = fetch(target, item.path(), headers)
    else:
        headers.update(http.headers)
        call = fetch(target, http.path, headers, http.method, http.body)
    try:
        status, got = await asyncio.wait_for(call, timeout)
    except TimeoutError:
        record.status = TIMEOUT
        record.latency = timeout
        return
    except (ConnectionError, OSError):
        record.status = CONNECT_ERROR
        record.latency = loop.time() - start
        return
    record.latency = loop.time() - start
    _fill(record, status, got, http.expect if http is not None else None)


async def _open_loop(
    target: Target,
    plan: list[Planned],
    timeout: float,
    max_in_flight: int,
    at: list[tuple[float, Callable[[], None]]],
) -> tuple[list[Record], LoadgenStats]:
    loop = asyncio.get_running_loop()
    records = [_record(p, p.time) for p in plan]
    tasks: set[asyncio.Task[None]] = set()
    peak = 0
    not_sent = 0
    hooks = sorted(at, key=lambda h: h[0])
    cpu0 = _own_cpu()
    t0 = loop.time() + 0.05
    for item, record in zip(plan, records, strict=True):
        while hooks and hooks[0][0] <= item.time:
            when, hook = hooks.pop(0)
            await asyncio.sleep(max(0.0, t0 + when - loop.time()))
            hook()
        delay = t0 + item.time - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= max_in_flight:
            not_sent += 1
            continue
        task = asyncio.create_task(_one(target, item, record, t0, timeout))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        peak = max(peak, len(tasks))
    for when, hook in hooks:  # hooks after the last arrival (e.g. the end of the window)
        await asyncio.sleep(max(0.0, t0 + when - loop.time()))
        hook()
    if tasks:
        await asyncio.gather(*tasks)
    stats = LoadgenStats(
        wall=loop.time() - t0,
        cpu=_own_cpu() - cpu0,
        max_in_flight=peak,
        not_sent=not_sent,
        lateness=[r.lateness for r in records if r.status != NOT_SENT],
    )
    return records, stats


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def send_open_loop(
    url: str,
    plan: Iterable[Planned],
    timeout: float,
    max_in_flight: int = 4096,
    at: Iterable[tuple[float, Callable[[], None]]] = (),
    max_requests: int = MAX_REQUESTS,
) -> tuple[list[Record], LoadgenStats]:
    """Send ``plan`` to ``url`` on its schedule; call each ``(time, hook)`` of
    ``at`` when the schedule reaches ``time`` (e.g. collectors' snapshots at
    the end of the warm-up). Blocks until every answer is in or timed out:
    at most ``timeout`` after the last send (or the last hook).

    A plan of more than ``max_requests`` requests is refused (ValueError)
    before anything is sent."""
    target = Target.from_url(url)
    hooks = list(at)
    _check_bounds(timeout, max_requests, hooks)
    items = list(itertools.islice(plan, max_requests + 1))
    if len(items) > max_requests:
        raise ValueError(f"the plan has more than {max_requests} requests")
    with frozen_heap(), sender_priority() as priority:
        records, stats = asyncio.run(_open_loop(target, items, timeout, max_in_flight, hooks))
    stats.nice, stats.realtime = priority.nice, priority.realtime
    return records, stats


async def _closed_loop(
    target: Target,
    plan: ClosedPlan,
    timeout: float,
    max_requests: int,
    at: list[tuple[float, Callable[[], None]]],
) -> tuple[list[Record], LoadgenStats]:
    loop = asyncio.get_running_loop()
    records: list[Record] = []
    in_flight = peak = 0
    stopped = ""
    cpu0 = _own_cpu()
    t0 = loop.time() + 0.05
    # every user's first think time, in user order, as the model draws them
    first = [plan.think() for _ in range(plan.users)]

    async def user(u: int) -> None:
        nonlocal in_flight, peak, stopped
        due = first[u]
        while due < plan.horizon:
            delay = t0 + due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(records) >= max_requests:
                stopped = f"stopped at the request limit ({max_requests}) before the horizon"
                return
            item = plan.request(u, due)
            record = _record(item, due)
            records.append(record)
            in_flight += 1
            peak = max(peak, in_flight)
            await _one(target, item, record, t0, timeout)
            in_flight -= 1
            due = loop.time() - t0 + plan.think()

    async def hooks() -> None:
        for when, hook in sorted(at, key=lambda h: h[0]):
            await asyncio.sleep(max(0.0, t0 + when - loop.time()))
            hook()

    await asyncio.gather(hooks(), *(user(u) for u in range(plan.users)))
    records.sort(key=lambda r: r.index)
    stats = LoadgenStats(
        wall=loop.time() - t0,
        cpu=_own_cpu() - cpu0,
        max_in_flight=peak,
        not_sent=0,
        lateness=[r.lateness for r in records if r.status != NOT_SENT],
        stopped_early=stopped,
    )
    return records, stats


def send_closed_loop(
    url: str,
    plan: ClosedPlan,
    timeout: float,
    max_requests: int = 200_000,
    at: Iterable[tuple[float, Callable[[], None]]] = (),
) -> tuple[list[Record], LoadgenStats]:
    """Run ``plan``'s users against ``url`` until the scenario's horizon (no
    request is sent from then on; those in flight are waited for, at most
    ``timeout``), calling the ``at`` hooks on schedule. Stops sending after
    ``max_requests`` requests."""
    target = Target.from_url(url)
    hooks = list(at)
    _check_bounds(timeout, max_requests, hooks)
    if not math.isfinite(plan.horizon):
        raise ValueError(f"the closed loop's horizon must be finite, not {plan.horizon!r}")
    with frozen_heap(), sender_priority() as priority:
        records, stats = asyncio.run(_closed_loop(target, plan, timeout, max_requests, hooks))
    stats.nice, stats.realtime = priority.nice, priority.realtime
    return records, stats


def send_sequential(
    url: str,
    plan: Iterable[Planned],
    timeout: float = 60.0,
    *,
    max_requests: int = 100_000,
    budget: float = 3600.0,
) -> list[Record]:
    """Send ``plan`` one request at a time, ignoring its schedule (low-load
    measurements: nothing queues, every request sees an idle stack).

    A plan of more than ``max_requests`` requests is refused (ValueError)
    before anything is sent; once ``budget`` seconds have passed no further
    request is sent (those left are returned with status :data:`NOT_SENT`),
    so the whole call takes at most ``budget + timeout``."""
    target = Target.from_url(url)
    _check_bounds(timeout, max_requests, [])
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"the budget must be a finite number of seconds > 0, not {budget!r}")
    items = list(itertools.islice(plan, max_requests + 1))
    if len(items) > max_requests:
        raise ValueError(f"the plan has more than {max_requests} requests")

    async def go() -> list[Record]:
        out = []
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for item in items:
            record = _record(item, item.time)
            if loop.time() - t0 < budget:
                await _one(target, item, record, t0, timeout)
            out.append(record)
        return out

    with frozen_heap(), sender_priority():  # as a replay's sends: the same path and latency
        return asyncio.run(go())
