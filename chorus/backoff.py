"""The one retry policy: capped exponential backoff, jittered over the upper half of each
wait (never less than half the ceiling, so a retry is never immediate).

Every retry loop of Chorus (the outbox, the persister, the bootstrap, the SDK's reconnect and
post retries) waits with a `Backoff`, so a region's gateways and a fleet of clients never
retry in lockstep and a dead dependency is not hammered. Pure: the random source is given.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """The n-th wait (from 0) is uniform in [d/2, d] with d = min(first_s * 2**n, max_s).

    ``first_s`` and ``max_s`` are seconds; ``reset`` after a success starts over at
    ``first_s``."""

    first_s: float = 0.2
    max_s: float = 5.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.max_s:
            raise ValueError(f"backoff needs 0 < first_s <= max_s, got {self.first_s}, "
                             f"{self.max_s}")

    def next(self) -> float:
        """The next wait in seconds; each call doubles the ceiling up to ``max_s``."""
        delay = min(self.first_s * 2 ** self.attempt, self.max_s)
        self.attempt = min(self.attempt + 1, 62)
        return self.rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0

    async def wait(self) -> float:
        """Sleeps the next wait (pacing a retry, never synchronisation); returns it."""
        delay = self.next()
        await asyncio.sleep(delay)
        return delay
