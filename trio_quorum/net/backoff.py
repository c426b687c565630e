"""Reconnect delays: exponential, bounded, jittered from a seeded RNG (no IO, no clock).

``next()`` gives the delay before the next attempt: the n-th failure in a row
waits a uniform draw from ``[d/2, d]`` with ``d = min(max, min * factor**n)``;
``reset()`` after a link stayed up.  The jitter keeps the peers of an ensemble
that restarted together from redialling in lockstep; the seed makes a
simulation's schedule repeatable.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, minimum: float, maximum: float, *, factor: float = 2.0,
                 rng: random.Random | None = None) -> None:
        if not 0 < minimum <= maximum:
            raise ValueError(f"backoff needs 0 < minimum <= maximum, got {minimum}, {maximum}")
        self.minimum, self.maximum, self.factor = minimum, maximum, factor
        self.rng = rng if rng is not None else random.Random(0)
        self.failures = 0

    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        return min(self.maximum, self.minimum * self.factor ** min(self.failures, 64))

    def next(self) -> float:
        ceiling = self.ceiling()
        self.failures += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
