"""Execute every notebook here in place, so they are committed with their outputs.

    python notebooks/run.py            # all
    python notebooks/run.py 03-galera  # one

The test suite executes them too (tests/test_notebooks.py, marker ``notebook``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def execute(path: Path, timeout: int = 300) -> nbformat.NotebookNode:
    book = nbformat.read(path, as_version=4)
    NotebookClient(
        book, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    ).execute()
    return book


def main(names: list[str]) -> None:
    paths = sorted(HERE.glob("*.ipynb"))
    if names:
        paths = [p for p in paths if p.stem in names]
    for path in paths:
        started = time.perf_counter()
        book = execute(path)
        nbformat.write(book, path)
        print(f"{path.name}: {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
