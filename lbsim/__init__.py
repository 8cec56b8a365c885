"""lbsim: predict utilisation and latency of load-balanced PHP + MySQL/Galera stacks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lbsim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+source"

from lbsim.experiment.result import Result
from lbsim.experiment.run import simulate
from lbsim.scenario import Scenario, ScenarioError, load_scenario, loads_scenario

__all__ = [
    "Result",
    "Scenario",
    "ScenarioError",
    "__version__",
    "load_scenario",
    "loads_scenario",
    "simulate",
]
