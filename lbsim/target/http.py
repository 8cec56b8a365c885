"""A rendered HTTP request and the planned request that carries one.

The load generator (:mod:`lbsim.validation.loadgen`) sends a
:class:`TargetRequest` as its own HTTP request instead of the built-in app's
``GET /?class=...`` path; everything else (schedule, client, address) it
reads as it reads a :class:`lbsim.validation.workplan.PlannedRequest`.
:class:`Planned` and :class:`ClosedPlan` say what the generator reads of
a plan, :func:`request_bytes` what it writes. This module imports nothing
from lbsim, so the generator can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class HttpRequest:
    """One request as it goes on the wire (after the template was rendered)."""

    method: str
    #: the request target, already percent-encoded (``/?s=lorem%20ipsum``)
    path: str
    #: header (name, value) pairs after the generator's own (``Host`` replaces its default)
    headers: tuple[tuple[str, str], ...] = ()
    #: the body (a form: ``application/x-www-form-urlencoded``); sent with Content-Length
    body: bytes = b""
    #: the statuses that mean the request did what its class does
    expect: tuple[int, ...] = (200,)


@dataclass(frozen=True)
class TargetRequest:
    """A planned request to the user's stack: when, which class, which client,
    and the HTTP request that performs it."""

    index: int
    time: float  # scheduled send time from the start of the run (s)
    cls: int
    cls_name: str
    client: int
    address: str  # the simulated client's IP (X-Forwarded-For)
    http: HttpRequest
    #: PHP work units of the built-in app: none on the user's stack
    units: int = 0

    def path(self) -> str:
        return self.http.path


class Planned(Protocol):
    """What the generator reads of a planned request (a
    :class:`~lbsim.validation.workplan.PlannedRequest` or a
    :class:`~lbsim.target.http.TargetRequest`)."""

    @property
    def index(self) -> int: ...
    @property
    def time(self) -> float: ...
    @property
    def cls_name(self) -> str: ...
    @property
    def client(self) -> int: ...
    @property
    def address(self) -> str: ...
    @property
    def units(self) -> int: ...
    def path(self) -> str: ...


class ClosedPlan(Protocol):
    """A closed workload's users (:class:`~lbsim.validation.workplan.ClosedLoopPlan`)."""

    @property
    def users(self) -> int: ...
    @property
    def horizon(self) -> float: ...
    def think(self) -> float: ...
    def request(self, user: int, t: float) -> Planned: ...


#: methods sent without Content-Length when they have no body (as browsers do)
_BODILESS = ("GET", "HEAD", "DELETE", "OPTIONS")


def request_bytes(
    host: str, path: str, headers: dict[str, str], method: str = "GET", body: bytes = b""
) -> bytes:
    """The request as it goes on the wire (``Connection: close``). A ``Host``
    in ``headers`` replaces the default ``host``; a body, or a method that
    carries one, gets its ``Content-Length``."""
    host = next((v for k, v in headers.items() if k.lower() == "host"), host)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() != "host"]
    if body or method not in _BODILESS:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
