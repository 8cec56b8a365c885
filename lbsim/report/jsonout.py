"""JSON output: NaN and infinity become null so every file is valid JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lbsim.report import atomic


def clean(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(clean(data), indent=2, allow_nan=False) + "\n")
