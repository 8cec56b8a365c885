"""Bad experiment input (a ``--vary``, ``--slo``, metric or replication option).

Its message names the option and the key; the CLI prints it and exits 2.
"""

from __future__ import annotations


class ExperimentInputError(ValueError):
    """Input to compare/sweep/plan that cannot be used; ``str()`` is the message."""
