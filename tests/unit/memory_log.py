"""An in-memory `CommentLog` and `ReplayCache` for unit tests of pure logic (never a stand-in
for JetStream or Redis in an integration test).

`MemoryLog` numbers entries as the region's JetStream stream does: one sequence for the whole
log, and each entry's ``prev`` is the sequence of its stream's previous entry, so streams
interleave and a stream's sequences have holes. `publish` stores a comment and returns the
entry the live path would re-publish; a test decides which of them it offers, and so which
ones the live path "lost".
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from chorus.model import Comment
from region.log import Appended, Entry, LogUnavailable, Page
from region.replay import CacheUnavailable


def comment(stream: str, n: int, *, user: str = "alice", shadow: bool = False) -> Comment:
    return Comment(id=f"{n:016x}-us-east.0", stream=stream, region="us-east", user=user,
                   name=user.title(), text=f"comment {n}", ts=n, shadow=shadow)


class MemoryLog:
    """``down``: every call raises LogUnavailable. `hold` makes reads wait until `release`
    (a slow log, to act while a catch-up is in flight)."""

    def __init__(self, epoch: str = "e1") -> None:
        self.epoch = epoch
        self.entries: list[Entry] = []
        self.down = False
        self.reads = 0
        self._heads: dict[str, int] = {}
        self._by_msg_id: dict[str, Entry] = {}
        self._numbered = 0
        self._open = asyncio.Event()
        self._open.set()

    # -- test controls -----------------------------------------------------------------------

    def publish(self, stream: str, *, user: str = "alice", shadow: bool = False) -> Entry:
        self._numbered += 1
        return self._store(comment(stream, self._numbered, user=user, shadow=shadow))

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _store(self, c: Comment) -> Entry:
        seq = len(self.entries) + 1
        entry = Entry(seq=seq, prev=self._heads.get(c.stream, 0), comment=c)
        self.entries.append(entry)
        self._heads[c.stream] = seq
        return entry

    async def _reading(self) -> None:
        if self.down:
            raise LogUnavailable("the memory log is down")
        await self._open.wait()
        self.reads += 1

    # -- CommentLog --------------------------------------------------------------------------

    async def append(self, comment: Comment, *, msg_id: str) -> Appended:
        if self.down:
            raise LogUnavailable("the memory log is down")
        first = self._by_msg_id.get(msg_id)
        if first is not None:
            return Appended(seq=first.seq, comment=first.comment, duplicate=True)
        entry = self._store(comment)
        self._by_msg_id[msg_id] = entry
        return Appended(seq=entry.seq, comment=comment, duplicate=False)

    def _of(self, stream: str) -> list[Entry]:
        return [e for e in self.entries if e.comment.stream == stream]

    async def read_after(self, stream: str, after_seq: int, limit: int) -> Page:
        await self._reading()
        after = [e for e in self._of(stream) if e.seq > after_seq]
        return Page(tuple(after[:limit]), more=len(after) > limit)

    async def read_since(self, stream: str, since_ms: int, limit: int) -> list[Entry]:
        # A comment's ``ts`` stands for the time the log stored it.
        await self._reading()
        recent = [e for e in self._of(stream) if e.comment.ts >= since_ms]
        return [Entry(e.seq, 0, e.comment) for e in recent[:limit]]

    async def read_before(self, stream: str, before_seq: int | None, limit: int
                          ) -> list[Entry]:
        await self._reading()
        older = [e for e in self._of(stream) if before_seq is None or e.seq < before_seq]
        return older[::-1][:limit]

    async def count_after(self, stream: str, after_seq: int) -> int:
        await self._reading()
        return sum(1 for e in self._of(stream) if e.seq > after_seq)

    async def head(self, stream: str) -> int:
        await self._reading()
        return self._heads.get(stream, 0)


class MemoryReplayCache:
    """Each stream's last ``window`` entries, as the Redis cache keeps them. ``down``: every
    call raises CacheUnavailable."""

    def __init__(self, window: int) -> None:
        self.window = window
        self.down = False
        self.entries: dict[str, dict[int, Entry]] = {}

    async def add(self, entries: Sequence[Entry]) -> None:
        if self.down:
            raise CacheUnavailable("the memory cache is down")
        for e in entries:
            kept = self.entries.setdefault(e.comment.stream, {})
            kept[e.seq] = e
            for old in sorted(kept)[:-self.window]:
                del kept[old]

    async def after(self, stream: str, after_seq: int, limit: int) -> list[Entry]:
        if self.down:
            raise CacheUnavailable("the memory cache is down")
        kept = self.entries.get(stream, {})
        return [kept[s] for s in sorted(kept) if s > after_seq][:limit]
