"""Build script: pure Python by default; ``LBSIM_MYPYC=1`` compiles the simulation model.

``pip install .`` (or ``pip install -e .``) installs lbsim as plain Python, as
always. ``LBSIM_MYPYC=1 pip install .`` compiles every module of
``lbsim.model`` (the engine, CPU, app nodes, balancer, policies, database
tier: the per-request hot path, all ``mypy --strict``) and the statistics it
updates per request with mypyc into C extensions inside the wheel; results are the same bit for bit
(tests/test_compiled.py builds both and compares them). It needs a C compiler
and the Python headers; pip installs mypy and the libraries whose types the
compiler reads (numpy, pydantic, simpy) into the build environment.

An editable install with ``LBSIM_MYPYC=1`` is refused: setuptools would put
the compiled modules beside the sources, where they would shadow every later
edit of the ``.py`` files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent

#: kept as Python: the policies' pydantic option models (pydantic builds its
#: validators from a class body, which a compiled class does not give it) and
#: the policy registry, which imports every policy module
NOT_COMPILED = {"lbsim/model/policies/options.py", "lbsim/model/policies/__init__.py"}

#: what the compiler needs in the build environment: mypyc itself, and the
#: packages whose types it compiles against (the pydantic plugin included)
BUILD_NEEDS = ["mypy>=1.10", "numpy>=1.26", "pydantic>=2.6", "simpy>=4.1"]


#: compiled beside lbsim.model: the statistics its hot path updates per request
STATS = ["lbsim/stats/timeweighted.py", "lbsim/stats/latency.py"]


def compiled_modules() -> list[str]:
    """The source files mypyc compiles: every module of ``lbsim.model`` but
    :data:`NOT_COMPILED`, and :data:`STATS`."""
    files = (p.relative_to(ROOT).as_posix() for p in (ROOT / "lbsim" / "model").rglob("*.py"))
    return sorted([f for f in files if f not in NOT_COMPILED] + STATS)


def wanted() -> bool:
    return os.environ.get("LBSIM_MYPYC", "").strip() not in ("", "0")


def main() -> None:
    if not wanted():
        setup()
        return
    if "editable_wheel" in sys.argv or "develop" in sys.argv:
        raise SystemExit(
            "LBSIM_MYPYC=1: the compiled build cannot be an editable install (the compiled "
            "modules would sit beside the sources and shadow every later edit); use "
            "`LBSIM_MYPYC=1 pip install .`, or leave LBSIM_MYPYC unset for `pip install -e .`"
        )
    building = any(cmd in sys.argv for cmd in ("bdist_wheel", "build_ext", "build", "install"))
    try:
        from mypyc.build import mypycify
    except ImportError:
        if building:
            raise SystemExit(
                "LBSIM_MYPYC=1 needs mypyc (part of mypy) in the build environment: "
                "`pip install mypy`, or build without --no-build-isolation"
            ) from None
        # PEP 517's "what does the build need" step: pip installs these, then builds
        setup(setup_requires=BUILD_NEEDS)
        return
    if not building:  # the metadata steps: nothing to compile yet
        setup()
        return
    os.chdir(ROOT)  # mypyc reads the project's mypy settings (pyproject.toml) from here
    setup(ext_modules=mypycify(compiled_modules(), opt_level="3"))


if __name__ == "__main__":  # setuptools runs this file as __main__; a test imports it
    main()
