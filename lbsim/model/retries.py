"""What each product does after a failed try: retry (where, after how long) or answer.

A try fails by being ``refused`` (connection refused), ``reset`` (worker
killed, node crashed), ``unreachable`` (a node whose address is gone: the
connect attempt times out after :data:`CONNECT_TIMEOUT`) or by ``timeout``
(no answer within upstream_timeout).

- **nginx** (``proxy_next_upstream``, default ``error timeout``): a refusal
  or reset is an ``error``, a connect timeout a ``timeout``; the request
  goes to the next peer (tried peers excluded) while ``tries <
  next_upstream_tries`` (0: every peer) and less than
  ``next_upstream_timeout`` has passed since the first try; else 502
  (error) or 504 (timeout).
- **HAProxy** (``retries``, ``option redispatch``): only a failed connection
  is retried, to the same server, ``retries`` times: after a 1 s turn-around
  when it was refused, at once when it timed out (``timeout connect``: the
  time is spent already); with redispatch the last retry goes to any other
  server. Then 503; a reset is 502, a timeout 504, without retry.
- **Envoy** (route ``retry_policy``): retries only with a policy whose
  ``retry_on`` matches (``5xx`` any failure, ``connect-failure`` a
  refusal or a connect timeout, ``reset`` a reset or timeout), to any host, after a jittered
  back-off ``U(0, min((2^n − 1) × base, 10 × base))``; else 503 (refused,
  reset) or 504 (timeout).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lbsim.model.request import Request
from lbsim.scenario.products import Rules

#: HAProxy waits min(timeout connect, 1 s) before retrying a refused connection
TURN_AROUND = 1.0
#: how long a connect attempt to an address that answers nothing lasts (s):
#: nginx's fastcgi_connect_timeout default, HAProxy's ``timeout connect`` of
#: the stack's config (lbsim.validation.configs), Envoy's connect_timeout default
CONNECT_TIMEOUT = {"nginx": 60.0, "haproxy": 5.0, "envoy": 5.0}
#: when an unanswered SYN is sent again, in seconds from the first (Linux:
#: initial retransmission timeout 1 s, doubling): a node back by then (same
#: address and MAC, as docker start gives) takes the connection
SYN_AGAIN = (1.0, 3.0, 7.0, 15.0, 31.0, 63.0)

Kind = Literal["refused", "reset", "unreachable", "timeout"]
#: answer → a status; next → choose again, tried servers excluded; same → the
#: same server; other → any server but the one that failed; any → choose again
Action = Literal["answer", "next", "same", "other", "any"]

#: the status each product answers for a failed try it does not retry
STATUS: dict[str, dict[str, int]] = {
    "nginx": {"refused": 502, "reset": 502, "unreachable": 504, "timeout": 504},
    "haproxy": {"refused": 503, "reset": 502, "unreachable": 503, "timeout": 504},
    "envoy": {"refused": 503, "reset": 503, "unreachable": 503, "timeout": 504},
}


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    #: seconds before the retry
    delay: float = 0.0
    #: the answer's status (action ``answer``)
    status: int = 0


def after_failure(
    rules: Rules,
    request: Request,
    kind: Kind,
    now: float,
    max_tries: int,
    servers: int,
    rng: np.random.Generator,
) -> Decision:
    """The product's decision for ``request`` whose try just failed by ``kind``.

    Counts the retry on the request (``retried``) when there is one.
    """
    answer = Decision("answer", status=STATUS[rules.product][kind])
    if rules.product == "nginx":
        condition = "timeout" if kind in ("timeout", "unreachable") else "error"
        limit = rules.next_upstream_timeout
        if (
            condition in rules.next_upstream
            and request.tries < max_tries
            and (not limit or now - request.first_try < limit)
        ):
            return Decision("next")
        return answer
    if rules.product == "haproxy":
        retries = rules.retries
        if kind not in ("refused", "unreachable") or request.retried >= retries:
            return answer  # retry-on conn-failure only
        request.retried += 1
        last = request.retried == retries
        wait = TURN_AROUND if kind == "refused" else 0.0
        if rules.redispatch and last and servers > 1:
            return Decision("other", wait)
        return Decision("same", wait)
    policy = rules.retry_policy
    if policy is None or request.retried >= policy.num_retries:
        return answer
    if not retry_on(kind, policy.retry_on):
        return answer
    request.retried += 1
    base = policy.base_interval
    ceiling = min((2**request.retried - 1) * base, 10 * base)
    return Decision("any", float(rng.uniform(0.0, ceiling)))


def retry_on(kind: str, conditions: Sequence[str]) -> bool:
    """Envoy ``retry_on``: 5xx covers all; connect-failure a refusal; reset a reset or timeout."""
    if "5xx" in conditions:
        return True
    if kind in ("refused", "unreachable"):
        return "connect-failure" in conditions
    return "reset" in conditions
