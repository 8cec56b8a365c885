"""Loading a scenario: YAML text → overrides → validated, frozen :class:`Scenario`.

Every failure becomes a :class:`ScenarioError` naming the file, the line and
column where known, the key path and what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lbsim.scenario.errors import KeyPath, Problem, ScenarioError, problems_from_validation
from lbsim.scenario.overrides import apply_overrides
from lbsim.scenario.schema import Scenario


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (YAML silently keeps the last)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _positions(node: yaml.Node | None, path: KeyPath = ()) -> dict[KeyPath, tuple[int, int]]:
    """Line and column (1-based) of every key path in a composed YAML tree."""
    out: dict[KeyPath, tuple[int, int]] = {}
    if node is None:
        return out
    out[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            sub = (*path, k.value)
            out.update(_positions(v, sub))
            out[sub] = (k.start_mark.line + 1, k.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out.update(_positions(v, (*path, i)))
    return out


def _locate(problems: list[Problem], positions: Mapping[KeyPath, tuple[int, int]]) -> None:
    for p in problems:
        path = p.path
        while path and path not in positions:
            path = path[:-1]
        if path in positions:
            p.line, p.column = positions[path]


def parse_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, tuple[int, int]]]:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        syntax = not isinstance(exc, yaml.constructor.ConstructorError)
        what = "YAML syntax error" if syntax else "YAML error"
        message = f"{what}: {exc.problem or exc.context}"
        if exc.problem and exc.context and exc.context_mark is not None:
            cm = exc.context_mark
            message += f" ({exc.context} at line {cm.line + 1}, column {cm.column + 1})"
        problem = Problem((), message)
        if mark is not None:
            problem.line, problem.column = mark.line + 1, mark.column + 1
        raise ScenarioError(file, [problem]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(file, [Problem((), f"YAML error: {exc}")]) from None
    return data, _positions(node)


def read_scenario_file(path: Path | str) -> str:
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(str(path), [Problem((), "no such file")]) from None
    except IsADirectoryError:
        raise ScenarioError(
            str(path), [Problem((), "is a directory, not a scenario file")]
        ) from None
    except PermissionError:
        raise ScenarioError(str(path), [Problem((), "permission denied")]) from None
    except UnicodeDecodeError:
        raise ScenarioError(str(path), [Problem((), "not UTF-8 text")]) from None
    except OSError as exc:
        raise ScenarioError(str(path), [Problem((), f"cannot read: {exc.strerror}")]) from None


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
