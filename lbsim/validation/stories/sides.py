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
from lbsim.validation.compose import StackOptions
from lbsim.validation.failures import answered_by_horizon, predicted_counts
from lbsim.validation.products import stack_balancer
from lbsim.validation.replay import ReplayRun, replay
from lbsim.validation.stories.harness import Counts, Say
from lbsim.validation.workplan import MachineCosts


def measure_on_own_stack(scenario: Scenario, options: StackOptions, say: Say) -> MachineCosts:
    """The machine's work-unit costs measured on a stack of ``scenario`` brought
    up for them alone and taken down again: the BENCHMARK() measurement opens
    database connections (php-fpm keeps them when connections are persistent:
    the too-many-connections story's workers would start the first replay
    holding them, which the model's do not) and warms the caches."""
    say("  measuring the machine's work-unit costs on a stack of their own (~10 s)")
    handle = lifecycle.up(scenario, options)
    try:
        return measure_stack_costs(handle)
    finally:
        lifecycle.down(scenario, options)


class StackSide:
    """Replays on a fresh stack; the counts answered by the horizon."""

    def __init__(self, port: int = 8080, say: Say = print) -> None:
        self.port = port
        self.say = say
        self.costs: MachineCosts | None = None
        self.last_notes: dict[str, Any] = {}

    def __call__(self, scenario: Scenario, replication: int) -> Counts:
        options = lifecycle.default_options(stack_balancer(scenario), self.port)
        if self.costs is None:
            self.costs = measure_on_own_stack(scenario, options, self.say)
        handle = lifecycle.up(scenario, options)
        try:
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
