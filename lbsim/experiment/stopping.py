"""How many replications: a fixed count, or until a 95 % half-width is small enough.

The sequential rule (Law, *Simulation Modeling and Analysis*, §9.4.1) starts
with ``initial`` replications; while the Student-t 95 % half-width of the
chosen metric is above the target and fewer than ``maximum`` replications
have run, it asks for more. The next count is projected from the current
variance, ``n · (h / target)²``, but at most doubles per round (an early
variance estimate is noisy) and never passes the cap. Decisions depend only
on the results of replications ``0 .. n-1`` (ordered by index), so they are
the same on any executor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lbsim.experiment.errors import ExperimentInputError
from lbsim.experiment.metrics import metric_value, resolve
from lbsim.stats.replications import t_half_width


class StoppingRule(Protocol):
    def next_count(self, runs: Sequence[dict[str, Any]]) -> int:
        """Replications wanted in total, given ``runs`` (replications 0..n-1)."""
        ...

    def describe(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Fixed:
    replications: int

    def __post_init__(self) -> None:
        if self.replications < 1:
            raise ExperimentInputError(f"replications must be >= 1 (got {self.replications})")

    def next_count(self, runs: Sequence[dict[str, Any]]) -> int:
        return max(self.replications, len(runs))

    def describe(self) -> str:
        return f"{self.replications} replication(s)"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": "fixed", "replications": self.replications}


@dataclass(frozen=True)
class TargetHalfWidth:
    """Until the 95 % half-width of ``metric`` is at most ``half_width`` (its units)."""

    metric: str
    half_width: float
    maximum: int = 30
    initial: int = 3

    def __post_init__(self) -> None:
        if not (self.half_width > 0 and math.isfinite(self.half_width)):
            raise ExperimentInputError(
                f"--target-ci: the half-width must be > 0 (got {self.half_width})"
            )
        if self.initial < 2:
            raise ExperimentInputError("the sequential rule needs at least 2 initial replications")
        if self.maximum < self.initial:
            raise ExperimentInputError(
                f"--max-replications must be >= {self.initial} (got {self.maximum})"
            )

    def half_width_of(self, runs: Sequence[dict[str, Any]]) -> float:
        values = [metric_value(r, self.metric) for r in runs]
        return t_half_width([v for v in values if not math.isnan(v)])

    def next_count(self, runs: Sequence[dict[str, Any]]) -> int:
        n = len(runs)
        if n < self.initial:
            return self.initial
        if n >= self.maximum:
            return n
        h = self.half_width_of(runs)
        if math.isnan(h):  # the metric is missing everywhere: more runs will not help
            return n
        if h <= self.half_width:
            return n
        projected = math.ceil(n * (h / self.half_width) ** 2)
        return min(max(projected, n + 1), 2 * n, self.maximum)

    def describe(self) -> str:
        return (
            f"until the 95 % half-width of {resolve(self.metric)} is ≤ {self.half_width:g} "
            f"(at most {self.maximum} replications)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": "target_ci",
            "metric": resolve(self.metric),
            "half_width": self.half_width,
            "maximum": self.maximum,
            "initial": self.initial,
        }


def parse_target(text: str, maximum: int) -> TargetHalfWidth:
    """``--target-ci key=halfwidth`` (e.g. ``p95=0.01``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ExperimentInputError(
            f"--target-ci: expected metric=half-width (e.g. p95=0.01), got {text!r}"
        )
    try:
        half = float(raw)
    except ValueError:
        raise ExperimentInputError(
            f"--target-ci {key.strip()}: the half-width must be a number, got {raw!r}"
        ) from None
    return TargetHalfWidth(key.strip(), half, maximum=maximum)


def make_rule(
    replications: int | None, target: TargetHalfWidth | str | None, default: int, maximum: int = 30
) -> StoppingRule:
    """A fixed count (``replications`` or ``default``) or the sequential rule for ``target``."""
    if target is not None:
        if replications is not None:
            raise ExperimentInputError(
                "give either a fixed number of replications or --target-ci, not both"
            )
        return target if isinstance(target, TargetHalfWidth) else parse_target(target, maximum)
    return Fixed(replications if replications is not None else default)
