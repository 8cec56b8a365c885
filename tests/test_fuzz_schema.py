"""Fuzzing the scenario schema: random values of random types at random keys.

The only outcomes allowed for any document are a valid run (exit 0) or exit 2
with a message that names the file and a key path — never a traceback, a hang
or another exit code. Hypothesis mutates a valid scenario: it sets keys the
schema has (and keys it has not) to booleans, nulls, huge and tiny numbers,
infinities, NaN, strings that look like numbers, lists and nested mappings.

The default run tries ``LBSIM_FUZZ_EXAMPLES`` (200) documents; the issue's
acceptance run is ``LBSIM_FUZZ_EXAMPLES=10000 pytest tests/test_fuzz_schema.py``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from lbsim.cli.app import app
from lbsim.experiment.budget import estimate
from lbsim.scenario import loads_scenario

pytestmark = pytest.mark.property

EXAMPLES = int(os.environ.get("LBSIM_FUZZ_EXAMPLES", "200"))

BASE: dict[str, Any] = {
    "name": "fuzz",
    "seed": 3,
    "duration": 2,
    "warmup": 0,
    "workload": {
        "open": {"rate": 20},
        "timeout": 5,
        "classes": [
            {"name": "a", "weight": 0.7, "cpu": {"dist": "exponential", "mean": 0.01}},
            {
                "name": "b",
                "weight": 0.3,
                "cpu": 0.02,
                "queries": [{"kind": "write", "time": 0.001, "keys": 1, "hot_keys": 20}],
            },
        ],
        "clients": {"count": 100},
    },
    "balancer": {"policy": "round_robin", "health_check": {"interval": 2}},
    "app": {"nodes": 2, "workers": 4, "cores": 2, "backlog": 50},
    "database": {"engine": "galera", "nodes": 3},
    "report": {"interval": 0.5},
}

#: key paths of the schema (and a few it does not have) a mutation may set
PATHS: list[tuple[str | int, ...]] = [
    ("name",),
    ("seed",),
    ("duration",),
    ("warmup",),
    ("replications",),
    ("workload",),
    ("workload", "open"),
    ("workload", "open", "rate"),
    ("workload", "open", "interarrival"),
    ("workload", "open", "schedule"),
    ("workload", "open", "shape"),
    ("workload", "closed"),
    ("workload", "timeout"),
    ("workload", "classes"),
    ("workload", "classes", 0),
    ("workload", "classes", 0, "name"),
    ("workload", "classes", 0, "weight"),
    ("workload", "classes", 0, "cpu"),
    ("workload", "classes", 0, "cpu", "mean"),
    ("workload", "classes", 0, "cpu", "dist"),
    ("workload", "classes", 0, "cpu", "cv"),
    ("workload", "classes", 1, "queries"),
    ("workload", "classes", 1, "queries", 0, "kind"),
    ("workload", "classes", 1, "queries", 0, "time"),
    ("workload", "classes", 1, "queries", 0, "keys"),
    ("workload", "classes", 1, "queries", 0, "hot_keys"),
    ("workload", "classes", 1, "queries", 0, "row"),
    ("workload", "clients"),
    ("workload", "clients", "count"),
    ("workload", "clients", "subnets"),
    ("workload", "clients", "heavy"),
    ("balancer",),
    ("balancer", "product"),
    ("balancer", "policy"),
    ("balancer", "policy_options"),
    ("balancer", "latency"),
    ("balancer", "health_check"),
    ("balancer", "health_check", "interval"),
    ("balancer", "health_check", "fall"),
    ("balancer", "max_fails"),
    ("balancer", "fail_timeout"),
    ("balancer", "queue_timeout"),
    ("balancer", "upstream_timeout"),
    ("app",),
    ("app", "nodes"),
    ("app", "workers"),
    ("app", "cores"),
    ("app", "backlog"),
    ("app", "weight"),
    ("app", "max_conns"),
    ("app", "request_timeout"),
    ("app", "host"),
    ("database",),
    ("database", "engine"),
    ("database", "nodes"),
    ("database", "max_connections"),
    ("database", "skew"),
    ("database", "routing"),
    ("database", "routing", "policy"),
    ("database", "routing", "writer"),
    ("database", "sync_wait"),
    ("hosts",),
    ("network",),
    ("report",),
    ("report", "interval"),
    ("report", "percentile_error"),
    ("unknown_key",),
    ("app", "unknown"),
]

SCALARS = st.one_of(
    st.booleans(),
    st.none(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**9, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e-9, 1e308, float("inf"), float("nan")]),
    st.sampled_from(["yes", "no", "on", "off", "1e3", "5", "", "round_robin", "galera", "é"]),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["dist", "mean", "cv", "rate", "users", "think_time", "name", "x"]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


#: values a user would plausibly write (so that many documents stay valid and run)
PLAUSIBLE = st.one_of(
    st.integers(min_value=0, max_value=12),
    st.floats(min_value=0, max_value=50, allow_nan=False),
    st.sampled_from([0.001, 0.05, 0.5, 2.0, 30.0, 1e3]),
    st.sampled_from(
        ["least_conn", "power_of_d", "random", "ip_hash", "haproxy", "envoy", "nginx", "mysql"]
    ),
)


def _set(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = doc
    for part in path[:-1]:
        if isinstance(node, dict):
            node = node.setdefault(part, {})
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return  # an earlier mutation replaced the parent: nothing to set
    last = path[-1]
    if isinstance(node, dict) or (
        isinstance(node, list) and isinstance(last, int) and last < len(node)
    ):
        node[last] = value


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 4))):
        value = draw(st.one_of(PLAUSIBLE, PLAUSIBLE, VALUES))
        _set(doc, draw(st.sampled_from(PATHS)), value)
    return doc


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    out = result.stdout + result.stderr
    assert "Traceback" not in out, out
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"raised {result.exception!r}\n{out}")
    return result.exit_code, out


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(doc=documents())
def test_any_document_runs_or_is_refused_with_its_key(tmp_path: Path, doc: dict[str, Any]) -> None:
    path = tmp_path / "fuzz.yaml"
    text = yaml.safe_dump(doc, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    code, out = _cli("check", str(path))
    event(f"exit {code}")
    assert code in (0, 2), out
    if code == 2:
        assert "fuzz.yaml" in out, out
        return
    # valid: run it when it is quick (the budget says so), else the check is the test
    if estimate(loads_scenario(text)).wall < 2.0:
        code, out = _cli("run", str(path), "-q")
        assert code in (0, 2), out
