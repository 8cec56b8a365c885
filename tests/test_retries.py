"""The retry decision of each product after a failed try, state by state."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lbsim.model.request import Request
from lbsim.model.retries import TURN_AROUND, Decision, after_failure
from lbsim.scenario.products import Rules
from tests.support import scenario

pytestmark = pytest.mark.unit


def rules(**balancer: Any) -> Rules:
    data = {"workload": {"open": {"rate": 1}, "classes": [{"name": "a"}]}, "balancer": balancer}
    return scenario(data).balancer.rules


def request(tries: int = 1, first_try: float = 0.0, retried: int = 0) -> Request:
    r = Request(0, 0, 0, (10, 0, 0, 1), 0.0, 0.0, (), True)
    r.tries, r.first_try, r.retried = tries, first_try, retried
    return r


RNG = np.random.default_rng(0)


def test_nginx_next_peer_on_error_and_timeout_within_tries_and_time() -> None:
    r = rules()
    assert after_failure(r, request(1), "refused", 1.0, 3, 3, RNG) == Decision("next")
    assert after_failure(r, request(1), "reset", 1.0, 3, 3, RNG) == Decision("next")
    assert after_failure(r, request(1), "timeout", 1.0, 3, 3, RNG) == Decision("next")
    assert after_failure(r, request(3), "timeout", 1.0, 3, 3, RNG) == Decision("answer", status=504)
    assert after_failure(r, request(3), "reset", 1.0, 3, 3, RNG) == Decision("answer", status=502)
    r = rules(next_upstream=["error"], next_upstream_timeout=2)
    assert after_failure(r, request(1), "timeout", 1.0, 3, 3, RNG).status == 504
    assert after_failure(r, request(1), "refused", 1.9, 3, 3, RNG) == Decision("next")
    assert after_failure(r, request(1), "refused", 2.0, 3, 3, RNG).status == 502


def test_haproxy_same_server_then_redispatch_on_the_last_retry() -> None:
    r = rules(product="haproxy", retries=2, redispatch=True)
    req = request()
    assert after_failure(r, req, "refused", 0.0, 3, 3, RNG) == Decision("same", TURN_AROUND)
    assert after_failure(r, req, "refused", 1.0, 3, 3, RNG) == Decision("other", TURN_AROUND)
    assert after_failure(r, req, "refused", 2.0, 3, 3, RNG) == Decision("answer", status=503)
    assert after_failure(r, request(), "reset", 0.0, 3, 3, RNG).status == 502
    assert after_failure(r, request(), "timeout", 0.0, 3, 3, RNG).status == 504
    # a single server: nowhere to redispatch to
    one = request(retried=1)
    assert after_failure(r, one, "refused", 0.0, 1, 1, RNG).action == "same"


def test_envoy_retries_only_what_retry_on_names() -> None:
    assert after_failure(rules(product="envoy"), request(), "refused", 0, 3, 3, RNG).status == 503
    r = rules(product="envoy", retry_policy={"num_retries": 1, "retry_on": ["connect-failure"]})
    assert after_failure(r, request(), "reset", 0, 3, 3, RNG).status == 503
    assert after_failure(r, request(), "timeout", 0, 3, 3, RNG).status == 504
    d = after_failure(r, request(), "refused", 0, 3, 3, RNG)
    assert d.action == "any" and 0 <= d.delay <= 0.025  # U(0, (2^1 - 1) × 25 ms)
    assert after_failure(r, request(retried=1), "refused", 0, 3, 3, RNG).status == 503
