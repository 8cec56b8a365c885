"""lbsim: predict utilisation and latency of load-balanced PHP + MySQL/Galera stacks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lbsim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+source"

from lbsim.experiment.compare import Comparison, compare
from lbsim.experiment.load import load_results
from lbsim.experiment.plan import Plan, plan
from lbsim.experiment.result import Result
from lbsim.experiment.run import simulate
from lbsim.experiment.sweep import Sweep, sweep
from lbsim.scenario import Scenario, ScenarioError, load_scenario, loads_scenario

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
