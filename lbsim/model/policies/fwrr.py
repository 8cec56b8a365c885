"""HAProxy ``balance roundrobin``: fast weighted round robin (``src/lb_fwrr.c``).

:class:`Fwrr` is the scheduler itself, over server numbers ``0..n-1``, so
other HAProxy policies can reuse it with weights that change at run time
(agent-check): call :meth:`Fwrr.set_server` on every weight or state
change and :meth:`Fwrr.next` per request. It follows HAProxy 3.x with one
thread group and no backup servers.

HAProxy keeps three eb32 trees per group: ``curr`` (servers by next
position), ``init`` and ``next`` (servers by decreasing weight, waiting for
the current window to end). Positions advance by one per pick; a server of
effective weight ``ew`` moves ``total // ew`` positions (plus a carried
remainder) each time it is picked. Equal tree keys come out in insertion
order (ebtree appends duplicates), kept here with an insertion counter.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
from pydantic import BaseModel

from lbsim.model.policies.base import Backend, Eligibility, Policy, RequestView, register

# include/haproxy/backend-t.h and server-t.h
BE_WEIGHT_SCALE = 16
SRV_UWGHT_MAX = 256
SRV_EWGHT_MAX = SRV_UWGHT_MAX * BE_WEIGHT_SCALE

_CURR, _T0, _T1 = 0, 1, 2
_NONE = -1


def c_div(a: int, b: int) -> int:
    """C integer division (truncates towards zero; Python's ``//`` floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


class Fwrr:
    """One FWRR group (``struct fwrr_group`` plus the proxy's totals).

    ``uweights`` are HAProxy user weights (0..256); the effective weight is
    ``uweight * 16`` (fwrr sets ``wdiv = BE_WEIGHT_SCALE``). A server is in
    the farm when usable and its weight is > 0 (``srv_willbe_usable``).
    """

    __slots__ = (
        "_seq",
        "curr_pos",
        "curr_weight",
        "eweight",
        "init",
        "key",
        "lpos",
        "next_tree",
        "next_weight",
        "npos",
        "rweight",
        "seq",
        "tree",
        "trees",
        "usable",
    )

    def __init__(self, uweights: Sequence[int], usable: Sequence[bool] | None = None):
        n = len(uweights)
        for w in uweights:
            if not 0 <= w <= SRV_UWGHT_MAX:
                raise ValueError(f"HAProxy weights are 0..{SRV_UWGHT_MAX}, got {w}")
        self.eweight = [w * BE_WEIGHT_SCALE for w in uweights]
        self.usable = [True] * n if usable is None else list(usable)
        self.npos = [0] * n
        self.lpos = [0] * n
        self.rweight = [0] * n
        self.key = [0] * n
        self.seq = [0] * n
        #: tree holding each server: _CURR, _T0, _T1 or _NONE (out of the farm)
        self.tree = [_NONE] * n
        #: sorted (key, insertion seq, server) per tree; [0] is eb32_first
        self.trees: list[list[tuple[int, int, int]]] = [[], [], []]
        self._seq = 0
        self.init = _T0
        self.next_tree = _T1
        # fwrr_init_server_groups: servers enter "init" in declaration order
        total = 0
        for i in range(n):
            if self._in_farm(i):
                total += self.eweight[i]
                self._queue_by_weight(self.init, i)
        self.next_weight = total
        self.curr_pos = self.curr_weight = total

    # -- trees ----------------------------------------------------------------------------
    def _in_farm(self, i: int) -> bool:
        return self.usable[i] and self.eweight[i] > 0

    def _insert(self, tree: int, i: int, key: int) -> None:
        self._seq += 1
        self.key[i] = key
        self.seq[i] = self._seq
        self.tree[i] = tree
        insort(self.trees[tree], (key, self._seq, i))

    def _dequeue(self, i: int) -> None:
        t = self.tree[i]
        if t != _NONE:
            self.trees[t].remove((self.key[i], self.seq[i], i))
            self.tree[i] = _NONE

    def _queue_by_weight(self, tree: int, i: int) -> None:
        # heavy servers first, for a smooth distribution
        self._insert(tree, i, SRV_EWGHT_MAX - self.eweight[i])

    def _queue_srv(self, i: int) -> None:
        """``fwrr_queue_srv``: into ``curr`` by next position, or ``next`` if past the window."""
        ew = self.eweight[i]
        if not self._in_farm(i):
            self.tree[i] = _NONE
        elif (
            self.npos[i] >= 2 * self.curr_weight
            or self.npos[i] >= self.curr_weight + self.next_weight
        ):
            self.npos[i] -= self.curr_weight
            self._queue_by_weight(self.next_tree, i)
        else:
            key = SRV_UWGHT_MAX * self.npos[i] + (SRV_EWGHT_MAX + self.rweight[i] - ew) // (
                BE_WEIGHT_SCALE
            )
            self._insert(_CURR, i, key)

    def _get_srv(self, i: int) -> None:
        """``fwrr_get_srv``: fix ``npos`` of a server taken out of its tree."""
        t = self.tree[i]
        if t == self.init:
            self.npos[i] = self.rweight[i] = 0
        elif t == self.next_tree:
            self.npos[i] += self.curr_weight
        elif t == _NONE:
            self.npos[i] = self.curr_pos

    def _from_group(self) -> int | None:
        """``fwrr_get_server_from_group``: the next of ``curr``, else the heaviest of ``init``."""
        curr = self.trees[_CURR]
        s1 = curr[0][2] if curr else None
        if s1 is not None and self.npos[s1] <= self.curr_pos:
            return s1
        init = self.trees[self.init]
        if init:
            s2 = init[0][2]
            self.npos[s2] = self.rweight[s2] = 0
            return s2
        return s1

    def _update_position(self, i: int) -> None:
        ew = self.eweight[i]
        if not self.npos[i]:  # first time ever for this server
            self.npos[i] = self.curr_pos
        self.lpos[i] = self.npos[i]
        self.npos[i] += self.next_weight // ew
        self.rweight[i] += self.next_weight % ew
        if self.rweight[i] >= ew:
            self.rweight[i] -= ew
            self.npos[i] += 1

    # -- picking --------------------------------------------------------------------------
    def next(self, saturated: Callable[[int], bool]) -> int | None:
        """``fwrr_get_next_server``: the server for one request, or ``None``.

        ``saturated(i)`` says that server ``i`` cannot take the request now
        (at ``maxconn`` or with a queue, or avoided): it is still stepped and
        requeued as HAProxy does, which moves it back in the order.
        """
        if not any(self.trees):
            return None
        switched = False
        full: list[int] = []
        srv: int | None = None
        while True:
            if not self.curr_weight:  # collect weights that changed while empty
                self.curr_pos = self.curr_weight = self.next_weight
            while True:
                srv = self._from_group()
                if srv is not None or switched:
                    break
                switched = True
                # fwrr_switch_trees: "next" becomes "init", a new window begins
                self.init, self.next_tree = self.next_tree, self.init
                self.curr_weight = self.curr_pos = self.next_weight
            if srv is None:
                break
            self._update_position(srv)
            self._dequeue(srv)
            self.curr_pos += 1
            if not saturated(srv):
                self._queue_srv(srv)
                break
            full.append(srv)
            srv = None
        for f in full:
            # after a switch their place is lost and only their weight matters
            if switched:
                self._queue_by_weight(self.init, f)
            else:
                self._queue_srv(f)
        return srv

    # -- state and weight changes ---------------------------------------------------------
    def set_server(self, i: int, usable: bool, uweight: int | None = None) -> None:
        """Server ``i`` changed state or (user) weight: HAProxy's three lb_ops updates."""
        if uweight is not None and not 0 <= uweight <= SRV_UWGHT_MAX:
            raise ValueError(f"HAProxy weights are 0..{SRV_UWGHT_MAX}, got {uweight}")
        old_ew = self.eweight[i]
        self.set_eweight(i, usable, old_ew if uweight is None else uweight * BE_WEIGHT_SCALE)

    def set_eweight(self, i: int, usable: bool, new_ew: int) -> None:
        """Server ``i``'s state and *effective* weight (``uweight × 16`` scaled by slow
        start, as ``server_recalc_eweight``) changed: the same three lb_ops updates."""
        if not 0 <= new_ew <= SRV_EWGHT_MAX:
            raise ValueError(f"HAProxy effective weights are 0..{SRV_EWGHT_MAX}, got {new_ew}")
        old_ew = self.eweight[i]
        was = self._in_farm(i)
        will = usable and new_ew > 0
        if not was and not will:
            self.usable[i], self.eweight[i] = usable, new_ew
        elif not was:
            self._status_up(i, usable, new_ew)
        elif not will:
            self._status_down(i, usable, new_ew)
        elif new_ew != old_ew:
            self._update_weight(i, new_ew)

    def _status_down(self, i: int, usable: bool, new_ew: int) -> None:
        self._dequeue(i)
        self.next_weight -= self.eweight[i]
        self.usable[i], self.eweight[i] = usable, new_ew

    def _status_up(self, i: int, usable: bool, new_ew: int) -> None:
        self.usable[i], self.eweight[i] = usable, new_ew
        self.next_weight += new_ew
        self._get_srv(i)
        self.npos[i] = self.curr_pos + c_div(
            self.next_weight + self.curr_weight - self.curr_pos, new_ew
        )
        self._queue_srv(i)

    def _update_weight(self, i: int, new_ew: int) -> None:
        self.next_weight += new_ew - self.eweight[i]
        if self.tree[i] == self.init:
            self._dequeue(i)
            self.eweight[i] = new_ew
            self._queue_by_weight(self.init, i)
            return
        # in "curr" or "next": keep what it has not consumed of its place
        self._get_srv(i)
        prev_next = self.npos[i]
        step = self.next_weight // new_ew
        self.npos[i] = min(self.lpos[i] + step, prev_next)
        self.rweight[i] = 0
        if self.npos[i] < self.curr_pos + 2:
            self.npos[i] = self.curr_pos + step
        self._dequeue(i)
        self.eweight[i] = new_ew
        self._queue_srv(i)


def haproxy_saturated(b: Backend, available: Eligibility) -> bool:
    """HAProxy skips a server at ``maxconn`` or with requests queued for it."""
    return not available(b) or (b.max_conns > 0 and b.queued > 0)


class RoundRobinHaproxy(Policy):
    """HAProxy ``balance roundrobin`` (lb_fwrr): weights 5, 1, 1 give ``aaabaac`` per cycle.

    A server that is down (``up`` false, or passively failed) leaves the
    trees and the total weight, as HAProxy's ``set_server_status_down``;
    one that is only full (or already tried by this request) is stepped
    and requeued like a saturated server. ``None`` when none can take it.
    """

    products: ClassVar[frozenset[str]] = frozenset({"haproxy"})

    def __init__(self, backends: Sequence[Backend], options: BaseModel, rng: np.random.Generator):
        super().__init__(backends, options, rng)
        n = max((b.index for b in self.backends), default=-1) + 1
        weights = [0] * n
        for b in self.backends:
            weights[b.index] = b.weight
        self._by_index: list[Backend | None] = [None] * n
        for b in self.backends:
            self._by_index[b.index] = b
        self._up = [True] * n
        self.fwrr = Fwrr(weights)

    def _sync(self, now: float) -> None:
        up = self._up
        eweight = self.fwrr.eweight
        for b in self.backends:
            u = b.up and b.failed_until <= now
            # slow start: HAProxy's eweight = uweight × 16 × ramp (sixteenths, at least 1)
            ew = b.weight * BE_WEIGHT_SCALE
            if b.ramp < 1.0 and ew > 0:
                ew = max(1, int(ew * b.ramp))
            if u != up[b.index] or ew != eweight[b.index]:
                up[b.index] = u
                self.fwrr.set_eweight(b.index, u, ew)

    def choose(self, request: RequestView, available: Eligibility, now: float) -> Backend | None:
        self._sync(now)
        by_index = self._by_index

        def saturated(i: int) -> bool:
            b = by_index[i]
            return b is None or haproxy_saturated(b, available)

        i = self.fwrr.next(saturated)
        return None if i is None else by_index[i]


register("roundrobin_haproxy")(RoundRobinHaproxy)
