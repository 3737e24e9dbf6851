"""Resume: everything after a cursor, exactly once, or an explicit ``recovered: false``.

The region's log (JetStream) is the truth; the Redis replay cache (replay_redis.py) keeps each
stream's last ``replay_window`` entries with their ``prev`` pointers so that a thousand
clients resuming after a gateway crash do not all read JetStream. A cached run is used only
when its ``prev`` chain proves it starts right after the cursor and has no hole; anything
else (a flushed or restarted Redis, a missed write) is read from the log and written back to
the cache, so the cache rebuilds itself from JetStream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chorus.errors import Unavailable
from region.log import CommentLog, Entry


def contiguous(entries: Sequence[Entry], after_seq: int) -> bool:
    """Whether ``entries`` are exactly the stream's entries following ``after_seq``."""
    prev = after_seq
    for entry in entries:
        if entry.prev != prev:
            return False
        prev = entry.seq
    return True


@dataclass(frozen=True)
class CatchUp:
    """``recovered`` False: the cursor is further back than the replay window (or its log is
    gone); ``entries`` is then empty and the client pages history. ``more``: the log has
    newer entries than these; read again after the last one."""

    entries: tuple[Entry, ...]
    recovered: bool
    more: bool = False


class CacheUnavailable(Unavailable):
    """The replay cache did not answer; the log is read instead."""


class ReplayCache(Protocol):
    async def add(self, entries: Sequence[Entry]) -> None: ...

    async def after(self, stream: str, after_seq: int, limit: int) -> list[Entry]: ...


class Replayer:
    def __init__(self, log: CommentLog, cache: ReplayCache, window: int) -> None:
        self.log = log
        self.cache = cache
        self.window = window

    async def catch_up(self, stream: str, after_seq: int, *, first: bool = True,
                       batch: int = 500) -> CatchUp:
        """Entries after ``after_seq``. ``first`` marks the first read of a resume: only then
        is the cursor checked against the replay window (later reads continue a resume)."""
        if first and await self.log.count_after(stream, after_seq) > self.window:
            return CatchUp(entries=(), recovered=False)
        try:
            cached = await self.cache.after(stream, after_seq, batch)
        except CacheUnavailable:
            cached = []
        if cached and contiguous(cached, after_seq):
            if len(cached) == batch:
                return CatchUp(entries=tuple(cached), recovered=True, more=True)
            # A hole-free run can still lack its tail (the gateway that buffered the last
            # cache writes died): only the log's head says whether it ends where the log does.
            if cached[-1].seq >= await self.log.head(stream):
                return CatchUp(entries=tuple(cached), recovered=True)
            rest = await self.log.read_after(stream, cached[-1].seq, batch - len(cached))
            with contextlib.suppress(CacheUnavailable):
                await self.cache.add(rest.entries)
            return CatchUp(entries=(*cached, *rest.entries), recovered=True, more=rest.more)
        page = await self.log.read_after(stream, after_seq, batch)
        if page.entries:
            # Rebuild the cache from the log; if Redis is down, the next read tries again.
            with contextlib.suppress(CacheUnavailable):
                await self.cache.add(page.entries)
        return CatchUp(entries=page.entries, recovered=True, more=page.more)
