"""A docker-compose project for the real stack, generated from a scenario.

``generate_stack(scenario, outdir)`` returns every file of the project
(``docker-compose.yml``, the balancer config, one php-fpm pool per app node,
the Galera proxy config, ``stack.json``) as text; ``StackFiles.write`` puts
them in ``outdir``. The compose file uses format 2.4, which both
``docker-compose`` v1 (1.29) and ``docker compose`` v2 accept and which,
unlike format 3 without swarm, honours ``cpus``.

The database servers read their settings from ``LBSIM_*`` environment
variables (see validation/stack/mariadb/entrypoint.sh).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from lbsim.scenario.database import Galera, MySQL, NoDatabase
from lbsim.scenario.schema import AppNode, Scenario
from lbsim.validation import configs, slow_node
from lbsim.validation.images import source_digest
from lbsim.validation.policies import BalancerKind, ReplayUnsupported, haproxy_rule
from lbsim.validation.products import stack_balancer
from lbsim.validation.workplan import seeded_rows

#: validation/ of this source tree: the build context of every image
VALIDATION_DIR = Path(__file__).resolve().parents[2] / "validation"
DEFAULT_BASE_IMAGE = "debian:bookworm-slim"
#: the work loop's iterations per work unit (validation/app/index.php UNIT_ITERATIONS)
UNIT_ITERATIONS = 1000
DB_PROXY = "dbproxy"


class _NoAliasDumper(yaml.SafeDumper):
    """Writes shared sub-dicts out in full (a person reads this file)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


#: the compose service of the app balancer (nginx or HAProxy)
BALANCER_SERVICE = "lb"


@dataclass(frozen=True)
class StackOptions:
    #: the app balancer; None: the scenario's ``balancer.product`` (default nginx).
    #: A scenario that names its product must agree (:mod:`lbsim.validation.products`)
    balancer: BalancerKind | None = None
    base_image: str = DEFAULT_BASE_IMAGE
    #: the balancer is published on 127.0.0.1:<port>
    port: int = 8080
    #: rows seeded in lbsim.kv: the scenario's key_space, capped here (seeding and
    #: state transfer of a large table cost minutes)
    max_rows: int = 100_000
    #: where the Dockerfiles and the app live
    validation_dir: Path = VALIDATION_DIR
    image_prefix: str = "lbsim/"
    image_tag: str = "latest"


@dataclass(frozen=True)
class StackFiles:
    """The files of one compose project, relative path → text."""

    files: dict[str, str]
    #: where the stack differs from the model (approximations the replay must know)
    notes: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)

    def write(self, outdir: Path) -> list[Path]:
        written = []
        for rel, text in self.files.items():
            path = outdir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
        return written


def resolve(scenario: Scenario, options: StackOptions | None = None) -> StackOptions:
    """``options`` with the balancer the stack of ``scenario`` runs filled in
    (:func:`lbsim.validation.products.stack_balancer`)."""
    opts = options or StackOptions()
    return replace(opts, balancer=stack_balancer(scenario, opts.balancer))


def _image(opts: StackOptions, name: str) -> str:
    return f"{opts.image_prefix}{name}:{opts.image_tag}"


def _build(opts: StackOptions, outdir: Path, name: str) -> dict[str, Any]:
    context = os.path.relpath(opts.validation_dir.resolve(), outdir.resolve())
    return {
        "context": context,
        "dockerfile": f"stack/{name}/Dockerfile",
        "args": {
            "BASE_IMAGE": opts.base_image,
            "LBSIM_SOURCE": source_digest(opts.validation_dir),
        },
    }


def _service(opts: StackOptions, outdir: Path, image: str) -> dict[str, Any]:
    return {"build": _build(opts, outdir, image), "image": _image(opts, image)}


def _cpus(cores: float) -> float:
    return round(float(cores), 3)


#: the CFS period (µs) of a database container with less than a core. Docker's
#: ``cpus`` gives a 100 ms period: a single applier thread then runs at full speed
#: until the quota is spent and waits up to 90 ms, while write-sets pile up in its
#: receive queue (the model shares the node's cores in time, processor-shared).
#: A 10 ms period keeps the same share with waits ten times shorter.
DB_CPU_PERIOD = 10_000
#: the least CFS quota (µs) the kernel takes
MIN_CPU_QUOTA = 1_000


def db_cpu_limit(cores: float, period: float | None = None) -> dict[str, float | int]:
    """The compose keys limiting a database container to ``cores``: the scenario's
    CFS ``period`` (s) where it gives one, else ``cpus`` from one core up, a
    short CFS period and its quota below (:data:`DB_CPU_PERIOD`)."""
    if period is not None:
        return cfs_limit(cores, period)
    if cores >= 1.0:
        return {"cpus": _cpus(cores)}
    quota = max(MIN_CPU_QUOTA, round(cores * DB_CPU_PERIOD))
    return {"cpu_period": round(quota / cores), "cpu_quota": quota}


#: the CFS period the kernel takes (µs): 1 ms to 1 s
CFS_PERIOD_RANGE = (1_000, 1_000_000)


def cfs_limit(cores: float, period: float) -> dict[str, float | int]:
    """``cpu_period`` and ``cpu_quota`` (µs) for ``cores`` in periods of
    ``period`` s (a scenario's ``cpu_period``: the model runs the same)."""
    micros = round(period * 1e6)
    lo, hi = CFS_PERIOD_RANGE
    quota = round(cores * micros)
    if not lo <= micros <= hi or quota < MIN_CPU_QUOTA:
        raise ReplayUnsupported(
            f"cpu_period {period:g} s with {cores:g} cores: the kernel takes a CFS period "
            f"of 1 ms to 1 s and a quota (cores x period) of at least 1 ms"
        )
    return {"cpu_period": micros, "cpu_quota": quota}


def _refuse_unreplayable(scenario: Scenario) -> None:
    # app node outages are replayed: docker kill / docker start (lbsim.validation.faults),
    # the container running again before the window closes (its CPU is read then)
    for node in scenario.app.resolved_nodes():
        for o in node.outages:
            if o.start + o.duration >= scenario.horizon:
                raise ReplayUnsupported(
                    f"app node {node.name!r}: an outage ending at {o.start + o.duration:g} s "
                    f"cannot be replayed; the replay starts the container again before the "
                    f"horizon ({scenario.horizon:g} s)"
                )
    # a node's latency is replayed: tc netem in its container (lbsim.validation.slow_node)
    db = scenario.database
    if isinstance(db, Galera):
        for g in db.resolved_nodes():
            # galera node outages too: docker kill / docker start; the node rejoins by IST
            for o in g.outages:
                if o.start + o.duration >= scenario.horizon:
                    raise ReplayUnsupported(
                        f"galera node {g.name!r}: an outage ending at {o.start + o.duration:g} s "
                        f"cannot be replayed; the replay starts the container again before the "
                        f"horizon ({scenario.horizon:g} s)"
                    )
            if g.slowness != 1.0:
                raise ReplayUnsupported(
                    f"galera node {g.name!r} has slowness {g.slowness:g}; the real stack cannot "
                    "slow one node's CPU per operation (a lower cpus limit is not the same): "
                    f"replay the equivalent scenario, cores {g.cores:g}/{g.slowness:g} and "
                    "slowness 1, in the model too (lbsim.validation.slow_node.equivalent; "
                    "`lbsim story slow-galera-node` does)"
                )


def _db_hosts(scenario: Scenario, app_index: int) -> tuple[str, str]:
    """(read host, write host) that app node ``app_index`` connects to."""
    db = scenario.database
    if isinstance(db, NoDatabase):
        return ("", "")
    if isinstance(db, MySQL):
        return ("db1", "db1")
    names = [g.name for g in db.resolved_nodes()]
    r = db.routing
    read = names[app_index % len(names)] if r.mode == "pinned" else DB_PROXY
    write = names[r.writer] if r.read_write_split else read
    return (read, write)


def app_environment(scenario: Scenario, node: AppNode, index: int) -> dict[str, str]:
    read, write = _db_hosts(scenario, index)
    env = {"LBSIM_NODE": node.name}
    db = scenario.database
    if not isinstance(db, NoDatabase):
        env |= {
            "LBSIM_DB_READ_HOST": read,
            "LBSIM_DB_WRITE_HOST": write,
            "LBSIM_DB_PERSISTENT": "1" if db.connect == "persistent" else "0",
            "LBSIM_DB_RETRIES": str(db.app_retries),
        }
    bal = scenario.balancer
    if bal.policy == "least_load":
        status = bal.policy_options["agent_status"]
        port = configs.FPM_PORT if status == "pool" else configs.FPM_STATUS_PORT
        env |= {
            "LBSIM_AGENT_PORT": str(configs.AGENT_PORT),
            "LBSIM_AGENT_METRIC": str(bal.policy_options["metric"]),
            "LBSIM_AGENT_MIN_IDLE": f"{bal.policy_options['min_idle']:g}",
            "LBSIM_AGENT_STATUS": str(status),
            "LBSIM_FPM_ADDRESS": f"127.0.0.1:{port}",
        }
    return env


def rows_seeded(scenario: Scenario, opts: StackOptions) -> int:
    db = scenario.database
    if isinstance(db, NoDatabase):
        return 0
    hot = max((q.hot_keys for c in scenario.workload.classes for q in c.queries), default=0)
    return max(hot, min(db.key_space, opts.max_rows))


def db_environments(scenario: Scenario, opts: StackOptions) -> dict[str, dict[str, str]]:
    """The ``LBSIM_*`` environment of every database container, by service name."""
    db = scenario.database
    if isinstance(db, NoDatabase):
        return {}
    common = {
        "LBSIM_MAX_CONNECTIONS": str(db.max_connections),
        "LBSIM_THREAD_POOL": str(db.threads or 0),
        "LBSIM_LOCK_WAIT_TIMEOUT": str(configs.seconds(db.lock_wait_timeout)),
        # drawn rows, then one row per client when a query uses the client's own row
        "LBSIM_ROWS": str(seeded_rows(scenario, rows_seeded(scenario, opts))),
    }
    if isinstance(db, MySQL):
        return {"db1": {"LBSIM_NODE_NAME": "db1", "LBSIM_GALERA": "0", **common}}
    nodes = db.resolved_nodes()
    members = ",".join(n.name for n in nodes)
    out = {}
    for i, n in enumerate(nodes):
        out[n.name] = {
            "LBSIM_NODE_NAME": n.name,
            "LBSIM_GALERA": "1",
            "LBSIM_CLUSTER_NODES": members,
            "LBSIM_BOOTSTRAP": "1" if i == 0 else "0",
            **common,
            "LBSIM_MAX_CONNECTIONS": str(n.max_connections),
            "LBSIM_APPLIER_THREADS": str(n.applier_threads),
            "LBSIM_FC_LIMIT": str(db.fc_limit),
            "LBSIM_FC_FACTOR": f"{db.fc_factor:g}",
            "LBSIM_FC_SINGLE_PRIMARY": "yes" if db.fc_single_primary else "no",
            "LBSIM_RETRY_AUTOCOMMIT": str(db.retry_autocommit),
            "LBSIM_SYNC_WAIT": "1" if db.sync_wait else "0",
            "LBSIM_CAUSAL_READ_TIMEOUT": str(configs.seconds(db.causal_read_timeout)),
        }
    return out


def _db_cores(scenario: Scenario) -> dict[str, tuple[float, float | None]]:
    """Each database container's cores and CFS period (None: not given)."""
    db = scenario.database
    if isinstance(db, MySQL):
        return {"db1": (db.cores, db.cpu_period)}
    if isinstance(db, Galera):
        return {n.name: (n.cores, n.cpu_period) for n in db.resolved_nodes()}
    return {}


def generate_stack(
    scenario: Scenario, outdir: Path, options: StackOptions | None = None
) -> StackFiles:
    """Every file of the compose project replaying ``scenario`` (to be written in ``outdir``)."""
    opts = resolve(scenario, options)
    _refuse_unreplayable(scenario)
    name = scenario.name
    nodes = scenario.app.resolved_nodes()
    files: dict[str, str] = {}
    notes: list[str] = []
    services: dict[str, Any] = {}

    db = scenario.database
    db_env = db_environments(scenario, opts)
    db_cores = _db_cores(scenario)
    delayed = slow_node.delays(scenario)
    previous: str | None = None
    for db_name, env in db_env.items():
        svc = _service(opts, outdir, "mariadb")
        svc |= {
            "hostname": db_name,
            **db_cpu_limit(*db_cores[db_name]),
            "environment": env,
            "healthcheck": {
                "test": ["CMD", "lbsim-db-health"],
                "interval": "2s",
                "timeout": "10s",
                "retries": 150,
                "start_period": "5s",
            },
        }
        if db_name in delayed:
            svc["cap_add"] = ["NET_ADMIN"]  # tc netem (lbsim.validation.slow_node)
        # joiners join one at a time, each after the previous node is Synced
        if previous is not None:
            svc["depends_on"] = {previous: {"condition": "service_healthy"}}
        services[db_name] = svc
        previous = db_name
    db_ready = {n: {"condition": "service_healthy"} for n in db_env}

    if isinstance(db, Galera) and db.routing.mode == "proxy":
        haproxy_rule(db.routing.policy, exact=False)  # refuse early, naming the policy
        files["dbproxy/haproxy.cfg"] = configs.haproxy_db_cfg(
            db.routing.policy, list(db_env), name, check=db.routing.health_check
        )
        svc = _service(opts, outdir, "haproxy")
        svc |= {
            "hostname": DB_PROXY,
            "volumes": ["./dbproxy/haproxy.cfg:/etc/haproxy/haproxy.cfg:ro"],
            "depends_on": db_ready,
        }
        services[DB_PROXY] = svc
        db_ready = {**db_ready, DB_PROXY: {"condition": "service_started"}}

    for i, node in enumerate(nodes):
        files[f"{node.name}/www.conf"] = configs.php_fpm_pool(node, name)
        svc = _service(opts, outdir, "php-fpm")
        svc |= {
            "hostname": node.name,
            **(
                {"cpus": _cpus(node.cores)}
                if node.cpu_period is None
                else cfs_limit(node.cores, node.cpu_period)
            ),
            "environment": app_environment(scenario, node, i),
            "volumes": [f"./{node.name}/www.conf:/etc/php/8.2/fpm/pool.d/www.conf:ro"],
            "sysctls": {"net.core.somaxconn": max(4096, min(node.backlog, configs.MAX_BACKLOG))},
        }
        if node.backlog > configs.MAX_BACKLOG:
            notes.append(
                f"{node.name}: listen.backlog {node.backlog} capped at {configs.MAX_BACKLOG}"
            )
        if db_ready:
            svc["depends_on"] = db_ready
        services[node.name] = svc

    bal = scenario.balancer
    if opts.balancer == "nginx":
        files["balancer/nginx.conf"] = configs.nginx_conf(bal, nodes, name)
        lb = _service(opts, outdir, "nginx")
        lb["volumes"] = ["./balancer/nginx.conf:/etc/nginx/nginx.conf:ro"]
        if bal.health_check is not None:
            notes.append(
                "nginx (open source) has no active health checks: "
                "balancer.health_check is not replayed (passive max_fails/fail_timeout are)"
            )
    else:
        files["balancer/haproxy.cfg"] = configs.haproxy_app_cfg(bal, nodes, name)
        lb = _service(opts, outdir, "haproxy")
        lb["volumes"] = ["./balancer/haproxy.cfg:/etc/haproxy/haproxy.cfg:ro"]
        lb["ports"] = [f"127.0.0.1:{opts.port + 1}:{configs.HAPROXY_STATS_PORT}"]
    lb["hostname"] = BALANCER_SERVICE
    lb["ports"] = [f"127.0.0.1:{opts.port}:80", *lb.get("ports", [])]
    lb["depends_on"] = [n.name for n in nodes]
    services = {BALANCER_SERVICE: lb, **services}

    if scenario.hosts:
        notes.append(
            "hosts are not enforced: containers share this machine's cores "
            "(model the machine itself as a host when calibrating)"
        )
    rows = rows_seeded(scenario, opts)
    if not isinstance(db, NoDatabase) and rows < db.key_space:
        notes.append(f"key_space {db.key_space} seeded as {rows} rows (StackOptions.max_rows)")

    compose = {"version": "2.4", "services": services}
    header = (
        f"# generated by lbsim from scenario {name!r} (balancer {opts.balancer}).\n"
        "# Start by hand: docker-compose build && docker-compose up -d\n"
        "#            or: docker compose build && docker compose up -d\n"
    )
    if delayed:
        header += f"# then delay {', '.join(delayed)}: stack.json's netem commands, in each\n"
    files["docker-compose.yml"] = header + yaml.dump(
        compose, Dumper=_NoAliasDumper, sort_keys=False, default_flow_style=False, width=1000
    )
    meta: dict[str, Any] = {
        "scenario": name,
        "balancer": opts.balancer,
        "policy": bal.policy,
        "url": f"http://127.0.0.1:{opts.port}/",
        "app_nodes": [n.name for n in nodes],
        "db_nodes": list(db_env),
        "db_engine": db.engine,
        "rows": rows,
        "unit_iterations": UNIT_ITERATIONS,
        "notes": notes,
    }
    if delayed:
        meta["netem"] = {n: slow_node.netem_commands(d) for n, d in delayed.items()}
    if opts.balancer == "haproxy":
        meta["haproxy_stats"] = f"http://127.0.0.1:{opts.port + 1}/stats;csv"
    files["stack.json"] = json.dumps(meta, indent=2) + "\n"
    return StackFiles(files=files, notes=tuple(notes), meta=meta)
