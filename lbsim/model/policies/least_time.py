"""nginx Plus ``least_time header | last_byte``: least average response time × connections.

nginx Plus is closed source; its documentation gives the rule ("the least
average response time and least number of active connections, taking into
account weights of servers; if there are several such servers, they are
tried in turn using a weighted round-robin") but not the averaging. This
policy reads it as the smallest ``avg * (conns + 1) / weight``, the
average being an exponentially weighted moving average of the samples
(weight ``factor`` on the previous value), and names that reading here so
it can be changed in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register
from lbsim.model.policies.options import LeastTimeOptions
from lbsim.model.policies.smooth_wrr import smooth_wrr


class LeastTime(Policy):
    """Smallest ``avg_time * (conns + 1) / weight``; smooth WRR among the tied.

    ``avg_time`` (seconds) per backend: the first sample sets it, each
    later one ``avg = factor * avg + (1 - factor) * sample`` on
    :meth:`on_response` (the completion hook peak_ewma uses). A backend
    without a sample has ``avg_time`` 0, so it is tried first, as a new
    server should be. Scores are compared by cross-multiplication with the
    other's weight, so equal ratios tie exactly; ties go to nginx's smooth
    weighted round robin among the tied, as in ``least_conn``.
    """

    Options = LeastTimeOptions
    products: ClassVar[frozenset[str]] = frozenset({"nginx"})

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        assert isinstance(options, LeastTimeOptions)
        self.factor = options.factor
        n = max((b.index for b in self.backends), default=-1) + 1
        #: moving average of the response time per backend index, seconds
        self.avg = [0.0] * n
        self._seen = [False] * n

    def on_response(self, backend: Backend, rtt: float, now: float) -> None:
        i = backend.index
        if self._seen[i]:
            self.avg[i] = self.factor * self.avg[i] + (1.0 - self.factor) * rtt
        else:
            self.avg[i] = rtt
            self._seen[i] = True

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        avg = self.avg
        best: Backend | None = None
        best_load = 0.0
        tied: list[Backend] = []
        for b in self.backends:
            if not available(b):
                continue
            load = avg[b.index] * (b.conns + 1)
            if best is None:
                best, best_load, tied = b, load, [b]
                continue
            lhs, rhs = load * best.weight, best_load * b.weight
            if lhs < rhs:
                best, best_load, tied = b, load, [b]
            elif lhs == rhs:
                tied.append(b)
        if len(tied) <= 1:
            return best
        return smooth_wrr(tied)


register("least_time")(LeastTime)
