"""The engine's fast paths compute exactly what the plain forms compute.

Tuple calendar entries order with SimPy's own events; block draws give the
values one-at-a-time draws give; block arrivals equal a reference written
the simple way; the deadline FIFO's compaction keeps expirations and bounds
its length.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import simpy

from lbsim.model.arrivals import ClassPicker, ClientPopulation
from lbsim.model.deadlines import COMPACT_MIN, Deadlines
from lbsim.model.distributions import BLOCK, Sampler
from lbsim.model.engine import later, run
from lbsim.model.streams import RandomStreams
from lbsim.scenario import schema
from lbsim.scenario.distributions import Exponential, Gamma, Lognormal


def test_tuple_entries_and_simpy_events_keep_one_order() -> None:
    env = simpy.Environment()
    seen: list[tuple[str, float]] = []

    def proc(env: simpy.Environment) -> Any:
        yield env.timeout(1.0)
        seen.append(("proc", env.now))
        yield env.timeout(1.0)
        seen.append(("proc", env.now))

    later(env, 1.0, lambda _: seen.append(("a", env.now)))  # scheduled before the process
    env.process(proc(env))
    later(env, 2.0, lambda _: seen.append(("b", env.now)))
    later(env, 5.0, lambda _: seen.append(("late", env.now)))
    run(env, 3.0)
    assert seen == [("a", 1.0), ("proc", 1.0), ("b", 2.0), ("proc", 2.0)]
    assert env.now == 3.0
    run(env, 10.0)  # the entry past the first horizon was kept
    assert seen[-1] == ("late", 5.0)


@pytest.mark.parametrize(
    "dist",
    [
        Exponential(dist="exponential", mean=0.5),
        Lognormal(dist="lognormal", mean=0.01, cv=1.0),
        Gamma(dist="gamma", mean=0.04, cv=1.5),
    ],
)
def test_sampler_next_and_take_give_the_values_of_single_draws(dist: Any) -> None:
    n = 2 * BLOCK + 17
    reference = Sampler(dist, np.random.default_rng(5))
    expected = np.array([reference() for _ in range(n)])
    fast = Sampler(dist, np.random.default_rng(5))
    got = [fast.next() for _ in range(100)] + fast.take(n - 200) + [fast() for _ in range(100)]
    assert np.array_equal(np.array(got), expected)


def test_class_and_client_blocks_equal_single_picks() -> None:
    spec = schema.Clients.model_validate(
        {"count": 2000, "subnets": 150, "heavy": {"fraction": 0.1, "share": 0.9, "classes": ["b"]}}
    )
    names = ("a", "b", "c")
    one = ClassPicker([0.6, 0.3, 0.1], np.random.default_rng(3))
    many = ClassPicker([0.6, 0.3, 0.1], np.random.default_rng(3))
    classes = [one() for _ in range(10_000)]
    assert many.take(3) + many.take(9_997) == classes
    pop_one = ClientPopulation(spec, names, RandomStreams(11, 2))
    pop_many = ClientPopulation(spec, names, RandomStreams(11, 2))
    assert pop_many.pick_many(classes) == [pop_one.pick(c) for c in classes]


@pytest.mark.parametrize("stuck_every", [0, 997])
def test_deadline_fifo_compacts_finished_entries_and_still_expires(stuck_every: int) -> None:
    """Entries finish 50 ms after they start, except every ``stuck_every``-th,
    which never finishes and must expire 10 s after it started."""
    env = simpy.Environment()
    n = 40_000
    gap = 1e-4
    stuck = {i for i in range(n) if stuck_every and i % stuck_every == 1}

    def pending(i: int, _: int) -> bool:
        return i in stuck or env.now < i * gap + 0.05

    expired: list[tuple[int, float]] = []
    dl = Deadlines(env, 10.0, pending, lambda i, _: expired.append((i, env.now)))
    longest = [0]

    def add(i: int) -> None:
        dl.add(i, 0)
        longest[0] = max(longest[0], len(dl))

    for i in range(n):
        later(env, i * gap, add, i)
    run(env, 100.0)
    assert [i for i, _ in expired] == sorted(stuck)
    assert all(t == pytest.approx(i * gap + 10.0) for i, t in expired)
    # finished entries are dropped from the whole FIFO, not only its head: it
    # holds about the entries in flight (500 here), a stuck one or not
    in_flight = round(0.05 / gap) + 1 + len(stuck)
    assert longest[0] <= 2 * max(COMPACT_MIN, in_flight) + 1
