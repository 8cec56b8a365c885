"""The result of simulating a scenario: the contract keys of DESIGN.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from lbsim.scenario.schema import Scenario
from lbsim.stats.replications import aggregate, flatten, unflatten


@dataclass
class Result:
    scenario: Scenario
    runs: list[dict[str, Any]]
    timeseries: list[dict[str, float]] = field(default_factory=list)
    cdf: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        measured = [{k: v for k, v in r.items() if k != "run"} for r in self.runs]
        self._means, self._halves = aggregate(measured)

    @property
    def replications(self) -> int:
        return len(self.runs)

    def value(self, key: str) -> float:
        """Mean over replications of a dotted key, e.g. ``"latency.p95"``."""
        try:
            return self._means[key]
        except KeyError:
            raise KeyError(f"no metric {key!r}") from None

    def ci95(self, key: str) -> float:
        """95 % half-width of a dotted key (NaN with one replication)."""
        return self._halves[key]

    def metrics(self) -> dict[str, float]:
        return dict(self._means)

    def to_dict(self) -> dict[str, Any]:
        out = unflatten(self._means)
        # counts of one run stay integers
        if self.replications == 1:
            out = _restore_ints(out, self.runs[0])
        if self.replications > 1:
            out["ci95"] = unflatten({k: v for k, v in self._halves.items() if not math.isnan(v)})
        out["replications"] = self.replications
        out["meta"] = dict(self.meta)
        out["scenario"] = self.scenario.model_dump(mode="json")
        return out

    def to_frame(self) -> Any:
        """One row per metric: ``metric``, ``mean``, ``ci95``."""
        import pandas as pd

        return pd.DataFrame(
            {
                "metric": list(self._means),
                "mean": list(self._means.values()),
                "ci95": [self._halves[k] for k in self._means],
            }
        )

    def runs_frame(self) -> Any:
        """One row per replication, one column per metric."""
        import pandas as pd

        return pd.DataFrame(
            [flatten({k: v for k, v in r.items() if k != "run"}) for r in self.runs]
        )

    def timeseries_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame(self.timeseries)


def _restore_ints(means: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in means.items():
        original = run.get(k)
        if isinstance(v, dict):
            out[k] = _restore_ints(v, original if isinstance(original, dict) else {})
        elif isinstance(original, int) and not isinstance(original, bool):
            out[k] = original
        else:
            out[k] = v
    return out
