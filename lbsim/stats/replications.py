"""Across independent replications: means and Student-t 95 % half-widths."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves of a nested mapping as ``{"a.b.c": value}``."""
    out: dict[str, float] = {}
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, path))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int | float):
            out[path] = float(value)
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, value in flat.items():
        node = out
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def t_half_width(values: Sequence[float], confidence: float = 0.95) -> float:
    """Half-width of the Student-t interval of the mean; NaN with fewer than 2 values."""
    n = len(values)
    if n < 2:
        return math.nan
    mean = sum(values) / n
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    from scipy import stats  # imported here: scipy.stats alone costs ~60 MB and 0.7 s

    return float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * math.sqrt(var / n)


def aggregate(runs: Iterable[Mapping[str, Any]]) -> tuple[dict[str, float], dict[str, float]]:
    """Mean and 95 % half-width of every numeric leaf over the runs (NaNs ignored)."""
    flats = [flatten(r) for r in runs]
    # every key once, in order of first appearance (a dict: a list's ``in`` is
    # O(keys), and a 1,000-node run has thousands)
    keys: dict[str, None] = {}
    for f in flats:
        keys.update(dict.fromkeys(f))
    means: dict[str, float] = {}
    halves: dict[str, float] = {}
    for k in keys:
        vals = [f[k] for f in flats if k in f and not math.isnan(f[k])]
        means[k] = sum(vals) / len(vals) if vals else math.nan
        halves[k] = t_half_width(vals)
    return means, halves
