"""The fanout and a hot stream's partitions: the log part a live message comes from (its
``Nats-Stream`` header), and a partition's entry in the push tier: counted in the stream's
rate, never written to the replay cache, never batched, handed to every session out of the
chain. The fanout's message callbacks are called with messages as NATS hands them over."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from nats.aio.msg import Msg

from chorus.config import Limits, Tiers
from chorus.metrics import Metrics
from chorus.names import COMMENTS_STREAM, hot_stream
from region.fanout import Fanout, entry_of
from region.log import Entry
from region.tiers_feed import TierFeeds
from tests.unit.memory_log import comment
from tests.unit.test_session import Setup


def message(entry: Entry, stream_name: str | None) -> Msg:
    headers = {"Nats-Sequence": str(entry.seq), "Nats-Last-Sequence": str(entry.prev)}
    if stream_name is not None:
        headers["Nats-Stream"] = stream_name
    return Msg(_client=cast(Any, None), subject="live.us-east.s", data=entry.comment.encode(),
               headers=headers)


def partition_entry(n: int = 1, part: int = 2) -> Entry:
    return Entry(seq=80_000 + n, prev=79_000 + n, comment=comment("s", 60_000 + n), part=part)


def test_the_part_comes_from_the_stream_that_re_published_it() -> None:
    e = partition_entry()
    plain = Entry(seq=e.seq, prev=e.prev, comment=e.comment)
    assert entry_of(message(plain, None)) == plain            # an older log's message
    assert entry_of(message(plain, COMMENTS_STREAM)) == plain
    assert entry_of(message(plain, hot_stream(2))) == e
    assert entry_of(message(plain, hot_stream(7))).part == 7


@pytest.mark.parametrize("name", ["REACTIONS", "COMMENTS_HOT_0", "COMMENTS_HOT_x", ""])
def test_a_message_of_any_other_stream_is_refused(name: str) -> None:
    with pytest.raises(ValueError):
        entry_of(message(partition_entry(), name))


class Cache:
    def __init__(self) -> None:
        self.added: list[Entry] = []

    async def add(self, entries: list[Entry]) -> None:
        self.added.extend(entries)


def fanout(feeds: TierFeeds | None = None, cache: Cache | None = None) -> Fanout:
    unused = cast(Any, None)
    return Fanout(unused, region="us-east", gateway="us-east.0",
                  limits=Limits(tick_ms=1), presence=unused, cache=cast(Any, cache),
                  hooks=unused, metrics=Metrics("us-east", "0"), feeds=feeds)


NOW = 1000.5   # the feeds' clock: mid-second


def tier_feeds() -> TierFeeds:
    return TierFeeds(region="us-east", tiers=Tiers(), metrics=Metrics("us-east", "0"),
                     store=None, snapshot_url=lambda s: f"http://gw/v1/streams/{s}/snapshot",
                     clock=lambda: NOW)


async def test_the_replay_cache_gets_the_chained_log_alone_the_sharers_every_comment(
        ) -> None:
    cache = Cache()
    f = fanout(cache=cache)
    shared: list[Entry] = []
    f.share_live(shared.append)
    s = Setup()
    [a] = s.post()
    loose = partition_entry()
    await f._on_cache(message(a, COMMENTS_STREAM))
    await f._on_cache(message(loose, hot_stream(loose.part)))
    assert f._cache_buffer == [a]
    assert shared == [a, loose]


async def test_in_the_push_tier_a_partition_entry_reaches_every_session_out_of_the_chain(
        ) -> None:
    feeds = tier_feeds()
    f = fanout(feeds)
    s = Setup()
    async with s.running() as session:
        f.sessions["s"] = {session}
        feeds.joined(session)
        reads = s.log.reads
        a, b = s.post(2)
        loose = partition_entry()
        await f._on_live(message(a, COMMENTS_STREAM))
        await f._on_live(message(loose, hot_stream(loose.part)))   # a's batch goes first
        assert "s" not in f._batches
        await f._on_live(message(b, COMMENTS_STREAM))
        await s.received([b])
        assert session.cursor == session.sent == b.seq
        # Counted in the stream's rate, and no cursor of the feeds' moved by it.
        followed = feeds.streams["s"]
        # (The second in progress is not counted yet: the rate once it is over.)
        assert followed.meter.rate(NOW + 1) * followed.meter.window_s == 3
        assert followed.last == b.seq
        await f._on_live(message(partition_entry(2), hot_stream(3)))
        assert followed.last == b.seq
        await s.transport.wait_for(lambda: len(s.transport.comment_ids) == 4, "four comments")
    assert s.transport.comment_ids == s.ids([a, loose, b, partition_entry(2)])
    assert s.log.reads == reads        # no gap was read from the log
    assert f.metrics.entries_delivered._value.get() == 4


async def test_without_hot_feeds_a_partition_entry_is_not_batched_either() -> None:
    f = fanout()
    s = Setup()
    async with s.running() as session:
        f.sessions["s"] = {session}
        [a] = s.post()
        loose = partition_entry()
        await f._on_live(message(loose, hot_stream(1)))
        await f._on_live(message(a, COMMENTS_STREAM))
        await asyncio.wait_for(s.received([a]), 5)
    assert s.transport.comment_ids == s.ids([loose, a])
    assert session.sent == a.seq


async def test_in_the_push_tier_partition_entries_are_thinned_to_the_sampled_cap() -> None:
    """A gateway that still delivers a hot stream in push (it lost the regions' word on it
    while frozen, then read its backlog) gives each viewer no more of the partitions' entries
    a second than the sampled tier would, and an author its own: a flood of them would
    otherwise go whole through every viewer's queue and cut it."""
    now = [NOW]
    feeds = TierFeeds(region="us-east", tiers=Tiers(sampled_per_viewer_per_s=3),
                      metrics=Metrics("us-east", "0"), store=None,
                      snapshot_url=lambda s: f"http://gw/v1/streams/{s}/snapshot",
                      clock=lambda: now[0])
    f = fanout(feeds)
    s = Setup(user="bob")
    async with s.running() as session:
        f.sessions["s"] = {session}
        feeds.joined(session)
        flood = [partition_entry(n) for n in range(1, 21)]
        own = Entry(seq=90_000, prev=89_000, comment=comment("s", 70_000, user="bob"), part=1)
        for entry in flood:
            await f._on_live(message(entry, hot_stream(entry.part)))
        await f._on_live(message(own, hot_stream(own.part)))
        now[0] += 1                                       # the next second has room again
        await f._on_live(message(partition_entry(21), hot_stream(2)))
        want = [*flood[:3], own, partition_entry(21)]
        await s.transport.wait_for(lambda: len(s.transport.comment_ids) == len(want),
                                   "the first three, the author's own, the next second's")
    assert s.transport.comment_ids == s.ids(want)
    assert session.cursor == 0
