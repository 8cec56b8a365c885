"""The outputs of ``lbsim workload from-log``: ``workload.yaml`` (a scenario's
``workload:`` section, with what the log says in comments), ``summary.json``
(the same as data) and ``trace.csv`` (written while the log streams, by
:func:`lbsim.accesslog.read.from_log`).
"""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

from lbsim.accesslog.summary import PERCENTILE_ERROR, LogWorkload
from lbsim.report import atomic
from lbsim.report.jsonout import write_json

#: the files ``from-log`` writes into its output directory
OUTPUT_NAMES = ("workload.yaml", "trace.csv", "summary.json")
#: the most subnets a scenario accepts (lbsim.scenario.numbers.Subnets)
MAX_SUBNETS = 1_000_000
#: comment lines are wrapped to this width
WIDTH = 88


def num(x: float) -> str:
    """A number as YAML reads it (6 significant digits, never an exponent)."""
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    text = f"{x:.6g}"
    if "e" in text:
        text = f"{float(text):.12f}".rstrip("0").rstrip(".")
    return text


def _quoted(name: str) -> str:
    return json.dumps(name)  # a JSON string is a YAML string: "1.5" stays a name


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _stats_table(w: LogWorkload, key: str, title: str) -> list[str]:
    rows = [(c.name, getattr(c, key)) for c in w.listed_classes() if getattr(c, key)]
    if not rows:
        return []
    width = max(5, *(len(n) for n, _ in rows))
    out = [
        f"# {title}",
        f"#   {'class':<{width}} {'count':>8} {'mean':>9} {'p50':>9} {'p95':>9} {'p99':>9}",
    ]
    for name, s in rows:
        out.append(
            f"#   {name:<{width}} {int(s['count']):>8} {s['mean']:>9.4f} "
            f"{s['p50']:>9.4f} {s['p95']:>9.4f} {s['p99']:>9.4f}"
        )
    return out


def fragment_text(w: LogWorkload) -> str:
    """``workload.yaml``: the ``workload:`` section of a scenario, explained in comments."""
    lines = w.lines
    t = w.timing
    mean_rate = w.arrivals / w.duration if w.duration > 0 else 0.0
    notes = [
        f"Workload measured by `lbsim workload from-log` from {w.source} (format: {w.format}).",
        "Each class's cpu and queries are not in a log: give them yourself, or let "
        "`lbsim calibrate` measure them; merge this section into a scenario.",
        f"lines: {lines['read']} read, {lines['used']} used, {lines['malformed']} malformed, "
        f"{lines['blank']} blank; {lines['unmatched']} matched no pattern (class other).",
        f"arrivals: {w.arrivals} from {_when(w.first_arrival)} over {num(w.duration)} s "
        f"(mean {num(mean_rate)}/s); timestamps in {t['timestamps']}; reorder window "
        f"{num(t['reorder_window'])} s, {t['late_clamped']} arrivals later than it clamped.",
    ]
    heavy = w.heavy
    if heavy is not None:
        verdict = "reported" if heavy.reported else "not reported"
        notes.append(
            f"heavy users: {heavy.fraction:.1%} of the clients send {heavy.share:.1%} of the "
            f"requests of {', '.join(heavy.classes)}; Hoover index {heavy.hoover:.3f}, uniform "
            f"clients {heavy.noise:.3f}: {verdict}."
        )
    head = [
        line
        for note in notes
        for line in textwrap.wrap(note, WIDTH, initial_indent="# ", subsequent_indent="#   ")
    ]
    head += _stats_table(
        w, "response_time", "response time (s) from $request_time or HAProxy's Ta:"
    )
    head += _stats_table(
        w, "upstream_time", "upstream time (s) from $upstream_response_time (summed over tries):"
    )
    if any(c.response_time or c.upstream_time for c in w.classes):
        head.append(f"#   (percentiles within {PERCENTILE_ERROR:.1%} relative error)")
    body = [
        "workload:",
        "  open:",
        "    shape: step",
        f"    schedule:  # requests/s per {num(w.bin)} s from the first arrival",
    ]
    body += [f"      - [{num(at)}, {num(rate)}]" for at, rate in w.schedule]
    body.append("  classes:")
    for c in w.listed_classes():
        shown = f"requests: {c.count}, " + (c.pattern or "no pattern")
        body.append(f"    - {{name: {_quoted(c.name)}, weight: {num(c.weight)}}}  # {shown}")
    body += ["  clients:", f"    count: {w.clients}  # distinct client addresses"]
    if w.subnets <= MAX_SUBNETS:
        body.append(f"    subnets: {w.subnets}  # distinct IPv4 /24 and IPv6 /48 networks")
    if heavy is not None and heavy.reported:
        classes = ", ".join(_quoted(n) for n in heavy.classes)
        body.append(
            f"    heavy: {{fraction: {num(heavy.fraction)}, share: {num(heavy.share)}, "
            f"classes: [{classes}]}}"
        )
    return "\n".join(head + body) + "\n"


def write_outputs(w: LogWorkload, out_dir: Path) -> list[Path]:
    """``workload.yaml`` and ``summary.json`` in ``out_dir`` (atomically)."""
    fragment, summary = out_dir / OUTPUT_NAMES[0], out_dir / OUTPUT_NAMES[2]
    atomic.write_text(fragment, fragment_text(w))
    write_json(summary, w.to_dict())
    return [fragment, summary]
