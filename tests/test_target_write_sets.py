"""The Galera target's CPU per received write-set, fitted over the nodes."""

from __future__ import annotations

import pytest

from lbsim.target.write_sets import (
    NodeLoad,
    fit_node_loads,
    node_loads,
    replicated_per_request,
    write_set_costs,
)

pytestmark = pytest.mark.unit


def loads(s: float, a: float, shape: list[tuple[float, float]]) -> list[NodeLoad]:
    """Nodes whose CPU is exactly ``s * served + a * received``."""
    return [
        NodeLoad(f"db{i + 1}", s * served + a * received, served, received)
        for i, (served, received) in enumerate(shape)
    ]


# two app nodes pinned to db1 and db2, db3 only replicating: a comment of two
# write-sets served by db1 or db2 in turn
PINNED = [(0.6, 1.0), (0.6, 1.0), (0.0, 2.0)]


def test_the_fit_recovers_serving_and_receiving_costs() -> None:
    fit = fit_node_loads(loads(0.004, 0.0003, PINNED))
    assert fit is not None
    assert fit.serve == pytest.approx(0.004) and fit.apply == pytest.approx(0.0003)
    # served column (0.6, 0.6, 0): received 1, 1, 2 less its projection 1, 1, 0
    assert fit.weight == pytest.approx(4.0)


def test_one_writer_and_two_receivers_are_enough() -> None:
    fit = fit_node_loads(loads(0.002, 0.0005, [(1.2, 0.0), (0.0, 2.0), (0.0, 2.0)]))
    assert fit is not None
    assert fit.serve == pytest.approx(0.002) and fit.apply == pytest.approx(0.0005)


def test_noise_on_the_nodes_averages_in_the_least_squares_fit() -> None:
    exact = loads(0.004, 0.0003, PINNED)
    noisy = [
        NodeLoad(x.node, x.cpu + e, x.served, x.received)
        for x, e in zip(exact, (1e-5, -1e-5, 2e-6), strict=True)
    ]
    got = fit_node_loads(noisy)
    assert got is not None
    assert got.apply == pytest.approx(0.0003, abs=2e-5)


@pytest.mark.parametrize(
    "shape",
    [
        [(0.6, 1.0)],  # one node
        [(0.6, 1.0), (1.2, 2.0)],  # served and received in proportion
        [(0.0, 1.0), (0.0, 1.0)],  # nothing served
        [(0.6, 0.0), (0.6, 0.0)],  # nothing received
    ],
)
def test_nodes_that_cannot_tell_serving_from_receiving_give_no_fit(
    shape: list[tuple[float, float]],
) -> None:
    assert fit_node_loads(loads(0.004, 0.0003, shape)) is None


def test_the_cost_is_the_mean_over_the_writing_classes_weighted_by_their_fits_worth() -> None:
    got = write_set_costs(
        {
            "front": loads(0.006, 0.0, [(0.6, 0.0), (0.6, 0.0), (0.0, 0.0)]),  # no writes
            "comment": loads(0.003, 0.0004, [(0.6, 1.0), (0.6, 1.0), (0.0, 2.0)]),  # weight 4
            "account": loads(0.002, 0.0001, [(0.6, 0.5), (0.6, 0.5), (0.0, 1.0)]),  # weight 1
        }
    )
    assert set(got.per_class) == {"comment", "account"}
    fit, received = got.per_class["comment"]
    assert (fit.apply, fit.weight, received) == pytest.approx((0.0004, 4.0, 4.0))
    assert got.apply_cpu == pytest.approx((0.0004 * 4 + 0.0001 * 1) / 5)
    assert got.notes == []


def test_a_class_of_few_write_sets_barely_moves_the_cost() -> None:
    # the WordPress example's calibration: the comments' fit and the account
    # page's, whose 0.45 write-sets per request fitted the nodes' noise
    comment = loads(0.0040, 0.000373, [(0.6, 2.03), (0.6, 2.03), (0.0, 4.07)])
    account = loads(0.0008, -0.002316, [(0.6, 0.11), (0.6, 0.11), (0.0, 0.23)])
    got = write_set_costs({"comment": comment, "account": account})
    assert got.apply_cpu == pytest.approx(0.000373, rel=0.12)


def test_a_class_that_cannot_be_fitted_is_named_and_left_out() -> None:
    got = write_set_costs({"comment": loads(0.003, 0.0004, [(0.6, 1.0), (0.6, 1.0)])})
    assert got.apply_cpu == 0.0 and got.per_class == {}
    assert len(got.notes) == 1 and "class comment" in got.notes[0]


def test_a_negative_fit_is_no_negative_cost() -> None:
    got = write_set_costs({"comment": loads(0.003, -0.0002, PINNED)})
    assert got.per_class["comment"][0].apply == pytest.approx(-0.0002)  # reported as fitted
    assert got.apply_cpu == 0.0  # the model takes no negative cost


def test_node_loads_per_request_from_the_status_counters() -> None:
    before = {
        "db1": {"connections": "10", "wsrep_received": "5", "wsrep_replicated": "7"},
        "db3": {"connections": "3", "wsrep_received": "5", "wsrep_replicated": "0"},
    }
    after = {
        "db1": {"connections": "34", "wsrep_received": "25", "wsrep_replicated": "47"},
        "db3": {"connections": "5", "wsrep_received": "85", "wsrep_replicated": "0"},
    }
    own = {"connections": 2.0}  # the status readings' own connections
    got = node_loads(20, {"db1": 0.004, "db3": 0.0005}, before, after, own)
    assert got == [
        NodeLoad("db1", 0.004, (24 - 2) / 20, 20 / 20),
        NodeLoad("db3", 0.0005, 0.0, 80 / 20),
    ]
    assert replicated_per_request(20, before, after) == pytest.approx(40 / 20)


def test_a_node_missing_after_the_class_is_left_out() -> None:
    before = {"db1": {"connections": "1"}, "db2": {"connections": "1"}}
    after = {"db1": {"connections": "3"}}
    assert [x.node for x in node_loads(2, {}, before, after, {})] == ["db1"]
