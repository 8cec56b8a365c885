"""Independent random streams: one generator per stochastic source per replication.

Streams are keyed by name, so adding a source never shifts the numbers another
source draws; policies compared on the same seed therefore see the same
arrivals and service demands (common random numbers), and the live replayer
can draw the very trace the simulation used.
"""

from __future__ import annotations

import zlib

import numpy as np


class RandomStreams:
    def __init__(self, seed: int, replication: int = 0):
        self.seed = seed
        self.replication = replication

    def generator(self, source: str) -> np.random.Generator:
        """The generator of ``source`` (e.g. ``"arrivals"``, ``"cpu:browse"``)."""
        key = zlib.crc32(source.encode("utf-8"))
        seq = np.random.SeedSequence(entropy=self.seed, spawn_key=(self.replication, key))
        return np.random.Generator(np.random.PCG64(seq))
