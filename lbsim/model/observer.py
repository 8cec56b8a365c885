"""What a run measures, in constant memory: counts, latency summaries,
time-weighted utilisation and queue lengths, and one row per report interval.

Requests are counted by *arrival cohort*: those that arrived after the
warm-up. So ``arrived = completed + failed + in_flight`` holds exactly.
Throughput counts completions that happened inside the measured window
(whatever their arrival time), which is what a load test measures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lbsim.model.request import Request
from lbsim.stats.latency import LatencySummary
from lbsim.stats.timeweighted import TimeWeighted

if TYPE_CHECKING:
    from lbsim.model.app import AppNode
    from lbsim.model.balancer import Balancer
    from lbsim.model.cpu import Host
    from lbsim.model.database import DatabaseTier

OK = 200
BASE_REASONS = ("timeout", "http_502", "http_503", "http_504")


def reason(status: int) -> str:
    """The name under ``requests.failed`` of a non-OK answer."""
    if status < 0:
        return "timeout"
    if status >= 1000:
        return f"db_{status}"
    return f"http_{status}"


class Observer:
    def __init__(
        self,
        class_names: Sequence[str],
        warmup: float,
        interval: float,
        relative_error: float,
    ):
        self.class_names = list(class_names)
        self.warmup = warmup
        self.interval = interval
        self.measuring = warmup <= 0
        k = len(class_names)
        self.arrived_n = 0
        self.completed_n = 0
        self.failed: dict[str, int] = dict.fromkeys(BASE_REASONS, 0)
        self.class_completed = [0] * k
        self.window_completions = 0
        self.class_window_completions = [0] * k
        self.latency = LatencySummary(relative_error)
        # one class: its summary is the overall one (the same values, one add per request)
        self._per_class = k > 1
        self.class_latency = (
            [LatencySummary(relative_error) for _ in range(k)] if k > 1 else [self.latency]
        )
        self.sojourn_sum = 0.0  # all answered measured requests, for Little's law
        self.sojourn_n = 0
        # edge terms that make Little's law an identity over the window:
        # time inside the window of requests that arrived before it, and of
        # measured requests still in the system at its end
        self._carry_in = 0.0
        self._m_in_system = 0
        self._m_arrival_sum = 0.0
        self._u_in_system = 0
        self.in_system = TimeWeighted()
        self.nodes: list[AppNode] = []
        self.hosts: list[Host] = []
        self.balancer: Balancer | None = None
        self.database: DatabaseTier | None = None
        # interval series
        self.rows: list[dict[str, float]] = []
        self._iv_arrivals = 0
        self._iv_done = 0
        self._iv_failed = 0
        self._iv_lat_sum = 0.0
        self._iv_lat_max = 0.0
        self._iv_t = 0.0
        self._iv_marks: dict[str, float] = {}
        self._columns: list[str] = []
        self._gauges: list[TimeWeighted] = []
        self._per: list[float] = []
        self._marks: list[float] = []

    def watch(
        self,
        nodes: Sequence[AppNode],
        hosts: Sequence[Host],
        balancer: Balancer,
        database: DatabaseTier | None = None,
    ) -> None:
        self.nodes = list(nodes)
        self.hosts = list(hosts)
        self.balancer = balancer
        self.database = database

    # -- events -------------------------------------------------------------------------
    def arrived(self, request: Request, now: float) -> None:
        tw = self.in_system  # in_system.add(now, 1), inlined: once per request
        tw._area += tw.value * (now - tw._t)
        tw._t = now
        tw.value += 1
        self._iv_arrivals += 1
        if request.measured:
            self.arrived_n += 1
            self._m_in_system += 1
            self._m_arrival_sum += request.t_arrival
        else:
            self._u_in_system += 1

    def answered(self, request: Request, status: int, now: float) -> None:
        tw = self.in_system
        tw._area += tw.value * (now - tw._t)
        tw._t = now
        tw.value -= 1
        t_arrival = request.t_arrival
        sojourn = now - t_arrival
        ok = status == OK
        if ok:
            self._iv_done += 1
            self._iv_lat_sum += sojourn
            if sojourn > self._iv_lat_max:
                self._iv_lat_max = sojourn
            if self.measuring:
                self.window_completions += 1
                self.class_window_completions[request.cls] += 1
        else:
            self._iv_failed += 1
        if not request.measured:
            self._u_in_system -= 1
            if self.measuring:
                self._carry_in += now - self.warmup
            return
        self._m_in_system -= 1
        self._m_arrival_sum -= t_arrival
        self.sojourn_sum += sojourn
        self.sojourn_n += 1
        if ok:
            self.completed_n += 1
            cls = request.cls
            self.class_completed[cls] += 1
            self.latency.add(sojourn)
            if self._per_class:
                self.class_latency[cls].add(sojourn)
        else:
            key = reason(status)
            self.failed[key] = self.failed.get(key, 0) + 1

    def start_measuring(self, now: float) -> None:
        """End of warm-up: time averages restart here."""
        self.measuring = True
        self.in_system.reset(now)
        for node in self.nodes:
            node.busy_tw.reset(now)
            node.backlog_tw.reset(now)
            node.cpu.busy.reset(now)
            node.refused = node.killed = node.served = 0
            if node.agent_lost is not None:
                node.agent_lost = 0
        for host in self.hosts:
            host.busy.reset(now)
        if self.balancer is not None:
            self.balancer.queue_tw.reset(now)

    def tick(self, now: float) -> None:
        """Close one report interval."""
        span = now - self._iv_t
        if span <= 0:
            return
        row: dict[str, float] = {
            "time": now,
            "arrival_rate": self._iv_arrivals / span,
            "throughput": self._iv_done / span,
            "failure_rate": self._iv_failed / span,
            "latency_mean": self._iv_lat_sum / self._iv_done if self._iv_done else math.nan,
            "latency_max": self._iv_lat_max if self._iv_done else math.nan,
            "in_system": self._delta("in_system", self.in_system.integral(now)) / span,
        }
        if self.balancer is not None:
            row["balancer_queue"] = self._delta("lbq", self.balancer.queue_tw.integral(now)) / span
        row.update(zip(self._node_columns(), self._node_values(now, span), strict=True))
        for host in self.hosts:
            row[f"host.{host.name}.cpu"] = (
                self._delta(f"h.{host.name}", host.busy.integral(now)) / span / host.cores
            )
        if self.database is not None:
            for key, value in self.database.integrals(now).items():
                row[key] = self._delta(key, value) / span
        self.rows.append(row)
        self._iv_arrivals = self._iv_done = self._iv_failed = 0
        self._iv_lat_sum = self._iv_lat_max = 0.0
        self._iv_t = now

    def _node_columns(self) -> list[str]:
        """The row's columns of the nodes: workers, cpu and backlog of each in turn."""
        if len(self._columns) != 3 * len(self.nodes):
            self._columns = [
                f"{node.name}.{column}"
                for node in self.nodes
                for column in ("workers", "cpu", "backlog")
            ]
            self._gauges = [
                tw for node in self.nodes for tw in (node.busy_tw, node.cpu.busy, node.backlog_tw)
            ]
            # per worker, per core, as it is (x / 1.0 == x, and x / 4 == x / 4.0)
            self._per = [
                float(d) for node in self.nodes for d in (node.workers, node.cpu.cores, 1.0)
            ]
            self._marks = [0.0] * len(self._columns)
        return self._columns

    def _node_values(self, now: float, span: float) -> list[float]:
        """Each node's busy workers, busy cores and backlog averaged over the interval.

        What ``_delta`` and ``TimeWeighted.integral`` compute, inlined over a
        flat list of the gauges (a 1,000-node site has 3,000 columns per row).
        """
        marks = self._marks
        out: list[float] = []
        append = out.append
        for k, (tw, per) in enumerate(zip(self._gauges, self._per, strict=True)):
            value = tw._area + tw.value * (now - tw._t)
            append((value - marks[k]) / span / per)
            marks[k] = value
        return out

    def _delta(self, key: str, value: float) -> float:
        last = self._iv_marks.get(key, 0.0)
        self._iv_marks[key] = value
        return value - last

    # -- summary ------------------------------------------------------------------------
    def results(self, now: float, duration: float) -> dict[str, Any]:
        failed_total = sum(self.failed.values())
        in_flight = self.arrived_n - self.completed_n - failed_total
        classes = {}
        for i, name in enumerate(self.class_names):
            classes[name] = {
                "completed": self.class_completed[i],
                "throughput": self.class_window_completions[i] / duration,
                "latency": self.class_latency[i].summary(),
            }
        util: dict[str, Any] = {"app": {}, "hosts": {}}
        queues: dict[str, Any] = {"app": {}}
        app: dict[str, Any] = {}
        for node in self.nodes:
            util["app"][node.name] = {
                "workers": node.busy_tw.mean(now) / node.workers,
                "cpu": node.cpu.utilisation(now),
            }
            queues["app"][node.name] = {"backlog": node.backlog_tw.mean(now)}
            app[node.name] = {"served": node.served, "refused": node.refused, "killed": node.killed}
            if node.agent_lost is not None:  # least_load: agent checks with no reply
                app[node.name]["agent_lost"] = node.agent_lost
        for host in self.hosts:
            util["hosts"][host.name] = {"cpu": host.utilisation(now)}
        if self.balancer is not None:
            queues["balancer"] = self.balancer.queue_tw.mean(now)
        lam = self.arrived_n / duration
        w = self.sojourn_sum / self.sojourn_n if self.sojourn_n else math.nan
        edge = (
            self._carry_in
            + self._u_in_system * (now - self.warmup)
            + self._m_in_system * now
            - self._m_arrival_sum
        ) / duration
        return {
            "requests": {
                "arrived": self.arrived_n,
                "completed": self.completed_n,
                "in_flight": in_flight,
                "failed": {**self.failed, "total": failed_total},
            },
            "throughput": self.window_completions / duration,
            "latency": self.latency.summary(),
            "classes": classes,
            "utilisation": util,
            "queues": queues,
            "app": app,
            # L = (answered / duration) · W + edge holds exactly; λ·W ≈ L for long runs
            "little": {
                "L": self.in_system.mean(now),
                "lambda": lam,
                "W": w,
                "answered": self.sojourn_n,
                "edge": edge,
            },
        }
