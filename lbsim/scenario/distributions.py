"""Schema of distribution specifications.

A distribution is written in a scenario either as a bare number (a
deterministic value) or as a mapping ``{dist: NAME, ...}``. Each family is one
small pydantic model, registered by its ``dist`` name in ``DIST_SPECS``; the
samplers that draw from them live in :mod:`lbsim.model.distributions`.

All values are in the unit of the key that holds them (seconds for times).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationInfo, model_validator

from lbsim.scenario.errors import AtKey
from lbsim.scenario.numbers import Fraction, NonNegFloat, PositiveFloat, PositiveInt
from lbsim.scenario.yamlio import UnreadableFile, read_regular_text


def _finite(x: Any) -> bool:
    """A YAML number (not a boolean, NaN or infinity)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


class _Dist(BaseModel):
    """Every family exposes ``mean`` and ``cv`` (as a field or a property)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Deterministic(_Dist):
    """Always ``value`` (``mean`` is accepted as a synonym)."""

    dist: Literal["deterministic"] = "deterministic"
    value: NonNegFloat

    @model_validator(mode="before")
    @classmethod
    def _mean_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and "mean" in data and "value" not in data:
            data = dict(data)
            data["value"] = data.pop("mean")
            if data.get("cv", 0) != 0:
                raise AtKey("cv", "a deterministic distribution has cv 0")
            data.pop("cv", None)
        return data

    @property
    def mean(self) -> float:
        return self.value

    @property
    def cv(self) -> float:
        return 0.0


class Exponential(_Dist):
    dist: Literal["exponential"]
    mean: PositiveFloat

    @property
    def cv(self) -> float:
        return 1.0


class Lognormal(_Dist):
    dist: Literal["lognormal"]
    mean: PositiveFloat
    cv: NonNegFloat


class Gamma(_Dist):
    dist: Literal["gamma"]
    mean: PositiveFloat
    cv: NonNegFloat


class Erlang(_Dist):
    """Sum of ``k`` exponential phases; give ``k`` or a ``cv`` with 1/cv² whole."""

    dist: Literal["erlang"]
    mean: PositiveFloat
    k: PositiveInt

    @model_validator(mode="before")
    @classmethod
    def _k_from_cv(cls, data: Any) -> Any:
        if isinstance(data, dict) and "cv" in data and "k" not in data:
            data = dict(data)
            cv = data.pop("cv")
            if not _finite(cv) or cv <= 0:
                raise AtKey("cv", f"erlang needs a number cv > 0 (cv = 1/sqrt(k)), got {cv!r}")
            k = 1.0 / (cv * cv) if cv * cv > 0 else math.inf
            if not math.isfinite(k) or abs(k - round(k)) > 1e-6:
                raise AtKey(
                    "cv",
                    f"erlang cv {cv} gives k = 1/cv² = {k:.4g}, not a whole number of phases; "
                    "give k instead, or use gamma for any cv",
                )
            data["k"] = round(k)
        return data

    @property
    def cv(self) -> float:
        return 1.0 / math.sqrt(self.k)


class Hyperexponential(_Dist):
    """Two-phase hyperexponential.

    Either ``mean`` and ``cv >= 1`` (balanced means), or explicit ``probs`` and
    ``means`` of the phases.
    """

    dist: Literal["hyperexponential"]
    probs: tuple[Fraction, ...]
    means: tuple[PositiveFloat, ...]

    @model_validator(mode="before")
    @classmethod
    def _balanced(cls, data: Any) -> Any:
        if isinstance(data, dict) and "probs" not in data and "means" not in data:
            data = dict(data)
            mean, cv = data.pop("mean", None), data.pop("cv", None)
            if mean is None or cv is None:
                raise ValueError("hyperexponential needs mean and cv, or probs and means")
            if not _finite(mean) or mean <= 0:
                raise AtKey("mean", f"mean must be a number > 0 (got {mean!r})")
            if not _finite(cv) or cv < 1:
                raise AtKey("cv", f"hyperexponential needs cv >= 1 (got {cv!r}); use gamma below 1")
            c2 = cv * cv
            p1 = 0.5 * (1.0 + math.sqrt((c2 - 1.0) / (c2 + 1.0)))
            p2 = 1.0 - p1
            data["probs"] = (p1, p2)
            # balanced means: p_i * mean_i = mean / 2
            data["means"] = (mean / (2 * p1), mean / (2 * p2)) if p2 > 0 else (mean, mean)
        return data

    @model_validator(mode="after")
    def _check(self) -> Hyperexponential:
        if len(self.probs) != len(self.means) or not self.probs:
            raise ValueError("probs and means must have the same, non-zero length")
        if any(p < 0 for p in self.probs) or abs(sum(self.probs) - 1.0) > 1e-9:
            raise ValueError("probs must be >= 0 and sum to 1")
        return self

    @property
    def mean(self) -> float:
        return sum(p * m for p, m in zip(self.probs, self.means, strict=True))

    @property
    def cv(self) -> float:
        second = sum(2 * p * m * m for p, m in zip(self.probs, self.means, strict=True))
        mean = self.mean
        return math.sqrt(max(second - mean * mean, 0.0)) / mean


class Uniform(_Dist):
    """Uniform on [low, high]; or give mean and cv (cv <= 1/sqrt(3))."""

    dist: Literal["uniform"]
    low: NonNegFloat
    high: NonNegFloat

    @model_validator(mode="before")
    @classmethod
    def _from_moments(cls, data: Any) -> Any:
        if isinstance(data, dict) and "low" not in data and "high" not in data:
            data = dict(data)
            mean, cv = data.pop("mean", None), data.pop("cv", None)
            if mean is None or cv is None:
                raise ValueError("uniform needs low and high, or mean and cv")
            if not _finite(mean) or mean <= 0:
                raise AtKey("mean", f"mean must be a number > 0 (got {mean!r})")
            if not _finite(cv) or not 0 <= cv <= 1 / math.sqrt(3) + 1e-12:
                raise AtKey("cv", f"uniform cv must be in [0, {1 / math.sqrt(3):.4f}] (got {cv!r})")
            half = math.sqrt(3) * cv * mean
            data["low"], data["high"] = mean - half, mean + half
        return data

    @model_validator(mode="after")
    def _order(self) -> Uniform:
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) must be >= low ({self.low})")
        return self

    @property
    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    @property
    def cv(self) -> float:
        return (self.high - self.low) / (math.sqrt(12) * self.mean) if self.mean else 0.0


class Pareto(_Dist):
    """Classical Pareto with scale ``x_m`` and shape ``alpha > 1``.

    Give ``mean`` with ``alpha`` or with ``cv`` (then alpha = 1 + sqrt(1 + 1/cv²)).
    """

    dist: Literal["pareto"]
    mean: PositiveFloat
    alpha: Annotated[float, Strict(), Field(gt=1, allow_inf_nan=False)]

    @model_validator(mode="before")
    @classmethod
    def _alpha_from_cv(cls, data: Any) -> Any:
        if isinstance(data, dict) and "cv" in data and "alpha" not in data:
            data = dict(data)
            cv = data.pop("cv")
            if not _finite(cv) or cv <= 0:
                raise AtKey("cv", f"pareto needs a number cv > 0 (got {cv!r})")
            data["alpha"] = 1.0 + math.sqrt(1.0 + 1.0 / (cv * cv))
        return data

    @property
    def scale(self) -> float:
        return self.mean * (self.alpha - 1.0) / self.alpha

    @property
    def cv(self) -> float:
        a = self.alpha
        return math.inf if a <= 2 else 1.0 / math.sqrt(a * (a - 2.0))


class Empirical(_Dist):
    """Resample with replacement from ``values`` (or a file of numbers, one a line)."""

    dist: Literal["empirical"]
    values: tuple[NonNegFloat, ...] = ()
    #: read into ``values``; left out of dumps, which carry the values themselves
    #: (so a dumped scenario validates again: "values or file, not both")
    file: Path | None = Field(default=None, exclude=True)
    weights: tuple[NonNegFloat, ...] | None = None

    @model_validator(mode="after")
    def _load(self, info: ValidationInfo) -> Empirical:
        values = self.values
        if self.file is not None:
            if values:
                raise ValueError("give values or file, not both")
            path = self.file
            base = (info.context or {}).get("base_dir")
            if not path.is_absolute() and base is not None:
                path = Path(base) / path
            try:
                text = read_regular_text(path, "values file")
            except UnreadableFile as exc:
                raise AtKey("file", f"{path}: {exc}") from None
            try:
                values = tuple(float(t) for t in text.replace(",", " ").split())
            except ValueError as exc:
                raise ValueError(f"{self.file}: {exc}") from None
            if any(v < 0 or not math.isfinite(v) for v in values):
                raise ValueError(f"{self.file}: values must be finite and >= 0")
            object.__setattr__(self, "values", values)
        if not values:
            raise ValueError("empirical needs at least one value")
        if self.weights is not None:
            if len(self.weights) != len(values):
                raise ValueError("weights must have one entry per value")
            if sum(self.weights) <= 0:
                raise ValueError("weights must not all be 0")
        if sum(values) <= 0:
            raise ValueError("values must not all be 0")
        if self.weights is not None and not any(
            v > 0 and w > 0 for v, w in zip(values, self.weights, strict=True)
        ):
            raise ValueError("the weights put no weight on a value above 0: the mean would be 0")
        return self

    def _probs(self) -> list[float]:
        if self.weights is None:
            return [1.0 / len(self.values)] * len(self.values)
        total = sum(self.weights)
        return [w / total for w in self.weights]

    @property
    def mean(self) -> float:
        return sum(p * v for p, v in zip(self._probs(), self.values, strict=True))

    @property
    def cv(self) -> float:
        m = self.mean
        var = sum(p * (v - m) ** 2 for p, v in zip(self._probs(), self.values, strict=True))
        return math.sqrt(var) / m


AnyDist = (
    Deterministic
    | Exponential
    | Lognormal
    | Gamma
    | Erlang
    | Hyperexponential
    | Uniform
    | Pareto
    | Empirical
)

DistSpec = Annotated[
    Deterministic
    | Exponential
    | Lognormal
    | Gamma
    | Erlang
    | Hyperexponential
    | Uniform
    | Pareto
    | Empirical,
    Field(discriminator="dist"),
]

DIST_SPECS: dict[str, type[_Dist]] = {
    "deterministic": Deterministic,
    "exponential": Exponential,
    "lognormal": Lognormal,
    "gamma": Gamma,
    "erlang": Erlang,
    "hyperexponential": Hyperexponential,
    "uniform": Uniform,
    "pareto": Pareto,
    "empirical": Empirical,
}


def coerce_distribution(value: Any) -> Any:
    """A bare number means a deterministic distribution."""
    if isinstance(value, bool):
        return value  # let pydantic reject it with a type error
    if isinstance(value, int | float):
        return {"dist": "deterministic", "value": value}
    return value
