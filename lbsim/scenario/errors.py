"""Clear scenario errors: file, line, key path and what is wrong."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

KeyPath = tuple[str | int, ...]


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


def _model_at(model: type[BaseModel], path: KeyPath) -> type[BaseModel] | None:
    """Follow ``path`` through nested pydantic models to the one that owns the last key."""
    current: type[BaseModel] | None = model
    for part in path[:-1]:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        fld = current.model_fields.get(part)
        if fld is None:
            return None
        current = _first_model(fld.annotation)
    return current


def _first_model(annotation: object) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def problems_from_validation(
    exc: ValidationError, root: type[BaseModel], prefix: KeyPath = ()
) -> list[Problem]:
    """Turn pydantic errors into problems with user-facing key paths and messages."""
    seen: set[tuple[KeyPath, str]] = set()
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        # pydantic inserts union-member tags (e.g. 'exponential', 'function-after[...]')
        loc = tuple(
            p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in _UNION_TAGS))
        )
        path: KeyPath = prefix + loc
        msg = err["msg"]
        kind = err["type"]
        if kind == "extra_forbidden":
            owner = _model_at(root, loc)
            hint = did_you_mean(str(loc[-1]), owner.model_fields if owner else ())
            msg = "unknown key" + hint
        elif kind == "union_tag_invalid":
            from lbsim.scenario.distributions import DIST_SPECS

            msg = (
                f"unknown distribution {err['input'].get('dist')!r}"
                if isinstance(err["input"], dict)
                else msg
            )
            msg += f"; valid: {', '.join(DIST_SPECS)}"
        elif kind == "union_tag_not_found":
            msg = "a distribution needs a 'dist' key (or give a plain number)"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind.startswith("value_error"):
            msg = msg.removeprefix("Value error, ")
        elif kind == "model_type" or kind == "dict_type":
            msg = f"expected a mapping, got {type(err['input']).__name__}"
        key = (path, msg)
        if key in seen:
            continue
        seen.add(key)
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
    "tuple[AppNodeSpec, ...]",
}
