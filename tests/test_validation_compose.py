"""Compose and config generation for the real stack (no Docker needed)."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import lbsim
from lbsim.model.policies import POLICIES
from lbsim.scenario import Scenario
from lbsim.validation import (
    ReplayUnsupported,
    StackOptions,
    generate_stack,
    haproxy_rule,
    nginx_rule,
    replayable,
)
from lbsim.validation.compose import VALIDATION_DIR
from lbsim.validation.images import source_digest
from tests.support import run_program

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "validation" / "stack" / "mariadb" / "entrypoint.sh"

BASE = """
name: t
workload:
  open: {rate: 10}
  classes:
    - name: a
      cpu: 0.01
      queries: [{kind: read, time: 0.001}, {kind: write, time: 0.002, hot_keys: 50}]
"""


def scenario(extra: str = "", db: str = "database: {engine: galera, nodes: 3}") -> Scenario:
    return lbsim.loads_scenario(BASE + extra + "\n" + db + "\n")


def stack(
    s: Scenario, tmp_path: Path, balancer: str = "nginx", **opts: Any
) -> tuple[dict[str, Any], dict[str, str]]:
    files = generate_stack(s, tmp_path, StackOptions(balancer=balancer, **opts)).files  # type: ignore[arg-type]
    return yaml.safe_load(files["docker-compose.yml"]), files


def lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines()]


# ---------------------------------------------------------------- policy table

NGINX = {
    "round_robin": "",
    "least_conn": "least_conn;",
    "power_of_d": "random two least_conn;",
    "random": "random;",
    "ip_hash": "ip_hash;",
    "consistent_hash": "hash $remote_addr consistent;",
    "hash_nginx": "hash $remote_addr;",
}
HAPROXY = {
    "roundrobin_haproxy": ("roundrobin", None, False),
    "static_rr": ("static-rr", None, False),
    "leastconn_haproxy": ("leastconn", None, False),
    "power_of_d": ("random(2)", None, False),
    "random": ("random(1)", None, False),
    "consistent_hash": ("source", "consistent", False),
    "hash_haproxy": ("source", "map-based sdbm", False),
    "first": ("first", None, False),
    "least_load": ("roundrobin", None, True),
}
#: policies of Envoy (no Debian package) or of NGINX Plus (not open source)
REFUSED = {"peak_ewma", "least_time", "ring_hash", "maglev"}


def test_every_policy_is_mapped_or_refused() -> None:
    assert set(NGINX) | set(HAPROXY) | (REFUSED & set(POLICIES)) == set(POLICIES)
    for name in REFUSED & set(POLICIES):
        for rule in (nginx_rule, haproxy_rule):
            with pytest.raises(ReplayUnsupported, match=f"policy '{name}' cannot be replayed"):
                rule(name)


@pytest.mark.parametrize("policy", sorted(NGINX))
def test_nginx_rule(policy: str) -> None:
    assert nginx_rule(policy) == NGINX[policy]


@pytest.mark.parametrize("policy", sorted(HAPROXY))
def test_haproxy_rule(policy: str) -> None:
    r = haproxy_rule(policy)
    assert (r.balance, r.hash_type, r.agent) == HAPROXY[policy]


def test_policy_options_change_the_rule() -> None:
    assert (
        nginx_rule("consistent_hash", {"key": "client"}) == "hash $http_x_lbsim_client consistent;"
    )
    r = haproxy_rule("consistent_hash", {"key": "client"})
    assert (r.balance, r.hash_type) == ("hdr(X-Lbsim-Client)", "consistent")
    assert haproxy_rule("power_of_d", {"choices": 3}).balance == "random(3)"
    assert haproxy_rule("least_load", {"algorithm": "leastconn"}).balance == "leastconn"


@pytest.mark.parametrize(
    ("policy", "options", "message"),
    [
        (
            "least_load",
            None,
            "policy 'least_load' cannot be replayed by nginx: it is haproxy's rule, not nginx's",
        ),
        ("first", None, "policy 'first' cannot be replayed by nginx: it is haproxy's rule"),
        (
            "leastconn_haproxy",
            None,
            "policy 'leastconn_haproxy' cannot be replayed by nginx: it is haproxy's rule, "
            "not nginx's (balancer.product: haproxy); nginx's nearest rule is least_conn",
        ),
        (
            "power_of_d",
            {"choices": 3},
            "nginx samples exactly two peers ('random two least_conn'), the scenario asks for "
            "choices=3; use choices 2 or balancer.product haproxy (random(d))",
        ),
        (
            "power_of_d",
            {"flavour": "envoy"},
            "power_of_d with flavour 'envoy' reproduces Envoy, "
            "not nginx; leave flavour out or use nginx (random two least_conn)",
        ),
        (
            "peak_ewma",
            None,
            "policy 'peak_ewma' cannot be replayed by nginx: it is envoy's rule, "
            "and the stack cannot run envoy",
        ),
        ("least_time", None, "policy 'least_time' cannot be replayed: least_time is a rule of"),
        ("nope", None, "unknown policy 'nope'"),
    ],
)
def test_nginx_refusals(policy: str, options: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(ReplayUnsupported, match="^" + re.escape(message)):
        nginx_rule(policy, options)


def test_haproxy_refuses_peak_ewma_and_lists_alternatives() -> None:
    with pytest.raises(ReplayUnsupported) as e:
        haproxy_rule("peak_ewma")
    assert "haproxy: consistent_hash, first, hash_haproxy, least_load" in str(e.value)
    assert "peak_ewma" not in replayable("haproxy")
    assert "least_load" not in replayable("nginx")


# ---------------------------------------------------------------- compose file


def test_compose_services_and_limits(tmp_path: Path) -> None:
    s = scenario("app: {nodes: 2, workers: 8, cores: 1.5, backlog: 100, request_timeout: 2.5}")
    compose, files = stack(s, tmp_path, base_image="lbsim/base:bookworm")
    assert compose["version"] == "2.4"
    svcs = compose["services"]
    assert list(svcs) == ["lb", "db1", "db2", "db3", "dbproxy", "app1", "app2"]
    app1 = svcs["app1"]
    assert app1["cpus"] == 1.5
    assert app1["image"] == "lbsim/php-fpm:latest"
    assert app1["build"] == {
        "context": os.path.relpath(VALIDATION_DIR, tmp_path),
        "dockerfile": "stack/php-fpm/Dockerfile",
        "args": {
            "BASE_IMAGE": "lbsim/base:bookworm",
            "LBSIM_SOURCE": source_digest(VALIDATION_DIR),
        },
    }
    assert app1["volumes"] == ["./app1/www.conf:/etc/php/8.2/fpm/pool.d/www.conf:ro"]
    assert app1["sysctls"] == {"net.core.somaxconn": 4096}
    assert app1["depends_on"]["db3"] == {"condition": "service_healthy"}
    assert svcs["lb"]["ports"] == ["127.0.0.1:8080:80"]
    assert svcs["lb"]["depends_on"] == ["app1", "app2"]
    assert svcs["db2"]["depends_on"] == {"db1": {"condition": "service_healthy"}}
    assert svcs["db3"]["depends_on"] == {"db2": {"condition": "service_healthy"}}
    assert svcs["db1"]["healthcheck"]["test"] == ["CMD", "lbsim-db-health"]
    assert "&id" not in files["docker-compose.yml"]  # no YAML aliases
    pool = lines(files["app1/www.conf"])
    for want in (
        "pm = static",
        "pm.max_children = 8",
        "listen.backlog = 100",
        "listen = 0.0.0.0:9000",
        "request_terminate_timeout = 3s",
        "pm.status_path = /status",
        "pm.status_listen = 127.0.0.1:9001",
        "clear_env = no",
    ):
        assert want in pool
    meta = json.loads(files["stack.json"])
    assert meta["app_nodes"] == ["app1", "app2"]
    assert meta["db_nodes"] == ["db1", "db2", "db3"]
    assert meta["rows"] == 100_000


def test_per_node_app_settings(tmp_path: Path) -> None:
    s = scenario(
        "app: {workers: 4, nodes: [{name: big, workers: 16, cores: 4, weight: 3, max_conns: 20},"
        " {name: small}]}"
    )
    compose, files = stack(s, tmp_path)
    assert compose["services"]["big"]["cpus"] == 4.0
    assert "pm.max_children = 16" in lines(files["big/www.conf"])
    assert "pm.max_children = 4" in lines(files["small/www.conf"])
    assert "request_terminate_timeout = 0" in lines(files["small/www.conf"])
    nginx = lines(files["balancer/nginx.conf"])
    assert "server big:9000 weight=3 max_fails=1 fail_timeout=10s max_conns=20;" in nginx
    assert "server small:9000 weight=1 max_fails=1 fail_timeout=10s;" in nginx


def test_huge_backlog_is_capped_with_a_note(tmp_path: Path) -> None:
    s = scenario("app: {backlog: 1000000}")
    out = generate_stack(s, tmp_path)
    assert "listen.backlog = 65535" in lines(out.files["app1/www.conf"])
    assert any("capped at 65535" in n for n in out.notes)


# ---------------------------------------------------------------- balancers


def test_nginx_conf(tmp_path: Path) -> None:
    s = scenario(
        "balancer: {policy: power_of_d, max_fails: 2, fail_timeout: 5, upstream_timeout: 1.5,"
        " next_upstream_tries: 1}\napp: {nodes: 2}"
    )
    compose, files = stack(s, tmp_path)
    conf = lines(files["balancer/nginx.conf"])
    assert "worker_processes 1;" in conf
    assert "random two least_conn;" in conf
    assert "server app1:9000 weight=1 max_fails=2 fail_timeout=5s;" in conf
    assert "fastcgi_pass php;" in conf
    assert "fastcgi_read_timeout 1500ms;" in conf
    assert "fastcgi_next_upstream_tries 1;" in conf
    assert "fastcgi_param SCRIPT_FILENAME /srv/app/index.php;" in conf
    assert "real_ip_header X-Forwarded-For;" in conf
    assert "keepalive" not in files["balancer/nginx.conf"]  # a connection per request
    assert compose["services"]["lb"]["image"] == "lbsim/nginx:latest"
    assert compose["services"]["lb"]["volumes"] == [
        "./balancer/nginx.conf:/etc/nginx/nginx.conf:ro"
    ]


def test_nginx_round_robin_has_no_directive(tmp_path: Path) -> None:
    _, files = stack(scenario(), tmp_path)
    upstream = files["balancer/nginx.conf"].split("upstream php {")[1].split("}")[0]
    assert lines(upstream)[1] == "# round robin: nginx default (smooth weighted)"


def test_haproxy_cfg(tmp_path: Path) -> None:
    s = scenario(
        "balancer: {product: haproxy, policy: leastconn_haproxy, queue_timeout: 7,"
        " health_check: {interval: 0.5, fall: 2, rise: 1}, upstream_timeout: 30}\n"
        "app: {nodes: 3, max_conns: 4}"
    )
    compose, files = stack(s, tmp_path, balancer="haproxy", port=9000)
    cfg = lines(files["balancer/haproxy.cfg"])
    assert "balance leastconn" in cfg
    assert "use-fcgi-app php" in cfg
    assert "set-param SCRIPT_FILENAME /srv/app/index.php" in cfg
    # a kept FastCGI connection pins a php-fpm worker: one request per connection
    assert "no option keep-conn" in cfg
    assert (
        "server app2 app2:9000 proto fcgi weight 1 maxconn 4 check inter 500ms fall 2 rise 1" in cfg
    )
    assert "timeout queue 7s" in cfg
    assert "timeout server 30s" in cfg
    assert "retries 3" in cfg  # HAProxy's default (balancer.retries)
    assert "nbthread 1" in cfg
    assert (
        "http-request set-src hdr(x-forwarded-for) if { req.hdr(x-forwarded-for) -m found }" in cfg
    )
    assert compose["services"]["lb"]["ports"] == ["127.0.0.1:9000:80", "127.0.0.1:9001:8404"]
    assert json.loads(files["stack.json"])["haproxy_stats"] == "http://127.0.0.1:9001/stats;csv"


def test_haproxy_least_load_agent(tmp_path: Path) -> None:
    s = scenario(
        "balancer: {product: haproxy, policy: least_load,"
        " policy_options: {interval: 1, metric: cpu, algorithm: leastconn, min_idle: 0.05}}\n"
        "app: {nodes: 2, weight: 100}"
    )
    compose, files = stack(s, tmp_path, balancer="haproxy")
    cfg = lines(files["balancer/haproxy.cfg"])
    assert "balance leastconn" in cfg
    # the scenario's weight 100: an agent reply N% gives weight N (1 * N% would
    # truncate to 0, in the model and in HAProxy alike)
    assert (
        "server app1 app1:9000 proto fcgi weight 100 agent-check agent-port 9777 agent-inter 1s"
        in cfg
    )
    env = compose["services"]["app1"]["environment"]
    assert env["LBSIM_AGENT_PORT"] == "9777"
    assert env["LBSIM_AGENT_METRIC"] == "cpu"
    assert env["LBSIM_AGENT_MIN_IDLE"] == "0.05"
    # the agent reads php-fpm's status on the pool's status listener, or
    # through the pool itself where the scenario says so (agent_status: pool)
    assert env["LBSIM_AGENT_STATUS"] == "listener"
    assert env["LBSIM_FPM_ADDRESS"] == "127.0.0.1:9001"
    assert "pm.status_listen = 127.0.0.1:9001" in files["app1/www.conf"]
    pool = scenario(
        "balancer: {product: haproxy, policy: least_load, policy_options: {agent_status: pool}}\n"
        "app: {nodes: 2, weight: 100}"
    )
    env = stack(pool, tmp_path, balancer="haproxy")[0]["services"]["app1"]["environment"]
    assert env["LBSIM_AGENT_STATUS"] == "pool"
    assert env["LBSIM_FPM_ADDRESS"] == "127.0.0.1:9000"
    assert (
        "LBSIM_AGENT_PORT" not in stack(scenario(), tmp_path)[0]["services"]["app1"]["environment"]
    )


def test_haproxy_agent_weights_are_the_scenarios_up_to_the_maximum(tmp_path: Path) -> None:
    """The stack's HAProxy gets the weights the model routes with (agent_weight on
    the scenario's weights), capped at HAProxy's 256 as the model caps them."""
    s = scenario(
        "balancer: {product: haproxy, policy: least_load}\n"
        "app: {nodes: [{weight: 1}, {weight: 100}, {weight: 300}]}"
    )
    cfg = generate_stack(s, tmp_path, StackOptions(balancer="haproxy")).files[
        "balancer/haproxy.cfg"
    ]
    weights = [ln.split(" weight ")[1].split()[0] for ln in lines(cfg) if ln.startswith("server")]
    assert weights == ["1", "100", "256"]


@pytest.mark.parametrize(
    ("balancer", "policy"),
    [("haproxy", "least_conn"), ("haproxy", "ip_hash"), ("nginx", "least_time")],
)
def test_stack_refuses_policy_without_counterpart(
    balancer: str, policy: str, tmp_path: Path
) -> None:
    rule = haproxy_rule if balancer == "haproxy" else nginx_rule
    with pytest.raises(ReplayUnsupported, match=f"policy '{policy}' cannot be replayed"):
        rule(policy)
    if balancer == "nginx":  # the model has it, the stack's nginx has not
        s = scenario(f"balancer: {{policy: {policy}}}")
        with pytest.raises(ReplayUnsupported, match=f"policy '{policy}' cannot be replayed"):
            generate_stack(s, tmp_path)


def test_unknown_balancer_and_envoy(tmp_path: Path) -> None:
    with pytest.raises(ReplayUnsupported, match="unknown balancer 'traefik'; choose one of nginx"):
        generate_stack(scenario(), tmp_path, StackOptions(balancer="traefik"))  # type: ignore[arg-type]
    with pytest.raises(ReplayUnsupported, match=r"Debian .* has no Envoy package"):
        generate_stack(scenario(), tmp_path, StackOptions(balancer="envoy"))  # type: ignore[arg-type]


# ---------------------------------------------------------------- database


def test_galera_environment(tmp_path: Path) -> None:
    s = scenario(
        db="database: {engine: galera, cores: 3, max_connections: 40, applier_threads: 4,"
        " fc_limit: 100, fc_factor: 0.5, fc_single_primary: true, retry_autocommit: 0,"
        " sync_wait: true, causal_read_timeout: 2.5, lock_wait_timeout: 0.5, threads: 8,"
        " key_space: 5000, app_retries: 3, connect: persistent,"
        " nodes: [{name: a, cores: 1}, {name: b, max_connections: 10, applier_threads: 2}]}"
    )
    compose, _ = stack(s, tmp_path)
    svcs = compose["services"]
    assert svcs["a"]["cpus"] == 1.0 and svcs["b"]["cpus"] == 3.0
    assert svcs["a"]["environment"] == {
        "LBSIM_NODE_NAME": "a",
        "LBSIM_GALERA": "1",
        "LBSIM_CLUSTER_NODES": "a,b",
        "LBSIM_BOOTSTRAP": "1",
        "LBSIM_MAX_CONNECTIONS": "40",
        "LBSIM_THREAD_POOL": "8",
        "LBSIM_LOCK_WAIT_TIMEOUT": "1",
        "LBSIM_ROWS": "5000",
        "LBSIM_APPLIER_THREADS": "4",
        "LBSIM_FC_LIMIT": "100",
        "LBSIM_FC_FACTOR": "0.5",
        "LBSIM_FC_SINGLE_PRIMARY": "yes",
        "LBSIM_RETRY_AUTOCOMMIT": "0",
        "LBSIM_SYNC_WAIT": "1",
        "LBSIM_CAUSAL_READ_TIMEOUT": "3",
    }
    b = svcs["b"]["environment"]
    assert (b["LBSIM_BOOTSTRAP"], b["LBSIM_MAX_CONNECTIONS"], b["LBSIM_APPLIER_THREADS"]) == (
        "0",
        "10",
        "2",
    )
    app = svcs["app1"]["environment"]
    assert app["LBSIM_DB_PERSISTENT"] == "1"
    assert app["LBSIM_DB_RETRIES"] == "3"


def test_galera_routing_proxy_split(tmp_path: Path) -> None:
    s = scenario(
        "app: {nodes: 2}",
        db="database: {engine: galera, nodes: 3, routing: {mode: proxy, policy: least_conn,"
        " read_write_split: true, writer: 1}}",
    )
    compose, files = stack(s, tmp_path)
    for app in ("app1", "app2"):
        env = compose["services"][app]["environment"]
        assert (env["LBSIM_DB_READ_HOST"], env["LBSIM_DB_WRITE_HOST"]) == ("dbproxy", "db2")
    cfg = lines(files["dbproxy/haproxy.cfg"])
    assert "mode tcp" in cfg
    assert "balance leastconn" in cfg
    assert "server db3 db3:3306 check inter 2s fall 3 rise 2" in cfg
    assert compose["services"]["dbproxy"]["image"] == "lbsim/haproxy:latest"


def test_galera_routing_proxy_first_without_split(tmp_path: Path) -> None:
    s = scenario(db="database: {engine: galera, nodes: 2, routing: {policy: first}}")
    compose, files = stack(s, tmp_path)
    env = compose["services"]["app1"]["environment"]
    assert (env["LBSIM_DB_READ_HOST"], env["LBSIM_DB_WRITE_HOST"]) == ("dbproxy", "dbproxy")
    assert "balance first" in lines(files["dbproxy/haproxy.cfg"])


def test_galera_routing_pinned(tmp_path: Path) -> None:
    s = scenario(
        "app: {nodes: 3}", db="database: {engine: galera, nodes: 2, routing: {mode: pinned}}"
    )
    compose, files = stack(s, tmp_path)
    reads = [compose["services"][f"app{i}"]["environment"]["LBSIM_DB_READ_HOST"] for i in (1, 2, 3)]
    assert reads == ["db1", "db2", "db1"]
    assert "dbproxy" not in compose["services"]
    assert "dbproxy/haproxy.cfg" not in files


def test_mysql_single_server(tmp_path: Path) -> None:
    s = scenario(db="database: {engine: mysql, cores: 2, max_connections: 20}")
    compose, _ = stack(s, tmp_path)
    svcs = compose["services"]
    assert [n for n in svcs if n.startswith("db")] == ["db1"]
    assert svcs["db1"]["environment"] == {
        "LBSIM_NODE_NAME": "db1",
        "LBSIM_GALERA": "0",
        "LBSIM_MAX_CONNECTIONS": "20",
        "LBSIM_THREAD_POOL": "0",
        "LBSIM_LOCK_WAIT_TIMEOUT": "50",
        "LBSIM_ROWS": "100000",
    }
    assert svcs["app1"]["environment"]["LBSIM_DB_READ_HOST"] == "db1"
    assert svcs["app1"]["depends_on"] == {"db1": {"condition": "service_healthy"}}


def test_no_database(tmp_path: Path) -> None:
    s = lbsim.loads_scenario("workload: {open: {rate: 1}, classes: [{name: a, cpu: 0.01}]}")
    compose, _ = stack(s, tmp_path)
    assert list(compose["services"]) == ["lb", "app1"]
    assert compose["services"]["app1"]["environment"] == {"LBSIM_NODE": "app1"}
    assert "depends_on" not in compose["services"]["app1"]


def test_rows_cover_the_hot_keys(tmp_path: Path) -> None:
    s = scenario(db="database: {engine: mysql, key_space: 10}")
    assert json.loads(generate_stack(s, tmp_path).files["stack.json"])["rows"] == 50


def test_refuses_galera_nodes_it_cannot_build(tmp_path: Path) -> None:
    # a node's latency is replayed (tc netem: tests/test_story_galera.py); its
    # slowness only as the equivalent scenario (lbsim.validation.slow_node)
    nodes = "[{name: a}, {name: b, slowness: 3}]"
    with pytest.raises(ReplayUnsupported, match="galera node 'b' has slowness 3"):
        generate_stack(scenario(db=f"database: {{engine: galera, nodes: {nodes}}}"), tmp_path)


def test_app_outages_are_replayed_by_the_same_stack(tmp_path: Path) -> None:
    """Outages are the replay's (docker kill / start, lbsim.validation.faults):
    the stack is the one without them."""
    s = scenario("app: {nodes: [{name: a, outages: [{start: 1, duration: 2}]}, {name: b}]}")
    plain = scenario("app: {nodes: [{name: a}, {name: b}]}")
    out = generate_stack(s, tmp_path / "with")
    same = generate_stack(plain, tmp_path / "without")
    assert out.files["docker-compose.yml"] == same.files["docker-compose.yml"]
    late = scenario("app: {nodes: [{name: a, outages: [{start: 1, duration: 1000}]}, {name: b}]}")
    with pytest.raises(ReplayUnsupported, match="app node 'a': an outage ending at 1001 s"):
        generate_stack(late, tmp_path / "late")


def test_write_puts_every_file(tmp_path: Path) -> None:
    out = generate_stack(scenario("app: {nodes: 2}"), tmp_path)
    written = out.write(tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == [
        "app1/www.conf",
        "app2/www.conf",
        "balancer/nginx.conf",
        "dbproxy/haproxy.cfg",
        "docker-compose.yml",
        "stack.json",
    ]


def test_mixed_scenario_generates(tmp_path: Path) -> None:
    s = lbsim.load_scenario(ROOT / "scenarios" / "mixed.yaml")
    out = generate_stack(s, tmp_path)
    compose = yaml.safe_load(out.files["docker-compose.yml"])
    assert list(compose["services"]) == ["lb", "db1", "db2", "db3", "dbproxy", "app1", "app2"]
    assert any("no active health checks" in n for n in out.notes)


# ---------------------------------------------------------------- my.cnf from the entrypoint


def print_config(env: dict[str, str]) -> list[str]:
    bash = shutil.which("bash")
    if bash is None:  # pragma: no cover - every CI image has bash
        pytest.skip("bash is not installed")
    # a script that prints and exits: the timeout (for a loaded machine) only
    # catches a hang, and kills its process group
    out = run_program(
        [bash, str(ENTRYPOINT), "--print-config"],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return lines(out.stdout)


def test_my_cnf_for_galera_node(tmp_path: Path) -> None:
    s = scenario(
        db="database: {engine: galera, nodes: 3, max_connections: 40, applier_threads: 4,"
        " fc_limit: 100, fc_factor: 0.5, sync_wait: true, retry_autocommit: 2, threads: 6}"
    )
    env = stack(s, tmp_path)[0]["services"]["db2"]["environment"]
    cnf = print_config(env)
    for want in (
        "max_connections = 40",
        "thread_handling = pool-of-threads",
        "thread_pool_size = 6",
        "innodb_lock_wait_timeout = 50",
        "wsrep_on = ON",
        "wsrep_cluster_address = gcomm://db1,db2,db3",
        "wsrep_node_name = db2",
        "wsrep_node_address = db2",
        "wsrep_slave_threads = 4",
        "wsrep_retry_autocommit = 2",
        "wsrep_sync_wait = 1",
        'wsrep_provider_options = "gcs.fc_limit=100;gcs.fc_factor=0.5;'
        'gcs.fc_single_primary=no;repl.causal_read_timeout=PT30S"',
        "binlog_format = ROW",
        "skip-name-resolve = ON",
    ):
        assert want in cnf, want


def test_my_cnf_for_single_server(tmp_path: Path) -> None:
    s = scenario(db="database: {engine: mysql, max_connections: 20, lock_wait_timeout: 3}")
    cnf = print_config(stack(s, tmp_path)[0]["services"]["db1"]["environment"])
    assert "max_connections = 20" in cnf
    assert "innodb_lock_wait_timeout = 3" in cnf
    assert "wsrep_on = OFF" in cnf
    assert not any(ln.startswith("wsrep_provider") for ln in cnf)
    assert not any(ln.startswith("thread_handling") for ln in cnf)


@pytest.mark.parametrize("product", ["nginx", "haproxy"])
def test_the_balancer_logs_every_request_on_its_stdout(tmp_path: Path, product: str) -> None:
    """The access log ``lbsim replay --access-log`` saves and ``lbsim workload
    from-log`` reads: nginx's ``log_format lbsim``, HAProxy's httplog, on stdout."""
    from lbsim.validation.configs import NGINX_LOG_FORMAT

    s = scenario(f"balancer: {{product: {product}}}\napp: {{nodes: 2}}")
    _, files = stack(s, tmp_path, balancer=product)
    if product == "nginx":
        cfg = lines(files["balancer/nginx.conf"])
        assert f"log_format lbsim '{NGINX_LOG_FORMAT}';" in cfg
        assert "access_log /dev/stdout lbsim;" in cfg
        assert "access_log off;" not in cfg
    else:
        cfg = lines(files["balancer/haproxy.cfg"])
        web = cfg[cfg.index("frontend web") :]
        assert web[web.index("no log") + 1] == "log stdout format raw local0 info"
        assert "option httplog" in web[: web.index("backend php")]
