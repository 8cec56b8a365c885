"""Samplers for the distribution specs of :mod:`lbsim.scenario.distributions`.

Samplers draw in blocks from their own generator and hand values out one at
a time: a scalar numpy call costs about a microsecond, a value from a block a
few tens of nanoseconds. The sequence drawn is the same whatever the block
size for the first block, and fixed for a given seed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator

import numpy as np

from lbsim.scenario import distributions as spec

BLOCK = 4096
Draw = Callable[[np.random.Generator, int], np.ndarray]


def _drawer(d: spec.AnyDist) -> Draw | float:
    """A block-drawing function for ``d``, or a constant for degenerate ones."""
    if isinstance(d, spec.Deterministic):
        return d.value
    if isinstance(d, spec.Exponential):
        mean = d.mean
        return lambda g, n: g.exponential(mean, n)
    if isinstance(d, spec.Lognormal):
        if d.cv == 0:
            return d.mean
        s2 = math.log1p(d.cv * d.cv)
        mu, sigma = math.log(d.mean) - s2 / 2, math.sqrt(s2)
        return lambda g, n: g.lognormal(mu, sigma, n)
    if isinstance(d, spec.Gamma):
        if d.cv == 0:
            return d.mean
        shape = 1.0 / (d.cv * d.cv)
        scale = d.mean / shape
        return lambda g, n: g.gamma(shape, scale, n)
    if isinstance(d, spec.Erlang):
        k, scale = d.k, d.mean / d.k
        return lambda g, n: g.gamma(k, scale, n)
    if isinstance(d, spec.Hyperexponential):
        probs = np.asarray(d.probs)
        means = np.asarray(d.means)

        def hyper(g: np.random.Generator, n: int) -> np.ndarray:
            phase = g.choice(len(probs), size=n, p=probs)
            out: np.ndarray = g.exponential(1.0, n) * means[phase]
            return out

        return hyper
    if isinstance(d, spec.Uniform):
        lo, hi = d.low, d.high
        if lo == hi:
            return lo
        return lambda g, n: g.uniform(lo, hi, n)
    if isinstance(d, spec.Pareto):
        a, xm = d.alpha, d.scale
        # numpy's pareto is Lomax (x_m = 1, shifted); classical Pareto = x_m * (1 + Lomax)
        return lambda g, n: xm * (1.0 + g.pareto(a, n))
    if isinstance(d, spec.Empirical):
        values = np.asarray(d.values, dtype=float)
        if d.weights is None:
            return lambda g, n: values[g.integers(0, len(values), n)]
        p = np.asarray(d.weights, dtype=float)
        p = p / p.sum()
        return lambda g, n: values[g.choice(len(values), size=n, p=p)]
    raise TypeError(f"no sampler for {type(d).__name__}")  # pragma: no cover


class Sampler:
    """Draws values of one distribution from one generator, in blocks.

    ``sampler.next()`` is the fast way to draw one value: a C-level iterator
    step over the current block (``itertools.chain`` of the blocks, or
    ``itertools.repeat`` of a constant), no Python frame per value.
    Calling the sampler does the same through one more call.
    """

    __slots__ = ("_draw", "_gen", "_it", "constant", "mean", "next")

    def __init__(self, d: spec.AnyDist, generator: np.random.Generator):
        drawer = _drawer(d)
        self.mean: float = float(d.mean)
        self._gen = generator
        self._it: Iterator[float]
        if isinstance(drawer, float | int):
            self.constant: float | None = float(drawer)
            self._draw: Draw | None = None
            self._it = itertools.repeat(self.constant)
        else:
            self.constant = None
            self._draw = drawer
            self._it = itertools.chain.from_iterable(self._blocks(drawer, generator))
        self.next: Callable[[], float] = self._it.__next__

    @staticmethod
    def _blocks(draw: Draw, generator: np.random.Generator) -> Iterator[list[float]]:
        while True:
            block: list[float] = draw(generator, BLOCK).tolist()
            yield block

    def __call__(self) -> float:
        return self.next()

    def take(self, n: int) -> list[float]:
        """The next ``n`` values, as ``n`` calls would return them."""
        return list(itertools.islice(self._it, n))

    def sample(self, n: int) -> np.ndarray:
        """``n`` values at once (for tests and analysis)."""
        return np.array(self.take(n))
