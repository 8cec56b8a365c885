"""Unit tests of the balancer policies: each real balancer's rule, tie-break and view."""

from __future__ import annotations

import math
import struct
import zlib
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from lbsim.model.policies import POLICIES, Backend, Policy, make_policy
from lbsim.model.policies.consistent_hash import POINTS_PER_WEIGHT, ConsistentHash
from lbsim.model.policies.least_load import LeastLoad, agent_weight
from lbsim.model.policies.leastconn_haproxy import SRV_EWGHT_MAX, fwlc_key
from lbsim.model.policies.peak_ewma import PENALTY, PeakEwma
from lbsim.model.policies.power_of_d import PowerOfD
from lbsim.model.policies.smooth_wrr import record_failure, smooth_wrr


@dataclass
class Req:
    client: int = 0
    client_ip: tuple[int, int, int, int] = (10, 0, 0, 1)


class ScriptedRng:
    """Stands in for a numpy Generator: ``random(n)`` hands out a fixed script once."""

    def __init__(self, values: list[float]):
        self.values = values
        self.calls = 0

    def random(self, size: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        self.calls += 1
        assert self.calls == 1, "policy drew more uniforms than scripted"
        return np.array(self.values)


def up(backend: Backend) -> bool:
    return backend.up


def backends(*weights: int) -> list[Backend]:
    return [
        Backend(index=i, name="abcdefgh"[i], address=f"10.0.0.{i + 1}:9000", weight=w)
        for i, w in enumerate(weights)
    ]


def policy(
    name: str, bs: list[Backend], options: dict[str, Any] | None = None, rng: Any = None
) -> Policy:
    return make_policy(name, bs, options, rng if rng is not None else np.random.default_rng(1))


def picks(p: Policy, n: int, req: Req | None = None) -> str:
    out = []
    for _ in range(n):
        b = p.choose(req or Req(), up, 0.0)
        out.append("-" if b is None else b.name)
    return "".join(out)


# --- nginx smooth weighted round robin -------------------------------------


@pytest.mark.unit
def test_smooth_wrr_nginx_documented_sequence_and_period() -> None:
    p = policy("round_robin", backends(5, 1, 1))
    assert picks(p, 7) == "aabacaa"
    assert picks(p, 14) == "aabacaa" * 2
    assert [b.current_weight for b in p.backends] == [0, 0, 0]


@pytest.mark.unit
def test_smooth_wrr_first_in_order_wins_equal_current_weight() -> None:
    bs = backends(1, 1)
    assert smooth_wrr(bs) is bs[0]
    assert [b.current_weight for b in bs] == [-1, 1]


@pytest.mark.unit
def test_record_failure_lowers_effective_weight_which_climbs_back() -> None:
    bs = backends(5, 1)
    record_failure(bs[0], max_fails=2)  # 5 // 2 = 2
    assert bs[0].effective_weight == 3
    record_failure(bs[0], max_fails=1)
    assert bs[0].effective_weight == 0
    record_failure(bs[1], max_fails=0)  # accounting off
    assert bs[1].effective_weight == 1
    # each selection step gives one unit back
    smooth_wrr(bs)
    assert bs[0].effective_weight == 1
    assert bs[0].current_weight == 0 and bs[1].current_weight == 0  # b won: 1 - 1


@pytest.mark.unit
def test_round_robin_rotates_skips_unavailable_and_none_when_empty() -> None:
    bs = backends(1, 1, 1)
    p = policy("round_robin", bs)
    assert picks(p, 6) == "abcabc"
    bs[1].up = False
    assert picks(p, 4) == "acac"
    for b in bs:
        b.up = False
    assert p.choose(Req(), up, 0.0) is None


# --- nginx least_conn ------------------------------------------------------


@pytest.mark.unit
def test_least_conn_fewest_conns_per_weight_cross_multiplied() -> None:
    bs = backends(3, 1)
    bs[0].conns, bs[1].conns = 5, 2  # 5/3 < 2/1
    p = policy("least_conn", bs)
    assert p.choose(Req(), up, 0.0) is bs[0]
    # a strict winner leaves the WRR state alone
    assert [(b.current_weight, b.effective_weight) for b in bs] == [(0, 3), (0, 1)]


@pytest.mark.unit
def test_least_conn_ties_by_smooth_wrr_among_tied_only() -> None:
    bs = backends(2, 1, 1)
    bs[0].conns, bs[1].conns, bs[2].conns = 2, 1, 3  # ratios 1, 1, 3: a and b tie
    p = policy("least_conn", bs)
    # smooth WRR over (a:2, b:1): a, b, a, a, b, a ...
    assert picks(p, 6) == "abaaba"
    assert bs[2].current_weight == 0  # c never took part


# --- HAProxy leastconn -----------------------------------------------------


@pytest.mark.unit
def test_haproxy_leastconn_key_formula() -> None:
    assert SRV_EWGHT_MAX == 4096
    assert fwlc_key(0, 16) == 0  # idle servers come first whatever their weight
    assert fwlc_key(1, 16) == 512  # (1 + 1) * 4096 // 16
    assert fwlc_key(3, 3 * 16) == 341  # 16384 // 48, integer division


@pytest.mark.unit
def test_haproxy_leastconn_counts_queued() -> None:
    bs = backends(1, 1)
    bs[0].conns, bs[0].queued = 1, 2  # key 4 * 256
    bs[1].conns = 2  # key 3 * 256
    assert policy("leastconn_haproxy", bs).choose(Req(), up, 0.0) is bs[1]


@pytest.mark.unit
def test_haproxy_leastconn_idle_before_heavier() -> None:
    bs = backends(3, 1)
    bs[0].conns = 1  # key 2 * 4096 // 48 = 170 despite weight 3
    assert policy("leastconn_haproxy", bs).choose(Req(), up, 0.0) is bs[1]


@pytest.mark.unit
def test_haproxy_leastconn_round_robin_among_equal_keys() -> None:
    bs = backends(1, 1, 1)
    p = policy("leastconn_haproxy", bs)
    assert picks(p, 6) == "abcabc"
    # equal keys by integer division: 4*4096//32 == 2*4096//16 == 512
    bs2 = backends(2, 1)
    bs2[0].conns, bs2[1].conns = 3, 1
    p2 = policy("leastconn_haproxy", bs2)
    assert picks(p2, 4) == "abab"


@pytest.mark.unit
def test_haproxy_leastconn_response_requeues_server_last() -> None:
    bs = backends(1, 1, 1)
    p = policy("leastconn_haproxy", bs)
    assert picks(p, 2) == "ab"
    p.on_response(bs[0], 0.1, 1.0)  # a re-enters the tree after b
    assert picks(p, 3) == "cba"


# --- nginx ip_hash ---------------------------------------------------------


def _nginx_ip_round(h: int, ip: tuple[int, int, int, int]) -> int:
    for octet in ip[:3]:
        h = (h * 113 + octet) % 6271
    return h


@pytest.mark.unit
def test_ip_hash_hand_computed_peer_and_whole_slash24() -> None:
    # 89 -> (89*113+192)%6271 = 3978 -> (3978*113+168)%6271 = 4441
    #    -> (4441*113+1)%6271 = 154; 154 % 3 = 1 -> peer b
    assert _nginx_ip_round(89, (192, 168, 1, 0)) == 154
    bs = backends(1, 1, 1)
    p = policy("ip_hash", bs)
    assert p.sticky is True
    chosen = {p.choose(Req(client_ip=(192, 168, 1, x)), up, 0.0) for x in range(256)}
    assert chosen == {bs[1]}


@pytest.mark.unit
def test_ip_hash_unavailable_peer_rehashes_from_current_value() -> None:
    # 154 -> 5052 -> 383 -> 5654; 5654 % 3 = 2 -> peer c
    assert _nginx_ip_round(154, (192, 168, 1, 0)) == 5654
    bs = backends(1, 1, 1)
    bs[1].up = False
    p = policy("ip_hash", bs)
    assert p.choose(Req(client_ip=(192, 168, 1, 9)), up, 0.0) is bs[2]


@pytest.mark.unit
def test_ip_hash_weights_slots_over_all_peers() -> None:
    # total weight 4 counts the down peer too: 154 % 4 = 2 -> in b's range [1, 3)
    bs = backends(1, 2, 1)
    bs[2].up = False
    assert policy("ip_hash", bs).choose(Req(client_ip=(192, 168, 1, 1)), up, 0.0) is bs[1]


# --- nginx hash $key consistent ---------------------------------------------


def _ketama_owner(bs: list[Backend], key: str) -> Backend:
    """Independent ring: crc32 over the whole HOST \\0 PORT PREV_HASH each time."""
    points = []
    for b in bs:
        host, port = b.address.split(":")
        prev = 0
        for _ in range(160 * b.weight):
            prev = zlib.crc32(host.encode() + b"\x00" + port.encode() + struct.pack("<I", prev))
            points.append((prev, b.index))
    points.sort()
    i = bisect_left([h for h, _ in points], zlib.crc32(key.encode())) % len(points)
    return bs[points[i][1]]


@pytest.mark.unit
def test_consistent_hash_ring_size_and_known_key() -> None:
    bs = backends(1, 2, 1)
    p = policy("consistent_hash", bs)
    assert isinstance(p, ConsistentHash)
    assert p.sticky is True
    owners = Counter(p.ring_owners)
    assert owners == {b.address: POINTS_PER_WEIGHT * b.weight for b in bs}
    assert zlib.crc32(b"10.1.2.3") == 4128529761
    assert _ketama_owner(bs, "10.1.2.3") is bs[2]
    assert p.choose(Req(client_ip=(10, 1, 2, 3)), up, 0.0) is bs[2]


@pytest.mark.unit
def test_consistent_hash_removal_moves_only_that_backends_keys() -> None:
    bs = backends(1, 1, 1, 1)
    p = policy("consistent_hash", bs, {"key": "client"})
    reqs = [Req(client=c) for c in range(2000)]
    before = [p.choose(r, up, 0.0) for r in reqs]
    for r, b in zip(reqs, before, strict=True):
        assert b is _ketama_owner(bs, str(r.client))
    bs[1].up = False
    after = [p.choose(r, up, 0.0) for r in reqs]
    moved = [i for i in range(len(reqs)) if after[i] is not before[i]]
    assert moved == [i for i in range(len(reqs)) if before[i] is bs[1]]
    assert len(moved) > 0
    assert all(after[i] is not bs[1] for i in moved)


# --- power of d ------------------------------------------------------------


@pytest.mark.unit
def test_power_of_d_nginx_draws_distinct_so_always_compares_both() -> None:
    bs = backends(1, 1)
    bs[0].conns = 5
    p = policy("power_of_d", bs, {"flavour": "nginx"}, np.random.default_rng(7))
    assert picks(p, 1000) == "b" * 1000
    # with replacement, both draws hit the busy one about a quarter of the time
    q = policy("power_of_d", bs, {"flavour": "envoy"}, np.random.default_rng(7))
    n_busy = picks(q, 1000).count("a")
    assert 150 < n_busy < 350


@pytest.mark.unit
def test_power_of_d_nginx_redraws_duplicate_and_tie_goes_to_second() -> None:
    bs = backends(1, 1, 1)  # equal conns: a tie
    rng = ScriptedRng([0.1, 0.2, 0.5])  # draws a, a (redrawn), b
    p = policy("power_of_d", bs, {"flavour": "nginx"}, rng)
    assert p.choose(Req(), up, 0.0) is bs[1]


@pytest.mark.unit
def test_power_of_d_nginx_fewer_conns_per_weight_wins() -> None:
    bs = backends(3, 1)
    bs[0].conns, bs[1].conns = 2, 1  # 2/3 < 1/1
    rng = ScriptedRng([0.9, 0.1])  # draws b then a
    assert policy("power_of_d", bs, None, rng).choose(Req(), up, 0.0) is bs[0]


@pytest.mark.unit
def test_power_of_d_envoy_tie_goes_to_first_draw() -> None:
    bs = backends(1, 1)
    p = policy("power_of_d", bs, {"flavour": "envoy"}, ScriptedRng([0.9, 0.1]))
    assert p.choose(Req(), up, 0.0) is bs[1]
    q = policy("power_of_d", backends(1, 1), {"flavour": "nginx"}, ScriptedRng([0.9, 0.1]))
    assert q.choose(Req(), up, 0.0) is q.backends[0]


@pytest.mark.unit
def test_power_of_d_envoy_unequal_weights_is_edf_on_weight_over_active() -> None:
    """Envoy least_request, weights 1 and 3, bias 1: deadlines by hand.

    a: 1/1 = 1.0, b: 1/3. Pick b (0.333), re-added (weight 3/(0+1)) at
    0.667; b then holds 2 requests. Pick b (0.667), re-added with weight
    3/(2+1) = 1 at 1.667. Pick a (1.0, re-added at 2.0), b (1.667 → 2.667), a.
    """
    bs = backends(1, 3)
    p = policy("power_of_d", bs, {"flavour": "envoy"})
    assert p.choose(Req(), up, 0.0) is bs[1]
    bs[1].conns = 2
    assert picks(p, 4) == "baba"
    bs[0].up = False  # an unavailable host steps aside
    assert picks(p, 2) == "bb"


@pytest.mark.unit
def test_power_of_d_haproxy_random_draws_with_replacement_tie_to_later() -> None:
    """HAProxy random(2): draws a then b, equal served/weight: the later draw (b)."""
    bs = backends(1, 1)
    p = policy("power_of_d", bs, {"flavour": "haproxy"}, ScriptedRng([0.1, 0.9]))
    assert p.choose(Req(), up, 0.0) is bs[1]
    q = policy("power_of_d", backends(1, 1), {"flavour": "envoy"}, ScriptedRng([0.1, 0.9]))
    assert q.choose(Req(), up, 0.0) is q.backends[0]  # Envoy keeps the first
    bs = backends(1, 3)
    bs[0].conns, bs[1].conns = 1, 2  # 1/1 > 2/3: b less loaded per weight
    r = policy("power_of_d", bs, {"flavour": "haproxy"}, ScriptedRng([0.9, 0.1]))
    assert r.choose(Req(), up, 0.0) is bs[1]  # draws b (3.6) then a (0.4)


@pytest.mark.unit
def test_power_of_d_flavour_follows_the_product() -> None:
    bs = backends(1, 1)
    for product in ("nginx", "haproxy", "envoy"):
        p = make_policy("power_of_d", bs, None, np.random.default_rng(1), product)
        assert isinstance(p, PowerOfD) and p.flavour == product


@pytest.mark.unit
def test_round_robin_under_envoy_weights_is_edf() -> None:
    """Envoy ROUND_ROBIN, weights 5,1,1: a at 0.2, 0.4, 0.6, 0.8, then b, c (1.0, added
    first) before a's fifth (1.0, added later); nginx's smooth WRR: a a b a c a a."""
    p = make_policy("round_robin", backends(5, 1, 1), None, np.random.default_rng(1), "envoy")
    assert picks(p, 7) == "aaaabca"
    assert picks(policy("round_robin", backends(5, 1, 1)), 7) == "aabacaa"
    q = make_policy("round_robin", backends(1, 1, 1), None, np.random.default_rng(1), "envoy")
    assert picks(q, 6) == "abcabc"


@pytest.mark.unit
def test_power_of_d_single_available_and_none() -> None:
    bs = backends(1, 1, 1)
    bs[0].up = bs[2].up = False
    for flavour in ("nginx", "envoy"):
        p = policy("power_of_d", bs, {"flavour": flavour, "choices": 3})
        assert p.choose(Req(), up, 0.0) is bs[1]
    bs[1].up = False
    assert policy("power_of_d", bs).choose(Req(), up, 0.0) is None


# --- random ----------------------------------------------------------------


@pytest.mark.unit
def test_random_weighted_draw_and_redraw_of_unavailable() -> None:
    bs = backends(1, 3)
    # x = int(u * 4): 0.2 -> 0 (a), 0.3 -> 1 (b)
    p = policy("random", bs, None, ScriptedRng([0.2, 0.3]))
    assert picks(p, 2) == "ab"
    bs[0].up = False
    q = policy("random", bs, None, ScriptedRng([0.2, 0.3]))
    assert q.choose(Req(), up, 0.0) is bs[1]


# --- HAProxy agent-check weights -------------------------------------------


@pytest.mark.unit
def test_least_load_agent_weights_and_exact_split() -> None:
    bs = backends(100, 100)  # agent-check setups configure weights like 100
    p = policy("least_load", bs, {"interval": 0.5})
    assert isinstance(p, LeastLoad)
    assert p.agent_interval == 0.5
    assert p.agent_metric == "workers"
    assert p.weights == [100, 100]
    for b, load in zip(bs, (0.9, 0.1), strict=True):
        b.sampled_load = load
        p.on_sample(b, 2.0)
    assert p.weights == [10, 90]  # 100 × 10 % and 100 × 90 %
    # HAProxy's fwrr: exact shares per cycle of the total weight
    assert Counter(picks(p, 100)) == {"a": 10, "b": 90}


@pytest.mark.unit
def test_least_load_weights_are_truncated_integers_and_zero_removes() -> None:
    """weight × percent / 100 truncated, ≤ 256: weight 1 and any reply < 100 % → 0."""
    assert agent_weight(1, 99) == 0
    assert agent_weight(3, 50) == 1  # 1.5 truncated
    assert agent_weight(100, 37) == 37
    assert agent_weight(256, 100) == 256
    assert agent_weight(300, 100) == 256
    bs = backends(1, 1)
    p = policy("least_load", bs)
    bs[0].sampled_load = 0.5  # replies 50 %: 1 × 50 / 100 = 0, out of the farm
    p.on_sample(bs[0], 2.0)
    assert p.weights == [0, 1]
    assert picks(p, 4) == "bbbb"
    bs[0].sampled_load = 0.0  # replies 100 %: back with weight 1
    p.on_sample(bs[0], 4.0)
    assert sorted(picks(p, 4)) == ["a", "a", "b", "b"]


@pytest.mark.unit
def test_least_load_min_idle_floor_and_leastconn() -> None:
    bs = backends(200, 200)
    p = policy("least_load", bs, {"algorithm": "leastconn", "min_idle": 0.05})
    assert isinstance(p, LeastLoad)
    bs[0].sampled_load = 1.0  # idle clamped to 5 %
    p.on_sample(bs[0], 2.0)
    assert p.weights == [10, 200]
    bs[0].conns, bs[1].conns = 1, 10
    # keys: (1+1)*4096//(10*16) = 51 vs (10+1)*4096//(200*16) = 14
    assert p.choose(Req(), up, 0.0) is bs[1]
    bs[1].conns = 40  # (40+1)*4096//3200 = 52 > 51
    assert p.choose(Req(), up, 0.0) is bs[0]


# --- Finagle peak EWMA -----------------------------------------------------


@pytest.mark.unit
def test_peak_ewma_jumps_up_decays_down() -> None:
    bs = backends(1, 1)
    p = policy("peak_ewma", bs, {"decay_time": 10.0})
    assert isinstance(p, PeakEwma)
    p.on_response(bs[0], 1.0, 0.0)
    assert p.cost[0] == 1.0
    p.on_response(bs[0], 0.2, 10.0)  # w = exp(-10/10)
    w = math.exp(-1.0)
    assert p.cost[0] == 1.0 * w + 0.2 * (1.0 - w)
    p.on_response(bs[0], 5.0, 11.0)
    assert p.cost[0] == 5.0
    # reading decays to now (rtt 0 observed) and weighs by pending + 1
    bs[0].conns = 1
    assert p.load(bs[0], 21.0) == 5.0 * w * 2
    bs[1].conns = 3
    assert p.load(bs[1], 21.0) == PENALTY + 3


@pytest.mark.unit
def test_peak_ewma_picks_lower_cost_times_pending_and_tie_to_first() -> None:
    bs = backends(1, 1)
    p = policy("peak_ewma", bs)
    assert isinstance(p, PeakEwma)
    p.on_response(bs[0], 1.0, 0.0)
    p.on_response(bs[1], 0.3, 0.0)
    bs[1].conns = 2  # 0.3 * 3 = 0.9 < 1.0 * 1
    assert picks(p, 20) == "b" * 20
    # equal loads: a = int(0.9 * 2) = 1, b = int(0.0 * 1) = 0 -> (b, a), first wins
    q = policy("peak_ewma", backends(1, 1), None, ScriptedRng([0.9, 0.0]))
    assert q.choose(Req(), up, 0.0) is q.backends[1]


# --- HAProxy first ---------------------------------------------------------


@pytest.mark.unit
def test_first_picks_lowest_index_available() -> None:
    bs = backends(1, 1, 1)
    p = policy("first", bs)
    assert picks(p, 3) == "aaa"
    bs[0].up = False
    assert picks(p, 2) == "bb"
    bs[1].up = bs[2].up = False
    assert p.choose(Req(), up, 0.0) is None


# --- registry --------------------------------------------------------------


@pytest.mark.unit
def test_registry_and_make_policy_validation() -> None:
    assert set(POLICIES) == {
        "round_robin",
        "random",
        "least_conn",
        "leastconn_haproxy",
        "power_of_d",
        "least_load",
        "peak_ewma",
        "ip_hash",
        "consistent_hash",
        "first",
        "roundrobin_haproxy",
        "static_rr",
        "hash_haproxy",
        "hash_nginx",
        "least_time",
        "ring_hash",
        "maglev",
    }
    with pytest.raises(ValidationError):
        policy("power_of_d", backends(1, 1), {"choices": 2, "bogus": 1})
    with pytest.raises(ValidationError):
        policy("round_robin", backends(1), {"anything": 1})
    with pytest.raises(ValidationError):
        policy("power_of_d", backends(1, 1), {"choices": 1})
    with pytest.raises(ValueError, match="unknown policy"):
        policy("nope", backends(1))
    opts = POLICIES["peak_ewma"].Options(decay_time=3.0)
    p = make_policy("peak_ewma", backends(1), opts, np.random.default_rng(0))
    assert isinstance(p, PeakEwma)
    assert p.tau == 3.0


@pytest.mark.unit
def test_peak_ewma_keeps_the_healthier_of_the_pair_drawn_from_all() -> None:
    bs = backends(1, 1, 1)
    bs[0].conns = 10  # load PENALTY + 10: far busier than b
    bs[1].up = False
    # a = int(0.5 * 3) = 1 (b), then int(0.1 * 2) = 0 (a): b is less loaded but down
    p = policy("peak_ewma", bs, None, ScriptedRng([0.5, 0.1]))
    assert p.choose(Req(), up, 0.0) is bs[0]


@pytest.mark.unit
def test_peak_ewma_gives_up_on_health_after_five_pairs() -> None:
    bs = backends(1, 1)
    for b in bs:
        b.up = False
    # five pairs (a, b): equal load, the first kept; then sent anyway
    p = policy("peak_ewma", bs, None, ScriptedRng([0.1, 0.9] * 5))
    assert p.choose(Req(), up, 0.0) is bs[0]


@pytest.mark.unit
def test_peak_ewma_failures_update_the_cost() -> None:
    bs = backends(1, 1)
    p = policy("peak_ewma", bs)
    assert isinstance(p, PeakEwma)
    p.on_failure(bs[0], 2.0, 1.0)
    assert p.cost[0] == 2.0
