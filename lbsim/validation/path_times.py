"""Where a request's time went on the real stack, from the app's own timings.

Every answer of lbsim's PHP app carries its server-side timings (``X-Lbsim-*``:
CPU, database, connect, wall, worker queue). Per replay (``meta.path``),
the means over the measured window's completed requests (s) of:

* ``balancer``: the client's latency less php-fpm's wall time (which runs
  from php-fpm accepting the request) — the balancer, the published port's
  proxy, the kernel's network stack, the generator's own receive, and a
  wait in php-fpm's listen backlog for a free worker. The model holds the
  first at ``balancer.latency``, a constant measured at low load;
* ``php_start``: php-fpm's accept to the script's start;
* ``php_cpu``: PHP's CPU time (getrusage);
* ``php_wait``: the rest of php-fpm's wall time, less its CPU and its
  database time — mostly a runnable PHP process waiting for a core on the
  shared host;
* ``connect``: opening the request's database connection(s), through the
  database proxy where there is one. The model's is the ``handshake`` CPU
  plus two network hops; its low-load value is ``Calibration.connect``;
* ``queries``: the database time less the connect.

The report sets them side by side per level, with the low-load values the
model holds constant: a part that grows with the load while the model keeps
it fixed is where a latency miss comes from (galera-writes beside a
half-core burner, 2026-12-07: balancer 3.8 → 10 ms and connect 3.4 → 9.6 ms
from 30 % to 85 %, against 2.3 and 0.7 ms at low load).

A user's own application (``--target``) sends none of these timings: its
replays have no ``path`` and the report leaves the section out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from lbsim.validation.loadgen import Record

#: the parts, in the order of a request's path
PARTS = ("balancer", "php_start", "php_cpu", "php_wait", "connect", "queries")

_HEADINGS = {
    "balancer": "balancer path",
    "php_start": "PHP start",
    "php_cpu": "PHP CPU",
    "php_wait": "PHP waiting",
    "connect": "DB connect",
    "queries": "DB queries",
}


def _parts(r: Record) -> tuple[float, ...]:
    return (
        r.latency - r.wall,
        r.queue,
        r.cpu,
        r.wall - r.queue - r.cpu - r.db,
        r.connect,
        r.db - r.connect,
    )


def path_times(records: Iterable[Record], start: float, end: float) -> dict[str, float]:
    """Mean of each part over the completed requests scheduled in ``[start,
    end)`` that carry every timing; empty when none does."""
    sums = [0.0] * len(PARTS)
    n = 0
    for r in records:
        if r.status != 200 or not start <= r.scheduled < end:
            continue
        parts = _parts(r)
        if not all(math.isfinite(x) for x in parts):
            continue
        n += 1
        for i, x in enumerate(parts):
            sums[i] += x
    if not n:
        return {}
    return {name: s / n for name, s in zip(PARTS, sums, strict=True)} | {"requests": float(n)}


def level_path(paths: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The mean over a level's replays of each part (replays without one left out)."""
    known = [p for p in paths if p and all(k in p for k in PARTS)]
    if not known:
        return {}
    return {k: sum(float(p[k]) for p in known) / len(known) for k in PARTS}


def path_lines(
    rows: Sequence[tuple[str, dict[str, float]]], balancer_latency: float, connect: float
) -> list[str]:
    """The report's section: one row per level (``(label, level_path)``), after
    the low-load values the model holds constant. Empty when no level has one."""
    rows = [(label, p) for label, p in rows if p]
    if not rows:
        return []
    ms = " | ".join(_HEADINGS[k] for k in PARTS)
    lines = [
        "## Where the time went (measured, mean ms per request)",
        "",
        "From the app's own timings over each level's valid replays (the invalid ones where "
        "none is valid): the balancer path is the client's latency less php-fpm's wall time "
        "(a wait for a free worker included); PHP waiting is the wall time less the script's "
        "start, PHP's CPU and its database time (a runnable process waiting for a core). The "
        "parts add up to the latency. The model holds the balancer path at "
        f"{balancer_latency * 1e3:.2f} ms and a connection's open near {connect * 1e3:.2f} ms "
        "(both measured at low load) at every load; a part that grows with the load here "
        "and not in the model is where a latency miss comes from.",
        "",
        f"| level | {ms} |",
        "|---" * (len(PARTS) + 1) + "|",
    ]
    for label, p in rows:
        lines.append(f"| {label} | " + " | ".join(f"{p[k] * 1e3:.2f}" for k in PARTS) + " |")
    lines.append("")
    return lines
