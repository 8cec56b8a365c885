"""Scenario files: schema, loading, overrides and clear errors."""

from lbsim.scenario.errors import ScenarioError
from lbsim.scenario.loader import load_scenario, loads_scenario
from lbsim.scenario.schema import Scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario", "loads_scenario"]
