"""The real stack, live: a 2-node php-fpm + 3-node Galera stack behind nginx.

One test walks the whole life of the stack (status, Galera state, collectors
under load, ``lbsim stack down``): under ``pytest -n auto`` separate tests
of one module may land on different workers, and each would start its own
copy of the stack on the same ports.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lbsim.cli.app import app
from lbsim.validation import collectors as col
from lbsim.validation.lifecycle import StackHandle, galera_state, status
from tests.stack_support import running_stack

pytestmark = [pytest.mark.stack, pytest.mark.slow]

SCENARIO = Path(__file__).resolve().parent / "scenarios" / "live" / "galera-small.yaml"
PORT = 18080
#: 2000 work units of PHP CPU, a read of row 5, a write of row 7 (BENCHMARK 100 under the lock)
REQUEST = "?class=x&units=2000&q=r5:0,w7:100"
REQUESTS = 40

galera_stack = running_stack(SCENARIO, "nginx", PORT)


def _send(handle: StackHandle, n: int) -> dict[str, int]:
    """``n`` requests through the balancer; answers per app node (all must be 200)."""
    per_node: dict[str, int] = {}
    for _ in range(n):
        with urllib.request.urlopen(handle.url + REQUEST, timeout=30) as resp:
            assert resp.status == 200
            node = str(resp.headers["X-Lbsim-Node"])
        per_node[node] = per_node.get(node, 0) + 1
    return per_node


def _check_status(handle: StackHandle) -> None:
    from lbsim import load_scenario
    from lbsim.validation import StackOptions

    rows = {r.service: r for r in status(load_scenario(SCENARIO), StackOptions(port=PORT))}
    assert set(rows) == {"lb", "app1", "app2", "db1", "db2", "db3", "dbproxy"}
    assert all(r.state == "running" for r in rows.values()), rows
    for db in ("db1", "db2", "db3"):
        assert rows[db].health == "healthy"
        assert rows[db].cpus == 1.0
        assert rows[db].extra == "Synced, cluster size 3"
    assert rows["app1"].cpus == rows["app2"].cpus == 1.0


def _check_collectors(handle: StackHandle) -> None:
    writer = handle.db_nodes[0]  # routing.writer: 0, read_write_split
    cpu = col.ContainerCpu(handle)
    col.flush_status(handle, writer)
    before = {n: col.global_status(handle, n) for n in handle.db_nodes}
    cpu_before = cpu.snapshot()

    per_node = _send(handle, REQUESTS)
    assert set(per_node) == {"app1", "app2"}, per_node

    cpu_after = cpu.snapshot()
    used = {s: cpu_after[s] - cpu_before[s] for s in cpu_before}
    # 40 × 2000 units ≈ 0.6 s of PHP CPU shared by the two app nodes
    assert used["app1"] > 0.05 and used["app2"] > 0.05, used
    assert used["lb"] > 0 and used[writer] > 0, used

    after = {n: col.global_status(handle, n) for n in handle.db_nodes}
    counters = col.galera_counters(before[writer], after[writer], elapsed=1.0)
    assert counters["wsrep_replicated"] >= REQUESTS, counters
    assert counters["wsrep_local_commits"] >= REQUESTS, counters
    for other in handle.db_nodes[1:]:
        received = col.status_delta(before[other], after[other])["wsrep_received"]
        assert received >= REQUESTS, (other, received)

    fpm = {n: col.fpm_status(handle, n) for n in handle.app_nodes}
    for node, s in fpm.items():
        assert s.total_processes == 2, s  # app workers: 2
        assert s.listen_queue_len == 64, s  # app backlog: 64
        assert s.accepted_conn >= per_node[node], (node, s)
        assert s.max_children_reached == 0, s


def test_galera_stack_lifecycle(galera_stack: StackHandle) -> None:
    handle = galera_stack
    _check_status(handle)
    for node in handle.db_nodes:
        assert galera_state(handle, node) == (3, "Synced")
    _check_collectors(handle)

    cli = CliRunner()
    shown = cli.invoke(app, ["stack", "status", "--scenario", str(SCENARIO), "--port", str(PORT)])
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.count("Synced, cluster size 3") == 3

    gone = cli.invoke(app, ["stack", "down", "--scenario", str(SCENARIO), "--port", str(PORT)])
    assert gone.exit_code == 0, gone.output
    assert handle.compose.container_ids() == []
