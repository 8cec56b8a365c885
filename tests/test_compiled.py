"""The compiled build gives the pure-Python build's results, bit for bit.

``LBSIM_MYPYC=1 pip install .`` compiles :mod:`lbsim.model` with mypyc
(setup.py). This module builds that wheel the way the README says (pip, its
own build environment), unpacks it, and runs the same replications in two
fresh interpreters, one importing the compiled build and one the sources:
every shipped scenario (theory and stories included), every balancer policy
under a product that has it, and the fast paths' edge cases (outages, health
checks, retries, slow start, Envoy's panic). It compares the ``repr`` of each
replication's results, time series and latency CDFs, so every bit of every
float counts; only the replication's wall time is left out. The rest of the
suite runs on the pure-Python build, which stays the default install.

The build takes about two minutes of one core; the tests share it on one
xdist worker.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest

from lbsim.model.policies import POLICIES
from tests.support import run_program
from tests.test_node_scaling import SCENARIO as EDGES  # outages, health checks, max_conns

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"

pytestmark = [pytest.mark.compiled, pytest.mark.slow, pytest.mark.xdist_group("compiled")]

#: the fast paths' edge cases on EDGES (products, retries, slow start, panic)
EDGE_SETS = [
    ["balancer.product=haproxy", "balancer.policy=power_of_d", "balancer.retries=2"],
    ["balancer.product=haproxy", "balancer.policy=roundrobin_haproxy", "balancer.slow_start=10"],
    ["balancer.product=envoy", "balancer.policy=power_of_d", "balancer.panic_threshold=90"],
    ["balancer.product=envoy", "balancer.policy=round_robin", "app.max_conns=0"],
    ["balancer.product=nginx", "balancer.policy=least_conn", "balancer.next_upstream_tries=3"],
    ["balancer.product=envoy", "balancer.policy=round_robin", "balancer.slow_start=10"],
]


def _cases(edges: Path) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for path in sorted(SCENARIOS.glob("*.yaml")) + sorted(SCENARIOS.glob("*/*.yaml")):
        sets = ["duration=15000"] if path.name == "mm8.yaml" else []  # ≈100k requests
        cases.append(
            {"id": path.relative_to(SCENARIOS).as_posix(), "file": str(path), "sets": sets}
        )
    for name, cls in sorted(POLICIES.items()):
        product = sorted(cls.products)[0]
        sets = [f"balancer.product={product}", f"balancer.policy={name}"]
        cases.append({"id": f"policy {name} ({product})", "file": str(edges), "sets": sets})
    for sets in EDGE_SETS:
        cases.append({"id": "edges " + " ".join(sets), "file": str(edges), "sets": sets})
    return cases


#: run in each fresh interpreter: every case's replication 0, as its repr
CHILD = r"""
import json, sys
from pathlib import Path
import lbsim
from lbsim.build import model_compiled
from lbsim.experiment.run import run_replication

cases = json.loads(Path(sys.argv[1]).read_text())
runs = {}
for case in cases:
    scenario = lbsim.loads_scenario(Path(case["file"]).read_text(), case["file"], case["sets"])
    results, extras = run_replication(scenario, 0)
    results.pop("run")  # the wall time
    runs[case["id"]] = repr((results, extras))
json.dump({"compiled": model_compiled(), "file": lbsim.__file__, "runs": runs}, sys.stdout)
"""


def _child(cases: list[dict[str, Any]], pythonpath: Path, cwd: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    env.pop("LBSIM_MYPYC", None)
    listing = cwd / "cases.json"
    listing.write_text(json.dumps(cases))
    proc = run_program([sys.executable, "-c", CHILD, listing], timeout=900, env=env, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def _build_script() -> Any:
    """setup.py at the repository root, imported (its ``main`` runs only as a script)."""
    sys.path.insert(0, str(REPO))
    try:
        import setup
    finally:
        sys.path.remove(str(REPO))
    return setup


def _sources(dest: Path) -> Path:
    """What the wheel is built from: the package, setup.py, pyproject.toml, README."""
    src = dest / "src"
    shutil.copytree(
        REPO / "lbsim", src / "lbsim", ignore=shutil.ignore_patterns("__pycache__", "*.so")
    )
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    return src


@pytest.fixture(scope="module")
def compiled_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``LBSIM_MYPYC=1 pip wheel`` of this tree, unpacked: a directory to put on PYTHONPATH."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.fail("no C compiler: the compiled build needs one (apt-get install gcc)")
    root = tmp_path_factory.mktemp("compiled")
    src = _sources(root)
    dist = root / "dist"
    proc = run_program(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, src],
        timeout=1500,
        env={**os.environ, "LBSIM_MYPYC": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    (wheel,) = dist.glob("lbsim-*.whl")
    site = root / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    return site


@pytest.fixture(scope="module")
def both(compiled_site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("runs")
    edges = work / "edges.yaml"
    edges.write_text(EDGES)
    cases = _cases(edges)
    return {
        "cases": cases,
        "compiled": _child(cases, compiled_site, work),
        "pure": _child(cases, REPO, work),
    }


def test_no_compiled_module_defines_what_mypyc_cannot_compile() -> None:
    """Read without building: a class decorator makes mypyc keep a class as slow
    Python (and a policy subclass of it then fails to build), and a pydantic
    model compiled by mypyc loses its validators. Those belong in the modules
    setup.py leaves as Python."""
    build_script = _build_script()
    found = []
    for module in build_script.compiled_modules():
        tree = ast.parse((REPO / module).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if any(not d.startswith("dataclass") for d in decorators):
                found.append(f"{module}: class {node.name} decorated {decorators}")
            if any(ast.unparse(b) in ("BaseModel", "pydantic.BaseModel") for b in node.bases):
                found.append(f"{module}: class {node.name} is a pydantic model")
    assert not found


def test_the_wheel_compiles_every_model_module(compiled_site: Path) -> None:
    build_script = _build_script()
    modules = build_script.compiled_modules()
    assert "lbsim/model/engine.py" in modules and "lbsim/model/policies/round_robin.py" in modules
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    missing = [
        m
        for m in modules
        if not (compiled_site / m.removesuffix(".py")).with_suffix(suffix).exists()
    ]
    assert not missing
    for kept in build_script.NOT_COMPILED:
        assert not (compiled_site / kept.removesuffix(".py")).with_suffix(suffix).exists()


def test_each_child_ran_the_build_it_was_given(both: dict[str, Any], compiled_site: Path) -> None:
    assert both["compiled"]["compiled"] is True
    assert both["compiled"]["file"].startswith(str(compiled_site))
    assert both["pure"]["compiled"] is False
    assert both["pure"]["file"].startswith(str(REPO))


def test_compiled_results_are_the_pure_results_bit_for_bit(both: dict[str, Any]) -> None:
    ids = [c["id"] for c in both["cases"]]
    compiled, pure = both["compiled"]["runs"], both["pure"]["runs"]
    assert sorted(compiled) == sorted(pure) == sorted(ids)
    assert len(ids) >= 40  # scenarios, policies and edge cases
    differ = [i for i in ids if compiled[i] != pure[i]]
    assert not differ, f"{len(differ)} of {len(ids)} cases differ: {differ[:5]}"
    # the cases simulated something: requests completed in every one
    assert all("'completed': 0," not in pure[i] for i in ids)


def test_the_cli_of_the_compiled_build_says_so(compiled_site: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(compiled_site)}
    version = run_program(
        [sys.executable, "-m", "lbsim", "--version"], timeout=60, env=env, cwd=tmp_path
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip().endswith("(model compiled with mypyc)")
    meta = tmp_path / "out"
    mixed = SCENARIOS / "mixed.yaml"
    run = run_program(
        [sys.executable, "-m", "lbsim", "run", mixed, "-q", "--duration", "20", "--out", meta],
        timeout=300,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads((meta / "meta.json").read_text())["lbsim_build"] == (
        "model compiled with mypyc"
    )


def test_an_editable_compiled_install_is_refused(tmp_path: Path) -> None:
    """setuptools would put the compiled modules beside the sources, shadowing later edits."""
    src = _sources(tmp_path)
    proc = run_program(
        [sys.executable, "setup.py", "editable_wheel"],
        timeout=120,
        env={**os.environ, "LBSIM_MYPYC": "1"},
        cwd=src,
    )
    assert proc.returncode != 0
    assert "cannot be an editable install" in proc.stderr
    assert not list(src.rglob("*.so"))
