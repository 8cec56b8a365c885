"""Variants of a scenario: ``--vary key=v1,v2`` / ``key=a:b:step`` / ``key=1..12`` grids.

Each variant is a new :class:`Scenario` built from a deep copy of the base
scenario's data with the variant's keys set, then validated by the normal
loader, so a bad key or value is reported like any scenario error (naming the
key) before anything runs. The base is never mutated.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lbsim.experiment import budget
from lbsim.experiment.errors import ExperimentInputError
from lbsim.scenario.errors import KeyPath, Problem, ScenarioError
from lbsim.scenario.loader import parse_yaml, read_scenario_file, scenario_from_data
from lbsim.scenario.overrides import apply_overrides, set_path
from lbsim.scenario.schema import Scenario

#: more variants than this is almost certainly a typo in a range
MAX_VALUES = 10_000
#: the most points of a compare/sweep/plan grid (each point is at least one simulation)
MAX_POINTS = 10_000

_FORMS = "key=v1,v2,...  key=start:stop:step  or  key=first..last"


class VaryError(ExperimentInputError):
    """A ``--vary``/``--param`` that cannot be parsed; the message names the option and key."""


@dataclass(frozen=True)
class Axis:
    """One varied key and its values, in the order given."""

    key: str
    values: tuple[Any, ...]

    @property
    def numeric(self) -> bool:
        return all(_is_number(v) for v in self.values)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets and quotes (``{a: 1, b: 2}`` is one value)."""
    parts: list[str] = []
    depth = 0
    quote = ""
    current = ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(current)
            current = ""
            continue
        current += ch
    parts.append(current)
    return [p.strip() for p in parts]


def _number(text: str, what: str, option: str, key: str) -> int | float:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not _is_number(value):
        try:  # YAML 1.1 reads 1e9 as text
            value = float(text)
        except ValueError:
            value = None
    if not _is_number(value) or not math.isfinite(float(value)):
        raise VaryError(f"{option} {key}: {what} must be a number, got {text!r}")
    return int(value) if isinstance(value, int) else float(value)


def _range(key: str, raw: str, option: str) -> tuple[Any, ...] | None:
    pieces = raw.split(":")
    if len(pieces) == 3 and all(p.strip() for p in pieces):
        start, stop, step = (
            _number(p.strip(), w, option, key)
            for p, w in zip(pieces, ("start", "stop", "step"), strict=True)
        )
        if step <= 0:
            raise VaryError(f"{option} {key}: step must be > 0 (got {step:g})")
        if stop < start:
            raise VaryError(f"{option} {key}: stop {stop:g} is below start {start:g}")
        count = math.floor((stop - start) / step + 1e-9) + 1
        if count > MAX_VALUES:
            raise VaryError(f"{option} {key}: {count} values (more than {MAX_VALUES})")
        integral = all(isinstance(v, int) for v in (start, stop, step))
        values = [start + i * step for i in range(count)]
        return tuple(int(v) if integral else round(float(v), 12) for v in values)
    first, sep, last = raw.partition("..")
    if sep and first.strip() and last.strip() and ":" not in raw:
        a = _number(first.strip(), "first", option, key)
        b = _number(last.strip(), "last", option, key)
        if not (isinstance(a, int) and isinstance(b, int)):
            raise VaryError(f"{option} {key}: first..last takes whole numbers (got {raw!r})")
        if b < a:
            raise VaryError(f"{option} {key}: last {b} is below first {a}")
        if b - a + 1 > MAX_VALUES:
            raise VaryError(f"{option} {key}: {b - a + 1} values (more than {MAX_VALUES})")
        return tuple(range(a, b + 1))
    return None


def parse_axis(text: str, option: str = "--vary") -> Axis:
    """Parse ``key=v1,v2``, ``key=start:stop:step`` (inclusive) or ``key=first..last``."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise VaryError(f"{option}: expected {_FORMS}, got {text!r}")
    if any(part == "" for part in key.split(".")):
        raise VaryError(f"{option}: empty key part in {key!r}")
    raw = raw.strip()
    if not raw:
        raise VaryError(f"{option} {key}: no values (expected {_FORMS})")
    values = _range(key, raw, option)
    if values is None:
        items = _split_top(raw)
        if any(not item for item in items):
            raise VaryError(f"{option} {key}: empty value in {raw!r}")
        parsed: list[Any] = []
        for item in items:
            try:
                parsed.append(yaml.safe_load(item))
            except yaml.YAMLError:
                parsed.append(item)
        values = tuple(parsed)
    seen: list[Any] = []
    for v in values:
        if v in seen:
            raise VaryError(f"{option} {key}: value {v!r} is given twice")
        seen.append(v)
    return Axis(key, values)


def parse_axes(texts: Iterable[str | Axis], option: str = "--vary") -> list[Axis]:
    """Parse each text (Axis objects pass through); a key varied twice is an error."""
    axes: list[Axis] = []
    for text in texts:
        axis = text if isinstance(text, Axis) else parse_axis(text, option)
        if any(a.key == axis.key for a in axes):
            raise VaryError(f"{option} {axis.key}: the key is varied twice")
        axes.append(axis)
    return axes


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def short_keys(keys: Sequence[str]) -> dict[str, str]:
    """Each key's last part when that is unambiguous, else the full key (for labels)."""
    lasts = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if lasts.count(s) == 1 else k) for k, s in zip(keys, lasts, strict=True)}


@dataclass(frozen=True)
class Variant:
    """One point of an experiment: the base scenario with ``assignments`` set."""

    label: str
    assignments: dict[str, Any]
    scenario: Scenario = field(compare=False)

    @property
    def key(self) -> str:
        """Fingerprint of the simulated scenario (its replication count aside).

        Two variants with the same key produce the same replications, so a
        results directory can reuse them whatever experiment asked for them.
        """
        data = self.scenario.model_dump(mode="json", exclude={"replications"})
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _key_parts(key: str) -> list[str | int]:
    return [int(p) if p.isdigit() else p for p in key.split(".")]


class VariantSpace:
    """The base scenario's data (YAML mapping) from which variants are made."""

    def __init__(
        self,
        data: dict[str, Any],
        file: str,
        *,
        base_dir: Path | None = None,
        positions: dict[KeyPath, tuple[int, int]] | None = None,
    ):
        self._data = data
        self.file = file
        self.base_dir = base_dir
        self.positions = positions or {}
        self.base = scenario_from_data(
            copy.deepcopy(data), file, base_dir=base_dir, positions=self.positions
        )

    @classmethod
    def from_file(
        cls, path: Path | str, overrides: Sequence[str] = (), **fields: Any
    ) -> VariantSpace:
        """Like :func:`lbsim.load_scenario`: the file, ``--set`` overrides, top-level fields."""
        file = str(path)
        data, positions = parse_yaml(read_scenario_file(path), file)
        if not isinstance(data, dict):
            scenario_from_data(data, file)  # raises the loader's message
            raise AssertionError("unreachable")  # pragma: no cover
        data = apply_overrides(data, overrides, file)
        for k, v in fields.items():
            if v is not None:
                data[k] = v
        return cls(data, file, base_dir=Path(path).parent, positions=positions)

    @classmethod
    def from_scenario(cls, scenario: Scenario, file: str = "<scenario>") -> VariantSpace:
        return cls(scenario.model_dump(mode="json"), file)

    def data(self) -> dict[str, Any]:
        """A deep copy of the base data."""
        return copy.deepcopy(self._data)

    def variant(self, assignments: dict[str, Any], label: str | None = None) -> Variant:
        data = copy.deepcopy(self._data)
        for key, value in assignments.items():
            set_path(data, _key_parts(key), copy.deepcopy(value), self.file)
        what = ", ".join(f"{k}={format_value(v)}" for k, v in assignments.items())
        try:
            scenario = scenario_from_data(
                data, self.file, base_dir=self.base_dir, positions=self.positions
            )
        except ScenarioError as exc:
            raise ScenarioError(
                exc.file,
                [
                    Problem(p.path, f"{p.message} (in variant {what})", p.line, p.column)
                    for p in exc.problems
                ],
            ) from None
        try:
            # memory and zero-time loops are refused per point; total time is the user's call
            budget.check(scenario, insist=True)
        except budget.BudgetError as exc:
            raise budget.BudgetError(
                exc.key, f"{exc}" + (f" (in variant {what})" if what else ""), exc.insistable
            ) from None
        if label is None:
            names = short_keys(list(assignments))
            label = ", ".join(f"{names[k]}={format_value(v)}" for k, v in assignments.items())
        return Variant(label or "base", dict(assignments), scenario)

    def grid(self, axes: Sequence[Axis]) -> list[Variant]:
        """Every combination of the axes' values (the first axis varies slowest).

        With one axis the label is just the value (``least_conn``).
        """
        points = math.prod(len(a.values) for a in axes)
        if points > MAX_POINTS:
            sizes = " x ".join(f"{len(a.values)} ({a.key})" for a in axes)
            raise VaryError(
                f"the grid has {points:,} points ({sizes}), more than {MAX_POINTS:,}; "
                "vary fewer values or fewer keys at once"
            )
        combos = itertools.product(*(a.values for a in axes)) if axes else iter([()])
        out: list[Variant] = []
        for combo in combos:
            assignments = {a.key: v for a, v in zip(axes, combo, strict=True)}
            label = format_value(combo[0]) if len(axes) == 1 else None
            out.append(self.variant(assignments, label))
        return out


def open_space(
    scenario: Scenario | Path | str, overrides: Sequence[str] = (), **fields: Any
) -> VariantSpace:
    """The variant space of a scenario object or file (with ``--set`` overrides and fields)."""
    if isinstance(scenario, Scenario):
        if not overrides and all(v is None for v in fields.values()):
            return VariantSpace.from_scenario(scenario)
        space = VariantSpace.from_scenario(scenario)
        data = apply_overrides(space.data(), overrides, space.file)
        data.update({k: v for k, v in fields.items() if v is not None})
        return VariantSpace(data, space.file)
    return VariantSpace.from_file(scenario, overrides, **fields)
