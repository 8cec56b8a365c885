"""What a configuration costs, for capacity planning: CPU cores provisioned.

``cost = Σ app nodes' cores + Σ database nodes' cores``. Cores are the unit
because that is what is bought (cloud instances and container CPU limits are
priced, to first order, per vCPU) and because both tiers' sizes reduce to
it: a node with 4 cores costs twice one with 2. App nodes placed on a shared
``host`` count that host's cores once (the machine is what is paid for),
however many nodes it holds. A single MySQL server counts its cores; Galera
counts every node's; ``engine: none`` costs nothing. The balancer is the
same in every variant and is left out.
"""

from __future__ import annotations

from lbsim.scenario.schema import Scenario


def app_cores(scenario: Scenario) -> float:
    hosts = {h.name: h.cores for h in scenario.hosts}
    total = 0.0
    used_hosts: set[str] = set()
    for node in scenario.app.resolved_nodes():
        if node.host is not None and node.host in hosts:
            used_hosts.add(node.host)
        else:
            total += node.cores
    return total + sum(hosts[h] for h in used_hosts)


def db_cores(scenario: Scenario) -> float:
    db = scenario.database
    if db.engine == "none":
        return 0.0
    if db.engine == "galera":
        return float(sum(n.cores for n in db.resolved_nodes()))
    return float(db.cores)


def cost(scenario: Scenario) -> float:
    """Cores provisioned by the scenario (app tier plus database tier)."""
    return app_cores(scenario) + db_cores(scenario)
