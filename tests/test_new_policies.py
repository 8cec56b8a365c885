"""Unit tests of the policies added for issue 9, each on a hand-checked example.

HAProxy roundrobin (lb_fwrr.c) and static-rr / map hashing (lb_map.c), nginx
``hash $key`` and ``least_time``, Envoy ``ring_hash`` and ``maglev``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from lbsim.model.policies import Backend, Policy, make_policy
from lbsim.model.policies.fwrr import Fwrr


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
