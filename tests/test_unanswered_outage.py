"""An ``unanswered`` outage: the node's address is gone (a killed container),
so a connection to it is neither accepted nor refused: it times out.

Hand-worked runs in the style of tests/test_products.py: a trace of
arrivals, fixed CPU demands, no latencies. What changes against a
``refused`` outage: nginx's try fails only at its connect timeout (60 s,
fastcgi_connect_timeout's default), HAProxy's at ``timeout connect`` (5 s)
and is retried at once (no turn-around: the time is spent), and HAProxy's
check of the node fails at the check timeout (``inter``), the next one
starting ``inter`` later.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lbsim.model.request import Request
from lbsim.model.retries import CONNECT_TIMEOUT, STATUS, after_failure
from lbsim.scenario.loader import load_scenario
from tests.test_products import failed, traced

pytestmark = pytest.mark.unit

GONE = {"start": 0.0, "duration": 100.0, "connections": "unanswered"}


def test_the_schema_takes_refused_by_default_and_unanswered(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "name: s\nduration: 10\nworkload: {open: {rate: 1}, classes: [{name: a, cpu: 0.01}]}\n"
        "app: {nodes: [{outages: [{start: 1, duration: 2}]}, "
        "{outages: [{start: 1, duration: 2, connections: unanswered}]}]}\n"
    )
    a, b = load_scenario(f).app.resolved_nodes()
    assert a.outages[0].connections == "refused" and b.outages[0].connections == "unanswered"


def test_nginx_waits_for_its_connect_timeout_then_tries_the_next_peer(tmp_path: Path) -> None:
    """Round robin sends the request to app1, whose address answers nothing:
    60 s later the connect times out (next_upstream timeout) and app2 serves
    it in 1 s; with a client timeout of 10 s the client has given up."""
    app = {"nodes": [{"outages": [GONE]}, {}]}
    out = traced(tmp_path, [(0.0, "a")], {"product": "nginx"}, app, duration=120)
    assert out["requests"]["completed"] == 1
    assert out["latency"]["max"] == pytest.approx(CONNECT_TIMEOUT["nginx"] + 1.0)
    refused = {"nodes": [{"outages": [{**GONE, "connections": "refused"}]}, {}]}
    out = traced(tmp_path, [(0.0, "a")], {"product": "nginx"}, refused, duration=120)
    assert out["latency"]["max"] == pytest.approx(1.0)  # refused: next peer at once


def test_haproxy_retries_a_timed_out_connect_at_once_then_answers_503(tmp_path: Path) -> None:
    """retries 3: four connects of 5 s each to the same server, no turn-around
    between them: 503 at 20 s (a refused connect would take 3 x 1 s)."""
    app = {"nodes": [{"outages": [GONE]}]}
    out = traced(tmp_path, [(0.0, "a")], {"product": "haproxy"}, app, duration=60)
    assert failed(out, 503) == 1
    assert out["app"]["app1"]["refused"] == 4
    four = 4 * CONNECT_TIMEOUT["haproxy"]
    assert out["little"]["W"] == pytest.approx(four)


def test_haproxy_checks_of_a_gone_node_fail_every_two_intervals(tmp_path: Path) -> None:
    """Checks every 2 s; the node's address answers nothing from 0: each probe
    times out at the next interval and the next probe starts an interval
    after that, so fall 3 takes 5 intervals (the first probe at a random
    phase < 2 s) instead of 3. Round robin keeps sending every other request
    to the node until then; each of those waits out the connects (5 s x 4)."""
    app = {"nodes": [{"outages": [GONE]}, {}], "cores": 8}
    hc = {"interval": 2.0, "fall": 3, "rise": 2}
    arrivals = [(round(0.25 * k, 6), "a") for k in range(200)]
    gone = traced(
        tmp_path, arrivals, {"product": "haproxy", "health_check": hc}, app, cpu=0.1, duration=60
    )
    refused_app = {"nodes": [{"outages": [{**GONE, "connections": "refused"}]}, {}], "cores": 8}
    refused = traced(
        tmp_path,
        arrivals,
        {"product": "haproxy", "health_check": hc},
        refused_app,
        cpu=0.1,
        duration=60,
    )
    tried_gone = gone["app"]["app1"]["refused"]
    tried_refused = refused["app"]["app1"]["refused"]
    # every other arrival (4/s ÷ 2) until marked down, 4 connects each
    # refused: down within 3 intervals + the phase (< 8 s): at most 16 requests
    assert tried_refused <= 4 * 16
    # gone: down after 5 intervals + the phase (10-12 s): 20 to 24 requests
    assert 4 * 19 <= tried_gone <= 4 * 25
    assert failed(gone, 503) == tried_gone // 4


@pytest.mark.parametrize(
    ("product", "retry", "status"),
    [("nginx", "next", 504), ("haproxy", "same", 503), ("envoy", None, 503)],
)
def test_an_unreachable_try_is_a_connect_failure(product: str, retry: Any, status: int) -> None:
    import numpy as np

    from lbsim.scenario.schema import Balancer

    rules = Balancer(product=product).rules  # type: ignore[arg-type]
    req = Request.__new__(Request)
    req.tries, req.first_try, req.retried = 1, 0.0, 0
    d = after_failure(rules, req, "unreachable", 5.0, 3, 3, np.random.default_rng(0))
    assert STATUS[product]["unreachable"] == status
    if retry is None:
        assert (d.action, d.status) == ("answer", status)
    else:
        assert d.action == retry and d.delay == 0.0


def test_a_node_back_in_time_takes_the_connection_at_the_next_syn(tmp_path: Path) -> None:
    """app1 is gone from 0 to 2 s: the request's SYN at 0 and its resend at 1 s
    go unanswered, the one at 3 s reaches app1 (back, same address): served
    in 1 s, done at 4 s, under nginx as under HAProxy."""
    app = {"nodes": [{"outages": [{**GONE, "duration": 2.0}]}]}
    for product in ("nginx", "haproxy"):
        out = traced(tmp_path, [(0.0, "a")], {"product": product}, app, duration=30)
        assert out["requests"]["completed"] == 1
        assert out["latency"]["max"] == pytest.approx(3.0 + 1.0)
