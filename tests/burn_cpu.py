"""Keep one core busy until killed: the loaded machine the test suite must survive.

``python3 tests/burn_cpu.py`` busy-loops in pure Python (one core at 100 %)
until it is killed, its parent exits (so an aborted wrapper never leaves it
behind) or ``--max-seconds`` pass. ``tests/run_busy.sh`` starts it around a
command and always stops it.
"""

from __future__ import annotations

import argparse
import os
import time


def burn(max_seconds: float, parent: int) -> None:
    """Spin until ``max_seconds`` pass or ``parent`` is no longer our parent."""
    end = time.monotonic() + max_seconds
    n = 0
    while time.monotonic() < end and os.getppid() == parent:
        while n < 200_000:  # a few milliseconds of pure CPU between checks
            n += 1
        n = 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=4 * 3600.0,
        help="stop by itself after this long (a safety net; default 4 h)",
    )
    args = parser.parse_args(argv)
    burn(args.max_seconds, os.getppid())


if __name__ == "__main__":
    main()
