"""Schema of the database tier: none, a single MySQL/MariaDB server, or a Galera cluster.

Times in seconds. Query service times come from the request classes'
``queries`` lists; the keys below describe the servers, connections and
replication.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator

from lbsim.scenario.distributions import Deterministic, DistSpec, coerce_distribution
from lbsim.scenario.errors import AtKey
from lbsim.scenario.numbers import Fraction, NonNegFloat, NonNegInt, PositiveFloat, PositiveInt
from lbsim.scenario.outages import HealthCheck, Outage

Dist = Annotated[DistSpec, BeforeValidator(coerce_distribution)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


def _zero() -> Deterministic:
    return Deterministic(value=0.0)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NoDatabase(_Strict):
    """Requests make no queries."""

    engine: Literal["none"] = "none"


class ServerSettings(_Strict):
    """What every MySQL/MariaDB server has (single server or Galera node)."""

    #: CPU cores; running queries (and Galera appliers) share them
    cores: PositiveFloat = 4.0
    #: CFS bandwidth period (s) of the server's container: its threads run at
    #: full speed until they have used ``cores × cpu_period`` CPU-seconds in
    #: the period, then wait for the next (Docker ``cpus``: 0.1 s; ``lbsim
    #: stack`` gives database containers below one core 0.01 s). None: the
    #: cores processor-shared at ``cores`` (the same mean, no waits)
    cpu_period: PositiveFloat | None = None
    #: a host (``hosts:``) whose cores this server shares with the other
    #: containers placed there; for Galera the default of every node
    host: Name | None = None
    #: max_connections; the next connection attempt fails with error 1040
    max_connections: PositiveInt = 151
    #: queries running at once (thread pool size / innodb_thread_concurrency);
    #: others wait in FIFO order. None: one thread per connection, no limit
    threads: PositiveInt | None = None
    #: innodb_lock_wait_timeout (s): a write waiting longer for a row lock fails with 1205
    lock_wait_timeout: PositiveFloat = 50.0
    #: commit cost of a write transaction (log flush), a delay holding its row locks
    commit: Dist = Field(default_factory=_zero)
    #: rows outside the hot set are drawn from this many keys
    key_space: PositiveInt = 1_000_000
    #: Zipf exponent for picking hot rows (0: uniform over the hot rows)
    skew: Annotated[float, Strict(), Field(ge=0, le=5)] = 0.0
    #: how PHP connects: a new connection per request, or one persistent
    #: connection per PHP worker (pconnect), reused by its later requests
    connect: Literal["per_request", "persistent"] = "per_request"
    #: CPU the server spends accepting a new connection (thread, authentication),
    #: before its first query; the handshake also costs one round trip
    #: (2 × network.app_db). Reused persistent connections skip it.
    handshake: Dist | None = None
    #: extra attempts of a query that failed with 1213 (deadlock / certification
    #: conflict) by the application before the request fails
    app_retries: NonNegInt = 0


class MySQL(ServerSettings):
    engine: Literal["mysql"]


class GaleraNodeSpec(_Strict):
    """One Galera node; keys left out take the cluster-wide values."""

    name: Name | None = None
    cores: PositiveFloat | None = None
    #: the node's CFS period (default: the cluster-wide ``cpu_period``)
    cpu_period: PositiveFloat | None = None
    #: the host this node runs on (default: the cluster-wide ``host``)
    host: Name | None = None
    max_connections: PositiveInt | None = None
    applier_threads: PositiveInt | None = None
    #: multiplies every CPU cost on this node (2.0: a node half as fast)
    slowness: PositiveFloat = 1.0
    #: multiplies, on top of ``slowness``, the CPU this node spends on each
    #: write-set it receives (``receive`` and ``apply``): a node in a small CFS
    #: quota spends more per write-set than the calibrated cost (``lbsim story
    #: slow-galera-node`` measures it, :mod:`lbsim.validation.node_costs`)
    write_set_cost: PositiveFloat = 1.0
    #: extra one-way network delay to this node (s); group communication waits
    #: for the slowest member
    latency: NonNegFloat = 0.0
    #: the node is killed at ``start`` and started again ``duration`` s later
    #: (:mod:`lbsim.model.db.membership`): it leaves the cluster, rejoins
    #: ``Galera.rejoin`` s after the restart and catches up by IST
    outages: tuple[Outage, ...] = ()


class GaleraRouting(_Strict):
    """How app nodes reach database nodes.

    ``pinned``: app node i uses database node i mod N. ``proxy``: a proxy
    (ProxySQL/MaxScale/HAProxy) picks a node per connection with a balancer
    policy; ``first`` sends everything to one node (single writer). With
    ``read_write_split`` writes always go to node ``writer`` and reads use the
    mode above.
    """

    mode: Literal["pinned", "proxy"] = "proxy"
    policy: str = "round_robin"
    read_write_split: bool = False
    writer: NonNegInt = 0
    #: the proxy's layer-4 checks of each node (the stack's HAProxy: ``check
    #: inter 2s``, fall 3 and rise 2 by default); only a node outage makes them matter
    health_check: HealthCheck = HealthCheck()

    @model_validator(mode="after")
    def _known_policy(self) -> GaleraRouting:
        from lbsim.model.policies import POLICIES

        allowed = sorted(p for p in POLICIES if p not in _ROUTING_EXCLUDED)
        if self.policy not in allowed:
            raise AtKey(
                "policy", f"unknown routing policy {self.policy!r}; valid: {', '.join(allowed)}"
            )
        return self


# agent-based and latency-based policies need app-side signals a DB proxy does not have
_ROUTING_EXCLUDED = {"least_load", "peak_ewma", "least_time"}


class Galera(ServerSettings):
    engine: Literal["galera"]
    nodes: PositiveInt | tuple[GaleraNodeSpec, ...] = 3
    #: wsrep_slave_threads
    applier_threads: PositiveInt = 1
    #: CPU cost of applying one write-set on another node; None: the write
    #: query's own execution time
    apply: Dist | None = None
    #: CPU each other node spends on a write-set in group communication
    #: (receiving it, certifying it) besides applying it: it loads the node's
    #: cores when the write-set is delivered but does not delay its visibility
    receive: Dist | None = None
    #: on each other node, the time from its applier committing a write-set to
    #: the rows being visible to reads there (that node's commit path: commit
    #: order, InnoDB commit, thread wake-ups), a delay holding no applier and no
    #: CPU; reads in the window are stale, ``sync_wait`` reads wait for it.
    #: None: visible at the commit. ``lbsim calibrate`` measures it
    #: (:mod:`lbsim.validation.visibility`)
    visibility_lag: Dist | None = None
    #: total-order broadcast delay (s): about one round trip to the slowest member
    replication_delay: Dist = Field(default_factory=lambda: Deterministic(value=0.0005))
    #: gcs.fc_limit, gcs.fc_factor, gcs.fc_single_primary
    fc_limit: PositiveInt = 16
    fc_factor: Fraction = 1.0
    fc_single_primary: bool = False
    #: wsrep_retry_autocommit: an autocommit statement that fails certification
    #: is retried this many times inside the server before the client sees 1213
    retry_autocommit: NonNegInt = 1
    #: wsrep_sync_wait bit 1: reads wait until the node has applied everything
    #: ordered before them (never stale, slower)
    sync_wait: bool = False
    #: repl.causal_read_timeout (s), then error 1205
    causal_read_timeout: PositiveFloat = 30.0
    routing: GaleraRouting = GaleraRouting()
    #: seconds from a node's restart (after an outage) to it joining the
    #: cluster again: mysqld starts, recovers InnoDB, joins the group; until
    #: then connections to it are refused
    rejoin: NonNegFloat = 3.0
    #: CPU the IST donor spends sending one write-set to a rejoining node, as a
    #: fraction of the write-set's apply cost (reading it from gcache and
    #: sending it costs much less than applying it)
    ist_send: Fraction = 0.1

    @model_validator(mode="after")
    def _check(self) -> Galera:
        n = self.nodes if isinstance(self.nodes, int) else len(self.nodes)
        if isinstance(self.nodes, tuple) and not self.nodes:
            raise AtKey("nodes", "nodes must be a count >= 1 or a non-empty list")
        if self.routing.writer >= n:
            raise AtKey(
                ("routing", "writer"),
                f"routing.writer is {self.routing.writer} but the cluster has {n} nodes "
                f"(indices 0..{n - 1})",
            )
        names = [s.name for s in self.resolved_nodes()]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise AtKey(
                    ("nodes", i, "name"), f"galera node names must be unique ({name!r} repeats)"
                )
        _check_outages(self.resolved_nodes())
        return self

    def resolved_nodes(self) -> tuple[ResolvedGaleraNode, ...]:
        specs = (
            tuple(GaleraNodeSpec() for _ in range(self.nodes))
            if isinstance(self.nodes, int)
            else self.nodes
        )
        return tuple(
            ResolvedGaleraNode(
                name=s.name or f"db{i + 1}",
                cores=s.cores or self.cores,
                cpu_period=s.cpu_period or self.cpu_period,
                host=s.host or self.host,
                max_connections=s.max_connections or self.max_connections,
                applier_threads=s.applier_threads or self.applier_threads,
                slowness=s.slowness,
                write_set_cost=s.write_set_cost,
                latency=s.latency,
                outages=s.outages,
            )
            for i, s in enumerate(specs)
        )


class ResolvedGaleraNode(_Strict):
    name: str
    cores: float
    cpu_period: float | None = None
    host: str | None
    max_connections: int
    applier_threads: int
    slowness: float
    latency: float
    write_set_cost: float = 1.0
    outages: tuple[Outage, ...] = ()


def _check_outages(nodes: tuple[ResolvedGaleraNode, ...]) -> None:
    """A node's outages must not overlap, and the nodes still up must keep
    quorum (more than half of the cluster): a cluster that lost it stops
    taking queries, which the model does not simulate."""
    spans = []
    for i, n in enumerate(nodes):
        last = -1.0
        for j, o in enumerate(sorted(n.outages, key=lambda o: o.start)):
            if o.start < last:
                raise AtKey(
                    ("nodes", i, "outages", j),
                    f"galera node {n.name!r}: outages overlap (one starts at {o.start:g} s "
                    f"before the previous ends at {last:g} s)",
                )
            last = o.start + o.duration
            spans.append((o.start, last, i))
    if not spans:
        return
    # a node counts as away from its kill until its restart (it rejoins later still)
    for start, _, i in spans:
        away = {k for s, e, k in spans if s <= start < e}
        if 2 * (len(nodes) - len(away)) <= len(nodes):
            raise AtKey(
                ("nodes", i, "outages"),
                f"at {start:g} s {len(away)} of {len(nodes)} galera nodes are down: the rest "
                "lose quorum (a primary component needs more than half), which is not "
                "modelled; a one- or two-node cluster cannot lose a node",
            )


DatabaseSpec = Annotated[NoDatabase | MySQL | Galera, Field(discriminator="engine")]


def default_database() -> Any:
    return NoDatabase()
