"""lbsim: predict utilisation and latency of load-balanced PHP + MySQL/Galera stacks.

The public names below are imported on first use (PEP 562), so that
``import lbsim`` and the ``lbsim`` command start in a few tens of
milliseconds: a command, a notebook or a sweep's worker process pays only
for what it touches (the scenario schema, the simulator, the experiment
stack, plotting).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lbsim.experiment.compare import Comparison, compare
    from lbsim.experiment.load import load_results
    from lbsim.experiment.plan import Plan, plan
    from lbsim.experiment.result import Result
    from lbsim.experiment.run import simulate
    from lbsim.experiment.sweep import Sweep, sweep
    from lbsim.scenario import Scenario, ScenarioError, load_scenario, loads_scenario

    __version__: str

#: public name -> the module that defines it
_LAZY = {
    "Comparison": "lbsim.experiment.compare",
    "compare": "lbsim.experiment.compare",
    "load_results": "lbsim.experiment.load",
    "Plan": "lbsim.experiment.plan",
    "plan": "lbsim.experiment.plan",
    "Result": "lbsim.experiment.result",
    "simulate": "lbsim.experiment.run",
    "Sweep": "lbsim.experiment.sweep",
    "sweep": "lbsim.experiment.sweep",
    "Scenario": "lbsim.scenario",
    "ScenarioError": "lbsim.scenario",
    "load_scenario": "lbsim.scenario",
    "loads_scenario": "lbsim.scenario",
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lbsim")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0+source"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'lbsim' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY, "__version__"])


__all__ = [
    "Comparison",
    "Plan",
    "Result",
    "Scenario",
    "ScenarioError",
    "Sweep",
    "__version__",
    "compare",
    "load_results",
    "load_scenario",
    "loads_scenario",
    "plan",
    "simulate",
    "sweep",
]
