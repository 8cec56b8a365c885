"""Passive health checks: what each product concludes from failed requests.

A *failure* is a refused connection, a reset (worker killed, node crashed)
or an upstream timeout; a *success* is any answer of the server. A server
taken out sets ``Backend.failed_until``, which every policy's availability
test reads.

- **nginx** (``max_fails``/``fail_timeout``, ``ngx_http_upstream_round_robin.c``):
  each failure counts (``fails++``, ``accessed = checked = now``) and lowers
  ``effective_weight``; at ``max_fails`` the peer is skipped while
  ``now - checked <= fail_timeout``. A success clears the count only once a
  new checking period began (``accessed < checked``), and ``checked`` moves
  to ``now`` when the peer is chosen more than ``fail_timeout`` after it
  (a peer out after ``max_fails`` then takes that one probe, the others
  skip it until it answers).
  The only server of a group is never taken out (``peers->single``).
- **HAProxy**: nothing, unless ``observe`` is set: ``error_limit``
  consecutive errors either count one failed health check (``fail-check``)
  or mark the server down (``mark-down``); a success resets the count.
- **Envoy** outlier detection: ``consecutive_5xx`` failures in a row eject
  the host for ``base_ejection_time × ejections`` (capped), unless
  ``max_ejection_percent`` of hosts are out already (one host always may
  be); ejected hosts come back at the next ``interval`` sweep after their
  time, and a host's ejection count drops by one per sweep interval spent
  back in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lbsim.model.health import ActiveChecks
from lbsim.model.policies import Backend
from lbsim.model.policies.smooth_wrr import record_failure
from lbsim.scenario.products import OutlierDetection, Rules


class PassiveChecks:
    """No passive checks (HAProxy without ``observe``, Envoy without outlier detection)."""

    def selected(self, b: Backend, now: float) -> None:
        """``b`` was chosen for a try."""

    def failed(self, b: Backend, now: float) -> None:
        """A try of ``b`` failed (refused, reset or timed out)."""

    def succeeded(self, b: Backend, now: float) -> None:
        """``b`` answered."""


class NginxFails(PassiveChecks):
    def __init__(self, backends: Sequence[Backend], max_fails: int, fail_timeout: float):
        self.max_fails = max_fails
        self.fail_timeout = fail_timeout
        self.single = len(backends) == 1
        n = len(backends)
        #: time of the last failure, and start of the current checking period, per peer
        self.accessed = [0.0] * n
        self.checked = [0.0] * n

    def selected(self, b: Backend, now: float) -> None:
        i = b.index
        if now - self.checked[i] > self.fail_timeout:
            self.checked[i] = now
            if self.max_fails and b.fails >= self.max_fails:
                # the one probe after fail_timeout: others skip the peer
                # again until it answers (or fail_timeout passes once more)
                b.failed_until = now + self.fail_timeout

    def failed(self, b: Backend, now: float) -> None:
        if self.single or not self.max_fails:
            return
        i = b.index
        b.fails += 1
        self.accessed[i] = self.checked[i] = now
        record_failure(b, self.max_fails)
        if b.fails >= self.max_fails:
            b.failed_until = now + self.fail_timeout

    def succeeded(self, b: Backend, now: float) -> None:
        i = b.index
        if self.accessed[i] < self.checked[i]:
            b.fails = 0
            b.failed_until = -1.0


class HaproxyObserve(PassiveChecks):
    def __init__(self, backends: Sequence[Backend], checks: ActiveChecks, limit: int, mark: bool):
        self.checks = checks
        self.limit = limit
        self.mark_down = mark
        self.errors = [0] * len(backends)

    def failed(self, b: Backend, now: float) -> None:
        i = b.index
        self.errors[i] += 1
        if self.errors[i] >= self.limit:
            self.errors[i] = 0
            if self.mark_down:
                self.checks.mark_down(b)
            else:
                self.checks.failed(b)

    def succeeded(self, b: Backend, now: float) -> None:
        self.errors[b.index] = 0


class EnvoyOutliers(PassiveChecks):
    def __init__(self, backends: Sequence[Backend], spec: OutlierDetection):
        self.spec = spec
        self.backends = list(backends)
        n = len(backends)
        self.consecutive = [0] * n
        self.ejections = [0] * n
        #: when each host came back from its last ejection (s)
        self.back_at = [0.0] * n

    def ejected(self, now: float) -> int:
        return sum(1 for b in self.backends if b.failed_until > now)

    def failed(self, b: Backend, now: float) -> None:
        i = b.index
        if b.failed_until > now:
            return  # already out
        self.consecutive[i] += 1
        spec = self.spec
        if self.consecutive[i] < spec.consecutive_5xx:
            return
        self.consecutive[i] = 0
        out = self.ejected(now)
        if out and 100.0 * (out + 1) / len(self.backends) > spec.max_ejection_percent:
            return
        # the multiplier decays by one per sweep interval spent back in
        decay = int((now - self.back_at[i]) // spec.interval) if self.ejections[i] else 0
        self.ejections[i] = max(0, self.ejections[i] - decay) + 1
        span = min(spec.base_ejection_time * self.ejections[i], spec.max_ejection_time)
        # hosts come back at the sweep after their time is up (sweeps every interval from 0)
        back = math.ceil((now + span) / spec.interval) * spec.interval
        b.failed_until = back
        self.back_at[i] = back

    def succeeded(self, b: Backend, now: float) -> None:
        self.consecutive[b.index] = 0


def passive_checks(
    rules: Rules, backends: Sequence[Backend], checks: ActiveChecks | None
) -> PassiveChecks:
    """The product's passive checks over ``backends``."""
    if rules.product == "nginx":
        return NginxFails(backends, rules.max_fails, rules.fail_timeout)
    if rules.product == "haproxy" and rules.observe is not None:
        assert checks is not None  # the schema requires health_check with observe
        obs = rules.observe
        return HaproxyObserve(backends, checks, obs.error_limit, obs.on_error == "mark-down")
    if rules.product == "envoy" and rules.outlier_detection is not None:
        return EnvoyOutliers(backends, rules.outlier_detection)
    return PassiveChecks()
