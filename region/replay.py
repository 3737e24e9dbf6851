"""Resume: everything after a cursor, exactly once, or an explicit ``recovered: false``.

The region's log (JetStream) is the truth; the Redis replay cache (replay_redis.py) keeps each
stream's last ``replay_window`` entries with their ``prev`` pointers so that a thousand
clients resuming after a gateway crash do not all read JetStream. A cached run is used only
when its ``prev`` chain proves it starts right after the cursor and has no hole; anything
else (a flushed or restarted Redis, a missed write) is read from the log and written back to
the cache, so the cache rebuilds itself from JetStream.

A stream above the push tier would make its one cache key a serial point of the region (every
comment of the stream, one sorted set, one Redis shard). Its entries are spread instead over
several keys by a hash of the comment id (`shard_of`), and a read merges them (`merge_pages`):
each key is read a page at a time and the merge keeps only what no key can still have below
it. The ``prev`` chain makes the layout a matter of cost only: a read that finds entries under
the other layout (the stream just changed tier) finds a hole, reads the log and writes back.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Awaitable, Callable, Sequence
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


def shard_of(comment_id: str, shards: int) -> int:
    """The cache key (0 to ``shards`` - 1) of a hot stream's entry: a hash of its comment id,
    so that every key gets an even share whatever other streams the log interleaves (log
    sequences modulo ``shards`` would not: two streams posting in turn split by parity)."""
    return zlib.crc32(comment_id.encode()) % shards


def page_size(limit: int, keys: int) -> int:
    """Entries to ask each of ``keys`` for when ``limit`` are wanted in all: twice an even
    share, so that one page of every key usually covers ``limit`` (never more than it)."""
    return min(limit, -(-2 * limit // keys) + 1)


def merge_pages(pages: Sequence[Sequence[Entry]], asked: int, limit: int
                ) -> tuple[list[Entry], bool]:
    """The first ``limit`` entries of the union of ``pages`` that are certain to have no
    other entry of any key before them, in sequence order, duplicates dropped; and whether a
    key may still hold entries after them (a page of ``asked`` entries was full). A full
    page's last entry bounds what can be trusted: that key's next entries come after it."""
    full = [page[-1].seq for page in pages if len(page) >= asked]
    bound = min(full) if full else None
    merged: dict[int, Entry] = {}
    for page in pages:
        for e in page:
            if bound is None or e.seq <= bound:
                merged.setdefault(e.seq, e)
    out = [merged[seq] for seq in sorted(merged)][:limit]
    return out, bool(full) or len(merged) > limit


async def read_merged(read_pages: Callable[[int, int], Awaitable[Sequence[Sequence[Entry]]]],
                      keys: int, after_seq: int, limit: int, *, rounds: int) -> list[Entry]:
    """Up to ``limit`` entries after ``after_seq`` from ``keys`` keys, in order:
    ``read_pages(after, asked)`` answers each key's first ``asked`` entries after ``after``
    (one round trip for all), merged by `merge_pages`, again after the last trusted entry
    while a key may hold more, at most ``rounds`` times. Fewer than ``limit`` when the rounds
    ran out: the replayer reads the rest from the log (it checks a short run against the
    log's head)."""
    out: list[Entry] = []
    for _ in range(rounds):
        want = limit - len(out)
        asked = page_size(want, keys)
        got, more = merge_pages(await read_pages(after_seq, asked), asked, want)
        out.extend(got)
        if not got or not more or len(out) >= limit:
            break
        after_seq = got[-1].seq
    return out


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
