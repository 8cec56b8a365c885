"""Clear scenario errors: file, line, key path and what is wrong."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError

KeyPath = tuple[str | int, ...]

#: the pattern of names (classes, nodes, hosts) in the schema
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


def format_path(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


@dataclass
class Problem:
    path: KeyPath
    message: str
    line: int | None = None
    column: int | None = None

    def render(self, file: str) -> str:
        where = file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {format_path(self.path)}: {self.message}"


@dataclass
class ScenarioError(Exception):
    """A scenario that cannot be used; ``str()`` is the message for the user."""

    file: str
    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(p.render(self.file) for p in self.problems)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class AtKey(ValueError):
    """A validator's complaint about a key below the model it validates.

    ``path`` is relative to that model (``("classes", 1, "name")`` raised in
    ``Workload`` reports ``workload.classes[1].name``), so the error names the
    offending key and its line instead of the enclosing mapping.
    """

    def __init__(self, path: str | KeyPath, message: str):
        super().__init__(message)
        self.path: KeyPath = (path,) if isinstance(path, str) else tuple(path)


def _is_tag(part: object) -> bool:
    return isinstance(part, str) and ("[" in part or part in _UNION_TAGS)


def _models_at(root: type[BaseModel], loc: Sequence[str | int]) -> list[type[BaseModel]]:
    """The models that may hold the value at pydantic's raw ``loc`` (several for a union).

    A union member's tag in ``loc`` (``gamma``, ``galera``) picks the member
    whose discriminator has that value.
    """
    candidates: list[type[BaseModel]] = [root]
    for part in loc:
        if isinstance(part, int):
            continue
        fld = next((m.model_fields[part] for m in candidates if part in m.model_fields), None)
        if fld is not None:
            candidates = _models(fld.annotation)
            continue
        tagged = [m for m in candidates if _has_tag(m, part)]
        if tagged:
            candidates = tagged
        elif not _is_tag(part):
            return []
    return candidates


def _model_at(root: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model that owns the last key of ``loc``."""
    models = _models_at(root, loc[:-1])
    return models[0] if models else None


def _has_tag(model: type[BaseModel], tag: str) -> bool:
    return any(
        get_origin(f.annotation) is Literal and tag in get_args(f.annotation)
        for f in model.model_fields.values()
    )


def _models(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) or () for m in _models(arg)]


def describe(value: object) -> str:
    """A YAML reader's name for ``value``'s type."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_TYPE_WORDS = {
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
}


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _type_message(expected: str, value: object) -> str:
    """The message for a value of the wrong type, with the YAML reason when there is one."""
    if isinstance(value, bool) and expected != "true or false":
        return (
            f"expected {expected}, got a boolean (YAML reads true/false, yes/no and on/off "
            "as booleans"
            + ("; quote the word to mean it as text)" if expected == "a string" else ")")
        )
    if isinstance(value, str) and expected != "a string" and _numeric(value):
        return f"expected {expected}, got {describe(value)} (write a number without quotes)"
    if isinstance(value, float) and expected == "a whole number":
        return f"expected {expected}, got {value:g}"
    if value is None:
        return f"expected {expected}, got null (an empty value)"
    return f"expected {expected}, got {describe(value)}"


# errors that only restate, at an outer key, an error reported deeper down
# (pydantic counts a list whose items failed as empty; a union branch that
# wanted another type)
_CONTAINER_TYPES = {"tuple_type", "list_type", "dict_type", "model_type"}


def problems_from_validation(
    exc: ValidationError, root: type[BaseModel], prefix: KeyPath = ()
) -> list[Problem]:
    """Turn pydantic errors into problems with user-facing key paths and messages."""
    found: list[tuple[KeyPath, str, str, bool]] = []  # path, message, kind, union branch
    for err in exc.errors(include_url=False):
        raw = tuple(err["loc"])
        # pydantic inserts union-member tags (e.g. 'exponential', 'function-after[...]')
        loc = tuple(p for p in raw if not _is_tag(p))
        branch = bool(raw) and _is_tag(raw[-1])
        msg = err["msg"]
        kind = err["type"]
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            owner = _model_at(root, raw)
            fields = list(owner.model_fields) if owner else []
            hint = did_you_mean(str(loc[-1]), fields)
            msg = "unknown key" + (hint or (f"; valid keys: {', '.join(fields)}" if fields else ""))
        elif kind == "union_tag_invalid":
            key = str(ctx.get("discriminator", "")).strip("'")
            what = "distribution" if key == "dist" else key
            valid = str(ctx.get("expected_tags", "")).replace("'", "")
            msg = f"unknown {what} {ctx.get('tag')!r}; valid: {valid}"
            loc += (key,)
        elif kind == "union_tag_not_found":
            msg = "a distribution needs a 'dist' key (or give a plain number)"
        elif kind == "model_attributes_type":
            # a union of models (a distribution, the database) given a non-mapping
            from lbsim.scenario.distributions import DIST_SPECS

            models = _models_at(root, raw)
            if models and all(m in DIST_SPECS.values() for m in models):
                msg = (
                    "expected a number or a distribution mapping like "
                    f"{{dist: exponential, mean: 0.1}}, got {describe(err['input'])}"
                )
            else:
                msg = f"expected a mapping, got {describe(err['input'])}"
        elif kind in _TYPE_WORDS:
            msg = _type_message(_TYPE_WORDS[kind], err["input"])
        elif kind == "missing":
            msg = "required key is missing"
        elif kind.startswith("value_error"):
            msg = msg.removeprefix("Value error, ")
            if isinstance(ctx.get("error"), AtKey):
                loc += ctx["error"].path
        elif kind in ("model_type", "dict_type"):
            msg = f"expected a mapping, got {describe(err['input'])}"
        elif kind == "string_pattern_mismatch" and ctx.get("pattern") == NAME_PATTERN:
            msg = f"names may use only letters, digits, '_', '.' and '-' (got {err['input']!r})"
        # pydantic says tuple for what a scenario file writes as a list
        msg = (
            msg.replace("a valid tuple", "a list")
            .replace("Tuple should", "List should")
            .replace(" after validation", "")
        )
        found.append((prefix + loc, msg, kind, branch))

    def deeper(path: KeyPath) -> bool:
        return any(len(p) > len(path) and p[: len(path)] == path for p, *_ in found)

    def other_branch(path: KeyPath, msg: str) -> bool:
        return any(b and p == path and m != msg for p, m, _, b in found)

    seen: set[tuple[KeyPath, str]] = set()
    problems: list[Problem] = []
    for path, msg, kind, branch in found:
        if (kind == "too_short" or branch) and deeper(path):
            continue
        if branch and kind in _CONTAINER_TYPES and other_branch(path, msg):
            continue
        if (path, msg) in seen:
            continue
        seen.add((path, msg))
        problems.append(Problem(path, msg))
    return problems


# tags pydantic adds to locations inside discriminated unions of distributions
_UNION_TAGS = {
    "deterministic",
    "exponential",
    "lognormal",
    "gamma",
    "erlang",
    "hyperexponential",
    "uniform",
    "pareto",
    "empirical",
    "int",
    "float",
    "none",
    "mysql",
    "galera",
    "constrained-int",
    "constrained-float",
    "tuple[AppNodeSpec, ...]",
}
