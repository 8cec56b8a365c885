"""Which build of lbsim is running: the model as Python, or compiled with mypyc.

``LBSIM_MYPYC=1 pip install .`` compiles :mod:`lbsim.model` (see setup.py);
``lbsim --version`` says which one a command runs.
"""

from __future__ import annotations

from importlib.util import find_spec


def model_compiled() -> bool:
    """True when :mod:`lbsim.model` is loaded from mypyc's extension modules, not ``.py`` files."""
    spec = find_spec("lbsim.model.engine")
    return spec is not None and spec.origin is not None and not spec.origin.endswith(".py")


def describe() -> str:
    """``"model compiled with mypyc"`` or ``"pure Python"``, for ``lbsim --version``."""
    return "model compiled with mypyc" if model_compiled() else "pure Python"
