"""Live: calibrate small scenarios against the real stack and judge the model by
the same statistics as ``lbsim calibrate`` (:mod:`lbsim.validation.paired`).

Each test runs one whole campaign: build and start the stack, measure the
idle stack, the machine's background and every class at low load, write the
calibrated scenario, replay two load levels (25 % and 50 % of the measured
capacity) three times each with different seeds, interleaved, simulate each
replay with its seed, CPU speed and measured background, probe stale reads
(Galera), write the report, stop the stack. The machine is kept to these
tests while they run (tests/conftest.py), but other programs may run beside
them (a CI runner, ``tests/run_busy.sh``): their CPU is measured as background
in every phase and placed on the model's host, not mistaken for the stack's.

A test fails when

* a metric's mean paired error misses its bound *significantly* (its whole
  95 % interval lies beyond the bound: model error, not noise), or
* the low-load calibration or the stale-read probe was not a measurement of
  the stack (the machine's background moved more than it can absorb, or its
  CPU speed more than 10 %, even after the phase was repeated), or no level
  kept two valid replays. A replay the machine moved under is reported (the
  message names the phase and what moved) and left out of the paired
  statistics, as ``lbsim calibrate`` does: noise, not model error; a level
  left with fewer than two is reported, not judged.

A known model error (the galera shop's latency, see ``GALERA_KNOWN``) is
printed, and fails only beyond its documented size.

A miss whose interval straddles the bound is noise at R = 3: printed with the
repetitions that would decide it, not a failure. There is no retrying of
whole campaigns.

``LBSIM_LIVE_BURN=0.5`` (cores, up to one per started process) runs each
campaign beside a CPU burner started once the test holds the machine, and
stopped (killed, and bounded in time by itself) when it ends: the busy
machine the calibration must absorb as measured background.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lbsim.validation.campaign import CampaignOptions, CampaignResult, run_campaign
from lbsim.validation.paired import PairedMetric
from tests.stack_support import require_docker

pytestmark = [pytest.mark.stack, pytest.mark.slow]

LIVE = Path(__file__).parent / "scenarios" / "live"


#: a pure-Python spin for ``duty`` of every 100 ms, for at most ``seconds``
_BURN = (
    "import sys, time\n"
    "duty, end = float(sys.argv[1]), time.monotonic() + float(sys.argv[2])\n"
    "while time.monotonic() < end:\n"
    "    t = time.monotonic()\n"
    "    while time.monotonic() - t < 0.1 * duty: pass\n"
    "    time.sleep(0.1 * (1 - duty))\n"
)


@contextlib.contextmanager
def _burner(cores: float, seconds: float = 1800.0) -> Iterator[None]:
    """Other programs using ``cores`` of the machine while the block runs."""
    procs = []
    left = cores
    try:
        while left > 1e-9:
            duty = min(left, 1.0)
            procs.append(subprocess.Popen([sys.executable, "-c", _BURN, str(duty), str(seconds)]))
            left -= duty
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=30)


def _campaign(tmp_path: Path, name: str, balancer: str, port: int) -> CampaignResult:
    require_docker()
    with _burner(float(os.environ.get("LBSIM_LIVE_BURN", "0") or 0)):
        return _run(tmp_path, name, balancer, port)


def _run(tmp_path: Path, name: str, balancer: str, port: int) -> CampaignResult:
    file = tmp_path / name  # the calibrated scenario is written next to it
    shutil.copy(LIVE / name, file)
    options = CampaignOptions(
        levels=(0.25, 0.5),
        duration=15.0,
        warmup=5.0,
        per_class=25,
        balancer=balancer,
        port=port,
        out=tmp_path / "report",
        keep_up=False,
        probe_reads=100,
        repetitions=3,
        min_requests=0,  # short replays: the interval says what they cannot decide
        # a phase the machine moved under is measured again up to 3 times, each
        # after waiting for the outside load to hold still (a CI run lost the
        # least_load campaign to its slow class: 3 attempts, outside load 0.42 ->
        # 0.21 cores, a work unit ×1.43 its cost minutes earlier, steal 0.12)
        phase_repeats=3,
    )
    return run_campaign(file, options, say=print)


def _row(p: PairedMetric) -> str:
    half = f"{p.half:.3f}" if math.isfinite(p.half) else "–"
    more = f" (R={p.r_needed} would decide)" if p.r_needed else ""
    return (
        f"{p.level:>4} {p.metric:<32} predicted {p.to_dict()['predicted_mean']:.4g} measured "
        f"{p.to_dict()['measured_mean']:.4g} error {p.mean:+.3f} ± {half} bound {p.bound:g} "
        f"{p.verdict}{more}"
    )


#: a known model error: how far *below* the measurement (relative) the model's
#: value of a metric may lie, its whole 95 % interval, before it fails; above
#: the measurement the ordinary bound holds. See the galera test.
Known = dict[str, float]


def _known_error(p: PairedMetric, known: Known) -> bool:
    low = known.get(p.metric)
    return low is not None and p.mean < 0 and p.mean - p.half >= -low


def _check(result: CampaignResult, known: Known | None = None) -> None:
    known = known or {}
    rows = [_row(p) for p in result.paired()]
    print("paired errors over the replays:", *rows, sep="\n  ")
    not_valid = result.not_valid()
    moved = "the machine moved during these phases; they are not measurements of the stack:"
    # A replay the machine moved under even after its repeats is reported and left
    # out of the paired statistics, as lbsim calibrate does: noise, not model error
    # (this VM's speed drifts; a CI run saw a work unit's cost move ×1.31 within a
    # 20 s phase with nothing else running, another ×1.44 for every replay of a
    # level). The low-load calibration and the probe must be valid; a level is
    # judged when it kept two valid replays (an interval), and one level at least.
    assert not [p for p in not_valid if not p.startswith("level ")], "\n".join([moved, *not_valid])
    if not_valid:
        print(moved, *not_valid, sep="\n  ")
    judged = []
    for lv in result.levels:
        assert len(lv.replays) == 3 and {r.seed for r in lv.replays} == {
            result.scenario.seed + r for r in range(3)
        }
        valid = sum(r.valid for r in lv.replays)
        assert all(p.n == valid for p in lv.paired)
        if valid >= 2:
            judged.append(lv)
        else:
            print(f"level {lv.level:.0%} not judged: {valid} valid replay(s) of 3")
    assert judged, "\n".join(["no level kept two valid replays", *not_valid])
    paired = [p for lv in judged for p in lv.paired]
    for p in paired:
        if p.verdict == "miss" and _known_error(p, known):
            print("known model error (see the test):", _row(p))
    misses = [_row(p) for p in paired if p.verdict == "miss" and not _known_error(p, known)]
    probe = [f"{e.level} {e.metric} {e.error:.3f} > {e.bound:g}" for e in result.probe if not e.ok]
    assert not misses and not probe, "\n".join(
        ["outside the bounds beyond the 95 % interval (model error):", *misses, *probe]
    )
    metrics = {p.metric for p in result.paired()}
    assert {"throughput", "latency.mean", "latency.p95"} <= metrics
    assert any(m.startswith("utilisation.app.") for m in metrics)
    out = result.outdir
    doc = json.loads((out / "errors.json").read_text())
    assert len(doc["paired"]) == len(result.paired())
    assert {"metric", "mean_error", "ci95", "verdict", "errors", "r_needed"} <= set(
        doc["paired"][0]
    )
    phases = {p["phase"] for p in doc["phases"]}
    assert "idle" in phases and any(p.startswith("class ") for p in phases)
    assert all(math.isfinite(p["cores"]) for p in doc["phases"])
    for name in ("report.md", "calibration.json", "measurements.csv", "latency.png"):
        assert (out / name).stat().st_size > 0
    assert "Background and CPU speed per phase" in (out / "report.md").read_text()
    assert result.calibrated_file.is_file()


#: The galera shop's known model error: the model's latency is low, by 8-21 %
#: for the mean (CI 2026-12-06: -19 % ± 6 at 25 %, -21 % ± 5 at 50 %; a local
#: run the same day -8 % ± 1 and -17 % ± 8), its short classes most (page
#: 24 ms predicted against 28-36 ms measured at 50 %). At low load the page's
#: database time as PHP sees it is 4.0 ms against the 1.5 ms the calibrated
#: model gives it (its database CPU less the handshake, plus the network): a
#: fixed part the calibration does not place yet, and a part that grows with
#: the load. A model low by more than this, or high by more than the bound,
#: still fails.
GALERA_KNOWN: Known = {"latency.mean": 0.30, "latency.p95": 0.40}


def test_galera_round_robin_calibrates_within_bounds(tmp_path: Path) -> None:
    result = _campaign(tmp_path, "calibrate-galera.yaml", "nginx", 18110)
    _check(result, GALERA_KNOWN)
    assert {p.metric for p in result.paired()} >= {"galera.flow_control.paused"}
    probes = {e.level: e for e in result.probe}
    assert set(probes) == {"probe sync_wait=0", "probe sync_wait=1"}
    assert probes["probe sync_wait=1"].measured == 0.0  # causal reads are never stale


def test_haproxy_least_load_calibrates_within_bounds(tmp_path: Path) -> None:
    result = _campaign(tmp_path, "calibrate-least-load.yaml", "haproxy", 18120)
    _check(result)
    served = [result.levels[-1].measured["app"][n]["served"] for n in ("app1", "app2")]
    assert min(served) > 0  # the agent weights kept both nodes in use
