"""Story 4, hot rows and many writers: Galera's conflict counters, predicted and measured.

A :class:`~lbsim.validation.stories.catalogue.ConflictStory` is a counts
story (:mod:`lbsim.validation.stories.harness`) on a Galera cluster. Besides
the requests answered by the horizon (``completed``, ``db_1213``, …) each
side counts, summed over the database nodes:

* ``wsrep_local_cert_failures``: write-sets of a node that failed certification;
* ``wsrep_local_bf_aborts``: local transactions a node's appliers aborted;
* ``retries``: the application's retries of a 1213 (``database.app_retries``).

Measured: the counters are the window deltas the replay reads with ``SHOW
GLOBAL STATUS`` on every node (``FLUSH STATUS`` at the end of the warm-up,
again after the last answer: :mod:`lbsim.validation.replay`); the retries
are the ``X-Lbsim-Retries`` of the requests that arrived in the window.

Predicted: the model's ``galera.nodes.*`` counters over the same window
(the warm-up to the horizon). The model does not count the application's
retries, but in it every conflict a statement loses (a failed certification
or a brute-force abort, each counted once) is retried by the server
(``retry_autocommit``), retried by the application, or answered 1213; so
with ``retry_autocommit`` 0 (the story's scenario) the application's retries
are the conflicts less the 1213 answers (:func:`model_retries`). Both sides'
counts are judged like the other counts (25 %, or ±10 below 40 measured).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lbsim.scenario.database import Galera
from lbsim.scenario.schema import Scenario
from lbsim.validation.loadgen import NOT_SENT, Record
from lbsim.validation.replay import ReplayRun
from lbsim.validation.stories.harness import Counts
from lbsim.validation.stories.sides import ModelSide, StackSide

#: the wsrep counters the story compares, summed over the nodes
CONFLICT_COUNTERS = ("wsrep_local_cert_failures", "wsrep_local_bf_aborts")


def galera_sums(galera: Mapping[str, Any]) -> Counts:
    """:data:`CONFLICT_COUNTERS` summed over a ``galera`` block's nodes (0 without one)."""
    nodes: Mapping[str, Mapping[str, float]] = galera.get("nodes", {}) if galera else {}
    return {
        name: round(sum(n.get(name, 0.0) for n in nodes.values())) for name in CONFLICT_COUNTERS
    }


def measured_retries(scenario: Scenario, records: list[Record]) -> int:
    """The application's 1213 retries of the requests that arrived in the window."""
    return sum(
        r.retries
        for r in records
        if r.status != NOT_SENT and scenario.warmup <= r.scheduled < scenario.horizon
    )


def model_retries(scenario: Scenario, counts: Mapping[str, int]) -> int:
    """The model's application retries: conflicts lost less the 1213 answers
    (see the module); ValueError where the server retries too."""
    db = scenario.database
    if not isinstance(db, Galera):
        raise ValueError(f"the hot-rows story needs a Galera cluster, not {db.engine!r}")
    if db.app_retries == 0:
        return 0
    if db.retry_autocommit:
        raise ValueError(
            "with retry_autocommit > 0 the model's conflicts do not tell the "
            "application's retries from the server's; set database.retry_autocommit=0"
        )
    lost = sum(counts.get(k, 0) for k in CONFLICT_COUNTERS)
    return max(0, lost - counts.get("db_1213", 0))


class ConflictStackSide(StackSide):
    """A fresh stack per replay; the answers, the conflict counters and the retries."""

    def counts(self, scenario: Scenario, run: ReplayRun) -> Counts:
        out = super().counts(scenario, run) | galera_sums(run.results.get("galera", {}))
        errors = list(run.results["meta"].get("collector_errors", []))
        if errors or "galera" not in run.results:
            # counters not read: a comparison against 0 would be meaningless
            self.last_notes["valid"] = False
            self.last_notes["problems"] = [
                *self.last_notes.get("problems", []),
                *(errors or ["no Galera counters were read"]),
            ]
        return out | {"retries": measured_retries(scenario, run.records)}


class ConflictModelSide(ModelSide):
    """The model's answers, conflict counters and application retries."""

    def counts(self, scenario: Scenario, results: dict[str, Any]) -> Counts:
        out = super().counts(scenario, results) | galera_sums(results.get("galera", {}))
        return out | {"retries": model_retries(scenario, out)}
