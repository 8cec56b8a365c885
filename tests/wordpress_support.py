"""The WordPress example stack for the live tests: stack.sh under a test's own
compose project and port, and an example target file pointed at them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from lbsim.target.campaign import run_target_campaign
from lbsim.validation.campaign import CampaignOptions, CampaignResult
from tests.support import run_program

EXAMPLE = Path(__file__).resolve().parent.parent / "validation" / "examples" / "wordpress"


def stack(*args: str, port: int, project: str, timeout: float) -> str:
    """``stack.sh ARGS`` with ``PORT`` and ``PROJECT`` set; asserts it succeeded."""
    env = {**os.environ, "PORT": str(port), "PROJECT": project}
    proc = run_program([str(EXAMPLE / "stack.sh"), *args], timeout=timeout, env=env)
    assert proc.returncode == 0, f"stack.sh {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def target_doc(name: str, *, port: int, project: str, seed: Path) -> dict[str, object]:
    """The example's target file ``name``, pointed at ``project`` on ``port`` and
    at the seed files in ``seed``."""
    doc = yaml.safe_load((EXAMPLE / name).read_text())
    doc["compose"] = {"project": project}
    doc["url"] = f"http://127.0.0.1:{port}"
    req = doc["requests"]
    req["post"]["ids_file"] = req["comment"]["ids_file"] = str(seed / "post-ids.txt")
    req["search"]["words_file"] = str(seed / "words.txt")
    req["account"]["headers"] = {"Cookie": f"{{file:{seed / 'cookie.txt'}}}"}
    return doc


@contextmanager
def running_target(
    variant: str, target_file: str, *, port: int, project: str, work: Path
) -> Iterator[Path]:
    """The example's ``variant`` built, started and seeded as ``project`` on
    ``port`` (what an interrupted earlier run left is removed first), and its
    target file ``target_file`` written for it under ``work``: yields that
    file's path; the stack is removed afterwards, also when the body fails."""

    def run(*args: str, timeout: float) -> str:
        return stack(*args, port=port, project=project, timeout=timeout)

    run("build", timeout=1800)
    run("down", variant, timeout=120)
    try:
        run("up", variant, timeout=400)
        run("seed", variant, str(work / "seed"), timeout=600)
        target = work / "target.yaml"
        doc = target_doc(target_file, port=port, project=project, seed=work / "seed")
        target.write_text(yaml.safe_dump(doc))
        yield target
    finally:
        run("down", variant, timeout=120)


def short_calibration(
    scenario: Path, target: Path, out: Path, levels: tuple[float, ...], per_class: int
) -> tuple[CampaignResult, list[str]]:
    """``lbsim calibrate SCENARIO --target TARGET`` in-process and short: the
    ``levels`` replayed twice, 15 s measured each; returns the result and one
    printed row per paired metric (ending in its verdict)."""
    options = CampaignOptions(
        levels=levels,
        duration=15.0,
        warmup=5.0,
        per_class=per_class,
        out=out,
        repetitions=2,
        min_requests=0,
        phase_repeats=2,
    )
    result = run_target_campaign(scenario, target, options, say=print)
    rows = [
        f"{p.level:>4} {p.metric:<28} predicted {p.to_dict()['predicted_mean']:.4g} "
        f"measured {p.to_dict()['measured_mean']:.4g} error {p.mean:+.3f} ± {p.half:.3f} "
        f"bound {p.bound:g} {p.verdict}"
        for p in result.paired()
    ]
    print("paired errors over the replays:", *rows, sep="\n  ")
    return result, rows
