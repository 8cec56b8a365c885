"""Reading YAML safely: bounded in size, strict about duplicates, YAML 1.2 numbers.

- A document is at most :data:`MAX_FILE_BYTES` long and at most
  :data:`MAX_NODES` values once every alias is expanded: an alias bomb (a few
  lines whose aliases expand to billions of values) is refused before anything
  walks it, and a recursive alias is refused outright.
- Duplicate keys are errors (YAML keeps the last one silently); merge keys
  (``<<: *defaults``) work, and a key written next to a merge overrides the
  merged one, as YAML specifies.
- ``1e3`` is a number, as in YAML 1.2 (YAML 1.1, which PyYAML follows, reads
  it as a string). ``yes``/``no``/``on``/``off`` stay booleans, so the schema
  refuses them where a number or a name is expected instead of guessing.
"""

from __future__ import annotations

import re
import stat
import sys
from pathlib import Path
from typing import Any

import yaml

from lbsim.scenario.errors import KeyPath, Problem, ScenarioError

#: the largest scenario or variants file read (bytes)
MAX_FILE_BYTES = 4 * 1024 * 1024
#: the most values (scalars, lists, mappings) a document may hold, aliases expanded
MAX_NODES = 200_000

_FLOAT_12 = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats and duplicate keys refused."""


# replace the float resolver: SafeLoader's needs a '.' in the mantissa
SafeLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def _construct_mapping(loader: SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # merged keys may be overridden; construct_mapping merges them
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "a mapping key must be a plain value, not a list or mapping",
                key_node.start_mark,
            ) from None
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


SafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _TooBig(Exception):
    def __init__(self, message: str, node: yaml.Node):
        super().__init__(message)
        self.node = node


def _expanded_size(root: yaml.Node) -> int:
    """Values in the document with every alias expanded (memoised: cheap even for a bomb)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise _TooBig("a recursive alias (a value that contains itself)", node)
        on_path.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += size(k) + size(v)
                if total > MAX_NODES:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for v in node.value:
                total += size(v)
                if total > MAX_NODES:
                    break
        on_path.discard(key)
        sizes[key] = total
        if total > MAX_NODES:
            raise _TooBig(
                f"the document expands to more than {MAX_NODES:,} values (aliases counted "
                "each time they are used); a scenario needs far fewer",
                node,
            )
        return total

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        return size(root)
    except RecursionError:
        raise _TooBig("the document is nested too deeply", root) from None
    finally:
        sys.setrecursionlimit(limit)


def _problem(message: str, mark: Any) -> Problem:
    problem = Problem((), message)
    if mark is not None:
        problem.line, problem.column = mark.line + 1, mark.column + 1
    return problem


def parse_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, tuple[int, int]]]:
    """The document's data and the line/column of every key path."""
    if len(text) > MAX_FILE_BYTES:
        raise ScenarioError(
            file, [Problem((), f"the file is larger than {MAX_FILE_BYTES // 1024 // 1024} MiB")]
        )
    loader = SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        _expanded_size(node)
        data = loader.construct_document(node)
    except _TooBig as exc:
        raise ScenarioError(file, [_problem(str(exc), exc.node.start_mark)]) from None
    except RecursionError:
        raise ScenarioError(
            file, [Problem((), "the document is nested too deeply (hundreds of levels)")]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        syntax = not isinstance(exc, yaml.constructor.ConstructorError)
        what = "YAML syntax error" if syntax else "YAML error"
        message = f"{what}: {exc.problem or exc.context}"
        if exc.problem and exc.context and exc.context_mark is not None:
            cm = exc.context_mark
            message += f" ({exc.context} at line {cm.line + 1}, column {cm.column + 1})"
        raise ScenarioError(file, [_problem(message, mark)]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(file, [Problem((), f"YAML error: {exc}")]) from None
    finally:
        loader.dispose()
    return data, positions(node)


def positions(node: yaml.Node | None) -> dict[KeyPath, tuple[int, int]]:
    """Line and column (1-based) of every key path in a composed YAML tree.

    An aliased subtree is walked once, where its anchor is (the size check
    has already bounded the document).
    """
    out: dict[KeyPath, tuple[int, int]] = {}
    walked: set[int] = set()
    stack: list[tuple[yaml.Node, KeyPath]] = [(node, ())] if node is not None else []
    while stack:
        n, path = stack.pop()
        out.setdefault(path, (n.start_mark.line + 1, n.start_mark.column + 1))
        if id(n) in walked:
            continue
        walked.add(id(n))
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                sub = (*path, k.value)
                out[sub] = (k.start_mark.line + 1, k.start_mark.column + 1)
                stack.append((v, sub))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                stack.append((v, (*path, i)))
    return out


def load_value(text: str) -> Any:
    """One YAML value (a ``--set`` or ``--vary`` value), read like a scenario file's."""
    if len(text) > MAX_FILE_BYTES:
        raise ValueError("value too long")
    data, _ = parse_yaml(text, "<value>")
    return data


class UnreadableFile(ValueError):
    """A file lbsim cannot use; ``str()`` says why (without the file name)."""


def read_regular_text(path: Path | str, what: str = "file", limit: int = MAX_FILE_BYTES) -> str:
    """A small regular UTF-8 file's text, or :class:`UnreadableFile`.

    A FIFO, a device or a directory is refused before it is opened (reading a
    FIFO would wait for a writer forever), and so is a file over ``limit`` bytes.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise UnreadableFile("no such file") from None
    except PermissionError:
        raise UnreadableFile("permission denied") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableFile(f"is a directory, not a {what}")
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableFile(f"is not a regular file (a FIFO, socket or device), not a {what}")
    if st.st_size > limit:
        raise UnreadableFile(
            f"is {st.st_size:,} bytes; a {what} may be at most {limit // 1024 // 1024} MiB"
        )
    try:
        return path.read_text(encoding="utf-8")
    except PermissionError:
        raise UnreadableFile("permission denied") from None
    except UnicodeDecodeError:
        raise UnreadableFile("not UTF-8 text") from None
    except OSError as exc:
        raise UnreadableFile(f"cannot read: {exc.strerror}") from None


def read_text_file(path: Path | str, what: str = "scenario file") -> str:
    """:func:`read_regular_text` with failures as a :class:`ScenarioError` on the file."""
    try:
        return read_regular_text(path, what)
    except UnreadableFile as exc:
        raise ScenarioError(str(path), [Problem((), str(exc))]) from None
