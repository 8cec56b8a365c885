"""The Galera stale-read probe: measured on the live stack, and predicted by the model.

What is compared. One client writes a row on node ``writer`` (an autocommit
single-row UPDATE) and, as soon as the OK comes back, reads that row on node
``reader``; again and again, back to back. A read that does not see the write
just acknowledged is stale.

- Measured (:func:`probe_stale_reads`): ``GET /probe`` on the stack
  (validation/app/probe.php) runs that loop inside one PHP worker with direct
  connections to the two nodes; stale fraction = stale reads / reads.
- Model (:func:`model_stale_fraction`): a scenario derived from the given one
  keeps its database (cores, hosts, apply cost, replication delay, commit,
  flow control) and network, and replaces the workload by one closed-loop
  client with no think time whose requests are ``write (own row) → read (own
  row)`` with no PHP CPU, through one app node; writes go to ``writer`` and
  reads to ``reader`` (pinned routing with a read/write split), on
  persistent connections as the endpoint's (opened once, before its loop: a
  scenario's ``connect: per_request`` with its calibrated ``handshake`` put
  a new connection's round trips and accept CPU, ~0.9 ms, between the OK and
  the read, and the model's first reads came too late to be stale: 0.9 %
  predicted where the polls' first reads missed 5.8 %). The result is
  the model's ``stale_reads / reads`` (``galera.stale_read_fraction``): reads
  issued after the write was acknowledged on a node that had not yet applied
  it. In the model a write-set reaches every node at the same instant, so the
  race is: the writer's commit plus the two hops PHP → reader
  (2 × app_db) against the reader's apply (waiting for its applier, the
  ``apply`` CPU; the group communication ``receive`` CPU runs beside it and
  does not delay visibility) plus its ``visibility_lag``. A calibrated
  scenario has ``apply`` 0 and the ``visibility_lag`` the poll probe
  measured (:mod:`lbsim.validation.visibility`: the commit plus each write's
  lag past the writer's acknowledgement), so the model's first read is
  stale as often as the real one was. With ``sync_wait`` the read waits for
  the reader to show everything ordered before it: never stale.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from lbsim.scenario.database import Galera
from lbsim.scenario.loader import scenario_from_data
from lbsim.scenario.schema import Scenario

#: the probe's SQL statements: a primary-key UPDATE / SELECT of one row (s of server CPU)
WRITE_TIME = 0.0002
READ_TIME = 0.0001


class ProbeError(RuntimeError):
    """The probe endpoint answered an error or something that is not a probe result."""


@dataclass(frozen=True)
class ProbeResult:
    n: int
    stale: int
    stale_fraction: float
    sync_wait: bool
    mean_read_s: float
    p95_read_s: float
    errors: int
    #: mean time of the UPDATE on the writer (s); NaN when the endpoint does not say
    mean_write_s: float = float("nan")

    @property
    def reads(self) -> int:
        """Reads answered (the denominator of ``stale_fraction``)."""
        return round(self.stale / self.stale_fraction) if self.stale else self.n - self.errors


def parse_probe(body: str | bytes) -> ProbeResult:
    """The JSON answer of ``GET /probe`` as a :class:`ProbeResult` (checked)."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ProbeError(f"the probe did not answer JSON: {body[:200]!r}") from exc
    if not isinstance(data, dict):
        raise ProbeError(f"the probe answered {type(data).__name__}, not an object")
    if "error" in data:
        raise ProbeError(f"the probe failed: {data['error']}")
    required = ("n", "stale", "stale_fraction", "sync_wait", "mean_read_s", "p95_read_s", "errors")
    missing = [k for k in required if k not in data]
    if missing:
        raise ProbeError(f"the probe answer lacks {', '.join(missing)}")
    if data["stale_fraction"] is None:
        raise ProbeError(f"the probe read nothing ({data['errors']} errors of {data['n']})")
    n, stale, errors = int(data["n"]), int(data["stale"]), int(data["errors"])
    fraction = float(data["stale_fraction"])
    if not (0 <= stale <= n and 0 <= errors <= n and 0.0 <= fraction <= 1.0):
        raise ProbeError(f"inconsistent probe answer: {data}")
    write = data.get("mean_write_s")
    return ProbeResult(
        n=n,
        stale=stale,
        stale_fraction=fraction,
        sync_wait=bool(int(data["sync_wait"])),
        mean_read_s=float(data["mean_read_s"]),
        p95_read_s=float(data["p95_read_s"]),
        errors=errors,
        mean_write_s=float(write) if write is not None else float("nan"),
    )


def probe_url(url: str, writer: str, reader: str, n: int, sync_wait: bool, key: int = 1) -> str:
    """The probe's address on the stack at ``url`` (loopback only)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if parts.scheme != "http" or not loopback:
        raise ValueError(f"the probe runs against a local stack (http://127.0.0.1:PORT), not {url}")
    query = urllib.parse.urlencode(
        {"n": n, "writer": writer, "reader": reader, "sync_wait": int(sync_wait), "key": key}
    )
    return urllib.parse.urlunsplit(("http", parts.netloc, "/probe", query, ""))


def probe_stale_reads(
    url: str,
    writer: str,
    reader: str,
    n: int = 200,
    sync_wait: bool = False,
    key: int = 1,
    timeout: float = 120.0,
) -> ProbeResult:
    """Run the probe on the stack behind ``url`` (e.g. ``http://127.0.0.1:18090``).

    ``key`` is the row of ``lbsim.kv`` the probe writes (it must be the only
    writer of that row while it runs).
    """
    target = probe_url(url, writer, reader, n, sync_wait, key)
    request = urllib.request.Request(target, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise ProbeError(f"{target}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
    except OSError as exc:
        raise ProbeError(f"{target}: {exc}") from exc
    return parse_probe(body)


def probe_scenario(
    scenario: Scenario,
    writer: str,
    reader: str,
    sync_wait: bool,
    *,
    duration: float = 20.0,
    write_time: float = WRITE_TIME,
    read_time: float = READ_TIME,
) -> Scenario:
    """The scenario the model runs for the probe (see the module docstring)."""
    db = scenario.database
    if not isinstance(db, Galera):
        raise ValueError(f"the stale-read probe needs a Galera cluster, not {db.engine!r}")
    if write_time <= 0 or read_time <= 0:
        raise ValueError("write_time and read_time must be > 0 (a probe cycle takes time)")
    nodes = [n.model_dump(mode="json") for n in db.resolved_nodes()]
    names = [n["name"] for n in nodes]
    for role, name in (("writer", writer), ("reader", reader)):
        if name not in names:
            raise ValueError(f"{role} {name!r} is not a database node ({', '.join(names)})")
    # pinned reads go to node (app index mod N) = node 0 for the single app node:
    # put the reader first; each node keeps its own settings
    r = names.index(reader)
    order = [r, *(i for i in range(len(nodes)) if i != r)]
    nodes = [nodes[i] for i in order]
    database = db.model_dump(mode="json")
    database.update(
        nodes=nodes,
        sync_wait=sync_wait,
        # probe.php opens its two connections once, before its loop: no handshake per cycle
        connect="persistent",
        routing={
            "mode": "pinned",
            "read_write_split": True,
            "writer": order.index(names.index(writer)),
        },
    )
    app = scenario.app.resolved_nodes()[0]
    data: dict[str, Any] = {
        "name": f"{scenario.name}-probe",
        "seed": scenario.seed,
        "duration": duration,
        "warmup": 1.0,
        "replications": 1,
        "workload": {
            "closed": {"users": 1, "think_time": 0},
            "clients": {"count": 1},
            "timeout": 1e9,
            "classes": [
                {
                    "name": "probe",
                    "cpu": 0,
                    "queries": [
                        {"kind": "write", "time": write_time, "row": "client"},
                        {"kind": "read", "time": read_time, "row": "client"},
                    ],
                }
            ],
        },
        "hosts": [h.model_dump(mode="json") for h in scenario.hosts],
        "app": {"nodes": 1, "workers": 1, "cores": app.cores, "host": app.host},
        "network": scenario.network.model_dump(mode="json"),
        "database": database,
    }
    return scenario_from_data(data, f"<probe of {scenario.name}>")


def model_stale_fraction(
    scenario: Scenario,
    sync_wait: bool,
    writer: str | None = None,
    reader: str | None = None,
    *,
    duration: float = 20.0,
    write_time: float = WRITE_TIME,
    read_time: float = READ_TIME,
) -> float:
    """The model's stale fraction for the probe pattern on ``scenario``'s cluster.

    ``writer`` and ``reader`` default to the first two database nodes.
    ``write_time`` / ``read_time`` are the server CPU of the probe's one-row
    statements (the apply cost on the reader is the scenario's ``apply``, or
    ``write_time`` when it has none, as the model does).
    """
    from lbsim.experiment.run import simulate

    db = scenario.database
    if not isinstance(db, Galera):
        raise ValueError(f"the stale-read probe needs a Galera cluster, not {db.engine!r}")
    names = [n.name for n in db.resolved_nodes()]
    if len(names) < 2 and (writer is None or reader is None):
        raise ValueError("the probe needs two nodes (a writer and a reader)")
    derived = probe_scenario(
        scenario,
        writer if writer is not None else names[0],
        reader if reader is not None else names[1],
        sync_wait,
        duration=duration,
        write_time=write_time,
        read_time=read_time,
    )
    galera = simulate(derived, replications=1).runs[0]["galera"]
    if not galera["reads"]:
        raise RuntimeError(f"the probe scenario made no reads in {duration} s")
    return float(galera["stale_read_fraction"])
