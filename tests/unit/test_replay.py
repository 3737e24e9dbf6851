"""Resume logic on plain values: an in-memory log and cache stand for JetStream and Redis."""

from __future__ import annotations

from collections.abc import Sequence

from chorus.model import Comment
from region.log import Appended, Entry, Page
from region.replay import CacheUnavailable, Replayer, contiguous


def entry(seq: int, prev: int, stream: str = "s") -> Entry:
    return Entry(seq, prev, Comment(f"{seq:016x}-us-east.0", stream, "us-east", "u", "U",
                                    f"c{seq}", seq))


def test_contiguous_chains() -> None:
    assert contiguous([entry(3, 1), entry(5, 3)], 1)
    assert not contiguous([entry(3, 1), entry(5, 4)], 1)
    assert not contiguous([entry(3, 2)], 1)
    assert contiguous([], 7)


class MemLog:
    epoch = "e"

    def __init__(self, seqs: list[int]) -> None:
        self.entries = [entry(s, p) for s, p in zip(seqs, [0, *seqs], strict=False)]
        self.reads = 0

    async def append(self, comment: Comment, *, msg_id: str) -> Appended:
        raise NotImplementedError

    async def read_after(self, stream: str, after_seq: int, limit: int) -> Page:
        self.reads += 1
        after = [e for e in self.entries if e.seq > after_seq]
        return Page(tuple(after[:limit]), more=len(after) > limit)

    async def read_before(self, stream: str, before_seq: int | None, limit: int) -> list[Entry]:
        raise NotImplementedError

    async def count_after(self, stream: str, after_seq: int) -> int:
        return len([e for e in self.entries if e.seq > after_seq])

    async def head(self, stream: str) -> int:
        return self.entries[-1].seq if self.entries else 0


class MemCache:
    def __init__(self) -> None:
        self.entries: dict[int, Entry] = {}
        self.down = False

    async def add(self, entries: Sequence[Entry]) -> None:
        if self.down:
            raise CacheUnavailable("down")
        self.entries.update({e.seq: e for e in entries})

    async def after(self, stream: str, after_seq: int, limit: int) -> list[Entry]:
        if self.down:
            raise CacheUnavailable("down")
        return [self.entries[s] for s in sorted(self.entries) if s > after_seq][:limit]


async def test_cache_hit_skips_the_log() -> None:
    log, cache = MemLog([2, 4, 9]), MemCache()
    await cache.add(log.entries)
    result = await Replayer(log, cache, window=10).catch_up("s", 2)
    assert [e.seq for e in result.entries] == [4, 9] and result.recovered
    assert log.reads == 0


async def test_a_hole_in_the_cache_reads_the_log_and_rebuilds_the_cache() -> None:
    log, cache = MemLog([2, 4, 9]), MemCache()
    await cache.add([log.entries[2]])  # 9 only: its prev (4) is missing
    result = await Replayer(log, cache, window=10).catch_up("s", 2)
    assert [e.seq for e in result.entries] == [4, 9]
    assert sorted(cache.entries) == [4, 9] and log.reads == 1


async def test_cache_down_falls_back_to_the_log() -> None:
    log, cache = MemLog([1, 2]), MemCache()
    cache.down = True
    result = await Replayer(log, cache, window=10).catch_up("s", 0)
    assert [e.seq for e in result.entries] == [1, 2] and result.recovered


async def test_cursor_beyond_the_window_is_not_recovered() -> None:
    log = MemLog(list(range(1, 21)))
    replayer = Replayer(log, MemCache(), window=5)
    assert not (await replayer.catch_up("s", 3)).recovered
    assert (await replayer.catch_up("s", 15)).recovered
    # Continuing an accepted resume is never refused.
    assert (await replayer.catch_up("s", 3, first=False)).recovered


async def test_batches_say_when_there_is_more() -> None:
    log = MemLog(list(range(1, 8)))
    result = await Replayer(log, MemCache(), window=100).catch_up("s", 0, batch=3)
    assert [e.seq for e in result.entries] == [1, 2, 3] and result.more


async def test_a_cache_missing_its_tail_is_completed_from_the_log() -> None:
    log, cache = MemLog([2, 4, 9, 12]), MemCache()
    await cache.add(log.entries[:2])  # 2 and 4: contiguous, but 9 and 12 never got there
    result = await Replayer(log, cache, window=10).catch_up("s", 0)
    assert [e.seq for e in result.entries] == [2, 4, 9, 12] and not result.more
    assert sorted(cache.entries) == [2, 4, 9, 12]
