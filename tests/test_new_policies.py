"""Unit tests of the policies added for issue 9, each on a hand-checked example.

HAProxy roundrobin (lb_fwrr.c) and static-rr / map hashing (lb_map.c), nginx
``hash $key`` and ``least_time``, Envoy ``ring_hash`` and ``maglev``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

import lbsim
from lbsim.model.policies import POLICIES, Backend, Policy, make_policy
from lbsim.model.policies.envoy_hash import (
    Maglev,
    RingHash,
    build_maglev,
    build_ring,
    ring_size,
)
from lbsim.model.policies.fwrr import Fwrr
from lbsim.model.policies.haproxy_map import full_hash, hash_sdbm, server_map
from lbsim.model.policies.least_time import LeastTime
from lbsim.model.policies.nginx_hash import rehash_value
from lbsim.model.policies.options import MAX_RING_SIZE
from lbsim.model.policies.xxhash64 import xxh64, xxh64_rows
from lbsim.scenario.schema import Balancer


@dataclass
class Req:
    client: int = 0
    client_ip: tuple[int, int, int, int] = (10, 0, 0, 1)


def up(backend: Backend) -> bool:
    return backend.up


def not_full(backend: Backend) -> bool:
    return backend.up and not backend.full


def backends(*weights: int) -> list[Backend]:
    return [
        Backend(index=i, name="abcdefgh"[i], address=f"10.0.0.{i + 1}:9000", weight=w)
        for i, w in enumerate(weights)
    ]


def policy(name: str, bs: list[Backend], options: dict[str, Any] | None = None) -> Policy:
    return make_policy(name, bs, options, np.random.default_rng(1))


def picks(p: Policy, n: int, req: Req | None = None, now: float = 0.0) -> str:
    out = []
    for _ in range(n):
        b = p.choose(req or Req(), up, now)
        out.append("-" if b is None else b.name)
    return "".join(out)


def never(i: int) -> bool:
    return False


# --- HAProxy roundrobin (lb_fwrr.c) -----------------------------------------


@pytest.mark.unit
def test_fwrr_weights_5_1_1_hand_stepped() -> None:
    # eweights 80, 16, 16 (x BE_WEIGHT_SCALE), total 112; curr_pos starts at 112.
    # 1: curr empty -> heaviest of init, a: npos 112 + 112//80 = 113, rweight 32
    # 2: a npos 113 <= pos 113 -> a: npos 114, rweight 64
    # 3: a 114 <= 114 -> a: npos 115, rweight 96 >= 80 -> 16, npos 116
    # 4: a 116 > 115 -> init's first, b (ties with c, declared first): npos 115 + 7
    # 5: a 116 <= 116 -> a: npos 117, rweight 48
    # 6: a 117 <= 117 -> a: rweight 80 -> 0, npos 119
    # 7: a 119 > 118 -> init's c
    f = Fwrr([5, 1, 1])
    seq = [f.next(never) for _ in range(7)]
    assert "".join("abc"[i] for i in seq if i is not None) == "aaabaac"
    assert (f.npos, f.rweight, f.curr_pos) == ([119, 122, 125], [0, 0, 0], 119)
    p = policy("roundrobin_haproxy", backends(5, 1, 1))
    assert picks(p, 21) == "aaabaac" * 3
    # same counts as nginx's smooth WRR (aabacaa), another order
    assert sorted(picks(policy("round_robin", backends(5, 1, 1)), 7)) == sorted("aaabaac")


@pytest.mark.unit
def test_fwrr_equal_weights_rotate_in_declaration_order() -> None:
    assert picks(policy("roundrobin_haproxy", backends(1, 1, 1)), 9) == "abc" * 3
    assert picks(policy("roundrobin_haproxy", backends(2, 1)), 6) == "aab" * 2
    assert picks(policy("roundrobin_haproxy", backends(4, 3, 2, 1)), 10) == "abacbadabc"


@pytest.mark.unit
def test_fwrr_any_window_of_sum_weights_picks_is_within_one_of_each_weight() -> None:
    rng = np.random.default_rng(3)
    for _ in range(40):
        ws = [int(w) for w in rng.integers(1, 21, size=int(rng.integers(1, 7)))]
        f = Fwrr(ws)
        for _ in range(3):
            got = [f.next(never) for _ in range(sum(ws))]
            assert all(abs(got.count(i) - w) <= 1 for i, w in enumerate(ws)), ws


@pytest.mark.unit
def test_fwrr_saturated_server_is_stepped_and_requeued_not_lost() -> None:
    # weights 1,1,1 (eweight 16, total 48): a at npos 51; b from init
    # (npos 52) is saturated -> chained, then c (npos 53) taken; b requeued
    # at 52, so it comes right after a (51).
    f = Fwrr([1, 1, 1])
    assert f.next(never) == 0
    assert f.next(lambda i: i == 1) == 2
    assert [f.next(never), f.next(never)] == [0, 1]
    # all saturated -> None, and the order is kept for later
    g = Fwrr([1, 1])
    assert g.next(lambda i: True) is None
    assert [g.next(never) for _ in range(4)] == [0, 1, 0, 1]


@pytest.mark.unit
def test_fwrr_down_server_leaves_total_and_comes_back() -> None:
    bs = backends(1, 1, 1)
    p = policy("roundrobin_haproxy", bs)
    assert picks(p, 2) == "ab"
    bs[1].up = False
    assert picks(p, 4) == "caca"
    fwrr = p.fwrr  # type: ignore[attr-defined]
    assert fwrr.next_weight == 32
    bs[1].up = True
    assert picks(p, 6) == "cabcab"
    assert fwrr.next_weight == 48
    # passive failure counts as down too
    bs[0].failed_until = 5.0
    assert set(picks(p, 4, now=1.0)) == {"b", "c"}


@pytest.mark.unit
def test_fwrr_weight_change_at_run_time() -> None:
    f = Fwrr([2, 2])
    assert [f.next(never) for _ in range(4)] == [0, 1, 0, 1]
    f.set_server(0, True, 6)  # agent-check style change: 3:1 from now on
    seq = [f.next(never) for _ in range(16)]
    assert seq.count(0) == 12 and seq.count(1) == 4
    f.set_server(1, True, 0)  # weight 0 takes it out of the farm
    assert {f.next(never) for _ in range(5)} == {0}
    assert f.next_weight == 96
    with pytest.raises(ValueError, match=r"0\.\.256"):
        Fwrr([257])


# --- HAProxy static-rr and map-based hashing (lb_map.c) ---------------------


@pytest.mark.unit
def test_server_map_hand_computed() -> None:
    # 5,1,1 (tot 7): wscore += w each slot, v = (wscore + 7) / 7, first max wins,
    # winner pays 7: slots a a a b a a c (b at slot 3: a has -1 -> v 0, b 4 -> v 1)
    assert server_map([5, 1, 1], [True] * 3) == [0, 0, 0, 1, 0, 0, 2]
    # 1,2: slot 0 ties at v 1 -> a (declared first); then b, b
    assert server_map([1, 2], [True, True]) == [0, 1, 1]
    # b down: the map is rebuilt over a, c only (tot 6)
    assert server_map([5, 1, 1], [True, False, True]) == [0, 0, 0, 0, 0, 2]
    assert server_map([1, 1], [False, False]) == []
    assert server_map([1, 1], [False, True]) == [1]


@pytest.mark.unit
def test_static_rr_walks_the_map_and_skips_saturated() -> None:
    bs = backends(5, 1, 1)
    p = policy("static_rr", bs)
    assert picks(p, 14) == "aaabaac" * 2
    assert picks(p, 3) == "aaa"
    bs[1].max_conns, bs[1].conns = 1, 1  # b full: its slot is passed over
    out = [p.choose(Req(), not_full, 0.0) for _ in range(3)]
    assert [b.name for b in out if b is not None] == ["a", "a", "c"]
    assert p.rr_idx == 0  # type: ignore[attr-defined]
    # weights are divided by their GCD: 2,4 is the 1,2 map
    assert policy("static_rr", backends(2, 4)).map == [0, 1, 1]  # type: ignore[attr-defined]


@pytest.mark.unit
def test_static_rr_down_server_rebuilds_map_and_none_when_all_full() -> None:
    bs = backends(5, 1, 1)
    p = policy("static_rr", bs)
    bs[1].up = False
    assert picks(p, 6) == "aaaaac"
    for b in bs:
        b.max_conns, b.conns = 1, 1
    assert p.choose(Req(), not_full, 0.0) is None


@pytest.mark.unit
def test_hash_haproxy_source_is_ip_mod_total_weight_of_running() -> None:
    bs = backends(1, 1, 1)
    p = policy("hash_haproxy", bs)
    # 10.0.0.1 = 167772161: % 3 = 2 -> c; 10.0.0.2 -> 0 -> a
    assert p.choose(Req(client_ip=(10, 0, 0, 1)), up, 0.0) is bs[2]
    assert p.choose(Req(client_ip=(10, 0, 0, 2)), up, 0.0) is bs[0]
    bs[1].up = False  # map [a, c]: 167772161 % 2 = 1 -> c
    assert p.choose(Req(client_ip=(10, 0, 0, 1)), up, 0.0) is bs[2]
    bs[2].up = False  # one server left: no hash taken
    assert p.choose(Req(client_ip=(10, 0, 0, 1)), up, 0.0) is bs[0]
    # weights 5,1,1: 10.0.0.0 = 167772160, % 7 = 3 -> slot 3 = b
    q = policy("hash_haproxy", backends(5, 1, 1))
    assert q.choose(Req(client_ip=(10, 0, 0, 0)), up, 0.0).name == "b"  # type: ignore[union-attr]


@pytest.mark.unit
def test_hash_haproxy_hdr_sdbm_sticky_to_a_full_server() -> None:
    # sdbm("12"): 49, then 50 + (49 << 6) + (49 << 16) - 49 = 3214401; % 3 = 0
    assert hash_sdbm(b"12") == 3214401
    bs = backends(1, 1, 1)
    p = policy("hash_haproxy", bs, {"key": "client"})
    assert p.sticky
    bs[0].max_conns, bs[0].conns = 1, 1
    assert p.choose(Req(client=12), up, 0.0) is bs[0]  # waits for its server
    assert p.choose(Req(client=12), lambda b: b is not bs[0], 0.0) is None  # tried already
    # values from HAProxy's C code compiled as is (intops.h, hash.c)
    assert (full_hash(0), full_hash(167772161)) == (0xAB4ED927, 0x2AA26E52)
    assert hash_sdbm(b"4711") == 2393425859
    with pytest.raises(ValidationError):
        policy("hash_haproxy", bs, {"key": "uri"})


# --- nginx hash $key (non-consistent) ----------------------------------------


@pytest.mark.unit
def test_hash_nginx_rehash_rounds_hand_computed() -> None:
    # key "10.0.0.1": round 0 adds (crc32("10.0.0.1") >> 16) & 0x7fff = 9982,
    # round 1 (crc32("1" + key)) 7327, round 2 9490: sums 9982, 17309, 26799
    assert [rehash_value(b"10.0.0.1", r) for r in range(3)] == [9982, 7327, 9490]
    bs = backends(1, 1, 1)
    p = policy("hash_nginx", bs)
    assert not p.sticky
    assert p.choose(Req(), up, 0.0) is bs[1]  # 9982 % 3 = 1
    bs[1].up = False
    assert p.choose(Req(), up, 0.0) is bs[2]  # 17309 % 3 = 2
    bs[1].up = True
    bs[1].max_conns, bs[1].conns = 1, 1  # full: nginx moves on too
    assert p.choose(Req(), not_full, 0.0) is bs[2]
    bs[2].up = False
    assert p.choose(Req(), not_full, 0.0) is bs[0]  # 26799 % 3 = 0
    # weights 5,1,1: 9982 % 7 = 0 -> a's slots 0..4
    assert policy("hash_nginx", backends(5, 1, 1)).choose(Req(), up, 0.0).name == "a"  # type: ignore[union-attr]


@pytest.mark.unit
def test_hash_nginx_falls_back_to_round_robin() -> None:
    bs = backends(1, 1)
    p = policy("hash_nginx", bs, {"key": "client"})
    only_b = lambda b: b is bs[1]  # noqa: E731
    # every round lands on b or a; a unavailable -> rehash until b, never RR
    assert p.choose(Req(client=3), only_b, 0.0) is bs[1]
    # client 1254: none of its 21 rounds lands on c (found by search); with a
    # and b unavailable nginx gives up after 21 rounds and round robin finds c
    three = backends(1, 1, 1)
    calls: list[str] = []

    def only_c(b: Backend) -> bool:
        calls.append(b.name)
        return b is three[2]

    q = policy("hash_nginx", three, {"key": "client"})
    assert q.choose(Req(client=1254), only_c, 0.0) is three[2]
    assert len(calls) == 21 + 3 and "c" not in calls[:21]
    # a single peer: straight to round robin
    one = backends(1)
    assert policy("hash_nginx", one).choose(Req(), up, 0.0) is one[0]
    bs[0].up = bs[1].up = False
    assert p.choose(Req(), up, 0.0) is None


# --- nginx Plus least_time ----------------------------------------------------


@pytest.mark.unit
def test_least_time_moving_average_and_score() -> None:
    bs = backends(1, 1, 1)
    p = policy("least_time", bs)
    assert isinstance(p, LeastTime)
    p.on_response(bs[0], 1.0, 1.0)  # first sample sets the average
    p.on_response(bs[0], 0.5, 2.0)  # 0.9 * 1.0 + 0.1 * 0.5
    assert p.avg[0] == pytest.approx(0.95)
    p.on_response(bs[1], 2.0, 2.0)
    # c has no sample yet (average 0): tried first
    assert p.choose(Req(), up, 3.0) is bs[2]
    bs[2].up = False
    bs[0].conns = 1  # a: 0.95 * 2 = 1.9 < b: 2.0 * 1
    assert p.choose(Req(), up, 3.0) is bs[0]
    bs[0].conns = 2  # a: 2.85 > 2.0
    assert p.choose(Req(), up, 3.0) is bs[1]
    q = policy("least_time", backends(1, 1), {"factor": 0.0})
    q.on_response(q.backends[0], 1.0, 0.0)
    q.on_response(q.backends[0], 3.0, 0.0)
    assert q.avg[0] == 3.0  # type: ignore[attr-defined]


@pytest.mark.unit
def test_least_time_weights_and_ties_by_smooth_wrr() -> None:
    bs = backends(1, 2)
    p = policy("least_time", bs)
    p.on_response(bs[0], 1.0, 0.0)
    p.on_response(bs[1], 2.0, 0.0)
    # a: 1.0 * 1 / 1 = 1 ; b: 2.0 * 1 / 2 = 1 -> tie: smooth WRR (1, 2) -> b a b
    assert picks(p, 3) == "bab"
    bs[1].conns = 1  # b: 2 * 2 / 2 = 2 > 1
    assert picks(p, 2) == "aa"
    with pytest.raises(ValidationError):
        policy("least_time", bs, {"factor": 1.0})


# --- Envoy ring_hash and maglev ------------------------------------------------


def envoy_hosts(*weights: int, port0: int = 90, hostname: bool = False) -> list[Backend]:
    # Envoy's tests name hosts 127.0.0.1:90.. (or hash the hostname "90"..)
    return [
        Backend(
            index=i,
            name=str(port0 + i),
            address=str(port0 + i) if hostname else f"127.0.0.1:{port0 + i}",
            weight=w,
        )
        for i, w in enumerate(weights)
    ]


@pytest.mark.unit
def test_xxh64_matches_the_reference_library() -> None:
    # values printed by the xxhash C library (python-xxhash 4.1.0)
    assert xxh64(b"") == 17241709254077376921
    assert xxh64(b"", 1) == 15397730242686860875
    assert xxh64(b"10.0.0.1") == 17084065887361098711
    assert xxh64(b"10.0.0.1:9000_0") == 3261933769142838882
    long = b"a-very-long-hostname.example.com:9000_12345"  # >= 32 bytes: 4 lanes
    assert (xxh64(long), xxh64(long, 1)) == (3920907380537154094, 10530991585181352572)
    rows = np.frombuffer(long * 3, dtype=np.uint8).reshape(3, len(long))
    assert xxh64_rows(rows).tolist() == [3920907380537154094] * 3


@pytest.mark.unit
def test_ring_hash_envoys_own_ring_of_12() -> None:
    # Envoy ring_hash_lb_test.cc BasicWithHostname: hosts "90".."95", min ring 12
    hashes, owners = build_ring(envoy_hosts(*[1] * 6, hostname=True), 12, MAX_RING_SIZE)
    assert hashes.tolist() == [
        1975508444536362413, 2376063919839173711, 2386806903309390596,
        6749904478991551885, 6803900775736438537, 7225015537174310577,
        8787465352164086522, 11282020843382717940, 13723418369486627818,
        13776502110861797421, 14338313586354474791, 15364271037087512980,
    ]  # fmt: skip
    assert [90 + i for i in owners.tolist()] == [95, 95, 93, 94, 93, 92, 90, 92, 91, 90, 91, 94]
    p = policy("ring_hash", envoy_hosts(*[1] * 6, hostname=True), {"minimum_ring_size": 12})
    assert isinstance(p, RingHash)
    p.refresh(0.0)
    # the same lookups as Envoy's test: 0 and 2**64-1 (wraps) -> 95; a point's
    # own hash -> that point's host
    assert [p.lookup(h) for h in (0, 2**64 - 1, 7225015537174310577, 6803900775736438537)] == [
        5, 5, 2, 3,
    ]  # fmt: skip


@pytest.mark.unit
def test_ring_size_min_1024_and_capped_for_huge_weights() -> None:
    assert ring_size([1, 1, 1], 1024, MAX_RING_SIZE) == (1026.0, 1026)  # 342 per host
    assert ring_size([5, 1, 1], 1024, MAX_RING_SIZE)[1] == 1029  # 735, 147, 147
    # 10**9 against 1 would ask for 1024 * (10**9 + 1) points: capped at
    # maximum_ring_size (Envoy's 8M by default)
    assert ring_size([10**9, 1], 1024, MAX_RING_SIZE) == (float(MAX_RING_SIZE), MAX_RING_SIZE)
    bs = envoy_hosts(10**9, 1)
    hashes, owners = build_ring(bs, 1024, 4096)
    assert len(hashes) == 4096 and set(owners.tolist()) == {0}  # the light host: no point left
    p = policy("ring_hash", bs, {"maximum_ring_size": 4096})
    assert {p.choose(Req(client_ip=(10, 0, 0, i)), up, 0.0) for i in range(20)} == {bs[0]}
    with pytest.raises(ValidationError):
        policy("ring_hash", bs, {"minimum_ring_size": 5000, "maximum_ring_size": 4096})


@pytest.mark.unit
def test_ring_hash_request_key_and_health_panic() -> None:
    bs = envoy_hosts(1, 1, 1, 1)
    p = policy("ring_hash", bs)
    assert isinstance(p, RingHash)
    assert p.sticky and p.products == frozenset({"envoy"})
    h = xxh64(b"10.0.0.1")  # source_ip: the dotted address string
    p.refresh(0.0)
    first = bs[p.lookup(h)]
    assert p.choose(Req(client_ip=(10, 0, 0, 1)), up, 0.0) is first
    first.up = False  # 3 of 4 healthy: ring rebuilt without it
    second = p.choose(Req(client_ip=(10, 0, 0, 1)), up, 0.0)
    assert second is not None and second is not first
    for b in bs:
        b.up = b is second
    # 1 of 4 healthy (25 % < 50 %): panic, the ring holds all hosts again
    p.refresh(0.0)
    assert bs[p.lookup(h)] is first
    assert p.choose(Req(client_ip=(10, 0, 0, 1)), up, 0.0) is None  # it is down
    for b in bs:
        b.up = True
    assert p.choose(Req(client_ip=(10, 0, 0, 1)), up, 0.0) is first  # cached table back


@pytest.mark.unit
def test_maglev_envoys_own_tables() -> None:
    # Envoy maglev_lb_test.cc, table size 7: Basic (127.0.0.1:90..95) and
    # BasicWithHostName; Weighted (weights 1, 2; size 17)
    assert build_maglev(envoy_hosts(*[1] * 6), 7) == [2, 4, 0, 1, 5, 0, 3]
    assert build_maglev(envoy_hosts(*[1] * 6, hostname=True), 7) == [2, 5, 0, 3, 4, 1, 0]
    weighted = build_maglev(envoy_hosts(1, 2), 17)
    assert weighted == [1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 0, 1]
    p = policy("maglev", envoy_hosts(*[1] * 6), {"table_size": 7})
    assert isinstance(p, Maglev)
    p.refresh(0.0)
    assert [p.lookup(h) for h in range(14)] == [2, 4, 0, 1, 5, 0, 3] * 2


@pytest.mark.unit
def test_maglev_default_table_and_options() -> None:
    bs = envoy_hosts(5, 1, 1)
    p = policy("maglev", bs)
    assert isinstance(p, Maglev)
    p.refresh(0.0)
    counts = np.bincount(np.array(p.table), minlength=3).tolist()
    assert sum(counts) == 65537 and counts[1] == counts[2] and counts[0] > 4.9 * counts[1]
    key = xxh64(b"10.0.0.7")
    assert p.choose(Req(client_ip=(10, 0, 0, 7)), up, 0.0) is bs[p.table[key % 65537]]
    with pytest.raises(ValidationError, match="prime"):
        policy("maglev", bs, {"table_size": 65536})
    with pytest.raises(ValidationError):
        policy("maglev", bs, {"bogus": 1})


# --- each new policy end to end ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "product"),
    [
        ("roundrobin_haproxy", "haproxy"),
        ("static_rr", "haproxy"),
        ("hash_haproxy", "haproxy"),
        ("hash_nginx", "nginx"),
        ("least_time", "nginx"),
        ("ring_hash", "envoy"),
        ("maglev", "envoy"),
    ],
)
def test_new_policy_runs_a_short_simulation(name: str, product: str) -> None:
    balancer: dict[str, Any] = {"policy": name}
    if "product" in Balancer.model_fields:  # the scenario names its balancer product
        balancer["product"] = product
    data = {
        "name": "smoke",
        "seed": 7,
        "duration": 30.0,
        "warmup": 3.0,
        "workload": {
            "open": {"rate": 40.0},
            "classes": [{"name": "job", "cpu": {"dist": "exponential", "mean": 0.05}}],
        },
        "balancer": balancer,
        "app": {"nodes": 3, "workers": 2, "cores": 2.0},
    }
    result = lbsim.simulate(lbsim.Scenario.model_validate(data), replications=1)
    assert result.value("throughput") > 30
    assert POLICIES[name].products == frozenset({product})
