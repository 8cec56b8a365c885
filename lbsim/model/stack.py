"""Wiring: build the component tree of a scenario and run it.

workload → client edge → balancer → app nodes (on CPUs, possibly on shared
hosts) → database tier. Every connection is made here, explicitly; a
component that is not wired fails loudly on first use.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Mapping
from typing import Any

import simpy

from lbsim.model.app import AppNode
from lbsim.model.balancer import Balancer
from lbsim.model.client import ClientEdge
from lbsim.model.cpu import BandwidthCpu, Cpu, Host
from lbsim.model.database import DatabaseTier, NoDatabase
from lbsim.model.db.galera import GaleraTier
from lbsim.model.db.membership import FaultyGaleraTier
from lbsim.model.db.mysql import MySQLTier
from lbsim.model.distributions import Sampler
from lbsim.model.engine import every, later, run
from lbsim.model.observer import Observer
from lbsim.model.policies import Backend, make_policy
from lbsim.model.streams import RandomStreams
from lbsim.model.workload import (
    ClientPopulation,
    ClosedLoopSource,
    OpenLoopSource,
    RequestFactory,
    arrival_blocks,
)
from lbsim.scenario import schema

Progress = Callable[[float, float], None]  # (simulated now, horizon)


def build_database(
    scenario: schema.Scenario,
    env: simpy.Environment,
    streams: RandomStreams,
    hosts: Mapping[str, Host] | None = None,
) -> DatabaseTier:
    """The database tier; servers placed on a host share its cores (``hosts`` by name)."""
    spec = scenario.database
    if spec.engine == "mysql":
        return MySQLTier(env, scenario, spec, streams, hosts)
    if spec.engine == "galera":
        if any(n.outages for n in spec.resolved_nodes()):
            return FaultyGaleraTier(env, scenario, spec, streams, hosts)
        return GaleraTier(env, scenario, spec, streams, hosts)
    return NoDatabase()


def merge(into: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``more`` into ``into`` (the database adds to ``utilisation``)."""
    for k, v in more.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = v
    return into


class Stack:
    """One replication of a scenario, built and ready to run."""

    def __init__(self, scenario: schema.Scenario, replication: int = 0):
        self.scenario = scenario
        self.replication = replication
        self.env = env = simpy.Environment()
        streams = RandomStreams(scenario.seed, replication)
        net = scenario.network
        # hosts first: app nodes and database servers are placed on them
        self.hosts = {h.name: Host(h.name, h.cores, h.background) for h in scenario.hosts}
        self.database = build_database(scenario, env, streams, self.hosts)
        self.nodes: list[AppNode] = []
        backends: list[Backend] = []
        for i, spec in enumerate(scenario.app.resolved_nodes()):
            host = self.hosts.get(spec.host) if spec.host else None
            cpu = (
                Cpu(env, spec.name, spec.cores, host, max_jobs=spec.workers)
                if spec.cpu_period is None
                else BandwidthCpu(env, spec.name, spec.cores, spec.cpu_period, host)
            )
            node = AppNode(
                env,
                i,
                spec.name,
                spec.workers,
                spec.backlog,
                cpu,
                spec.request_timeout,
                self.database,
            )
            self.nodes.append(node)
            backends.append(
                Backend(
                    index=i,
                    name=spec.name,
                    address=f"10.0.1.{i + 1}:9000",
                    weight=spec.weight,
                    max_conns=spec.max_conns,
                )
            )
            for outage in spec.outages:
                later(env, outage.start, node.go_down, outage.connections == "unanswered")
                later(env, outage.start + outage.duration, node.come_up)
        bal = scenario.balancer
        policy = make_policy(
            bal.policy, backends, bal.policy_options, streams.generator("policy"), bal.product
        )
        self.balancer = Balancer(
            env,
            bal,
            backends,
            self.nodes,
            policy,
            processing=Sampler(bal.latency, streams.generator("balancer-latency")),
            lb_app=Sampler(net.lb_app, streams.generator("net:lb_app")),
            rng=streams.generator("health"),
        )
        interval = scenario.report.interval or scenario.horizon / 100
        self.observer = Observer(
            scenario.workload.class_names,
            scenario.warmup,
            interval,
            scenario.report.percentile_error,
        )
        self.observer.watch(self.nodes, list(self.hosts.values()), self.balancer, self.database)
        self.clients = ClientEdge(
            env,
            self.observer,
            Sampler(net.client_lb, streams.generator("net:client_lb")),
            scenario.workload.timeout,
        )
        self.clients.connect(self.balancer.receive)
        self.balancer.answer_client = self.clients.answer
        wl = scenario.workload
        population = ClientPopulation(wl.clients, wl.class_names, streams)
        factory = RequestFactory(scenario, streams, population)
        self.source: OpenLoopSource | ClosedLoopSource
        if wl.closed is not None:
            self.source = ClosedLoopSource(env, scenario, streams, factory, self.clients.send)
        else:
            self.source = OpenLoopSource(
                env, arrival_blocks(scenario, replication), factory, self.clients.send
            )
        self._interval = interval

    def _end_warmup(self, _: Any) -> None:
        self.observer.start_measuring(self.env._now)
        self.database.reset_stats(self.env._now)

    def run(self, progress: Progress | None = None) -> dict[str, Any]:
        sc = self.scenario
        env = self.env
        started = time.perf_counter()
        self.source.start()
        if sc.warmup > 0:
            later(env, sc.warmup, self._end_warmup)
        every(env, self._interval, self.observer.tick, first=self._interval)
        horizon = sc.horizon
        # what exists now (scenario, model, SimPy, numpy) lives for the whole run:
        # leave it out of the garbage collector's full passes (a few % of a run);
        # a caller that froze objects itself keeps them frozen: no freeze is ours then
        ours = gc.get_freeze_count() == 0
        if ours:
            gc.freeze()
        try:
            if progress is None:
                run(env, horizon)
            else:
                step = horizon / 200
                t = 0.0
                while t < horizon:
                    t = min(t + step, horizon)
                    run(env, t)
                    progress(t, horizon)
        finally:
            if ours:
                gc.unfreeze()
        self.observer.tick(env.now)
        out = self.observer.results(env.now, sc.duration)
        merge(out, self.database.results(env.now))
        out["run"] = {
            "replication": self.replication,
            "seed": sc.seed,
            "wall_time": time.perf_counter() - started,
            "simulated_time": horizon,
        }
        return out
