"""Loading a target file: YAML text → validated, frozen :class:`TargetSpec`.

Read like a scenario (:mod:`lbsim.scenario.yamlio`: bounded size, duplicate
keys refused, merge keys and anchors accepted, YAML 1.2 numbers), validated
strictly (booleans are not numbers, unknown keys are refused with a "did you
mean"), and every failure is a :class:`TargetFileError` naming the file, the
line and column, the key path and what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from lbsim.scenario.errors import (
    KeyPath,
    Problem,
    ScenarioError,
    _models,
    did_you_mean,
    problems_from_validation,
)
from lbsim.scenario.yamlio import parse_yaml, read_text_file
from lbsim.target.schema import TargetSpec

__all__ = [
    "TargetFileError",
    "is_target_document",
    "load_target",
    "loads_target",
    "locate_in",
    "target_from_data",
]


class TargetFileError(ScenarioError):
    """A target file that cannot be used; ``str()`` is the message for the user
    (one ``file:line:column: key.path: what is wrong`` line per problem)."""


def is_target_document(data: Any) -> bool:
    """A parsed YAML document is a target file: a mapping with a ``target`` key."""
    return isinstance(data, dict) and "target" in data


def _owner(path: KeyPath) -> type[BaseModel] | None:
    """The model that holds the last key of ``path`` (mappings of requests walked through)."""
    model: type[BaseModel] = TargetSpec
    i = 0
    parents = path[:-1]
    while i < len(parents):
        part = parents[i]
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        if field is None:
            return None
        models = _models(field.annotation)
        if not models:
            return None
        model = models[-1]
        annotation = str(field.annotation)
        # a mapping of name → model: the next part is the name
        i += 2 if annotation.startswith("dict[") else 1
    return model


def _hint_unknown_keys(problems: list[Problem]) -> None:
    for p in problems:
        if p.message == "unknown key" and p.path:
            owner = _owner(p.path)
            if owner is not None:
                fields = list(owner.model_fields)
                p.message += did_you_mean(str(p.path[-1]), fields) or (
                    f"; valid keys: {', '.join(fields)}"
                )


def locate(problems: list[Problem], positions: Mapping[KeyPath, tuple[int, int]]) -> None:
    """Give each problem the line and column of its key (or of the nearest key above it)."""
    for p in problems:
        path = p.path
        while path and path not in positions:
            path = path[:-1]
        if path in positions:
            p.line, p.column = positions[path]


def target_from_data(
    data: Any,
    file: str,
    *,
    base_dir: Path | None = None,
    positions: Mapping[KeyPath, tuple[int, int]] | None = None,
) -> TargetSpec:
    """Validate a parsed target document (``base_dir``: where its files are)."""
    if data is None:
        raise TargetFileError(file, [Problem((), "the file is empty")])
    if not isinstance(data, dict):
        raise TargetFileError(
            file, [Problem((), f"a target file is a mapping of keys, not a {type(data).__name__}")]
        )
    if "target" not in data and "workload" in data:
        raise TargetFileError(
            file,
            [Problem((), "this is a scenario, not a target file (which starts with target: NAME)")],
        )
    try:
        return TargetSpec.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = problems_from_validation(exc, TargetSpec)
        _hint_unknown_keys(problems)
        locate(problems, positions or {})
        raise TargetFileError(file, problems) from None


def _parse(text: str, file: str) -> tuple[Any, dict[KeyPath, tuple[int, int]]]:
    try:
        return parse_yaml(text, file)
    except ScenarioError as exc:
        raise TargetFileError(exc.file, exc.problems) from None


def load_target(path: Path | str) -> TargetSpec:
    """Load and validate a target file; files it names resolve from its directory."""
    file = str(path)
    try:
        text = read_text_file(path, "target file")
    except ScenarioError as exc:
        raise TargetFileError(exc.file, exc.problems) from None
    data, positions = _parse(text, file)
    return target_from_data(data, file, base_dir=Path(path).parent, positions=positions)


def loads_target(text: str, file: str = "<string>", base_dir: Path | None = None) -> TargetSpec:
    """Validate a target file given as YAML text."""
    data, positions = _parse(text, file)
    return target_from_data(data, file, base_dir=base_dir, positions=positions)


def locate_in(path: Path | str, problems: list[Problem]) -> None:
    """:func:`locate` in the target file at ``path`` (problems left as they are
    when the file cannot be read again)."""
    try:
        _, positions = _parse(read_text_file(path, "target file"), str(path))
    except ScenarioError:
        return
    locate(problems, positions)
