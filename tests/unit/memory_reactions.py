"""In-memory `ReactionCounter` and `ReactionLog` for unit tests of the logic around them (the
ingest batching, the emitter, the feed). Test-only: the real ones are tested against real
Redis and JetStream in tests/integration/test_reactions_stores.py."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from region.reactions import (
    Aggregate,
    Appended,
    Closed,
    Counted,
    ReactionsUnavailable,
    Stored,
    Tap,
    by_user,
)


@dataclass
class MemoryCounter:
    """Buckets refill only when a test says so (`refill`); ``second`` is the clock."""

    burst: int = 3
    second: int = 1000
    down: bool = False
    tokens: dict[str, float] = field(default_factory=dict)
    counts: dict[tuple[str, int], dict[str, int]] = field(default_factory=dict)
    claimed: set[tuple[str, int]] = field(default_factory=set)
    batches: list[int] = field(default_factory=list)      # taps per count() call

    async def count(self, taps: Sequence[Tap], *, shard: int) -> Counted:
        if self.down:
            raise ReactionsUnavailable("redis down")
        self.batches.append(len(taps))
        admitted, retry = [], []
        for user, indexes in by_user(taps):
            level = self.tokens.get(user, float(self.burst))
            take = min(len(indexes), math.floor(level))
            self.tokens[user] = level - take
            admitted.append(take)
            retry.append(0 if take == len(indexes) else 500)
            for i in indexes[:take]:
                key = (taps[i].stream, self.second)
                kinds = self.counts.setdefault(key, {})
                kinds[taps[i].kind] = kinds.get(taps[i].kind, 0) + 1
        return Counted(second=self.second, admitted=tuple(admitted), retry_ms=tuple(retry))

    def refill(self) -> None:
        self.tokens.clear()

    async def claim(self, limit: int) -> list[Closed]:
        if self.down:
            raise ReactionsUnavailable("redis down")
        out = []
        for (stream, second), counts in sorted(self.counts.items()):
            if second < self.second and (stream, second) not in self.claimed:
                self.claimed.add((stream, second))
                out.append(Closed(stream, second, dict(counts)))
        return out[:limit]

    async def done(self, closed: Sequence[Closed]) -> None:
        for c in closed:
            self.counts.pop((c.stream, c.second), None)
            self.claimed.discard((c.stream, c.second))

    def expire_leases(self) -> None:
        self.claimed.clear()


@dataclass
class MemoryReactionLog:
    """One region's reaction log: subjects are (origin, stream); sequences over the log."""

    region: str
    down: bool = False
    seq: int = 0
    messages: list[tuple[int, Aggregate]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)

    async def last(self, origin: str, stream: str) -> Stored | None:
        if self.down:
            raise ReactionsUnavailable("jetstream down")
        for seq, agg in reversed(self.messages):
            if agg.region == origin and agg.stream == stream:
                return Stored(seq, agg)
        return None

    async def append(self, aggregate: Aggregate, *, expected_last_seq: int) -> Appended:
        if self.down:
            raise ReactionsUnavailable("jetstream down")
        if aggregate.msg_id in self.ids:
            return Appended("duplicate")
        last = await self.last(aggregate.region, aggregate.stream)
        if (last.seq if last else 0) != expected_last_seq:
            return Appended("moved")
        return self.put(aggregate)

    def put(self, aggregate: Aggregate) -> Appended:
        """Stores unconditionally (a forwarded aggregate, or another gateway's emit)."""
        self.seq += 1
        self.messages.append((self.seq, aggregate))
        self.ids.add(aggregate.msg_id)
        return Appended("stored", self.seq)

    async def read(self, origin: str, stream: str, after_s: int, before_s: int,
                   limit: int) -> list[Aggregate]:
        if self.down:
            raise ReactionsUnavailable("jetstream down")
        return [a for _, a in self.messages if a.region == origin and a.stream == stream
                and after_s <= a.second < before_s][:limit]
