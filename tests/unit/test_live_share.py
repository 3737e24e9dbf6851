"""The region's share of the live feed: one queue-group delivery per comment feeds both the
replay cache's writer and the thread index (region/fanout.py `share_live`,
region/replies_feed.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from chorus.config import Limits
from chorus.model import Comment
from region import replies_feed
from region.fanout import Fanout
from region.log import Entry
from region.replies import RepliesUnavailable
from region.replies_feed import ReplyFeed


def comment(n: int, *, reply_to: str | None = None, shadow: bool = False) -> Comment:
    return Comment(id=f"c{n}", stream="s", region="us-east", user="ana", name="Ana",
                   text="hi", ts=n, reply_to=reply_to, shadow=shadow)


@dataclass
class FakeMsg:
    data: bytes
    headers: dict[str, str] | None


def republished(seq: int, c: Comment) -> Any:
    return FakeMsg(c.encode(), {"Nats-Sequence": str(seq), "Nats-Last-Sequence": str(seq - 1)})


class Index:
    def __init__(self) -> None:
        self.added: list[Entry] = []
        self.down = False

    async def add(self, entries: Sequence[Entry]) -> None:
        if self.down:
            raise RepliesUnavailable("index down")
        self.added += entries


def fanout() -> Fanout:
    unused = cast(Any, None)
    return Fanout(unused, region="us-east", gateway="us-east.0", limits=Limits(),
                  presence=unused, cache=unused, hooks=unused, metrics=unused)


def test_one_delivery_feeds_the_cache_and_every_sharer() -> None:
    f = fanout()
    taken: list[Entry] = []
    f.share_live(taken.append)
    asyncio.run(f._on_cache(republished(7, comment(7))))
    # Not a log entry: neither the cache nor a sharer hears of it.
    asyncio.run(f._on_cache(cast(Any, FakeMsg(b"{}", None))))
    assert [e.seq for e in f._cache_buffer] == [7]
    assert taken == f._cache_buffer


def test_the_feed_keeps_only_replies_the_index_holds() -> None:
    feed = ReplyFeed(index=cast(Any, Index()), tick_s=0.01)
    feed.offer(Entry(seq=1, prev=0, comment=comment(1)))
    feed.offer(Entry(seq=2, prev=1, comment=comment(2, reply_to="c1", shadow=True)))
    feed.offer(Entry(seq=3, prev=2, comment=comment(3, reply_to="c1")))
    assert [e.seq for e in feed._pending] == [3]


def test_a_failed_write_waits_again_within_the_bound(monkeypatch: Any) -> None:
    monkeypatch.setattr(replies_feed, "PENDING_MAX", 3)
    index = Index()
    feed = ReplyFeed(index=cast(Any, index), tick_s=0.01)
    for n in range(1, 5):   # the fourth finds no room
        feed.offer(Entry(seq=n, prev=n - 1, comment=comment(n, reply_to="c0")))
    assert feed.dropped == 1
    index.down = True
    assert asyncio.run(feed.flush()) is False
    assert [e.seq for e in feed._pending] == [1, 2, 3]
    index.down = False
    assert asyncio.run(feed.flush()) is True
    assert [e.seq for e in index.added] == [1, 2, 3]
    assert feed.dropped == 0 and not feed.failing
