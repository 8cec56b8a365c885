"""Request classes from ordered patterns: ``NAME=[METHOD ]PATH``.

PATH is matched against the request URI (path and query) from its start: as a
prefix, or exactly when it ends with ``$``; ``*`` stands for any run of
characters, every other character (``?`` included) is itself. METHOD is an
HTTP method or ``*`` (any; the same as leaving it out). The first pattern that
matches names the class; a request no pattern matches is of class ``other``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from lbsim.scenario.errors import NAME_PATTERN

#: the class of the requests no pattern matches
OTHER = "other"
#: the longest class name a scenario accepts (lbsim.scenario.schema.Name)
MAX_NAME = 64

_METHOD = re.compile(r"[A-Z][A-Z0-9_-]*")


class ClassPatternError(ValueError):
    """A ``--classes`` option that cannot be used; the message names it."""


@dataclass(frozen=True)
class ClassPattern:
    name: str
    #: the option as given (``front=GET /$``)
    text: str
    #: None: any method
    method: str | None
    regex: re.Pattern[str]

    def matches(self, method: str, uri: str) -> bool:
        if self.method is not None and method != self.method:
            return False
        return self.regex.match(uri) is not None


def parse_class(option: str) -> ClassPattern:
    """One ``NAME=PATTERN`` option."""

    def bad(why: str) -> ClassPatternError:
        return ClassPatternError(f"--classes {option!r}: {why}")

    name, sep, pattern = option.partition("=")
    name = name.strip()
    if not sep:
        raise bad("expected NAME=PATTERN, e.g. 'front=GET /$'")
    if not re.fullmatch(NAME_PATTERN, name) or len(name) > MAX_NAME:
        raise bad(
            f"class name {name!r} must be 1-{MAX_NAME} letters, digits, '_', '.' or '-' "
            "(a scenario class name)"
        )
    if name == OTHER:
        raise bad(f"{OTHER!r} is the class of the requests no pattern matches; choose another name")
    pattern = pattern.strip()
    method: str | None = None
    path = pattern
    if " " in pattern:
        head, path = pattern.split(None, 1)
        if head != "*":
            if not _METHOD.fullmatch(head):
                raise bad(f"method {head!r} must be an HTTP method in capitals (GET, POST) or '*'")
            method = head
    path = path.strip()
    if not path:
        raise bad("the pattern has no path (e.g. '/', '/?p=*', '/wp-admin/*')")
    if not path.startswith(("/", "*")):
        raise bad(f"path {path!r} must start with '/' or '*' (a request URI starts with '/')")
    if any(ch.isspace() for ch in path):
        raise bad(f"path {path!r} has a space (a URI in a log has none)")
    exact = path.endswith("$")
    if exact:
        path = path[:-1]
    body = ".*".join(re.escape(part) for part in path.split("*"))
    regex = re.compile(body + (r"\Z" if exact else ""), re.DOTALL)
    return ClassPattern(name=name, text=option, method=method, regex=regex)


class Classifier:
    """The class index of a request: the first pattern that matches, else ``other``
    (index ``len(patterns)``)."""

    def __init__(self, patterns: Sequence[ClassPattern]):
        if not patterns:
            raise ClassPatternError("give at least one --classes NAME=PATTERN")
        seen: set[str] = set()
        for p in patterns:
            if p.name in seen:
                raise ClassPatternError(f"--classes {p.text!r}: class {p.name!r} is given twice")
            seen.add(p.name)
        self.patterns = tuple(patterns)
        self.names = (*(p.name for p in patterns), OTHER)
        self.other = len(patterns)

    def __call__(self, method: str, uri: str) -> int:
        for i, p in enumerate(self.patterns):
            if p.matches(method, uri):
                return i
        return self.other


def classifier(options: Sequence[str]) -> Classifier:
    """The classifier of ``--classes`` options, in their order."""
    return Classifier([parse_class(o) for o in options])
