"""The validation stories lbsim replays on the real stack (``lbsim story NAME``).

Each is one of the failures our users come with, sized for a 2-core machine;
its scenario lives under ``scenarios/stories/`` and runs in the simulator as
shipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lbsim.scenario.loader import load_scenario
from lbsim.scenario.schema import Scenario
from lbsim.validation.stories.harness import Story, Variant

#: the repository's scenarios (stories name their files relative to it)
SCENARIOS = Path(__file__).resolve().parents[3] / "scenarios" / "stories"

TOO_MANY_CONNECTIONS = Story(
    name="too-many-connections",
    title="Too many connections: persistent connections x PHP workers above max_connections",
    file=SCENARIOS / "too-many-connections.yaml",
    about=(
        "24 PHP workers keep a persistent connection each against max_connections 15: "
        "the workers that found the server full get error 1040 on every request they "
        "take. The fixes: a connection per request, or pm.max_children within the limit."
    ),
    variants=(
        Variant("persistent", (), "pconnect, 2 x 12 workers, max_connections 15"),
        Variant(
            "per_request",
            ("database.connect=per_request",),
            "the fix: a connection per request (closed when the request ends)",
        ),
        Variant(
            "fewer_workers",
            ("app.workers=7",),
            "the other fix: pm.max_children 7 (2 x 7 = 14 <= 15 connections)",
        ),
    ),
    counts=("completed", "db_1040"),
    zero={"per_request": ("db_1040",), "fewer_workers": ("db_1040",)},
)


@dataclass(frozen=True)
class PolicyStory:
    """Latency under each policy on the same arrivals, calibrated
    (:mod:`lbsim.validation.stories.policies`)."""

    name: str
    title: str
    file: Path
    policies: tuple[str, ...]
    #: the rate as a fraction of the calibrated capacity
    level: float
    about: str = ""


HEAVY_USERS = PolicyStory(
    name="heavy-users",
    title="Heavy users vs policy: roundrobin, leastconn and agent-check least_load (HAProxy)",
    file=SCENARIOS / "heavy-users.yaml",
    policies=("roundrobin_haproxy", "leastconn_haproxy", "least_load"),
    level=0.7,
    about=(
        "One client in ten sends nine in ten of the heavy reports. roundrobin keeps "
        "feeding a node whose workers are stuck on reports; leastconn counts open "
        "connections; least_load scales the weights by the idle workers each node's "
        "agent reports every 2 s. The same arrivals under each, on three 0.5-core nodes."
    ),
)


@dataclass(frozen=True)
class FaultStory(Story):
    """A story whose scenario kills (and restarts) an app node: its counts and
    its timeline (:mod:`lbsim.validation.stories.faults`)."""


#: HAProxy's variant: its round robin, and layer-4 checks every 2 s (3 down, 2 up)
HAPROXY_CHECKS = (
    "balancer.product=haproxy",
    "balancer.policy=roundrobin_haproxy",
    "balancer.health_check={interval: 2, fall: 3, rise: 2}",
)

APP_NODE_CRASH = FaultStory(
    name="app-node-crash",
    title="A PHP node killed mid-run and started again, under nginx and HAProxy",
    file=SCENARIOS / "app-node-crash.yaml",
    about=(
        "Three php-fpm nodes of half a core carry 30 requests/s; app2 is killed "
        "(docker kill, SIGKILL) at 20 s and started again at 35 s. What it held is reset; "
        "its address is gone, so a new connection to it is neither accepted nor refused: "
        "its SYN goes unanswered until the balancer's connect timeout (nginx 60 s, HAProxy "
        "5 s) or the node is back, and the clients give up at 10 s. nginx takes the node "
        "out only when a try fails (max_fails 1: a reset at the kill, else nothing before "
        "its connect timeout); HAProxy marks it down after 3 failed checks, each timing "
        "out after the 2 s interval and the next 2 s later. Failures by cause and by "
        "second, the error burst, the throughput dip and the recovery."
    ),
    variants=(
        Variant(
            "nginx",
            (),
            "nginx round robin, max_fails 1, fail_timeout 10 s, next_upstream error timeout",
        ),
        Variant(
            "haproxy",
            HAPROXY_CHECKS,
            "HAProxy roundrobin, check inter 2 s fall 3 rise 2, retries 3, timeout connect 5 s",
        ),
    ),
    counts=("completed", "failed_outage", "failed_after"),
)


@dataclass(frozen=True)
class GaleraStory(Story):
    """A story judged on the Galera cluster's counters and the latency, calibrated
    (:mod:`lbsim.validation.stories.galera`)."""

    #: the variant whose stack is calibrated at low load (the others reuse it)
    calibrate_on: str = ""
    #: the variants where the model predicts flow control (the live test's check)
    paused: tuple[str, ...] = ()
    #: the calibrated CPU per write-set on the other nodes is the applier's
    #: (certification, row apply and commit run in the applier thread, after
    #: the receive queue), not spent beside it (:func:`lbsim.validation.stories.galera.on_applier`)
    on_applier: bool = True


SLOW_GALERA_NODE = GaleraStory(
    name="slow-galera-node",
    title="A slow Galera node: the whole cluster at the pace of its slowest member",
    file=SCENARIOS / "slow-galera-node.yaml",
    about=(
        "Writes go to db1 alone and reads to db1 and db2; db3 only applies the write-sets "
        "(four per order), on a fifth of the others' CPU (slowness 5, replayed as "
        "0.5/5 = 0.1 cores in the model and the stack alike). With gcs.fc_limit 4 (3 nodes: "
        "STOP above 7 queued) its receive queue passes the limit whenever a burst of "
        "orders arrives, its FC_STOP pauses every commit on db1, and the orders wait. "
        "The fix: the default fc_limit 16 (STOP above 28). Without the slow node "
        "nothing pauses."
    ),
    variants=(
        Variant("slow", (), "db3 at 0.1 cores (slowness 5), fc_limit 4: flow control"),
        Variant(
            "fc_limit_16",
            ("database.fc_limit=16",),
            "the fix: gcs.fc_limit 16 (STOP above 28 write-sets queued)",
        ),
        Variant(
            "even",
            ("database.nodes=3",),
            "no slow node: three nodes of 0.5 cores, fc_limit 4",
        ),
    ),
    calibrate_on="even",
    paused=("slow",),
)


class ConflictStory(Story):
    """A counts story on a Galera cluster that also counts its conflicts: the
    nodes' ``wsrep_local_cert_failures`` and ``wsrep_local_bf_aborts`` and the
    application's retries (:mod:`lbsim.validation.stories.conflicts`)."""


#: the conflict counts: in every variant's comparison, 0 with a single writer
CONFLICTS = ("db_1213", "wsrep_local_cert_failures", "wsrep_local_bf_aborts")

HOT_ROWS = ConflictStory(
    name="hot-rows",
    title="Hot rows, many writers: Galera conflicts (1213) with multi-writer vs single writer",
    file=SCENARIOS / "hot-rows.yaml",
    about=(
        "18 autocommit UPDATEs a second of one of 4 hot rows, each holding its row for "
        "~15 ms, through a proxy that spreads the connections over three Galera nodes. "
        "A write-set from another node on a row a local write holds aborts it "
        "(wsrep_local_bf_aborts); one certified after the write began fails "
        "certification (wsrep_local_cert_failures); with wsrep_retry_autocommit 0 the "
        "client gets error 1213. The fixes: a single writer (every connection to db1, "
        "where writers wait for the row lock), or the application retrying the 1213."
    ),
    variants=(
        Variant("multi_writer", (), "proxy round robin over 3 nodes, no retries"),
        Variant(
            "single_writer",
            ("database.routing.policy=first",),
            "the fix: the proxy's first (every connection to db1)",
        ),
        Variant(
            "app_retries",
            ("database.app_retries=2",),
            "multi-writer, the application retries a 1213 twice",
        ),
    ),
    counts=("completed", *CONFLICTS, "retries"),
    zero={"single_writer": CONFLICTS},
)


@dataclass(frozen=True)
class ReadbackStory:
    """Read back your own write on another node, without and with ``sync_wait``
    (:mod:`lbsim.validation.stories.readback`): the stale-read probe, ``n``
    write → read pairs each way, after ``polls`` polled writes calibrate the
    model's visibility lag in the same run."""

    name: str
    title: str
    file: Path
    writer: str = "db1"
    reader: str = "db2"
    n: int = 1000
    polls: int = 1000
    about: str = ""
    #: the shipped scenario's two settings (the probe measures both in every repetition)
    variants: tuple[Variant, ...] = (
        Variant("async", (), "reads as they come (wsrep_sync_wait 0)"),
        Variant("sync_wait", ("database.sync_wait=true",), "causal reads (wsrep_sync_wait 1)"),
    )

    def scenario(self, variant: Variant | None = None, extra: Sequence[str] = ()) -> Scenario:
        return load_scenario(self.file, [*(variant.overrides if variant else ()), *extra])


READ_YOUR_WRITE = ReadbackStory(
    name="read-your-write",
    title="Reading back your own write on another node, with and without sync_wait",
    file=SCENARIOS / "read-your-write.yaml",
    about=(
        "A user saves on db1 and the page reads it back at once on db2. Without "
        "wsrep_sync_wait the read sometimes comes before db2 shows the write (stale); "
        "with it the read first waits for db2 to catch up: never stale, a little "
        "slower. The stale fraction and the latency sync_wait adds, predicted (the "
        "visibility lag calibrated in the same run) vs measured."
    ),
)

GALERA_NODE_CRASH = FaultStory(
    name="galera-node-crash",
    title="A Galera node killed mid-run and started again, behind HAProxy's DB proxy",
    file=SCENARIOS / "galera-node-crash.yaml",
    about=(
        "Two PHP nodes reach a 3-node Galera cluster through HAProxy (TCP, round robin, "
        "check inter 2 s fall 3 rise 2, retries 3, timeout connect 5 s) at 12 requests/s; "
        "db2 is killed (docker kill) at 20 s and started again at 45 s. db1 and db3 keep "
        "quorum and carry on. Until the proxy's checks mark db2 down (about 10 s: each "
        "probe of the vanished address times out) it still sends one connection in three "
        "there; each waits 4 x 5 s of unanswered connects and fails with 2006 (HAProxy "
        "closes before the greeting: mysqlnd's server has gone away), so the burst comes "
        "20 s after the kill; a query running on db2 at the kill fails with 2013. "
        "At the restart db2 recovers its position, joins and "
        "catches up by IST from a donor before the checks bring it back. Failures by cause "
        "and by second, the error burst, the throughput dip and the recovery."
    ),
    variants=(
        Variant(
            "proxy",
            (),
            "HAProxy DB proxy, round robin, per-request connections, db2 down 20-45 s",
        ),
    ),
    counts=("completed", "failed_outage", "failed_after", "db_2006", "db_2013"),
)

STORIES: dict[str, Story | PolicyStory | ReadbackStory] = {
    s.name: s
    for s in (
        HEAVY_USERS,
        TOO_MANY_CONNECTIONS,
        APP_NODE_CRASH,
        GALERA_NODE_CRASH,
        SLOW_GALERA_NODE,
        HOT_ROWS,
        READ_YOUR_WRITE,
    )
}


def story(name: str) -> Story | PolicyStory | ReadbackStory:
    """The story called ``name``; KeyError naming the known ones otherwise."""
    try:
        return STORIES[name]
    except KeyError:
        raise KeyError(f"no story {name!r}; the stories are: {', '.join(STORIES)}") from None
