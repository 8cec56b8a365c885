"""Writing result files safely: atomically, and never over one of the command's inputs.

Every file lbsim writes goes through :func:`replacing` (or the helpers built on
it): the content goes to a temporary file in the same directory, which
replaces the target only once it is complete, so an interrupted or failed run
leaves the previous file intact, never a truncated one.

:func:`refuse_overwriting` is the check a command makes before it starts
working: an output that is one of its inputs (the same file, through any
path, link or symlink), or an output directory holding an input it would
replace, is an :class:`OutputClash`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

#: names a command writes into an output directory are never ``.yaml``: a
#: scenario kept in its results directory is safe; anything else there may be replaced
_SAFE_IN_OUTPUT_DIR = {".yaml", ".yml"}


class OutputClash(OSError):
    """An output would replace one of the command's own inputs."""

    def __init__(self, output: Path, source: Path, directory: bool = False):
        if directory:
            message = (
                f"output directory {output} holds {source}, an input of this command; "
                "refusing to overwrite it (choose another output directory)"
            )
        elif str(output) == str(source):
            message = f"{output} is an input of this command; refusing to overwrite it"
        else:
            message = (
                f"writing {output} would overwrite {source}, an input of this command; "
                "refusing (choose another output path)"
            )
        super().__init__(errno.EEXIST, message)
        self.output, self.source = output, source

    def __str__(self) -> str:
        return str(self.strerror)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def _files_of(path: Path) -> list[Path]:
    if path.is_dir():
        return [p for p in path.rglob("*") if p.is_file()]
    return [path]


def refuse_overwriting(
    inputs: Iterable[Path | None],
    files: Iterable[Path | None] = (),
    directories: Iterable[Path | None] = (),
) -> None:
    """Raise :class:`OutputClash` if an output would replace an input.

    ``inputs`` are files or directories the command reads (a directory means
    every file in it); ``files`` are output files; ``directories`` output
    directories (any non-YAML input inside one may be replaced by the command).
    """
    sources = [f for p in inputs if p is not None for f in _files_of(Path(p))]
    for out in files:
        if out is None:
            continue
        for src in sources:
            if _same_file(Path(out), src):
                raise OutputClash(Path(out), src)
    for folder in directories:
        if folder is None:
            continue
        root = Path(folder)
        for src in sources:
            if src.suffix.lower() in _SAFE_IN_OUTPUT_DIR:
                continue
            try:
                inside = src.resolve().is_relative_to(root.resolve())
            except OSError:
                inside = False
            if inside:
                raise OutputClash(root, src, directory=True)


@contextlib.contextmanager
def replacing(
    path: Path | str, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None
) -> Iterator[IO[Any]]:
    """A file object whose content replaces ``path`` atomically when the block ends.

    On an exception the temporary file is removed and ``path`` is untouched.
    The new file gets the usual permissions (0666 less the umask).
    """
    target = Path(path)
    binary = "b" in mode
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(
            fd,
            mode,
            encoding=None if binary else encoding,
            newline=None if binary else newline,
        ) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: Path | str, text: str) -> None:
    with replacing(path) as fh:
        fh.write(text)


def write_bytes(path: Path | str, data: bytes) -> None:
    with replacing(path, "wb") as fh:
        fh.write(data)


def save_figure(fig: Any, path: Path | str, **kwargs: Any) -> None:
    """``fig.savefig(path)``, atomically (the format from the file's suffix)."""
    target = Path(path)
    kwargs.setdefault("format", target.suffix.lstrip(".") or "png")
    with replacing(target, "wb") as fh:
        fig.savefig(fh, **kwargs)
