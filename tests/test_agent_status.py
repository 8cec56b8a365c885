"""least_load's agent reading php-fpm's status through the pool (agent_status: pool).

The stack's heavy-users story measured it before it was an option: the agent
read the status page through the pool's own listener, a full node's agent
could not answer within HAProxy's check timeout, the node kept its weight and
least_load measured 2156 ms against 481 predicted (validation/README.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import simpy

import lbsim
from lbsim.model.app import AppNode
from lbsim.model.cpu import Cpu
from lbsim.model.engine import later
from lbsim.model.engine import run as run_calendar
from lbsim.model.health import PoolAgent
from lbsim.model.policies import POLICIES, Backend
from lbsim.model.request import Request
from lbsim.scenario.errors import ScenarioError
from lbsim.scenario.loader import loads_scenario


class NoDatabase:
    """The node's database tier, for requests that make no query."""

    def abandon(self, request: object) -> None: ...

    def finish(self, request: object) -> None: ...


def node(env: simpy.Environment, workers: int = 2, backlog: int = 8) -> AppNode:
    cpu = Cpu(env, "app1", float(workers))
    n = AppNode(env, 0, "app1", workers, backlog, cpu, None, NoDatabase())  # type: ignore[arg-type]
    n.respond = lambda answer: None
    return n


def send(n: AppNode, cpu: float) -> None:
    assert n.accept(Request(0, 0, 0, (10, 0, 0, 1), n.env.now, cpu, (cpu,), True), 1)


def test_a_free_worker_answers_the_status_at_once() -> None:
    env = simpy.Environment()
    n = node(env)
    send(n, 1.0)
    got: list[float | None] = []
    n.ask_status(got.append)
    assert got == [0.5]  # one of two workers busy, nothing queued
    assert n.status_wait is None


def test_a_full_pool_answers_the_status_when_a_worker_takes_it() -> None:
    """Queued behind two connections on a full pool: the third worker freed
    takes it, and it reports what that worker sees (itself not counted)."""
    env = simpy.Environment()
    n = node(env)
    for cpu in (1.0, 2.0, 3.0, 4.0):  # two run, two queue
        send(n, cpu)
    got: list[tuple[float, float | None]] = []
    n.ask_status(lambda load: got.append((env.now, load)))
    later(env, 0.5, lambda _: send(n, 9.0), None)  # arrives behind the status request
    run_calendar(env, until=10)
    # frees at 1 (takes the 3 s request, done at 4), 2 (takes the 4 s one),
    # then at 4: the status request's turn; busy: the 4 s request, queued: 9 s
    assert got == [(4.0, 1.0)]


def test_the_status_answer_counts_the_worker_it_took_as_free() -> None:
    env = simpy.Environment()
    n = node(env, workers=4)
    for cpu in (1.0, 2.0, 2.0, 2.0):
        send(n, cpu)
    got: list[float | None] = []
    n.ask_status(got.append)
    run_calendar(env, until=1.5)
    assert got == [pytest.approx(0.75)]  # three of four busy, none queued


def test_a_full_backlog_refuses_the_status_and_a_crash_resets_it() -> None:
    env = simpy.Environment()
    full = node(env, workers=1, backlog=1)
    send(full, 1.0)
    send(full, 1.0)
    got: list[float | None] = []
    full.ask_status(got.append)
    assert got == [None]
    crashed = node(env, workers=1, backlog=4)
    send(crashed, 1.0)
    crashed.ask_status(got.append)
    assert got == [None] and crashed.status_wait is not None
    crashed.go_down()
    assert got == [None, None] and crashed.status_wait is None


class Recorder:
    """A policy stub: the samples the agent delivered, with their times."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []

    def on_sample(self, backend: Backend, now: float) -> None:
        self.samples.append((now, backend.sampled_load))


def test_a_reply_later_than_the_check_timeout_is_lost_and_checks_wait_their_turn() -> None:
    env = simpy.Environment()
    n = node(env, workers=1)
    send(n, 5.0)  # the only worker busy until 5
    backend = Backend(0, "app1", "10.0.0.1:9000")
    policy = Recorder()
    agent = PoolAgent(policy, backend, n, timeout=2.0)  # type: ignore[arg-type]
    for t in (0.0, 2.0, 4.0, 6.0):
        later(env, t, agent, t)
    run_calendar(env, until=10)
    # check 0: answered at 5 (5 s > 2 s: lost); checks 2 and 4 waited for it,
    # then asked in turn on a free worker at 5 (started 3 and 1 s before: the
    # first lost, the second in time); check 6 on a free worker at once
    assert policy.samples == [(5.0, 0.0), (6.0, 0.0)]
    assert n.agent_lost == 2


def test_pool_status_needs_a_workers_agent() -> None:
    text = (
        "name: t\nduration: 10\nworkload: {open: {rate: 1}, classes: [{name: a, cpu: 0.01}]}\n"
        "balancer:\n  product: haproxy\n  policy: least_load\n"
        "  policy_options: {metric: cpu, agent_status: pool}\n"
        "app: {nodes: 2, weight: 100}\n"
    )
    with pytest.raises(ScenarioError) as err:
        loads_scenario(text, "s.yaml")
    message = str(err.value)
    assert message.startswith("s.yaml:7:")  # the policy_options line
    assert "balancer.policy_options" in message and "a cpu agent reads its cgroup" in message


HEAVY = Path(__file__).resolve().parents[1] / "scenarios" / "stories" / "heavy-users.yaml"


def heavy_users(status: str, seed: int) -> tuple[float, int]:
    """Mean latency and agent checks lost: the heavy-users story under
    least_load at 22 requests/s (74 % of its nodes' CPU)."""
    s = lbsim.load_scenario(
        HEAVY,
        overrides=[
            "balancer.policy=least_load",
            f"balancer.policy_options={{agent_status: {status}}}",
            "workload.open.rate=22",
            "duration=120",
            f"seed={seed}",
        ],
    )
    run = lbsim.simulate(s).runs[0]
    return float(run["latency"]["mean"]), sum(n["agent_lost"] for n in run["app"].values())


def test_an_agent_reading_through_the_pool_goes_blind_on_full_nodes() -> None:
    """Metamorphic: the same arrivals and demands, the agent reading the status
    through the pool instead of its own listener. Full nodes keep their
    weights, so latency grows (paired over seeds), and the run counts the
    checks whose reply was lost; from its own listener none is."""
    listener = [heavy_users("listener", seed) for seed in range(1, 9)]
    pool = [heavy_users("pool", seed) for seed in range(1, 9)]
    assert sum(lost for _, lost in listener) == 0
    assert sum(lost for _, lost in pool) > 0
    worse = sum(p > q for (p, _), (q, _) in zip(pool, listener, strict=True))
    ratio = np.mean([p / q for (p, _), (q, _) in zip(pool, listener, strict=True)])
    assert worse >= 6 and ratio > 1.15, (listener, pool)


def test_the_option_is_known_to_the_policy() -> None:
    opts = POLICIES["least_load"].Options.model_validate({"agent_status": "pool"})
    assert opts.agent_status == "pool"  # type: ignore[attr-defined]
