"""Slow start: a server that comes back takes a growing share of the traffic.

A server marked up again by the active checks starts at a fraction of its
weight (``Backend.ramp``, 1 = full) and ramps up over ``slow_start`` seconds:

- **HAProxy** (``slowstart``, ``server_recalc_eweight``): linear,
  ``w = (16 × elapsed + window) // window`` sixteenths of the weight (1/16
  at once, full after the window), recomputed only when the server is
  checked (here: at each of its health checks).
- **Envoy** (``slow_start_config``): ``max(min_weight_percent,
  time_factor ^ (1 / aggression))`` with ``time_factor = elapsed / window``,
  Envoy's defaults 10 % and aggression 1, recomputed at every pick.

nginx open source has no slow start (the schema refuses the key).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from lbsim.model.policies import Backend
from lbsim.model.policies.fwrr import BE_WEIGHT_SCALE

#: Envoy's defaults
MIN_WEIGHT_PERCENT = 10.0
AGGRESSION = 1.0


def haproxy_ramp(elapsed: float, window: float) -> float:
    """HAProxy's weight factor ``elapsed`` s after the server came up (sixteenths)."""
    w = (BE_WEIGHT_SCALE * math.floor(elapsed) + math.ceil(window)) // math.ceil(window)
    return min(BE_WEIGHT_SCALE, max(1, int(w))) / BE_WEIGHT_SCALE


def envoy_ramp(elapsed: float, window: float) -> float:
    """Envoy's weight factor ``elapsed`` s into the slow-start window."""
    if elapsed >= window:
        return 1.0
    factor = max(elapsed, 0.001) / window
    return max(MIN_WEIGHT_PERCENT / 100.0, float(factor ** (1.0 / AGGRESSION)))


class SlowStart:
    def __init__(self, product: str, window: float, backends: Sequence[Backend]):
        self.window = window
        self._ramp = envoy_ramp if product == "envoy" else haproxy_ramp
        self._since = [0.0] * len(backends)
        self._ramping: list[Backend] = []

    def ramping(self) -> bool:
        """Whether any server's factor is below 1 (only this class lowers it)."""
        return bool(self._ramping)

    def began(self, b: Backend, now: float) -> None:
        """``b`` was marked up again: its weight starts low."""
        self._since[b.index] = now
        b.ramp = self._ramp(0.0, self.window)
        if b.ramp < 1.0 and b not in self._ramping:
            self._ramping.append(b)

    def update(self, b: Backend, now: float) -> None:
        """Recompute ``b``'s factor (HAProxy: at its checks)."""
        if b.ramp < 1.0:
            b.ramp = self._ramp(now - self._since[b.index], self.window)
            if b.ramp >= 1.0:
                self._ramping.remove(b)

    def update_all(self, now: float) -> None:
        """Recompute every ramping server (Envoy: at each pick)."""
        for b in list(self._ramping):
            self.update(b, now)
