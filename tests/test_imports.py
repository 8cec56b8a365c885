"""Start-up guard: the package and the command import heavy libraries only where used.

Each check runs in a fresh interpreter and inspects ``sys.modules`` (an
import-graph test, not a timing test): ``import lbsim``, ``import
lbsim.cli.app``, ``lbsim --help``, ``lbsim check`` and a quiet ``lbsim run``
must not import matplotlib, pandas, scipy, pyarrow or dask.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("matplotlib", "pandas", "scipy", "pyarrow", "dask", "distributed")

PROBE = """
import json, sys
argv = {argv!r}
{imports}
if argv is not None:
    sys.argv = ["lbsim", *argv]
    from lbsim.cli.app import main
    try:
        main()
    except SystemExit:
        pass
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
print("\\n" + json.dumps({{"heavy": heavy, "modules": sorted(sys.modules)}}))
"""


def _loaded(imports: str, argv: list[str] | None = None) -> dict[str, list[str]]:
    code = PROBE.format(argv=argv, imports=imports, heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    out: dict[str, list[str]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


@pytest.mark.parametrize("imports", ["import lbsim", "import lbsim.cli.app", "import lbsim.cli"])
def test_import_is_light(imports: str) -> None:
    loaded = _loaded(imports)
    assert loaded["heavy"] == []
    # nor the scenario schema (pydantic), numpy or the simulator
    for name in ("pydantic", "numpy", "simpy", "lbsim.scenario", "lbsim.experiment"):
        assert name not in loaded["modules"], name


def test_help_is_light() -> None:
    loaded = _loaded("", ["--help"])
    assert loaded["heavy"] == []
    assert "pydantic" not in loaded["modules"]
    assert "numpy" not in loaded["modules"]


def test_check_and_quiet_run_import_no_plotting_or_dataframes(tmp_path: Path) -> None:
    scenario = ROOT / "scenarios" / "mixed.yaml"
    assert _loaded("", ["check", str(scenario)])["heavy"] == []
    run = _loaded("", ["run", str(scenario), "-q", "--duration", "5"])
    assert run["heavy"] == []
    assert "lbsim.model.stack" in run["modules"]  # it did simulate


def test_public_names_resolve_lazily() -> None:
    import lbsim

    for name in lbsim.__all__:
        assert getattr(lbsim, name) is not None, name
    assert set(lbsim.__all__) <= set(dir(lbsim))
    with pytest.raises(AttributeError):
        _ = lbsim.no_such_name


def test_help_listing_matches_each_commands_own_help() -> None:
    from lbsim.cli.app import COMMANDS, load_command

    for name, (_, short) in COMMANDS.items():
        command = load_command(name)
        assert command.name == name
        assert (command.help or "").split("\n\n")[0] == short, name
