"""One class's request in a target file (``requests.<class>``): keys, checks, compiled templates.

Keys (every one but ``path`` optional)::

    method: GET             # GET (default), POST, PUT, PATCH, DELETE, HEAD, OPTIONS
    path: "/?p={id}"        # the request target, starting with '/'
    headers: {Cookie: "{file:cookie.txt}"}
    form: {author: "lbsim {n}"}    # an application/x-www-form-urlencoded body
    body: '{"q": "{word}"}'        # or a raw body (give its Content-Type in headers)
    ids: {range: [1, 200]}  # {id}: drawn uniformly from lo..hi (both included)
    ids_file: ids.txt       #   or from the lines of a file
    words: [lorem, ipsum]   # {word}: drawn uniformly from the list
    words_file: words.txt   #   or from the lines of a file
    expect: [200]           # the statuses that mean success (default [200])

Files are relative to the target file; in ``ids_file`` and ``words_file``
blank lines and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationInfo,
    model_validator,
)

from lbsim.scenario.errors import AtKey, KeyPath
from lbsim.scenario.yamlio import UnreadableFile, read_regular_text
from lbsim.target.templates import (
    FILE_PREFIX,
    HEADER_NAME,
    Template,
    TemplateError,
    header_problem,
    parse_template,
)

#: the largest file a ``{file:NAME}`` placeholder reads (bytes)
MAX_PLACEHOLDER_FILE = 1024 * 1024
#: headers the load generator sets itself (Host may be given: it replaces the default)
RESERVED_HEADERS = (
    "content-length",
    "connection",
    "transfer-encoding",
    "x-forwarded-for",
    "x-lbsim-client",
)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

#: a range bound: numpy draws 64-bit integers
RangeInt = Annotated[int, Strict(), Field(ge=-(2**62), le=2**62)]
StatusCode = Annotated[int, Strict(), Field(ge=100, le=599)]


def _header_name(value: str) -> str:
    if not re.fullmatch(HEADER_NAME, value):
        raise ValueError(
            f"a header name is letters, digits and !#$%&'*+.^_`|~- only (got {value!r})"
        )
    return value


HeaderName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_header_name)]
Word = Annotated[str, Field(min_length=1, max_length=1000)]


def _number_as_text(value: Any) -> Any:
    """A form value may be written as a whole number (``rating: 5``); never a boolean."""
    return str(value) if type(value) is int else value


FormValue = Annotated[str, BeforeValidator(_number_as_text)]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IdRange(Frozen):
    """``{id}`` drawn uniformly from ``lo .. hi``, both included."""

    range: tuple[RangeInt, RangeInt]

    @model_validator(mode="after")
    def _ordered(self) -> IdRange:
        lo, hi = self.range
        if lo > hi:
            raise AtKey("range", f"the range is empty: {lo} > {hi} (write [low, high])")
        return self


def base_dir(info: ValidationInfo) -> Path | None:
    base = (info.context or {}).get("base_dir")
    return Path(base) if base is not None else None


def resolve_file(name: str | Path, base: Path | None) -> Path:
    path = Path(name)
    return path if path.is_absolute() or base is None else base / path


def read_placeholder_file(name: str, base: Path | None) -> str:
    """``{file:NAME}``'s text, its trailing line breaks removed; ValueError says why not."""
    path = resolve_file(name, base)
    try:
        text = read_regular_text(path, "file", MAX_PLACEHOLDER_FILE)
    except UnreadableFile as exc:
        raise ValueError(f"{{file:{name}}}: {path}: {exc}") from None
    return text.rstrip("\r\n")


def read_lines(key: str, name: Path, base: Path | None) -> tuple[str, ...]:
    """The non-blank, non-comment lines of a list file, stripped."""
    path = resolve_file(name, base)
    try:
        text = read_regular_text(path, "list file")
    except UnreadableFile as exc:
        raise AtKey(key, f"{path}: {exc}") from None
    lines = tuple(
        s for s in (ln.strip() for ln in text.splitlines()) if s and not s.startswith("#")
    )
    if not lines:
        raise AtKey(key, f"{path}: no entries (blank lines and '#' comments are skipped)")
    return lines


def compile_template(text: str, at: KeyPath) -> Template:
    try:
        return parse_template(text)
    except TemplateError as exc:
        raise AtKey(at, str(exc)) from None


def compile_headers(
    headers: dict[str, str], base: Path | None, at: KeyPath
) -> tuple[tuple[tuple[str, Template], ...], dict[str, str]]:
    """Header templates checked (reserved names, line breaks, Latin-1) and the
    text of every ``{file:NAME}`` they use."""
    out: list[tuple[str, Template]] = []
    files: dict[str, str] = {}
    seen: dict[str, str] = {}
    for name, value in headers.items():
        key = (*at, name)
        low = name.lower()
        if low in RESERVED_HEADERS:
            raise AtKey(key, f"the load generator sets {name} itself; leave it out")
        if low in seen:
            raise AtKey(key, f"{name} repeats {seen[low]} (header names ignore case)")
        seen[low] = name
        template = compile_template(value, key)
        problem = header_problem(template.literals())
        for fname in template.files:
            try:
                files[FILE_PREFIX + fname] = text = read_placeholder_file(fname, base)
            except ValueError as exc:
                raise AtKey(key, str(exc)) from None
            problem = problem or header_problem(text)
            if problem:
                problem += f" ({{file:{fname}}})"
        if problem:
            raise AtKey(key, problem)
        out.append((name, template))
    return tuple(out), files


class RequestSpec(Frozen):
    """The HTTP request that performs one request class on the user's stack."""

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"] = "GET"
    path: str = Field(min_length=1, max_length=8000)
    headers: dict[HeaderName, str] = Field(default_factory=dict)
    form: dict[Annotated[str, Field(min_length=1)], FormValue] | None = None
    body: str | None = None
    ids: IdRange | None = None
    ids_file: Path | None = None
    words: tuple[Word, ...] | None = Field(default=None, min_length=1)
    words_file: Path | None = None
    expect: tuple[StatusCode, ...] = Field(default=(200,), min_length=1)

    _path: Template = PrivateAttr()
    _headers: tuple[tuple[str, Template], ...] = PrivateAttr(default=())
    _form: tuple[tuple[str, Template], ...] | None = PrivateAttr(default=None)
    _body: Template | None = PrivateAttr(default=None)
    _id_values: tuple[str, ...] | None = PrivateAttr(default=None)
    _word_values: tuple[str, ...] | None = PrivateAttr(default=None)
    _files: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _compile(self, info: ValidationInfo) -> RequestSpec:
        base = base_dir(info)
        self._check_exclusive()
        if not self.path.startswith("/"):
            raise AtKey("path", f"a path starts with '/' (got {self.path!r})")
        if self.method in ("GET", "HEAD") and (self.form is not None or self.body is not None):
            key = "form" if self.form is not None else "body"
            raise AtKey(key, f"a {self.method} request sends no body; use method: POST")
        self._path = compile_template(self.path, ("path",))
        self._headers, self._files = compile_headers(self.headers, base, ("headers",))
        if self.form is not None:
            self._form = tuple((k, compile_template(v, ("form", k))) for k, v in self.form.items())
        if self.body is not None:
            self._body = compile_template(self.body, ("body",))
        for where, template in self.templates():
            for fname in template.files:
                if FILE_PREFIX + fname not in self._files:
                    try:
                        self._files[FILE_PREFIX + fname] = read_placeholder_file(fname, base)
                    except ValueError as exc:
                        raise AtKey(where, str(exc)) from None
        self._read_sources(base)
        return self

    def _check_exclusive(self) -> None:
        for a, b in (("form", "body"), ("ids", "ids_file"), ("words", "words_file")):
            if getattr(self, a) is not None and getattr(self, b) is not None:
                raise AtKey(b, f"give {a} or {b}, not both")

    def _read_sources(self, base: Path | None) -> None:
        """ids and words from their files; a placeholder without its source is an error."""
        if self.ids_file is not None:
            self._id_values = read_lines("ids_file", self.ids_file, base)
        if self.words is not None:
            self._word_values = self.words
        elif self.words_file is not None:
            self._word_values = read_lines("words_file", self.words_file, base)
        for where, template in self.templates():
            if "id" in template.names and self.ids is None and self._id_values is None:
                raise AtKey(where, "uses {id} but the request gives no ids or ids_file")
            if "word" in template.names and self._word_values is None:
                raise AtKey(where, "uses {word} but the request gives no words or words_file")
        for name, template in self._headers:
            at: KeyPath = ("headers", name)
            if "word" in template.names:
                _check_header_values(at, "words", self._word_values or ())
            if "id" in template.names and self._id_values is not None:
                _check_header_values(at, "ids_file", self._id_values)

    def templates(self) -> list[tuple[KeyPath, Template]]:
        """Every template of the request with the key path that holds it."""
        out: list[tuple[KeyPath, Template]] = [(("path",), self._path)]
        out += [(("headers", k), t) for k, t in self._headers]
        out += [(("form", k), t) for k, t in self._form or ()]
        if self._body is not None:
            out.append((("body",), self._body))
        return out

    @property
    def placeholders(self) -> frozenset[str]:
        """Every placeholder the request uses (``file:NAME`` for files)."""
        return frozenset().union(*(t.names for _, t in self.templates()))

    @property
    def path_template(self) -> Template:
        return self._path

    @property
    def header_templates(self) -> tuple[tuple[str, Template], ...]:
        return self._headers

    @property
    def form_templates(self) -> tuple[tuple[str, Template], ...] | None:
        return self._form

    @property
    def body_template(self) -> Template | None:
        return self._body

    @property
    def id_values(self) -> tuple[str, ...] | None:
        """The ids of ``ids_file`` (None: a range, or no ids)."""
        return self._id_values

    @property
    def word_values(self) -> tuple[str, ...] | None:
        return self._word_values

    @property
    def files(self) -> dict[str, str]:
        """``file:NAME`` → text, for every file placeholder of the request."""
        return dict(self._files)

    def describe_sources(self) -> str:
        """``{id} 1..200``, ``{word} 2 words`` or '' (for summaries)."""
        out = []
        if self.ids is not None:
            out.append(f"{{id}} {self.ids.range[0]}..{self.ids.range[1]}")
        elif self._id_values is not None:
            out.append(f"{{id}} {len(self._id_values)} ids from {self.ids_file}")
        if self._word_values is not None:
            where = f" from {self.words_file}" if self.words_file is not None else ""
            out.append(f"{{word}} {len(self._word_values)} words{where}")
        return ", ".join(out)


def _check_header_values(at: KeyPath, source: str, values: tuple[str, ...]) -> None:
    for v in values:
        problem = header_problem(v)
        if problem:
            raise AtKey(at, f"{problem}: {source} holds {v!r}")
