"""Seeded random streams, one per named component of a run.

Each component (a link, a workload, a service) draws from its own stream derived from
the run seed and the component's name, so adding a fault on one link does not shift the
draws of any other. Names are turned into integers with a stable digest, never `hash()`,
which changes with PYTHONHASHSEED.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np


def _name_key(name: str) -> list[int]:
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=16).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


class Streams:
    """The run's random streams, each created once, on first use, from (seed, name)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._streams: dict[str, random.Random] = {}

    def get(self, name: str) -> random.Random:
        """The stream of the component called `name` (the same object on every call)."""
        stream = self._streams.get(name)
        if stream is None:
            sequence = np.random.SeedSequence([self.seed, *_name_key(name)])
            stream = random.Random(int(sequence.generate_state(2, np.uint64)[0]))
            self._streams[name] = stream
        return stream
