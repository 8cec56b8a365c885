"""Live: the stack's own nginx and HAProxy accept every config lbsim writes.

For every policy each product replays and for every product option mapped
(validation/README.md), the generated ``nginx.conf`` / ``haproxy.cfg`` is
checked by the binary in the stack's image (``nginx -t``, ``haproxy -c``), so
a directive that Debian's nginx 1.22 or HAProxy 2.6 does not know fails here,
not when a stack starts. One container per product checks them all (seconds).
"""

from __future__ import annotations

from pathlib import Path

import pytest

import lbsim
from lbsim.scenario import Scenario
from lbsim.validation import StackOptions, generate_stack, replayable
from lbsim.validation.docker import image_exists, run
from tests.stack_support import require_docker

BASE = """
name: cfg
workload:
  open: {rate: 10}
  classes: [{name: a, cpu: 0.01}]
app: {nodes: 3, max_conns: 4}
"""
#: the policy options that change the rule (every other option leaves it as is)
OPTIONS = {
    "consistent_hash": ["{key: client}"],
    "hash_nginx": ["{key: client}"],
    "hash_haproxy": ["{key: client, function: djb2, avalanche: true}", "{function: crc32}"],
    "least_load": ["{algorithm: leastconn}"],
}
#: product options, each scenario one config
PRODUCT_OPTIONS = {
    "nginx": [
        "next_upstream: [], next_upstream_tries: 2, next_upstream_timeout: 1.5",
        "next_upstream: [error, timeout, http_503], max_fails: 0, upstream_timeout: 0.25",
        "health_check: {interval: 1, fall: 2, rise: 2}",
    ],
    "haproxy": [
        "retries: 0, redispatch: true, queue_timeout: 0.5, slow_start: 20,"
        " health_check: {interval: 1, fall: 2, rise: 2}",
        "observe: {error_limit: 3, on_error: mark-down},"
        " health_check: {interval: 1, fall: 2, rise: 2}",
        "observe: {error_limit: 10, on_error: fail-check},"
        " health_check: {interval: 2, fall: 3, rise: 1}",
    ],
}
FILES = {"nginx": "balancer/nginx.conf", "haproxy": "balancer/haproxy.cfg"}
CHECK = {
    # relative includes (fastcgi_params) resolve next to the main config file
    "nginx": "for f in /cfg/*.conf; do cp $f /etc/nginx/nginx.conf; "
    "nginx -q -t || { echo BAD $f; exit 1; }; done",
    "haproxy": "for f in /cfg/*.cfg; do haproxy -q -c -f $f || { echo BAD $f; exit 1; }; done",
}


def _scenarios(product: str) -> list[Scenario]:
    out = []
    for policy in replayable(product):  # type: ignore[arg-type]
        more = ["{choices: 3}"] if (policy, product) == ("power_of_d", "haproxy") else []
        for opts in [None, *OPTIONS.get(policy, []), *more]:
            extra = f", policy_options: {opts}" if opts else ""
            bal = f"balancer: {{product: {product}, policy: {policy}{extra}}}"
            out.append(lbsim.loads_scenario(BASE + bal + "\n"))
    for options in PRODUCT_OPTIONS[product]:
        out.append(lbsim.loads_scenario(BASE + f"balancer: {{product: {product}, {options}}}\n"))
    return out


@pytest.mark.parametrize("product", ["nginx", "haproxy"])
def test_every_config_scenario_loads_and_generates(product: str, tmp_path: Path) -> None:
    """Not live: the scenarios the binary check feeds are valid and generate a
    config, so a mistake here fails the default run, not only the stack run."""
    scenarios = _scenarios(product)
    for i, s in enumerate(scenarios):
        files = generate_stack(s, tmp_path / f"gen{i}", StackOptions()).files
        assert FILES[product] in files and files[FILES[product]].strip()
    assert len(scenarios) >= 8


@pytest.mark.stack
@pytest.mark.slow
@pytest.mark.parametrize("product", ["nginx", "haproxy"])
def test_the_products_binary_accepts_every_config(product: str, tmp_path: Path) -> None:
    docker = require_docker()
    image = f"lbsim/{product}:latest"
    if not image_exists(docker.docker, image):
        pytest.fail(f"{image} is not built (lbsim stack build)", pytrace=False)
    ext = FILES[product].rsplit(".", 1)[1]
    scenarios = _scenarios(product)
    for i, s in enumerate(scenarios):
        text = generate_stack(s, tmp_path / f"gen{i}", StackOptions()).files[FILES[product]]
        (tmp_path / f"{i:02d}.{ext}").write_text(text, encoding="utf-8")
    hosts = [f"--add-host=app{n}:127.0.0.1" for n in (1, 2, 3)]
    argv = [docker.docker, "run", "--rm", *hosts, "-v", f"{tmp_path}:/cfg:ro", image]
    proc = run([*argv, "sh", "-c", CHECK[product]], timeout=120, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert len(scenarios) >= 8
