"""The stale-read probe without Docker: parsing its answer, and the model's side."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from lbsim.scenario.database import Galera
from lbsim.validation.probe import (
    ProbeError,
    model_stale_fraction,
    parse_probe,
    probe_scenario,
    probe_url,
)
from tests.support import scenario

pytestmark = pytest.mark.unit

ANSWER = {
    "n": 200,
    "stale": 12,
    "stale_fraction": 0.06,
    "sync_wait": 0,
    "mean_read_s": 0.00015,
    "p95_read_s": 0.00027,
    "mean_write_s": 0.0011,
    "errors": 0,
    "writer": "db1",
    "reader": "db2",
    "key": 7,
}


def cluster(apply: Any, app_db: float = 0.0001, **db: Any) -> dict[str, Any]:
    return {
        "name": "probe-unit",
        "seed": 3,
        "workload": {"open": {"rate": 1}, "classes": [{"name": "x", "cpu": 0.001}]},
        "network": {"app_db": app_db},
        "database": {
            "engine": "galera",
            "nodes": 3,
            "cores": 1,
            "apply": apply,
            "replication_delay": 0.0003,
            **db,
        },
    }


# -- the endpoint's answer -------------------------------------------------------------------


def test_parse_probe_reads_the_endpoint_answer() -> None:
    got = parse_probe(json.dumps(ANSWER).encode())
    assert (got.n, got.stale, got.errors) == (200, 12, 0)
    assert got.stale_fraction == 0.06 and got.sync_wait is False
    assert (got.mean_read_s, got.p95_read_s, got.mean_write_s) == (0.00015, 0.00027, 0.0011)
    assert got.reads == 200


def test_parse_probe_accepts_integer_zero_and_no_write_time() -> None:
    """PHP's json_encode writes 0 / 200 as an integer 0."""
    answer = {**ANSWER, "stale": 0, "stale_fraction": 0, "sync_wait": 1}
    del answer["mean_write_s"]
    got = parse_probe(json.dumps(answer))
    assert got.stale_fraction == 0.0 and got.sync_wait is True
    assert math.isnan(got.mean_write_s)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<html>502 Bad Gateway</html>", "did not answer JSON"),
        ("[1, 2]", "not an object"),
        ('{"error": "Unknown MySQL server host \'db9\' (-2) (2002)"}', "db9"),
        (json.dumps({k: v for k, v in ANSWER.items() if k != "stale"}), "lacks stale"),
        (json.dumps({**ANSWER, "stale_fraction": None, "errors": 200}), "read nothing"),
        (json.dumps({**ANSWER, "stale": 300}), "inconsistent"),
    ],
)
def test_parse_probe_rejects_what_is_not_a_result(body: str, message: str) -> None:
    with pytest.raises(ProbeError, match=message):
        parse_probe(body)


def test_probe_url_is_local_only() -> None:
    url = probe_url("http://127.0.0.1:18090/", "db1", "db2", 200, True, key=7)
    assert url == "http://127.0.0.1:18090/probe?n=200&writer=db1&reader=db2&sync_wait=1&key=7"
    assert probe_url("http://localhost:8080", "a", "b", 5, False).startswith("http://localhost")
    for bad in ("http://10.0.0.5:80", "https://127.0.0.1:443", "http://example.com"):
        with pytest.raises(ValueError, match="local stack"):
            probe_url(bad, "db1", "db2", 1, False)


# -- the model's side ------------------------------------------------------------------------


def test_probe_scenario_sends_writes_to_the_writer_and_reads_to_the_reader() -> None:
    sc = scenario(cluster(0.001, nodes=[{"name": "a"}, {"name": "b", "cores": 2}, {"name": "c"}]))
    derived = probe_scenario(sc, "a", "b", sync_wait=True)
    db = derived.database
    assert isinstance(db, Galera)
    nodes = db.resolved_nodes()
    # the single app node is pinned to node 0: the reader, keeping its own settings
    assert [n.name for n in nodes] == ["b", "a", "c"] and nodes[0].cores == 2
    assert nodes[db.routing.writer].name == "a"
    assert db.routing.mode == "pinned" and db.routing.read_write_split and db.sync_wait
    assert derived.app.nodes == 1
    assert derived.workload.closed is not None and derived.workload.closed.users == 1
    (cls,) = derived.workload.classes
    assert [(q.kind, q.row) for q in cls.queries] == [("write", "client"), ("read", "client")]
    with pytest.raises(ValueError, match="reader 'z' is not a database node"):
        probe_scenario(sc, "a", "z", sync_wait=False)


def test_model_stale_fraction_is_zero_with_sync_wait() -> None:
    # an apply much slower than the gap between the OK and the read: stale without sync_wait
    sc = scenario(cluster(0.002))
    assert model_stale_fraction(sc, sync_wait=True, duration=5) == 0.0
    assert model_stale_fraction(sc, sync_wait=False, duration=5) > 0.95


def test_model_stale_fraction_follows_the_replication_lag() -> None:
    """Deterministic lag: stale exactly when the reader's apply outlasts the two hops
    PHP → reader (2 × 0.1 ms) after the writer's OK; exponential lag with mean a:
    P(stale) = exp(−0.2 ms / a), and more lag, more stale reads."""
    fast = model_stale_fraction(scenario(cluster(0.00015)), False, duration=5)
    slow = model_stale_fraction(scenario(cluster(0.00025)), False, duration=5)
    assert fast == 0.0 and slow == 1.0
    fractions = []
    for mean in (0.00005, 0.0001, 0.0002, 0.0004):
        sc = scenario(cluster({"dist": "exponential", "mean": mean}))
        got = model_stale_fraction(sc, False, duration=20)
        # thousands of reads: a few binomial standard errors; a backlog of
        # earlier applies on the reader can only add staleness
        expected = math.exp(-0.0002 / mean)
        assert expected - 0.03 <= got <= expected + 0.06, (mean, got, expected)
        fractions.append(got)
    assert fractions == sorted(fractions) and fractions[0] < 0.1 < 0.5 < fractions[-1]


def test_model_stale_fraction_needs_galera() -> None:
    sc = scenario(
        {
            "workload": {"open": {"rate": 1}, "classes": [{"name": "x"}]},
            "database": {"engine": "mysql"},
        }
    )
    with pytest.raises(ValueError, match="Galera"):
        model_stale_fraction(sc, False)
