"""The policies' fast paths (issue 13, scale in nodes) choose exactly as the scans do.

round_robin, least_conn and power_of_d behind a balancer keep their own
structures in step with the balancer's :class:`Roster` instead of testing
every peer per request. Each test drives a fast structure and the
straightforward scan (the code path the policies take without a roster,
with the balancer's availability test written out here) through the same
seeded random sequence of state changes — connections opened and closed,
servers down and up, passive fail_timeouts that pass with time, max_conns,
tried peers, failures lowering nginx's effective weight, Envoy's panic — and
compares every choice and the smooth-WRR state after it. The last tests
simulate whole scenarios with and without the fast paths and compare every
result and time-series value.
"""

from __future__ import annotations

import random
import zlib
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import numpy as np
import pytest

import lbsim
from lbsim.experiment.run import run_replication
from lbsim.model.policies import POLICIES, Backend, Policy, make_policy
from lbsim.model.policies.fenwick import Fenwick
from lbsim.model.policies.roster import Roster
from lbsim.model.policies.smooth_wrr import record_failure, smooth_wrr
from lbsim.model.policies.wrr_sets import WrrSet, WrrState


@dataclass
class Req:
    client: int = 0
    client_ip: tuple[int, int, int, int] = (10, 0, 0, 1)
    tried: int = 0


def make_backends(weights: list[int], max_conns: int = 0) -> list[Backend]:
    return [
        Backend(index=i, name=f"app{i + 1}", address=f"10.0.1.{i + 1}:9000", weight=w,
                max_conns=max_conns)
        for i, w in enumerate(weights)
    ]  # fmt: skip


def weights_for(rnd: random.Random, n: int) -> list[int]:
    if rnd.random() < 0.5:
        w = rnd.choice([1, 1, 3])
        return [w] * n
    return [rnd.choice([1, 2, 3, 5]) for _ in range(n)]


# --------------------------------------------------------------------------- structures


@pytest.mark.parametrize("seed", range(12))
def test_wrr_sets_step_as_smooth_wrr_over_the_members(seed: int) -> None:
    """Several sets over one peer list, members moving between them, failures
    lowering effective weights: every step's winner and every current and
    effective weight equal smooth_wrr's over the members in index order."""
    rnd = random.Random(seed)
    n = rnd.choice([1, 2, 5, 17, 40])
    weights = weights_for(rnd, n)
    fast, ref = make_backends(weights), make_backends(weights)
    state = WrrState(fast)
    sets = [WrrSet(state) for _ in range(3)]
    where: list[int | None] = [None] * n  # reference: which set each peer is in
    for i in range(n):
        if rnd.random() < 0.7:
            where[i] = rnd.randrange(3)
            sets[where[i]].add(fast[i])  # type: ignore[index]
    for _ in range(1500):
        r = rnd.random()
        i = rnd.randrange(n)
        if r < 0.25:  # a peer moves, leaves or joins
            if where[i] is not None:
                sets[where[i]].discard(fast[i])  # type: ignore[index]
            where[i] = rnd.choice([None, 0, 1, 2])
            if where[i] is not None:
                sets[where[i]].add(fast[i])  # type: ignore[index]
        elif r < 0.32:  # a failure lowers the effective weight (set membership re-placed)
            max_fails = rnd.choice([1, 2, 3])
            record_failure(ref[i], max_fails)
            if where[i] is not None:
                sets[where[i]].discard(fast[i])  # type: ignore[index]
            record_failure(fast[i], max_fails)
            if where[i] is not None:
                sets[where[i]].add(fast[i])  # type: ignore[index]
        else:
            k = rnd.randrange(3)
            got = sets[k].step()
            want = smooth_wrr(b for b in ref if where[b.index] == k)
            assert (got.index if got else None) == (want.index if want else None)
            assert sets[k].size == sum(1 for w in where if w == k)
            if sets[k].size == 1:
                assert sets[k].first().index == next(j for j in range(n) if where[j] == k)
        assert [state.current_weight(b) for b in fast] == [b.current_weight for b in ref]
        assert [b.effective_weight for b in fast] == [b.effective_weight for b in ref]


@pytest.mark.parametrize("seed", range(6))
def test_fenwick_finds_what_bisect_finds(seed: int) -> None:
    rnd = random.Random(seed)
    n = rnd.choice([1, 3, 8, 33, 100])
    tree = Fenwick(n)
    amounts = [0] * n
    for _ in range(500):
        i = rnd.randrange(n)
        amounts[i] = rnd.choice([0, 0, 1, 2, 7])
        tree.set(i, amounts[i])
        assert tree.total == sum(amounts)
        if tree.total:
            ends = list(accumulate(amounts))
            for x in (
                0,
                tree.total - 1,
                rnd.random() * tree.total,
                float(rnd.randrange(tree.total)),
            ):
                assert tree.find(x) == bisect_right(ends, x)


# --------------------------------------------------------------------------- policies


class Twin:
    """One policy behind a roster (fast) and its twin scanning (reference),
    on two copies of the same backends, changed together."""

    def __init__(self, rnd: random.Random, policy: str, product: str, options: dict[str, Any]):
        self.rnd = rnd
        n = rnd.choice([1, 2, 3, 8, 30, 64])
        weights = weights_for(rnd, n)
        max_conns = rnd.choice([0, 0, 2, 4])
        self.n = n
        self.fast = make_backends(weights, max_conns)
        self.ref = make_backends(weights, max_conns)
        self.envoy = product == "envoy"
        self.p_fast = make_policy(policy, self.fast, options, np.random.default_rng(7), product)
        self.p_ref = make_policy(policy, self.ref, options, np.random.default_rng(7), product)
        # the balancer's rule: nginx skips a full peer; HAProxy queues a sticky policy's request
        self.skip_full = product == "nginx" or not self.p_fast.sticky
        self.roster = Roster(self.fast, envoy=self.envoy, skip_full=self.skip_full)
        attach = getattr(self.p_fast, "attach", None)
        assert attach is not None, f"{policy} has no fast path"
        attach(self.roster)
        self.now = 0.0
        self.panic = False
        self.tried = 0

    def available(self, bs: list[Backend]) -> Any:
        """``Balancer._make_available`` over ``bs``, the reference for both twins."""

        def test(b: Backend) -> bool:
            if self.envoy:
                return self.panic or (b.up and b.failed_until <= self.now)
            if not b.up or b.failed_until > self.now:
                return False
            if b.max_conns and self.skip_full and b.conns >= b.max_conns:
                return False
            return not (self.tried >> b.index) & 1

        return test

    def change(self, fn: Any, i: int) -> None:
        fn(self.ref[i])
        fn(self.fast[i])
        self.roster.sync(self.fast[i], self.now)

    def mutate(self) -> None:
        rnd, i = self.rnd, self.rnd.randrange(self.n)
        r = rnd.random()
        if r < 0.3:

            def close(b: Backend) -> None:
                b.conns = max(0, b.conns - 1)

            self.change(close, i)
        elif r < 0.4:
            up = rnd.random() < 0.6

            def flip(b: Backend) -> None:
                b.up = up

            self.change(flip, i)
        elif r < 0.5:
            until = self.now + rnd.choice([0.0, 0.5, 1.0, 3.0])

            def fail(b: Backend) -> None:
                b.failed_until = until

            self.change(fail, i)
        elif r < 0.55:
            max_fails = rnd.choice([1, 2])
            self.change(lambda b: record_failure(b, max_fails), i)
        elif r < 0.6 and self.envoy:
            self.panic = not self.panic
            self.roster.set_panic(self.panic, self.now)
        elif r < 0.75:
            self.now += rnd.choice([0.0, 0.25, 1.0])

    def choose(self) -> None:
        rnd = self.rnd
        self.tried = 0
        if not self.envoy and rnd.random() < 0.3:
            self.tried = rnd.getrandbits(self.n)  # a retry: these peers were tried
        req = Req(client=rnd.randrange(1000), tried=self.tried)
        self.roster.advance(self.now)
        self.roster.tried = self.tried
        got = self.p_fast.choose(req, self.available(self.fast), self.now)
        self.roster.tried = 0
        want = self.p_ref.choose(req, self.available(self.ref), self.now)
        assert (got.index if got else None) == (want.index if want else None)
        if got is not None and rnd.random() < 0.8:  # sent: one more connection

            def open_(b: Backend) -> None:
                b.conns += 1

            self.change(open_, got.index)

    def check_state(self) -> None:
        assert [b.effective_weight for b in self.fast] == [b.effective_weight for b in self.ref]
        wrr: WrrState | None = getattr(self.p_fast, "_wrr", None)
        if wrr is not None:
            assert [wrr.current_weight(b) for b in self.fast] == [
                b.current_weight for b in self.ref
            ]
        else:
            assert [b.current_weight for b in self.fast] == [b.current_weight for b in self.ref]


CASES = [
    ("round_robin", "nginx", {}),
    ("round_robin", "envoy", {}),
    ("least_conn", "nginx", {}),
    ("power_of_d", "nginx", {}),
    ("power_of_d", "nginx", {"choices": 3}),
    ("power_of_d", "haproxy", {}),
    ("power_of_d", "haproxy", {"choices": 3}),
    ("power_of_d", "envoy", {}),
    ("power_of_d", "nginx", {"flavour": "haproxy"}),
    ("power_of_d", "haproxy", {"flavour": "envoy"}),
]


@pytest.mark.parametrize(("policy", "product", "options"), CASES)
@pytest.mark.parametrize("seed", range(8))
def test_fast_choice_equals_the_scan(
    policy: str, product: str, options: dict[str, Any], seed: int
) -> None:
    rnd = random.Random(zlib.crc32(f"{policy} {product} {options} {seed}".encode()))
    twin = Twin(rnd, policy, product, options)
    for _ in range(600):
        if twin.rnd.random() < 0.5:
            twin.mutate()
        else:
            twin.choose()
        twin.check_state()


def test_every_fast_policy_is_covered() -> None:
    covered = {policy for policy, _, _ in CASES}
    with_attach = {
        name
        for name, cls in lbsim.model.policies.POLICIES.items()
        if cls.attach is not Policy.attach  # a fast path of its own
    }
    assert with_attach == covered
    assert all(issubclass(lbsim.model.policies.POLICIES[p], Policy) for p in covered)


# --------------------------------------------------------------------------- whole runs

SCENARIO = """
name: scale
seed: 5
duration: 60
warmup: 5
workload:
  open: {rate: 70}
  timeout: 20
  classes:
    - {name: page, weight: 0.9, cpu: {dist: lognormal, mean: 0.08, cv: 1.5}}
    - {name: slow, weight: 0.1, cpu: {dist: lognormal, mean: 0.6, cv: 1.0}}
balancer:
  health_check: {interval: 2, fall: 2, rise: 2}
  upstream_timeout: 5
app:
  nodes:
    - {name: app1, weight: 2}
    - {name: app2, outages: [{start: 20, duration: 15}]}
    - {name: app3}
    - {name: app4, weight: 3, outages: [{start: 40, duration: 5}]}
    - {name: app5}
    - {name: app6}
  workers: 2
  cores: 1
  backlog: 8
  max_conns: 3
database: {engine: none}
"""

WHOLE = [
    ["balancer.policy=round_robin"],
    ["balancer.policy=least_conn"],
    ["balancer.policy=power_of_d"],
    ["balancer.policy=least_conn", "app.max_conns=0", "workload.open.rate=40"],
    # HAProxy without max_conns: its queue in front of a refusing server recursed
    # (_release -> _send -> refused -> _try_failed -> _release) until the slot
    # freed by a refusal went to an event (lbsim.model.waiting); so did Envoy's
    # pending queue (round robin at 90/s)
    [
        "balancer.product=haproxy",
        "balancer.policy=power_of_d",
        "balancer.slow_start=10",
        "app.max_conns=0",
    ],
    [
        "balancer.product=haproxy",
        "balancer.policy=power_of_d",
        "balancer.retries=2",
        "app.max_conns=0",
    ],
    ["balancer.product=envoy", "balancer.policy=power_of_d", "balancer.slow_start=10"],
    ["balancer.product=envoy", "balancer.policy=round_robin", "app.max_conns=0"],
    # the same queues with max_conns 3, now that they do not recurse
    ["balancer.product=haproxy", "balancer.policy=power_of_d", "balancer.retries=2"],
    ["balancer.product=envoy", "balancer.policy=round_robin"],
    ["balancer.product=envoy", "balancer.policy=power_of_d", "balancer.panic_threshold=90"],
]


def _run(sets: list[str], fast: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    if not fast:  # the policies get no roster: they scan, as before issue 13
        for cls in POLICIES.values():
            if cls.attach is not Policy.attach:
                monkeypatch.setattr(cls, "attach", Policy.attach)
    scenario = lbsim.loads_scenario(SCENARIO, overrides=sets)
    out = run_replication(scenario, 0)
    monkeypatch.undo()
    out[0].pop("run")  # wall time
    return out


@pytest.mark.parametrize("sets", WHOLE, ids=lambda s: ",".join(s))
def test_whole_runs_are_identical_with_and_without_the_fast_paths(
    sets: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = _run(sets, True, monkeypatch)
    slow = _run(sets, False, monkeypatch)
    assert fast[0]["requests"]["completed"] > 500
    assert repr(fast) == repr(slow)  # repr: NaN equal to NaN, every bit of every float
