"""Loading a scenario: YAML text → overrides → validated, frozen :class:`Scenario`.

Every failure becomes a :class:`ScenarioError` naming the file, the line and
column where known, the key path and what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lbsim.scenario.errors import KeyPath, Problem, ScenarioError, problems_from_validation
from lbsim.scenario.overrides import apply_overrides
from lbsim.scenario.schema import Scenario
from lbsim.scenario.yamlio import parse_yaml, read_text_file

__all__ = [
    "load_scenario",
    "loads_scenario",
    "parse_yaml",
    "read_scenario_file",
    "scenario_from_data",
]


def _locate(problems: list[Problem], positions: Mapping[KeyPath, tuple[int, int]]) -> None:
    for p in problems:
        path = p.path
        while path and path not in positions:
            path = path[:-1]
        if path in positions:
            p.line, p.column = positions[path]


def read_scenario_file(path: Path | str) -> str:
    return read_text_file(path, "scenario file")


def scenario_from_data(
    data: Any,
    file: str,
    *,
    base_dir: Path | None = None,
    positions: Mapping[KeyPath, tuple[int, int]] | None = None,
) -> Scenario:
    if data is None:
        raise ScenarioError(file, [Problem((), "the file is empty")])
    if not isinstance(data, dict):
        raise ScenarioError(
            file, [Problem((), f"a scenario is a mapping of keys, not a {type(data).__name__}")]
        )
    try:
        return Scenario.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = problems_from_validation(exc, Scenario)
        _locate(problems, positions or {})
        raise ScenarioError(file, problems) from None


def load_scenario(
    path: Path | str,
    overrides: Sequence[str] = (),
    **fields: Any,
) -> Scenario:
    """Load and validate a scenario file.

    ``overrides`` are ``dotted.key=value`` strings (values parsed as YAML);
    keyword ``fields`` set top-level keys (``seed=3``, ``duration=60``) when
    not ``None``.
    """
    file = str(path)
    text = read_scenario_file(path)
    data, positions = parse_yaml(text, file)
    if isinstance(data, dict):
        data = apply_overrides(data, overrides, file)
        for key, value in fields.items():
            if value is not None:
                data[key] = value
    return scenario_from_data(data, file, base_dir=Path(path).parent, positions=positions)


def loads_scenario(text: str, file: str = "<string>", overrides: Sequence[str] = ()) -> Scenario:
    """Validate a scenario given as YAML text (paths resolve from the working directory)."""
    data, positions = parse_yaml(text, file)
    if isinstance(data, dict):
        data = apply_overrides(data, overrides, file)
    return scenario_from_data(data, file, positions=positions)
