"""Resume logic on plain values: an in-memory log and cache stand for JetStream and Redis."""

from __future__ import annotations

from collections.abc import Sequence

from chorus.model import Comment
from region.log import Appended, Entry, Page
from region.replay import (
    CacheUnavailable,
    Replayer,
    contiguous,
    merge_pages,
    page_size,
    read_merged,
    shard_of,
)


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


# -- a hot stream's cache keys -----------------------------------------------------------------


def test_shard_of_spreads_ids_evenly_and_always_the_same_way() -> None:
    ids = [f"{ms:012x}0000-us-east.{n}" for ms in range(1000) for n in range(4)]
    counts = [0] * 16
    for comment_id in ids:
        counts[shard_of(comment_id, 16)] += 1
    assert min(counts) > 4000 / 16 * 0.75 and max(counts) < 4000 / 16 * 1.25
    assert all(shard_of(i, 16) == shard_of(i, 16) for i in ids[:50])
    assert {shard_of(i, 1) for i in ids} == {0}


def test_shard_of_does_not_follow_the_log_sequence() -> None:
    # Two streams posting in turn: one has every odd sequence. By id it still uses every key.
    odd = [entry(seq, seq - 2) for seq in range(1, 400, 2)]
    assert len({shard_of(e.comment.id, 16) for e in odd}) == 16


def test_page_size_is_twice_a_share_and_never_above_the_limit() -> None:
    assert page_size(500, 17) == 60
    assert page_size(1, 17) == 1
    assert page_size(10, 1) == 10


def test_merge_keeps_only_what_no_full_page_can_precede() -> None:
    a = [entry(1, 0), entry(4, 3), entry(7, 6)]    # full (asked 3): may hold more after 7
    b = [entry(2, 1), entry(3, 2)]                 # all it has after the cursor
    c = [entry(5, 4), entry(9, 8), entry(11, 9)]   # full: bound is min(7, 11) = 7
    got, more = merge_pages([a, b, c], asked=3, limit=10)
    assert [e.seq for e in got] == [1, 2, 3, 4, 5, 7] and more


def test_merge_without_full_pages_is_everything_in_order_once() -> None:
    got, more = merge_pages([[entry(3, 2), entry(8, 3)], [entry(2, 0), entry(3, 2)], []],
                            asked=5, limit=10)
    assert [e.seq for e in got] == [2, 3, 8] and not more


def test_merge_stops_at_the_limit_and_says_there_is_more() -> None:
    got, more = merge_pages([[entry(1, 0), entry(3, 2)], [entry(2, 1), entry(4, 3)]],
                            asked=5, limit=3)
    assert [e.seq for e in got] == [1, 2, 3] and more


class ShardedCache(MemCache):
    """The Redis cache's layout on plain values: keys by `shard_of`, read by `read_merged`."""

    def __init__(self, shards: int, rounds: int = 100) -> None:
        super().__init__()
        self.keys: list[dict[int, Entry]] = [{} for _ in range(shards)]
        self.rounds = rounds
        self.round_trips = 0

    async def add(self, entries: Sequence[Entry]) -> None:
        for e in entries:
            self.keys[shard_of(e.comment.id, len(self.keys))][e.seq] = e

    async def after(self, stream: str, after_seq: int, limit: int) -> list[Entry]:
        async def read_pages(after: int, asked: int) -> list[list[Entry]]:
            self.round_trips += 1
            return [[k[s] for s in sorted(k) if s > after][:asked] for k in self.keys]

        return await read_merged(read_pages, len(self.keys), after_seq, limit,
                                 rounds=self.rounds)


async def test_a_sharded_cache_answers_a_resume_without_the_log() -> None:
    log = MemLog(list(range(3, 3000, 3)))   # another stream has the other sequences
    cache = ShardedCache(16)
    await cache.add(log.entries)
    replayer = Replayer(log, cache, window=2000)
    result = await replayer.catch_up("s", 300, batch=500)
    assert [e.seq for e in result.entries] == list(range(303, 303 + 3 * 500, 3))
    assert result.more and log.reads == 0
    result = await replayer.catch_up("s", result.entries[-1].seq, first=False, batch=500)
    assert [e.seq for e in result.entries] == list(range(1803, 3000, 3)) and not result.more
    assert log.reads == 0


async def test_a_key_missing_from_a_sharded_cache_is_read_from_the_log() -> None:
    log = MemLog(list(range(1, 200)))
    cache = ShardedCache(4)
    await cache.add(log.entries)
    cache.keys[2].clear()   # that key's Redis shard lost its data
    result = await Replayer(log, cache, window=2000).catch_up("s", 0)
    assert [e.seq for e in result.entries] == list(range(1, 200)) and log.reads == 1


async def test_a_merged_read_usually_takes_one_round_trip_and_stops_at_its_rounds() -> None:
    log = MemLog(list(range(1, 3001)))
    cache = ShardedCache(16)
    await cache.add(log.entries)
    got = await cache.after("s", 1000, 500)
    assert [e.seq for e in got] == list(range(1001, 1501)) and cache.round_trips == 1
    # Pages of one entry a key and one round: what is trusted is a prefix, never a wrong run.
    short = ShardedCache(16, rounds=1)
    await short.add(log.entries)
    got = await short.after("s", 1000, 1)
    assert [e.seq for e in got] == [1001]
    lopsided = ShardedCache(2, rounds=2)
    lopsided.keys[0] = {e.seq: e for e in log.entries[:300]}   # one key has all of it
    got = await lopsided.after("s", 0, 200)
    assert [e.seq for e in got] == list(range(1, 201)) and lopsided.round_trips == 1
