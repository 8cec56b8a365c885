"""The engine against closed-form queueing results (shared/reference/balancers.md).

Each check runs independent replications and asserts that the closed-form
value lies inside the 99 % Student-t interval of the replication means — the
tolerance comes from the simulation's own variability, not from a fudge
factor. Seeds are fixed, so every run is reproducible.
"""

from __future__ import annotations

import math

import pytest

from tests.support import check_invariants, queue, replicate

pytestmark = pytest.mark.theory

EXP1 = {"dist": "exponential", "mean": 1.0}


def mm1_time(rho: float) -> float:
    return 1.0 / (1.0 - rho)


def erlang_c_wait(c: int, rho: float) -> float:
    """Mean wait in queue of M/M/c with service rate 1 and utilisation rho."""
    a = c * rho
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * (1 - rho))


def en_m_1_time(n: int, lam: float) -> float:
    """Round robin over n exponential servers (rate 1): E_n/M/1, sigma = (nλ/(nλ+1-σ))^n."""
    sigma = 0.5
    for _ in range(10_000):
        sigma = (n * lam / (n * lam + 1 - sigma)) ** n
    return 1 / (1 - sigma)


def supermarket_time(lam: float, d: int = 2) -> float:
    return sum(lam ** ((d**i - d) / (d - 1)) for i in range(1, 200))


def test_closed_forms_match_reference_tables() -> None:
    """The closed forms used below reproduce the reference tables."""
    assert erlang_c_wait(2, 0.8) == pytest.approx(1.7778, abs=1e-4)
    assert erlang_c_wait(4, 0.8) == pytest.approx(0.7455, abs=1e-4)
    assert erlang_c_wait(8, 0.8) == pytest.approx(0.2860, abs=1e-4)
    assert erlang_c_wait(8, 0.9) == pytest.approx(0.8769, abs=1e-4)
    assert en_m_1_time(2, 0.5) == pytest.approx(1.6180, abs=1e-4)
    assert en_m_1_time(2, 0.7) == pytest.approx(2.6006, abs=1e-4)
    assert en_m_1_time(2, 0.8) == pytest.approx(3.8440, abs=1e-4)
    assert en_m_1_time(2, 0.9) == pytest.approx(7.5883, abs=1e-4)
    assert supermarket_time(0.7) == pytest.approx(1.6145, abs=1e-4)
    assert supermarket_time(0.9) == pytest.approx(2.6141, abs=1e-4)


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_mm1_mean_time_in_system(rho: float) -> None:
    est, result = replicate(queue(rho, EXP1, duration=8000), "latency.mean", reps=10)
    assert est.covers(mm1_time(rho)), (est, mm1_time(rho))
    check_invariants(result)


def test_mm1_utilisation_is_rho() -> None:
    est, _ = replicate(queue(0.8, EXP1), "utilisation.app.app1.cpu", reps=8)
    assert est.covers(0.8), est


@pytest.mark.parametrize(("c", "rho"), [(2, 0.8), (4, 0.8), (8, 0.8), (8, 0.9)])
def test_mmc_against_erlang_c(c: int, rho: float) -> None:
    data = queue(c * rho, EXP1, workers=c, duration=4000 if rho < 0.9 else 8000)
    est, result = replicate(data, "latency.mean", reps=10)
    target = 1.0 + erlang_c_wait(c, rho)
    assert est.covers(target), (est, target)
    check_invariants(result)


@pytest.mark.parametrize(
    ("service", "wq"),
    [
        ({"dist": "deterministic", "value": 1.0}, 2.0),  # M/D/1
        ({"dist": "gamma", "mean": 1.0, "cv": 1.0}, 4.0),  # M/M/1 written as gamma
        ({"dist": "gamma", "mean": 1.0, "cv": 2.0}, 10.0),  # c² = 4
    ],
    ids=["M/D/1", "M/G/1 c2=1", "M/G/1 c2=4"],
)
def test_mg1_against_pollaczek_khinchine(service: dict[str, object], wq: float) -> None:
    heavy = wq >= 10
    data = queue(0.8, service, duration=20000 if heavy else 6000, warmup=1000)
    est, result = replicate(data, "latency.mean", reps=16 if heavy else 10)
    assert est.covers(1.0 + wq), (est, 1.0 + wq)
    check_invariants(result)


@pytest.mark.parametrize(
    "service",
    [
        {"dist": "deterministic", "value": 1.0},
        {"dist": "lognormal", "mean": 1.0, "cv": 1.5},
        {"dist": "exponential", "mean": 1.0},
    ],
    ids=["deterministic", "lognormal", "exponential"],
)
def test_processor_sharing_is_insensitive(service: dict[str, object]) -> None:
    """M/G/1-PS: one core shared by unboundedly many workers; E[T] = E[S]/(1-ρ)."""
    data = queue(0.8, service, workers=100_000, cores=1, duration=6000)
    est, result = replicate(data, "latency.mean", reps=10)
    assert est.covers(5.0), est
    check_invariants(result)


def test_processor_sharing_with_two_cores_is_mm2_ps() -> None:
    """With c cores, PS serves min(n, c) at full speed: for exponential service the
    number in system is that of M/M/c, so E[T] equals Erlang C's (insensitivity aside)."""
    data = queue(1.6, EXP1, workers=100_000, cores=2, duration=5000)
    est, _ = replicate(data, "latency.mean", reps=10)
    target = 1.0 + erlang_c_wait(2, 0.8)
    assert est.covers(target), (est, target)


def test_random_split_is_independent_mm1() -> None:
    data = queue(4 * 0.7, EXP1, nodes=4, policy="random", duration=4000)
    est, result = replicate(data, "latency.mean", reps=10)
    assert est.covers(mm1_time(0.7)), est
    check_invariants(result)


@pytest.mark.parametrize("lam", [0.7, 0.8])
def test_round_robin_is_erlang_n_over_m_1(lam: float) -> None:
    data = queue(2 * lam, EXP1, nodes=2, policy="round_robin", duration=6000)
    est, result = replicate(data, "latency.mean", reps=10)
    target = en_m_1_time(2, lam)
    assert est.covers(target), (est, target)
    assert est.mean < mm1_time(lam)  # smoother than a random split
    check_invariants(result)


@pytest.mark.parametrize("lam", [0.7, 0.9])
def test_power_of_two_approaches_the_supermarket_model(lam: float) -> None:
    """Finite n gives somewhat more than the n→∞ limit, and more nodes get closer."""
    limit = supermarket_time(lam)
    many = queue(100 * lam, EXP1, nodes=100, policy="power_of_d", duration=400, warmup=100)
    few = queue(10 * lam, EXP1, nodes=10, policy="power_of_d", duration=4000, warmup=400)
    est_many, _ = replicate(many, "latency.mean", reps=6)
    est_few, _ = replicate(few, "latency.mean", reps=6)
    assert est_many.mean + est_many.half >= limit
    assert est_many.mean <= limit * 1.06, (est_many, limit)
    assert est_few.mean > est_many.mean, (est_few, est_many)
    assert est_few.mean < mm1_time(lam)  # far better than random
