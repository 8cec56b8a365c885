"""``--set dotted.key=value`` overrides; they build a new mapping, never mutate the input."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from lbsim.scenario.errors import Problem, ScenarioError, describe
from lbsim.scenario.yamlio import load_value


def parse_override(text: str, file: str) -> tuple[list[str | int], Any]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ScenarioError(file, [Problem(("--set",), f"expected dotted.key=value, got {text!r}")])
    try:
        value = load_value(raw) if raw.strip() else None
    except (ScenarioError, ValueError):
        value = raw
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in key.split(".")]
    if any(p == "" for p in parts):
        raise ScenarioError(file, [Problem(("--set",), f"empty key part in {key!r}")])
    return parts, value


def set_path(data: dict[str, Any], parts: Sequence[str | int], value: Any, file: str) -> None:
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = tuple(parts[: i + 1])
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                raise ScenarioError(
                    file,
                    [Problem(where, f"--set: no list item {part} (the list has {len(node)})")],
                )
            if last:
                node[part] = value
            else:
                node = node[part]
        elif isinstance(node, dict):
            key = str(part)
            if last:
                node[key] = value
            else:
                if node.get(key) is None:
                    node[key] = {}
                node = node[key]
        else:
            raise ScenarioError(
                file,
                [Problem(where[:-1], f"--set: cannot set a key inside {describe(node)}")],
            )


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], file: str) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text, file)
        set_path(out, parts, value, file)
    return out
