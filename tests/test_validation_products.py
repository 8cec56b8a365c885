"""balancer.product on the real stack: which balancer runs, what its config says, and
failure names that match the model's (no Docker needed)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import lbsim
from lbsim.cli.app import app
from lbsim.model.observer import reason
from lbsim.scenario import Scenario
from lbsim.validation import ReplayUnsupported, StackOptions, generate_stack, haproxy_rule
from lbsim.validation.configs import nginx_next_upstream
from lbsim.validation.loadgen import CONNECT_ERROR, NOT_SENT, TIMEOUT, Record
from lbsim.validation.measured import failure_reason, summarise
from lbsim.validation.overload import answered_by_horizon, model_scenario, predicted_counts
from lbsim.validation.products import product_overrides, stack_balancer

pytestmark = pytest.mark.unit

BASE = """
name: t
duration: 10
warmup: 2
workload:
  open: {rate: 10}
  classes: [{name: a, cpu: 0.01}]
"""


def scenario(extra: str = "") -> Scenario:
    return lbsim.loads_scenario(BASE + extra + "\n")


def files(s: Scenario, tmp_path: Path, balancer: str | None = None) -> dict[str, str]:
    return generate_stack(s, tmp_path, StackOptions(balancer=balancer)).files  # type: ignore[arg-type]


def lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines()]


# ---------------------------------------------------------------- which balancer runs


def test_the_scenarios_product_runs() -> None:
    assert stack_balancer(scenario()) == "nginx"  # named by nobody: nginx
    s = scenario("balancer: {product: haproxy}")
    assert stack_balancer(s) == stack_balancer(s, "haproxy") == "haproxy"
    with pytest.raises(ReplayUnsupported) as e:
        stack_balancer(s, "nginx")
    assert "is balancer.product haproxy, but --balancer asks for nginx" in str(e.value)


def test_the_product_a_policy_implies_runs() -> None:
    assert stack_balancer(scenario("balancer: {policy: least_load}")) == "haproxy"


def test_balancer_option_names_the_product_of_a_file_that_names_none(tmp_path: Path) -> None:
    silent = tmp_path / "s.yaml"
    silent.write_text(BASE)
    said = tmp_path / "h.yaml"
    said.write_text(BASE + "balancer: {product: haproxy}\n")
    assert product_overrides(silent, "haproxy") == ["balancer.product=haproxy"]
    assert product_overrides(silent, None) == []
    assert product_overrides(said, "haproxy") == product_overrides(said, "nginx") == []
    assert product_overrides(silent, "nginx", ["balancer.product=haproxy"]) == []
    s = lbsim.load_scenario(silent, product_overrides(silent, "haproxy"))
    assert (s.balancer.product, s.balancer.policy) == ("haproxy", "roundrobin_haproxy")


@pytest.mark.parametrize("how", ["scenario", "option"])
def test_envoy_is_refused_with_the_reason(how: str, tmp_path: Path) -> None:
    with pytest.raises(ReplayUnsupported) as e:
        if how == "scenario":
            stack_balancer(scenario("balancer: {product: envoy}"))
        else:
            path = tmp_path / "s.yaml"
            path.write_text(BASE)
            product_overrides(path, "envoy")
    msg = str(e.value)
    assert "Debian" in msg and "no Envoy package" in msg
    assert "simulator still models Envoy" in msg


def test_unknown_balancer() -> None:
    with pytest.raises(ReplayUnsupported, match="unknown balancer 'traefik'; choose one of nginx"):
        stack_balancer(scenario(), "traefik")


def test_generate_stack_follows_the_product(tmp_path: Path) -> None:
    f = files(scenario("balancer: {product: haproxy}"), tmp_path)
    assert "balancer/haproxy.cfg" in f and "balancer/nginx.conf" not in f
    meta = yaml.safe_load(f["stack.json"])
    assert meta["balancer"] == "haproxy"
    assert not [n for n in meta["notes"] if "balancer.product" in n]


def test_policy_of_the_other_product_is_refused_naming_the_nearest(tmp_path: Path) -> None:
    s = scenario("balancer: {policy: least_conn}")  # nginx's rule: the API asks for HAProxy
    with pytest.raises(ReplayUnsupported) as e:
        haproxy_rule(s.balancer.policy)
    msg = str(e.value)
    assert "policy 'least_conn' cannot be replayed by haproxy: it is nginx's rule" in msg
    assert "haproxy's nearest rule is leastconn_haproxy" in msg


# ---------------------------------------------------------------- product options


def test_nginx_options(tmp_path: Path) -> None:
    s = scenario(
        "balancer: {product: nginx, policy: hash_nginx, policy_options: {key: client},"
        " max_fails: 3, fail_timeout: 4, next_upstream: [error, http_503],"
        " next_upstream_tries: 2, next_upstream_timeout: 2.5, upstream_timeout: 9}\n"
        "app: {nodes: 2, max_conns: 3}"
    )
    conf = lines(files(s, tmp_path)["balancer/nginx.conf"])
    assert "hash $http_x_lbsim_client;" in conf
    assert "server app1:9000 weight=1 max_fails=3 fail_timeout=4s max_conns=3;" in conf
    assert "fastcgi_next_upstream error http_503;" in conf
    assert "fastcgi_next_upstream_tries 2;" in conf
    assert "fastcgi_next_upstream_timeout 2500ms;" in conf
    assert "fastcgi_read_timeout 9s;" in conf


def test_nginx_defaults(tmp_path: Path) -> None:
    conf = lines(files(scenario(), tmp_path)["balancer/nginx.conf"])
    assert "fastcgi_next_upstream error timeout;" in conf
    assert "fastcgi_next_upstream_tries 0;" in conf
    assert "fastcgi_next_upstream_timeout 0;" in conf
    assert "server app1:9000 weight=1 max_fails=1 fail_timeout=10s;" in conf


def test_fastcgi_next_upstream() -> None:
    assert nginx_next_upstream([]) == "off"
    assert nginx_next_upstream(["http_503", "timeout"]) == "timeout http_503"
    with pytest.raises(ReplayUnsupported, match="fastcgi_next_upstream has no http_502/http_504"):
        nginx_next_upstream(["error", "http_502"])


def test_haproxy_options(tmp_path: Path) -> None:
    s = scenario(
        "balancer: {product: haproxy, policy: hash_haproxy,"
        " policy_options: {key: client, function: djb2, avalanche: true},"
        " retries: 2, redispatch: true, queue_timeout: 2.5, slow_start: 30,"
        " observe: {error_limit: 5, on_error: mark-down},"
        " health_check: {interval: 1, fall: 2, rise: 3}}\n"
        "app: {nodes: 2, max_conns: 3}"
    )
    cfg = lines(files(s, tmp_path)["balancer/haproxy.cfg"])
    assert "balance hdr(X-Lbsim-Client)" in cfg
    assert "hash-type map-based djb2 avalanche" in cfg
    assert "retries 2" in cfg
    assert "option redispatch" in cfg
    assert "timeout queue 2500ms" in cfg
    assert (
        "server app2 app2:9000 proto fcgi weight 1 maxconn 3 check inter 1s fall 2 rise 3 "
        "observe layer7 error-limit 5 on-error mark-down slowstart 30s"
    ) in cfg


def test_haproxy_defaults(tmp_path: Path) -> None:
    cfg = lines(files(scenario("balancer: {product: haproxy}"), tmp_path)["balancer/haproxy.cfg"])
    assert "balance roundrobin" in cfg  # roundrobin_haproxy, HAProxy's default policy
    assert "retries 3" in cfg
    assert "no option redispatch" in cfg
    assert "timeout queue 30s" in cfg
    assert not [ln for ln in cfg if "observe" in ln or "slowstart" in ln]


def test_power_of_d_flavour_must_be_the_products() -> None:
    assert haproxy_rule("power_of_d", {"flavour": "haproxy", "choices": 3}).balance == "random(3)"
    with pytest.raises(ReplayUnsupported, match="reproduces Envoy, not HAProxy's random"):
        haproxy_rule("power_of_d", {"flavour": "envoy"})


@pytest.mark.parametrize(
    ("policy", "balance"),
    [("static_rr", "balance static-rr"), ("roundrobin_haproxy", "balance roundrobin")],
)
def test_haproxy_round_robins(policy: str, balance: str, tmp_path: Path) -> None:
    s = scenario(f"balancer: {{product: haproxy, policy: {policy}}}")
    assert balance in lines(files(s, tmp_path)["balancer/haproxy.cfg"])


def test_galera_proxy_takes_the_nearest_haproxy_rule(tmp_path: Path) -> None:
    s = lbsim.loads_scenario(
        BASE + "database: {engine: galera, nodes: 3, routing: {policy: least_conn}}\n"
    )
    cfg = lines(files(s, tmp_path)["dbproxy/haproxy.cfg"])
    assert "balance leastconn" in cfg


# ---------------------------------------------------------------- CLI


@pytest.mark.cli
def test_cli_balancer_disagreeing_with_the_product_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "h.yaml"
    path.write_text(BASE + "balancer: {product: haproxy}\n")
    result = CliRunner().invoke(
        app, ["stack", "status", "--scenario", str(path), "--balancer", "nginx"]
    )
    assert result.exit_code == 2, result.output
    assert "is balancer.product haproxy, but --balancer asks for nginx" in result.stderr


@pytest.mark.cli
def test_cli_balancer_reads_a_silent_file_as_that_product(tmp_path: Path) -> None:
    from lbsim.cli.stack import load_for_stack

    path = tmp_path / "s.yaml"
    path.write_text(BASE)
    s = load_for_stack(path, "haproxy")
    assert s.balancer.product == "haproxy"
    assert s.balancer.policy == "roundrobin_haproxy"  # HAProxy's own round robin
    assert load_for_stack(path, None).balancer.policy == "round_robin"
    path.write_text(BASE + "balancer: {policy: round_robin}\n")  # nginx's rule, written
    result = CliRunner().invoke(
        app, ["stack", "status", "--scenario", str(path), "--balancer", "haproxy"]
    )
    assert result.exit_code == 2, result.output
    assert "policy 'round_robin' is not a rule of haproxy" in result.stderr


@pytest.mark.cli
@pytest.mark.parametrize("where", ["file", "option"])
def test_cli_envoy_exits_2(where: str, tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text(BASE + ("balancer: {product: envoy}\n" if where == "file" else ""))
    extra = ["--balancer", "envoy"] if where == "option" else []
    result = CliRunner().invoke(app, ["stack", "up", "--scenario", str(path), *extra])
    assert result.exit_code == 2, result.output
    assert "no Envoy package" in re.sub(r"\s+", " ", result.stderr)
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- failures by name


@pytest.mark.parametrize("status", [500, 502, 503, 504, TIMEOUT])
def test_measured_failures_are_named_as_the_model_names_them(status: int) -> None:
    assert failure_reason(Record(0, "a", 0, 0.0, status=status)) == reason(status)


def test_summarise_fills_the_models_failure_keys() -> None:
    s = scenario()
    recs = [
        Record(0, "a", 0, 3.0, sent=3.0, latency=0.001, status=502),
        Record(1, "a", 0, 3.1, sent=3.1, latency=1.0, status=503),
        Record(2, "a", 0, 3.2, sent=3.2, latency=0.1, status=200),
        Record(3, "a", 0, 3.3, sent=3.3, latency=0.0, status=CONNECT_ERROR),
        Record(4, "a", 0, 1.0, sent=1.0, latency=0.001, status=502),  # in the warm-up
    ]
    failed = summarise(s, recs)["requests"]["failed"]
    assert failed == {
        "timeout": 0,
        "http_502": 1,
        "http_503": 1,
        "http_504": 0,
        "connect_error": 1,
        "total": 3,
    }


def test_answered_by_the_horizon_as_the_model_counts() -> None:
    s = scenario()  # warm-up 2, horizon 12
    recs = [
        Record(0, "a", 0, 5.0, sent=5.0, latency=0.002, status=502),
        Record(1, "a", 0, 11.5, sent=11.5, latency=1.0, status=503),  # answered after 12
        Record(2, "a", 0, 11.0, sent=11.0, latency=0.5, status=200),
        Record(3, "a", 0, 11.9, status=NOT_SENT),
        Record(4, "a", 0, 12.0, sent=12.0, latency=0.001, status=502),  # after the window
    ]
    assert answered_by_horizon(s, recs) == {
        "arrived": 3,
        "http_502": 1,
        "in_flight": 1,
        "completed": 1,
    }


def test_model_scenario_gives_the_node_its_measured_cores() -> None:
    from lbsim.validation.calibration import Calibration, ClassCost
    from lbsim.validation.workplan import MachineCosts

    s = scenario("app: {nodes: 1, cores: 1, max_conns: 2}")
    raw = yaml.safe_load(BASE + "app: {nodes: 1, cores: 1, max_conns: 2}\n")
    cost = ClassCost("a", 10, 0.01, 0.02, 0.0, 0.0, 0.0, 0.03, 0.025, 0.0, 0.0, 7e-6)
    cal = Calibration(MachineCosts(7e-6), [cost], host_cores=2.0, idle_cores=0.5)
    model = model_scenario(raw, s, cal, 40.0, {"app1": 0.4})
    node = model.app.resolved_nodes()[0]
    assert math.isclose(node.cores, 0.4)
    assert not model.hosts  # the measured cores hold what the machine gave
    assert model.workload.open is not None and model.workload.open.rate == 40.0
    assert model.workload.classes[0].cpu.mean == pytest.approx(0.02)
    counts = predicted_counts(
        {
            "requests": {
                "arrived": 5,
                "completed": 2,
                "in_flight": 1,
                "failed": {"http_502": 2, "total": 2},
            }
        }
    )
    assert counts == {"arrived": 5, "completed": 2, "in_flight": 1, "http_502": 2}
