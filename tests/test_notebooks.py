"""Every notebook runs end to end (nbclient); a failing cell fails the test."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_runs(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    # per cell, and for the kernel to start (nbclient's default, 60 s, is short
    # on a loaded 2-core machine); nbclient shuts the kernel down however
    # execute() ends, and jupyter_client kills its process group
    client = nbclient.NotebookClient(
        book,
        timeout=600,
        startup_timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        o
        for cell in book.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors
    # every code cell ran, and the figures rendered
    assert all(c.get("execution_count") for c in book.cells if c.cell_type == "code")
    assert any(
        "image/png" in o.get("data", {})
        for c in book.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def test_notebooks_only_import_lbsim() -> None:
    for path in NOTEBOOKS.glob("*.ipynb"):
        book = nbformat.read(path, as_version=4)
        for cell in book.cells:
            if cell.cell_type != "code":
                continue
            for line in cell.source.splitlines():
                words = line.split()
                if words[:1] in (["import"], ["from"]):
                    assert words[1].split(".")[0] == "lbsim", f"{path.name}: {line}"
