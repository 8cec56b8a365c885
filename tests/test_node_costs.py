"""A Galera node's CPU per write-set measured at its own cores, without Docker:
the idle rate taken off, the factors against the calibrated cost, refused
measurements, and the slowness written into a calibrated scenario."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from lbsim.validation import node_costs
from lbsim.validation.calibration import CalibrationError
from lbsim.validation.loadgen import Record
from lbsim.validation.node_costs import cost_factors, measure_node_costs, with_write_set_costs

pytestmark = pytest.mark.unit


class FakeNodes:
    """db2 idles at 0.01 cores and spends 0.3 ms per write-set, db3 0.02 and 0.6 ms;
    the clock moves with sleep() and with every write (2 ms each)."""

    IDLE: ClassVar[dict[str, float]] = {"db1": 0.0, "db2": 0.01, "db3": 0.02}
    PER_WRITE: ClassVar[dict[str, float]] = {"db1": 0.0001, "db2": 0.0003, "db3": 0.0006}

    def __init__(self, start_up: float = 0.0) -> None:
        self.now = 0.0
        self.used = dict.fromkeys(self.IDLE, 0.0)
        self.sent: list[int] = []
        self.fail = False
        #: extra cores db3 spends on its own start-up for its first 3 s
        self.start_up = start_up

    def _advance(self, seconds: float) -> None:
        for n, rate in self.IDLE.items():
            self.used[n] += rate * seconds
        if self.now < 3.0:
            self.used["db3"] += self.start_up * min(seconds, 3.0 - self.now)
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self._advance(seconds)

    def cpu(self) -> dict[str, float]:
        return dict(self.used)

    def send(self, url: str, plan: Any, **kw: Any) -> list[Record]:
        out = []
        for p in plan:
            self._advance(0.002)
            for n, c in self.PER_WRITE.items():
                self.used[n] += c
            self.sent.append(p.index)
            out.append(Record(p.index, "w", 0, 0.0, status=500 if self.fail else 200))
        return out


def test_each_nodes_cost_per_write_set_net_of_its_idle_rate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNodes()
    monkeypatch.setattr(node_costs, "send_sequential", fake.send)
    got = measure_node_costs(
        "http://x", fake.cpu, ["db2", "db3"], n=50, clock=lambda: fake.now, sleep=fake.sleep
    )
    assert got == pytest.approx({"db2": 0.0003, "db3": 0.0006})
    assert len(fake.sent) == 20 + 50  # the warm-up writes, then the measured ones
    assert cost_factors(got, 0.0003) == {"db2": 1.0, "db3": 2.0}


def test_a_node_still_starting_up_in_the_first_quiet_window_is_measured_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """db3 busy with its start-up (0.05 cores) during the first quiet window: the
    idle rate is the later window's, and its cost per write-set is not swallowed
    (CI measured 0.014 ms, 0.04x, with one window)."""
    fake = FakeNodes(start_up=0.05)
    monkeypatch.setattr(node_costs, "send_sequential", fake.send)
    got = measure_node_costs(
        "http://x", fake.cpu, ["db3"], n=50, clock=lambda: fake.now, sleep=fake.sleep
    )
    assert got["db3"] == pytest.approx(0.0006)


def test_failed_writes_a_missing_counter_and_absurd_factors_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeNodes()
    fake.fail = True
    monkeypatch.setattr(node_costs, "send_sequential", fake.send)
    with pytest.raises(CalibrationError, match="warm-up writes"):
        measure_node_costs("http://x", fake.cpu, ["db2"], clock=lambda: 0.0, sleep=fake.sleep)
    fake.fail = False
    with pytest.raises(CalibrationError, match="no CPU counter for database node 'db9'"):
        measure_node_costs("http://x", fake.cpu, ["db9"], clock=lambda: fake.now, sleep=fake.sleep)
    with pytest.raises(ValueError, match="n 0"):
        measure_node_costs("http://x", fake.cpu, ["db2"], n=0)
    with pytest.raises(CalibrationError, match=r"outside 0\.25-20x"):
        cost_factors({"db3": 0.0}, 0.0003)
    with pytest.raises(CalibrationError, match="not above 0"):
        cost_factors({"db3": 0.0003}, 0.0)


def test_the_factors_become_the_nodes_write_set_cost() -> None:
    data = {"database": {"engine": "galera", "nodes": [{"name": "db1"}, {"name": "db3"}]}}
    out = with_write_set_costs(data, {"db3": 2.0})
    assert out["database"]["nodes"] == [{"name": "db1"}, {"name": "db3", "write_set_cost": 2.0}]
    # a node already slow is slower still; a count of nodes is written out by name
    twice = with_write_set_costs(out, {"db3": 1.5})
    assert twice["database"]["nodes"][1]["write_set_cost"] == 3.0
    counted = with_write_set_costs({"database": {"engine": "galera", "nodes": 3}}, {"db2": 1.25})
    assert counted["database"]["nodes"] == [
        {"name": "db1"},
        {"name": "db2", "write_set_cost": 1.25},
        {"name": "db3"},
    ]
    assert with_write_set_costs({"database": {"engine": "none"}}, {}) == {
        "database": {"engine": "none"}
    }


def test_a_nodes_write_set_cost_scales_only_what_it_spends_on_write_sets() -> None:
    """db3 applies the writer's write-sets and serves no reads: at write_set_cost 2
    it spends twice the CPU; db2 (write-sets and app2's reads) is unchanged."""
    from lbsim.experiment.run import simulate
    from lbsim.scenario.loader import load_scenario
    from lbsim.validation.stories import catalogue

    def cpu(db3: str) -> dict[str, float]:
        nodes = f"database.nodes=[{{name: db1}}, {{name: db2}}, {{name: db3{db3}}}]"
        sc = load_scenario(catalogue.SLOW_GALERA_NODE.file, ["duration=20", "warmup=2", nodes])
        db = simulate(sc, replications=1).to_dict()["utilisation"]["db"]
        return {n: db[n]["cpu"] for n in ("db2", "db3")}

    plain, costly = cpu(""), cpu(", write_set_cost: 2.0")
    assert costly["db3"] == pytest.approx(2 * plain["db3"], rel=0.02)
    assert costly["db2"] == pytest.approx(plain["db2"], rel=1e-9)
