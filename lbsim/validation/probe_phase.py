"""The calibration campaign's stale-read probe, as a phase with its background.

After the levels, a Galera campaign probes stale reads on the real cluster
(:func:`lbsim.validation.probe.probe_stale_reads`: write a row on one node,
read it back on another, without and with ``wsrep_sync_wait``) and compares
the stale fraction with the calibrated model's
(:func:`lbsim.validation.probe.model_stale_fraction`).

A stale read is a race between the reader's round trip and the writer's
replication, so another program that starts or stops taking a core in the
middle of the probe moves the fraction the way a replay's latency moves.
The probe is therefore measured like every other phase: the CPU used outside
the stack is sampled over it (:class:`lbsim.validation.background.Sampler`),
a probe whose background moved more than it can absorb
(:func:`lbsim.validation.background.check_phase`) is repeated, up to the
campaign's ``phase_repeats``, and otherwise reported as not valid with the
reason — never compared as if it measured the stack.

A probe's fraction is one sample of its reads: 100 reads at 5 % stale are
within about 5 points of the truth by chance alone (Wilson 95 % interval).
The error is judged against the bound plus that half-width
(:attr:`lbsim.validation.accuracy.MetricError.noise`), as the paired metrics
are judged by their interval: a CI run's probe measured 4.9 points from the
model on 100 reads, which is noise, not a miss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lbsim.scenario.database import Galera
from lbsim.scenario.loader import load_scenario
from lbsim.scenario.schema import Scenario
from lbsim.validation.accuracy import BOUNDS, MetricError, error, proportion_half_width
from lbsim.validation.background import (
    Meter,
    PhaseBackground,
    Sampler,
    check_phase,
    phase_background,
)
from lbsim.validation.probe import ProbeResult, model_stale_fraction, probe_stale_reads

Say = Callable[[str], None]
#: the probe itself: (url, writer, reader, pairs, sync_wait) -> result
Probe = Callable[[str, str, str, int, bool], ProbeResult]


@dataclass
class ProbePhases:
    """The probe's errors (sync_wait 0, then 1) and why a probe was not valid."""

    errors: list[MetricError] = field(default_factory=list)
    backgrounds: list[PhaseBackground] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def probe_once(
    probe: Probe, meter: Meter, url: str, names: tuple[str, str], pairs: int, sync: bool
) -> tuple[ProbeResult, PhaseBackground]:
    """One probe with the outside CPU sampled over it, checked for movement."""
    with Sampler(meter) as sampler:
        got = probe(url, names[0], names[1], pairs, sync)
    bg = phase_background(f"probe sync_wait={int(sync)}", sampler.samples)
    check_phase(bg)
    bg.problems += sampler.errors
    return got, bg


def probe_phases(
    url: str,
    base: Scenario,
    calibrated: Path,
    meter: Meter,
    pairs: int,
    repeats: int,
    say: Say,
    probe: Probe = probe_stale_reads,
) -> ProbePhases:
    """Measured against predicted stale-read fraction, without and with
    sync_wait; each probe repeated (at most ``repeats`` more times) while the
    machine moved under it."""
    assert isinstance(base.database, Galera)
    nodes = [n.name for n in base.database.resolved_nodes()]
    names = (nodes[0], nodes[1])
    bound = next(b for b in BOUNDS if b.metric == "galera.stale_read_fraction")
    model = load_scenario(calibrated)
    out = ProbePhases()
    for sync in (False, True):
        tag = f"probe sync_wait={int(sync)}"
        for attempt in range(1, repeats + 2):
            say(f"stale-read probe: {pairs} write→read pairs, sync_wait={int(sync)}")
            got, bg = probe_once(probe, meter, url, names, pairs, sync)
            bg.attempt = attempt
            if bg.valid:
                break
            say(f"{tag}: the machine moved ({'; '.join(bg.problems)})")
        out.backgrounds.append(bg)
        out.problems += [f"{tag}: {p}" for p in bg.problems]
        predicted = model_stale_fraction(model, sync)
        out.errors.append(
            MetricError(
                base.name,
                tag,
                "galera.stale_read_fraction",
                predicted,
                got.stale_fraction,
                error(predicted, got.stale_fraction, "absolute"),
                "absolute",
                bound.limit,
                noise=proportion_half_width(got.stale, got.reads),
            )
        )
    return out
