"""Terminal tables (rich) for a run: offered load, latency per class, failures, utilisation."""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.console import Console
from rich.table import Table

from lbsim.experiment.offered_load import ResourceLoad, bottleneck
from lbsim.experiment.result import Result


def _num(value: float, digits: int = 4, ci: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:.{digits}g}"
    if ci is not None and not math.isnan(ci):
        text += f" ± {ci:.2g}"
    return text


def _ms(value: float, ci: float | None = None) -> str:
    if math.isnan(value):
        return "—"
    text = f"{value * 1000:.1f}"
    if ci is not None and not math.isnan(ci):
        text += f" ± {ci * 1000:.1f}"
    return text


def print_offered_load(console: Console, loads: list[ResourceLoad], rate_note: str) -> None:
    table = Table(title=f"Offered load ({rate_note})", title_justify="left")
    table.add_column("resource")
    table.add_column("utilisation", justify="right")
    table.add_column("from", style="dim")
    for r in loads:
        style = "bold red" if r.utilisation >= 1 else ("yellow" if r.utilisation >= 0.85 else "")
        table.add_row(r.resource, f"{r.utilisation:.3f}", r.detail, style=style)
    console.print(table)
    top = bottleneck(loads)
    console.print(f"bottleneck: [bold]{top.resource}[/bold] at {top.utilisation:.3f}")


def print_overload_warnings(err_console: Console, loads: list[ResourceLoad]) -> None:
    """Warnings for every resource offered a load ≥ 1 (on stderr: ``--quiet`` keeps them)."""
    for r in loads:
        if r.utilisation >= 1:
            err_console.print(
                f"[bold red]warning:[/bold red] offered load of {r.resource} is "
                f"{r.utilisation:.2f} ≥ 1: {r.when_full}",
                highlight=False,
                soft_wrap=True,
            )


def print_result(console: Console, result: Result) -> None:
    r = result
    ci = r.replications > 1

    def c(key: str) -> float | None:
        return r.ci95(key) if ci else None

    names = ["all", *r.scenario.workload.class_names]
    lat = Table(
        title=f"Latency (ms) — {r.scenario.name}, {r.replications} replication(s)"
        + (", mean ± 95 % CI" if ci else ""),
        title_justify="left",
    )
    for col in ("class", "throughput/s", "mean", "p50", "p95", "p99", "max"):
        lat.add_column(col, justify="left" if col == "class" else "right")
    for name in names:
        base = "" if name == "all" else f"classes.{name}."
        tkey = "throughput" if name == "all" else f"classes.{name}.throughput"
        row = [name, _num(r.value(tkey), 4, c(tkey))]
        for q in ("mean", "p50", "p95", "p99", "max"):
            key = f"{base}latency.{q}"
            row.append(_ms(r.value(key), c(key)))
        lat.add_row(*row, style="bold" if name == "all" else "")
    console.print(lat)

    req = Table(title="Requests (arrived after warm-up)", title_justify="left")
    for col in ("arrived", "completed", "in flight", "failed"):
        req.add_column(col, justify="right")
    failed = {
        k.removeprefix("requests.failed."): v
        for k, v in r.metrics().items()
        if k.startswith("requests.failed.") and k != "requests.failed.total" and v > 0
    }
    failed_text = ", ".join(f"{k} {v:.6g}" for k, v in failed.items()) or "0"
    req.add_row(
        _num(r.value("requests.arrived"), 8),
        _num(r.value("requests.completed"), 8),
        _num(r.value("requests.in_flight"), 8),
        failed_text,
    )
    console.print(req)

    util = Table(title="Utilisation", title_justify="left")
    nodes = [n.name for n in r.scenario.app.resolved_nodes()]
    # least_load: the agent checks HAProxy got no reply to (node down, or a
    # status read through a full pool), which left the node's weight as it was
    agent = any(f"app.{node}.agent_lost" in r.metrics() for node in nodes)
    cols = ["resource", "workers", "cpu", "backlog (mean)", "served"]
    for col in [*cols, "agent lost"] if agent else cols:
        util.add_column(col, justify="left" if col == "resource" else "right")
    for node in nodes:
        w = f"utilisation.app.{node}.workers"
        cpu = f"utilisation.app.{node}.cpu"
        bl = f"queues.app.{node}.backlog"
        lost = [_num(r.value(f"app.{node}.agent_lost"), 8)] if agent else []
        util.add_row(
            f"app {node}",
            _num(r.value(w), 3, c(w)),
            _num(r.value(cpu), 3, c(cpu)),
            _num(r.value(bl), 3, c(bl)),
            _num(r.value(f"app.{node}.served"), 8),
            *lost,
        )
    for host in r.scenario.hosts:
        key = f"utilisation.hosts.{host.name}.cpu"
        if key in r.metrics():
            blank = ["", ""] if agent else [""]
            util.add_row(f"host {host.name}", "", _num(r.value(key), 3, c(key)), "", *blank)
    console.print(util)
    _print_database(console, r, c)
    wall = r.meta.get("wall_time", math.nan)
    n = r.value("requests.arrived") * r.replications
    console.print(
        f"[dim]simulated {n:.0f} requests in {wall:.2f} s wall time "
        f"({n / wall if wall else math.nan:,.0f} requests/s)[/dim]"
    )


def _print_database(console: Console, r: Result, c: Callable[[str], float | None]) -> None:
    metrics = r.metrics()
    names = sorted({k.split(".")[2] for k in metrics if k.startswith("utilisation.db.")})
    if not names:
        return
    galera = any(k.startswith("galera.nodes.") for k in metrics)
    table = Table(title="Database", title_justify="left")
    cols = ["node", "cpu", "conns mean / max"]
    if galera:
        cols += ["recv queue avg", "FC sent", "cert failures", "BF aborts", "last committed"]
    for col in cols:
        table.add_column(col, justify="left" if col == "node" else "right")
    for n in names:
        cpu = f"utilisation.db.{n}.cpu"
        row = [
            n,
            _num(r.value(cpu), 3, c(cpu)),
            f"{_num(r.value(f'database.nodes.{n}.connections'), 3)} / "
            f"{_num(r.value(f'database.nodes.{n}.connections_max'), 4)}",
        ]
        if galera:
            g = f"galera.nodes.{n}.wsrep_"
            row += [
                _num(r.value(g + "local_recv_queue_avg"), 3),
                _num(r.value(g + "flow_control_sent"), 6),
                _num(r.value(g + "local_cert_failures"), 6),
                _num(r.value(g + "local_bf_aborts"), 6),
                _num(r.value(g + "last_committed"), 8),
            ]
        table.add_row(*row)
    console.print(table)
    lines = []
    if "database.commit_latency.p95" in metrics:
        lines.append(
            f"commit latency mean {_ms(r.value('database.commit_latency.mean'))} ms, "
            f"p95 {_ms(r.value('database.commit_latency.p95'))} ms"
        )
    if galera:
        lines.append(
            f"flow control paused {r.value('galera.flow_control.paused'):.3f} of the time "
            f"(limits {r.value('galera.flow_control.upper'):.0f}/"
            f"{r.value('galera.flow_control.lower'):.0f})"
        )
        stale = r.value("galera.stale_read_fraction")
        raw = r.value("galera.read_after_write_stale_fraction")
        lines.append(
            f"stale reads {_pct(stale)} of reads; reads of clients' own earlier writes "
            f"stale {_pct(raw)}"
        )
    for line in lines:
        console.print(line)


def _pct(value: float) -> str:
    return "—" if math.isnan(value) else f"{value * 100:.3g} %"
