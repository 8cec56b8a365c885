"""The two sides of a story: the real stack (live) and the model.

:class:`StackSide` brings a fresh stack up for every replay (a persistent
connection, a warmed cache or a Galera node's state must not carry from one
replay into the next: the model starts empty each time), measures the
machine's work-unit costs once (the plan's CPU demands; they are the
machine's, not the stack's), replays the replication's trace and takes the
stack down again, also when the replay fails. :class:`ModelSide` simulates
the same replication.
"""

from __future__ import annotations

from typing import Any

from lbsim.experiment.run import run_replication
from lbsim.scenario.schema import Scenario
from lbsim.validation import lifecycle
from lbsim.validation.calibration import measure_stack_costs
from lbsim.validation.failures import answered_by_horizon, predicted_counts
from lbsim.validation.products import stack_balancer
from lbsim.validation.replay import ReplayRun, replay
from lbsim.validation.stories.harness import Counts, Say
from lbsim.validation.workplan import MachineCosts


class StackSide:
    """Replays on a fresh stack; the counts answered by the horizon."""

    def __init__(self, port: int = 8080, say: Say = print) -> None:
        self.port = port
        self.say = say
        self.costs: MachineCosts | None = None
        self.last_notes: dict[str, Any] = {}

    def __call__(self, scenario: Scenario, replication: int) -> Counts:
        options = lifecycle.default_options(stack_balancer(scenario), self.port)
        handle = lifecycle.up(scenario, options)
        try:
            if self.costs is None:
                self.say("  measuring the machine's work-unit costs (~10 s)")
                self.costs = measure_stack_costs(handle)
            run = replay(scenario, handle, self.costs, replication=replication)
        finally:
            lifecycle.down(scenario, options)
        verdict = run.results["meta"]["loadgen"]
        self.last_notes = {"valid": bool(verdict["valid"]), "problems": list(verdict["problems"])}
        return self.counts(scenario, run)

    def counts(self, scenario: Scenario, run: ReplayRun) -> Counts:
        """What the replay counts (a story may count more: its Galera counters, …)."""
        return answered_by_horizon(scenario, run.records)


class ModelSide:
    """Simulates the replication; the model's counts of the same cohort."""

    def __call__(self, scenario: Scenario, replication: int) -> Counts:
        results, _ = run_replication(scenario, replication)
        return self.counts(scenario, results)

    def counts(self, scenario: Scenario, results: dict[str, Any]) -> Counts:
        """What the model counts (a story may count more)."""
        return predicted_counts(results)
