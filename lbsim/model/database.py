"""The database tier seam.

An app node hands each query phase of a request to the tier with
``execute(request, query_index, node, done)``; the tier calls
``done(request, error)`` with ``error`` None on success or the failure
reason (e.g. an error code) when the query failed. ``abandon(request)`` tells
the tier the PHP worker running ``request`` was killed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from lbsim.model.request import Work

if TYPE_CHECKING:
    from lbsim.model.app import AppNode

QueryDone = Callable[[Work, int | None], None]


class DatabaseTier(Protocol):
    def execute(self, request: Work, query: int, node: AppNode, done: QueryDone) -> None: ...

    def abandon(self, request: Work) -> None: ...

    def finish(self, request: Work) -> None: ...

    def reset_stats(self, now: float) -> None: ...

    def integrals(self, now: float) -> dict[str, float]: ...

    def results(self, now: float) -> dict[str, Any]: ...


class NoDatabase:
    """``engine: none``: requests make no queries (the schema refuses classes with queries)."""

    def execute(self, request: Work, query: int, node: AppNode, done: QueryDone) -> None:
        raise RuntimeError(
            "engine 'none' cannot run queries; the scenario check should refuse them"
        )

    def abandon(self, request: Work) -> None:
        return None

    def finish(self, request: Work) -> None:
        return None

    def reset_stats(self, now: float) -> None:
        return None

    def results(self, now: float) -> dict[str, Any]:
        return {}

    def integrals(self, now: float) -> dict[str, float]:
        return {}
