"""Request templates: text with placeholders, parsed once at load, rendered per request.

Placeholders (in a request's ``path``, header values, form values and ``body``):

``{id}``
    drawn uniformly from the class's ``ids`` (a range) or ``ids_file``
``{word}``
    drawn uniformly from the class's ``words`` or ``words_file``
``{n}``
    the request's index in the run (0, 1, 2, ...)
``{client}``
    the simulated client's number (the model's client id)
``{uuid}``
    a UUID unique to the request and the run
``{file:NAME}``
    the contents of the file NAME (relative to the target file), read once
    at load, its trailing line breaks removed

``{{`` and ``}}`` are literal braces. Anything else in braces is an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

#: the placeholders a template may use (besides ``{file:NAME}``), and what each is
PLACEHOLDERS: dict[str, str] = {
    "id": "an id drawn from ids or ids_file",
    "word": "a word drawn from words or words_file",
    "n": "the request's index",
    "client": "the simulated client's number",
    "uuid": "a UUID unique to the request and the run",
}
FILE_PREFIX = "file:"

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
#: characters a path template may hold as written: RFC 3986 reserved and
#: unreserved ones, and '%' (an escape the user wrote); others are percent-encoded
_PATH_SAFE = "/?&=:@!$'()*+,;~%-._"
#: a header name: an RFC 9110 token
HEADER_NAME = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"


class TemplateError(ValueError):
    """A template that cannot be used; ``str()`` says why."""


@dataclass(frozen=True)
class Slot:
    """A placeholder: ``id``, ``word``, ``n``, ``client``, ``uuid`` or ``file:NAME``."""

    name: str


@dataclass(frozen=True)
class Template:
    """Literal text and slots, in order."""

    text: str
    parts: tuple[str | Slot, ...]

    @property
    def names(self) -> frozenset[str]:
        """The placeholders used (``file:NAME`` for a file)."""
        return frozenset(p.name for p in self.parts if isinstance(p, Slot))

    @property
    def files(self) -> tuple[str, ...]:
        """The NAMEs of its ``{file:NAME}`` placeholders, in order, once each."""
        seen = dict.fromkeys(
            p.name.removeprefix(FILE_PREFIX)
            for p in self.parts
            if isinstance(p, Slot) and p.name.startswith(FILE_PREFIX)
        )
        return tuple(seen)

    def literals(self) -> str:
        """The literal text (placeholders left out)."""
        return "".join(p for p in self.parts if isinstance(p, str))

    def render(
        self,
        values: Mapping[str, str],
        encode: Callable[[str], str] | None = None,
        literal: Callable[[str], str] | None = None,
    ) -> str:
        """The text with every slot replaced by ``values[name]`` (through
        ``encode``) and every literal part through ``literal``."""
        out = []
        for p in self.parts:
            if isinstance(p, Slot):
                v = values[p.name]
                out.append(encode(v) if encode else v)
            else:
                out.append(literal(p) if literal else p)
        return "".join(out)


def parse_template(text: str) -> Template:
    """``text`` parsed; :class:`TemplateError` names an unknown placeholder or a lone brace."""
    parts: list[str | Slot] = []
    literal: list[str] = []
    pos = 0
    for m in _TOKEN.finditer(text):
        literal.append(text[pos : m.start()])
        pos = m.end()
        token = m.group(0)
        if token in ("{{", "}}"):
            literal.append(token[0])
            continue
        if token in ("{", "}"):
            raise TemplateError(
                f"a lone {token!r} at character {m.start() + 1} "
                f"(write {token * 2!r} for a literal brace)"
            )
        name = m.group(1).strip()
        if name.startswith(FILE_PREFIX):
            if not name.removeprefix(FILE_PREFIX).strip():
                raise TemplateError("{file:NAME} needs a file name")
            name = FILE_PREFIX + name.removeprefix(FILE_PREFIX).strip()
        elif name not in PLACEHOLDERS:
            valid = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
            raise TemplateError(
                f"unknown placeholder {{{name}}}; valid: {valid}, {{file:NAME}} "
                "(write '{{' and '}}' for literal braces)"
            )
        if literal:
            parts.append("".join(literal))
            literal = []
        parts.append(Slot(name))
    literal.append(text[pos:])
    tail = "".join(literal)
    if tail:
        parts.append(tail)
    return Template(text, tuple(p for p in parts if p != ""))


def encode_path_literal(text: str) -> str:
    """A path template's literal text as it goes on the wire: what RFC 3986
    allows in a request target stays, anything else (spaces, non-ASCII, '#')
    is percent-encoded as UTF-8."""
    return quote(text, safe=_PATH_SAFE)


def encode_path_value(value: str) -> str:
    """A placeholder's value inside a path: every reserved character encoded,
    so a value stays one path segment or one query value (' ' → %20, '&' → %26)."""
    return quote(value, safe="")


def header_problem(text: str) -> str | None:
    """Why ``text`` cannot be (part of) a header value, or None."""
    if any(c in text for c in "\r\n\0"):
        return "a header value cannot hold a line break or a NUL character"
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return "a header value must be Latin-1 text (percent-encode anything else)"
    return None
