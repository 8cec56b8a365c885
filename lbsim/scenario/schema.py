"""The scenario schema: every key a scenario file may hold, its type and default.

Validation happens once, here, at the boundary; inside the model the typed,
frozen objects are trusted. Times are in seconds, rates per second.
Defaults live in this module only (never ``config.get(key, default)`` in
components).
"""

from __future__ import annotations

import csv
import io
import itertools
import math
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from lbsim.model.policies import POLICIES
from lbsim.scenario.database import DatabaseSpec, NoDatabase
from lbsim.scenario.distributions import Deterministic, DistSpec, coerce_distribution
from lbsim.scenario.errors import NAME_PATTERN, AtKey, did_you_mean
from lbsim.scenario.numbers import (
    Fraction,
    HotKeys,
    NonNegFloat,
    NonNegInt,
    OpenFraction,
    PercentileError,
    PositiveFloat,
    PositiveInt,
    Subnets,
)
from lbsim.scenario.outages import HealthCheck, Outage
from lbsim.scenario.products import (
    CircuitBreaker,
    NextUpstream,
    Observe,
    OutlierDetection,
    Percent,
    Product,
    RetryPolicy,
    Rules,
    check_policy,
    product_defaults,
    resolve,
)
from lbsim.scenario.yamlio import UnreadableFile, read_regular_text

Dist = Annotated[DistSpec, BeforeValidator(coerce_distribution)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=NAME_PATTERN)]


def _zero() -> Deterministic:
    return Deterministic(value=0.0)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- workload


class OpenLoop(Strict):
    """Open-loop arrivals: Poisson ``rate``, a renewal ``interarrival``
    distribution, or a rate ``schedule`` of ``[time, rate]`` points."""

    rate: PositiveFloat | None = None
    interarrival: Dist | None = None
    schedule: tuple[tuple[NonNegFloat, NonNegFloat], ...] | None = None
    #: how the rate moves between schedule points: held (step) or interpolated (linear)
    shape: Literal["step", "linear"] = "step"

    @model_validator(mode="after")
    def _one_kind(self) -> OpenLoop:
        given = [k for k in ("rate", "interarrival", "schedule") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of rate, interarrival, schedule"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.schedule is not None:
            if not self.schedule:
                raise AtKey("schedule", "schedule needs at least one [time, rate] point")
            times = [t for t, _ in self.schedule]
            if times[0] != 0:
                raise AtKey(("schedule", 0), f"schedule must start at time 0 (got {times[0]:g})")
            for i, (a, b) in enumerate(itertools.pairwise(times), start=1):
                if b <= a:
                    raise AtKey(
                        ("schedule", i),
                        f"schedule times must increase strictly ({b:g} follows {a:g})",
                    )
            if max(r for _, r in self.schedule) <= 0:
                raise AtKey("schedule", "schedule needs a rate > 0 somewhere")
        if self.interarrival is not None and self.interarrival.mean <= 0:
            raise AtKey("interarrival", "interarrival mean must be > 0")
        return self

    def mean_rate(self, horizon: float) -> float:
        """Mean arrival rate over [0, horizon] (1/s)."""
        if self.rate is not None:
            return self.rate
        if self.interarrival is not None:
            return 1.0 / self.interarrival.mean
        assert self.schedule is not None
        return _schedule_integral(self.schedule, self.shape, horizon) / horizon

    def peak_rate(self, horizon: float) -> float:
        if self.schedule is None:
            return self.mean_rate(horizon)
        return max(r for t, r in self.schedule if t <= horizon)


def _schedule_integral(
    schedule: tuple[tuple[float, float], ...], shape: str, horizon: float
) -> float:
    total = 0.0
    pts = [*schedule, (math.inf, schedule[-1][1])]
    for (t0, r0), (t1, r1) in itertools.pairwise(pts):
        if t0 >= horizon:
            break
        end = min(t1, horizon)
        if shape == "linear" and math.isfinite(t1):
            r_end = r0 + (r1 - r0) * (end - t0) / (t1 - t0)
            total += 0.5 * (r0 + r_end) * (end - t0)
        else:
            total += r0 * (end - t0)
    return total


class ClosedLoop(Strict):
    """``users`` each think, send one request, wait for its answer (or time out)."""

    users: PositiveInt
    think_time: Dist


class TraceReplay(Strict):
    """Arrivals read from a CSV file with columns ``time,class[,client]``
    (a header line is allowed; times in seconds from the start, non-decreasing)."""

    file: Path
    _rows: tuple[tuple[float, str, int | None], ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _read(self, info: ValidationInfo) -> TraceReplay:
        path = self.file
        base = (info.context or {}).get("base_dir")
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        try:
            self._rows = read_trace(path)
        except ValueError as exc:
            raise AtKey("file", str(exc)) from None
        return self

    @property
    def rows(self) -> tuple[tuple[float, str, int | None], ...]:
        return self._rows


#: the largest arrival trace read (about 10 million arrivals)
MAX_TRACE_BYTES = 256 * 1024 * 1024


def read_trace(path: Path) -> tuple[tuple[float, str, int | None], ...]:
    try:
        text = read_regular_text(path, "trace file", MAX_TRACE_BYTES)
    except UnreadableFile as exc:
        raise ValueError(f"trace {path}: {exc}") from None
    rows: list[tuple[float, str, int | None]] = []
    last = 0.0
    for n, line in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not line or not "".join(line).strip() or line[0].lstrip().startswith("#"):
            continue
        if n == 1 and line[0].strip().lower() == "time":
            continue
        if len(line) not in (2, 3):
            raise ValueError(f"{path}:{n}: expected time,class[,client], got {len(line)} fields")
        try:
            t = float(line[0])
        except ValueError:
            raise ValueError(f"{path}:{n}: time {line[0]!r} is not a number") from None
        if not math.isfinite(t) or t < 0 or t < last:
            raise ValueError(f"{path}:{n}: times must be finite, >= 0 and non-decreasing")
        client: int | None = None
        if len(line) == 3 and line[2].strip():
            try:
                client = int(line[2])
            except ValueError:
                raise ValueError(f"{path}:{n}: client {line[2]!r} is not an integer") from None
            if client < 0:
                raise ValueError(f"{path}:{n}: client must be >= 0")
        rows.append((t, line[1].strip(), client))
        last = t
    if not rows:
        raise ValueError(f"trace {path} has no arrivals")
    return tuple(rows)


class Query(Strict):
    """One database query of a request class (run by the database tier)."""

    kind: Literal["read", "write"]
    #: service demand on the database server's CPU (core-seconds)
    time: Dist
    #: rows touched (locked, for a write)
    keys: PositiveInt = 1
    #: draw the rows from this many hot rows (0: from the whole key space); at most 10⁷
    #: (a larger hot set is a key space: database.key_space)
    hot_keys: HotKeys = 0
    #: ``client``: the client's own row (a profile, a cart) instead of drawn rows
    row: Literal["drawn", "client"] = "drawn"


class RequestClass(Strict):
    name: Name
    weight: NonNegFloat = 1.0
    cpu: Dist = Field(default_factory=_zero)
    queries: tuple[Query, ...] = ()


class HeavyUsers(Strict):
    """A ``fraction`` of clients send ``share`` of the requests of the heavy ``classes``."""

    fraction: OpenFraction
    share: Fraction
    classes: tuple[Name, ...] = Field(min_length=1)


class Clients(Strict):
    count: PositiveInt = 1000
    #: number of distinct /24 networks the client addresses come from
    #: (None: each client has its own random address); at most 10⁶, each is drawn up front
    subnets: Subnets | None = None
    heavy: HeavyUsers | None = None


class Workload(Strict):
    open: OpenLoop | None = None
    closed: ClosedLoop | None = None
    trace: TraceReplay | None = None
    #: the client gives up after this many seconds (None: waits forever)
    timeout: PositiveFloat | None = None
    classes: tuple[RequestClass, ...] = Field(min_length=1)
    clients: Clients = Clients()

    @model_validator(mode="after")
    def _check(self) -> Workload:
        given = [k for k in ("open", "closed", "trace") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of open, closed, trace"
                + (f" (got {', '.join(given)})" if given else "")
            )
        names = [c.name for c in self.classes]
        for i, n in enumerate(names):
            if n in names[:i]:
                raise AtKey(("classes", i, "name"), f"class names must be unique ({n!r} repeats)")
        if sum(c.weight for c in self.classes) <= 0:
            raise AtKey("classes", "the total weight of the classes must be > 0")
        if self.trace is not None:
            for t, cls, _ in self.trace.rows:
                if cls not in names:
                    raise AtKey(
                        ("trace", "file"),
                        f"trace {self.trace.file}: arrival at t={t:g} has unknown class {cls!r} "
                        f"(classes are: {', '.join(names)})",
                    )
        heavy = self.clients.heavy
        if heavy is not None:
            for i, c in enumerate(heavy.classes):
                if c not in names:
                    raise AtKey(
                        ("clients", "heavy", "classes", i),
                        f"unknown class {c!r}{did_you_mean(c, names)} "
                        f"(classes are: {', '.join(names)})",
                    )
            if self.closed is not None:
                total = sum(c.weight for c in self.classes)
                p_heavy = sum(c.weight for c in self.classes if c.name in heavy.classes) / total
                if heavy.share * p_heavy > heavy.fraction + 1e-12:
                    raise AtKey(
                        ("clients", "heavy"),
                        "with a closed workload every user sends at the same pace, "
                        f"so heavy users ({heavy.fraction:g} of users) cannot send "
                        f"{heavy.share:g} of the heavy requests ({p_heavy:.3g} of all requests); "
                        "raise fraction or lower share",
                    )
        return self

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)


# --------------------------------------------------------------------------- balancer


class Balancer(Strict):
    """The balancer; ``product`` says whose rules apply on overload and failure.

    Options of one product are ``None`` under the others; left out, they take
    their product's default (:mod:`lbsim.scenario.products`); ``rules`` is the
    resolved view the model reads.
    """

    #: left out: the product's round robin
    policy: str = "round_robin"
    #: nginx (open source), HAProxy or Envoy
    product: Product = "nginx"
    #: options of the policy, checked against the policy's own schema
    policy_options: dict[str, Any] = Field(default_factory=dict)
    #: balancer processing time per request (s)
    latency: Dist = Field(default_factory=_zero)
    health_check: HealthCheck | None = None
    #: answer 504 when the upstream has not answered after this long (proxy_read_timeout)
    upstream_timeout: PositiveFloat = 60.0
    # -- nginx
    #: passive checks (max_fails / fail_timeout); max_fails 0 disables them
    max_fails: NonNegInt | None = None
    fail_timeout: PositiveFloat | None = None
    #: upstreams tried per request (proxy_next_upstream_tries); 0 = every upstream once
    next_upstream_tries: NonNegInt | None = None
    #: no further try after this long since the first (s); 0 = no limit
    next_upstream_timeout: NonNegFloat | None = None
    #: what makes nginx try the next upstream
    next_upstream: tuple[NextUpstream, ...] | None = None
    # -- HAProxy
    #: a request waiting for a free max_conns slot gives 503 after this long (timeout queue)
    queue_timeout: PositiveFloat | None = None
    #: connection retries to the same server (retries)
    retries: NonNegInt | None = None
    #: the last retry goes to another server (option redispatch)
    redispatch: bool | None = None
    #: passive checks (observe layer7 + error-limit + on-error); off when left out
    observe: Observe | None = None
    # -- Envoy
    circuit_breaker: CircuitBreaker | None = None
    #: ejection after consecutive 5xx; off when left out
    outlier_detection: OutlierDetection | None = None
    #: retries; none when left out
    retry_policy: RetryPolicy | None = None
    #: below this percentage of healthy hosts, balance over all hosts
    panic_threshold: Percent | None = None
    # -- HAProxy and Envoy
    #: a host that comes back ramps its weight up over this many seconds
    slow_start: PositiveFloat | None = None

    _product_defaults = model_validator(mode="before")(product_defaults)

    @property
    def rules(self) -> Rules:
        """Every option resolved for ``product`` (the model's view)."""
        return resolve(self)

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        if v not in POLICIES:
            raise ValueError(f"unknown policy {v!r}; valid policies: {', '.join(sorted(POLICIES))}")
        return v

    @model_validator(mode="after")
    def _options(self) -> Balancer:
        check_policy(self.product, self.policy)
        if self.observe is not None and self.health_check is None:
            raise AtKey("observe", "observe needs health_check (HAProxy observes checked servers)")
        if self.slow_start is not None and self.health_check is None:
            raise AtKey(
                "slow_start",
                "slow_start needs health_check (it ramps a server the checks bring back)",
            )
        options_model = POLICIES[self.policy].Options
        try:
            validated = options_model.model_validate(self.policy_options)
        except ValidationError as exc:
            # report under balancer.policy_options.<key>, naming the policy's options
            valid = list(options_model.model_fields)
            details: list[InitErrorDetails] = []
            for e in exc.errors(include_url=False):
                loc = ("policy_options", *e["loc"])
                if e["type"] == "extra_forbidden":
                    details.append(
                        InitErrorDetails(
                            type=PydanticCustomError(
                                "unknown_policy_option",
                                "unknown option of policy {policy}{hint}",
                                {
                                    "policy": repr(self.policy),
                                    "hint": did_you_mean(str(e["loc"][-1]), valid)
                                    or (
                                        f"; its options: {', '.join(valid)}"
                                        if valid
                                        else "; it takes no options"
                                    ),
                                },
                            ),
                            loc=loc,
                            input=e["input"],
                        )
                    )
                else:
                    d = InitErrorDetails(type=e["type"], loc=loc, input=e["input"])
                    if "ctx" in e:
                        d["ctx"] = e["ctx"]
                    details.append(d)
            raise ValidationError.from_exception_data(exc.title, details) from None
        options = validated.model_dump()
        if "flavour" in options and options["flavour"] is None:
            options["flavour"] = self.product  # power_of_d: the product's own draw rule
        object.__setattr__(self, "policy_options", options)
        return self


# --------------------------------------------------------------------------- app tier


class AppNodeSpec(Strict):
    """One PHP-FPM node; keys left out take the values of the enclosing ``app``."""

    name: Name | None = None
    workers: PositiveInt | None = None
    cores: PositiveFloat | None = None
    cpu_period: PositiveFloat | None = None
    backlog: NonNegInt | None = None
    request_timeout: PositiveFloat | None = None
    weight: PositiveInt | None = None
    max_conns: NonNegInt | None = None
    host: Name | None = None
    outages: tuple[Outage, ...] = ()


class AppNode(Strict):
    """A resolved PHP-FPM node."""

    name: Name
    workers: PositiveInt
    cores: PositiveFloat
    cpu_period: PositiveFloat | None
    backlog: NonNegInt
    request_timeout: PositiveFloat | None
    weight: PositiveInt
    max_conns: NonNegInt
    host: Name | None
    outages: tuple[Outage, ...]


class App(Strict):
    """PHP-FPM tier: ``nodes`` is a count of identical nodes or a list of nodes."""

    nodes: PositiveInt | tuple[AppNodeSpec, ...] = 1
    #: pm.max_children
    workers: PositiveInt = 8
    #: CPU cores of each node (Docker cpus); busy workers share them
    cores: PositiveFloat = 2.0
    #: CFS bandwidth period (s): each busy worker runs at a full core's speed
    #: until the node has used ``cores × cpu_period`` CPU-seconds in the
    #: period, then all wait for the next (Docker ``cpus``: 0.1). None: the
    #: workers processor-share ``cores`` (the same mean, no waits)
    cpu_period: PositiveFloat | None = None
    #: listen.backlog: connections waiting for a free worker; beyond it → refused
    backlog: NonNegInt = 511
    #: request_terminate_timeout (s); None = off
    request_timeout: PositiveFloat | None = None
    weight: PositiveInt = 1
    #: per-node connection limit at the balancer (nginx max_conns / HAProxy maxconn); 0 = none
    max_conns: NonNegInt = 0
    host: Name | None = None

    @field_validator("nodes")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if isinstance(v, tuple) and not v:
            raise ValueError("nodes must be a count >= 1 or a non-empty list")
        return v

    @model_validator(mode="after")
    def _unique_names(self) -> App:
        if not isinstance(self.nodes, int):
            names = [s.name or f"app{i + 1}" for i, s in enumerate(self.nodes)]
            for i, n in enumerate(names):
                if n in names[:i]:
                    raise AtKey(
                        ("nodes", i, "name"), f"app node names must be unique ({n!r} repeats)"
                    )
        return self

    def resolved_nodes(self) -> tuple[AppNode, ...]:
        specs = (
            tuple(AppNodeSpec() for _ in range(self.nodes))
            if isinstance(self.nodes, int)
            else self.nodes
        )
        out = []
        for i, s in enumerate(specs):
            out.append(
                AppNode(
                    name=s.name or f"app{i + 1}",
                    workers=s.workers or self.workers,
                    cores=s.cores or self.cores,
                    cpu_period=s.cpu_period or self.cpu_period,
                    backlog=self.backlog if s.backlog is None else s.backlog,
                    request_timeout=s.request_timeout or self.request_timeout,
                    weight=s.weight or self.weight,
                    max_conns=self.max_conns if s.max_conns is None else s.max_conns,
                    host=s.host or self.host,
                    outages=s.outages,
                )
            )
        names = [n.name for n in out]
        if len(set(names)) != len(names):
            raise ValueError("app node names must be unique")
        return tuple(out)


class Host(Strict):
    """A machine whose cores are shared by the containers placed on it."""

    name: Name
    cores: PositiveFloat
    #: cores kept busy by processes the model does not place on a node (a load
    #: generator, a proxy): the containers share ``cores - background``
    background: NonNegFloat = 0.0

    @model_validator(mode="after")
    def _room_left(self) -> Host:
        if self.background >= self.cores:
            raise AtKey(
                ("background",),
                f"background {self.background:g} leaves no core for the containers "
                f"(cores {self.cores:g}); it must be smaller than cores",
            )
        return self


class Network(Strict):
    """One-way network delay of each hop (s)."""

    client_lb: Dist = Field(default_factory=_zero)
    lb_app: Dist = Field(default_factory=_zero)
    app_db: Dist = Field(default_factory=_zero)


def _default_engine(value: Any) -> Any:
    if isinstance(value, dict) and "engine" not in value:
        return {"engine": "none", **value}
    return value


Database = Annotated[DatabaseSpec, BeforeValidator(_default_engine)]


class Report(Strict):
    #: length of one time-series interval (s); None: duration / 100
    interval: PositiveFloat | None = None
    #: relative error of the latency percentiles
    percentile_error: PercentileError = 0.005


# --------------------------------------------------------------------------- scenario


class Scenario(Strict):
    name: Name = "scenario"
    description: str = ""
    seed: NonNegInt = 1
    #: measured simulated time after warm-up (s)
    duration: PositiveFloat = 300.0
    warmup: NonNegFloat = 0.0
    replications: PositiveInt = 1
    workload: Workload
    balancer: Balancer = Balancer()
    app: App = App()
    hosts: tuple[Host, ...] = ()
    network: Network = Network()
    database: Database = Field(default_factory=NoDatabase)
    report: Report = Report()

    @model_validator(mode="after")
    def _wiring(self, info: ValidationInfo) -> Scenario:
        nodes = self.app.resolved_nodes()
        host_names = [h.name for h in self.hosts]
        for i, h in enumerate(host_names):
            if h in host_names[:i]:
                raise AtKey(("hosts", i, "name"), f"host names must be unique ({h!r} repeats)")
        for i, n in enumerate(nodes):
            if n.host is not None and n.host not in host_names:
                spec = None if isinstance(self.app.nodes, int) else self.app.nodes[i]
                where: tuple[str | int, ...] = (
                    ("app", "nodes", i, "host")
                    if spec is not None and spec.host is not None
                    else ("app", "host")
                )
                raise AtKey(
                    where,
                    f"unknown host {n.host!r}{did_you_mean(n.host, host_names)} "
                    f"(hosts: {', '.join(host_names) if host_names else 'none defined'})",
                )
        self._check_database_hosts(host_names)
        if self.database.engine == "none":
            for i, c in enumerate(self.workload.classes):
                if c.queries:
                    raise AtKey(
                        ("workload", "classes", i, "queries"),
                        f"class {c.name!r} has queries but database.engine is 'none'; "
                        "set a database engine or remove the queries",
                    )
        return self

    def _check_database_hosts(self, host_names: list[str]) -> None:
        """Every database server placed on a host names one that exists."""
        db = self.database
        placed: list[tuple[tuple[str | int, ...], str]] = []
        if db.engine != "none" and db.host is not None:
            placed.append((("database", "host"), db.host))
        if db.engine == "galera" and not isinstance(db.nodes, int):
            placed.extend(
                (("database", "nodes", i, "host"), s.host)
                for i, s in enumerate(db.nodes)
                if s.host is not None
            )
        for where, host in placed:
            if host not in host_names:
                raise AtKey(
                    where,
                    f"unknown host {host!r}{did_you_mean(host, host_names)} "
                    f"(hosts: {', '.join(host_names) if host_names else 'none defined'})",
                )

    @property
    def horizon(self) -> float:
        """Total simulated time: warm-up plus measured duration (s)."""
        return self.warmup + self.duration
