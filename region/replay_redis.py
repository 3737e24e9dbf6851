"""`ReplayCache` in the region's Redis: sorted sets scored by log sequence whose members are
``{"seq", "prev", "c": comment}``, trimmed to the window.

A stream in the push tier has one key, ``chorus:r:<stream>``. A stream above it (``hot``:
the tier the regions agreed, region/tiers.py) has ``shards`` keys, ``chorus:rs:<stream>:<n>``
with ``n`` = `shard_of` its comment id, each trimmed to twice its share of the window: no
single key, and in a Redis Cluster no single shard, takes every comment of the stream. A read
of a hot stream merges its keys and the push key (which holds what came before the stream
was hot), one pipelined round trip per page of every key (region/replay.py `merge_pages`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

import redis.asyncio as aioredis

from chorus.drivers import translated
from chorus.model import Comment
from region.log import Entry
from region.replay import CacheUnavailable, read_merged, shard_of
from region.replay_trim import Trims

TTL_S = 24 * 3600  # a stream nobody posts to for a day drops out of the cache
SHARDS = 16        # keys of a hot stream (the compose root passes tiers.hot_stream_shards)
MAX_ROUNDS = 4     # pages of every key a read takes; beyond, the log answers the rest


def _key(stream: str) -> str:
    return f"chorus:r:{stream}"


def _shard_key(stream: str, shard: int) -> str:
    # No hash tag: in a Redis Cluster each key lands on its own slot.
    return f"chorus:rs:{stream}:{shard}"


def _never(stream: str) -> bool:
    return False


class RedisReplayCache:
    """``window``: entries kept per stream. ``hot(stream)``: whether the stream is above the
    push tier now (None: every stream has one key). ``shards``: keys of a hot stream."""

    def __init__(self, redis: aioredis.Redis, window: int, *,
                 hot: Callable[[str], bool] | None = None, shards: int = SHARDS) -> None:
        if shards < 1:
            raise ValueError("shards is at least 1")
        self.redis = redis
        self.window = window
        self.hot = hot or _never
        self.shards = shards
        self.shard_window = -(-2 * window // shards)
        # Most writes only add: a key is trimmed and its expiry renewed about once a second
        # (region/replay_trim.py), one command per stream per write instead of three.
        self.trims = Trims()

    def keys(self, stream: str) -> list[str]:
        """The keys a read of ``stream`` merges (the push key first)."""
        if not self.hot(stream):
            return [_key(stream)]
        return [_key(stream), *(_shard_key(stream, n) for n in range(self.shards))]

    async def add(self, entries: Sequence[Entry]) -> None:
        by_key: dict[str, dict[str, int]] = {}
        keep: dict[str, int] = {}     # entries each key is trimmed to
        hot: dict[str, bool] = {}
        for e in entries:
            stream = e.comment.stream
            if stream not in hot:
                hot[stream] = self.hot(stream)
            if hot[stream]:
                key = _shard_key(stream, shard_of(e.comment.id, self.shards))
                keep[key] = self.shard_window
            else:
                key = _key(stream)
                keep[key] = self.window
            member = json.dumps({"seq": e.seq, "prev": e.prev, "c": e.comment.to_json()},
                                ensure_ascii=False, separators=(",", ":"))
            by_key.setdefault(key, {})[member] = e.seq
        now = time.monotonic()
        self.trims.prune(now)
        with translated(CacheUnavailable, "writing the replay cache", driver="redis"):
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, members in by_key.items():
                    pipe.zadd(key, members)
                    if self.trims.due(key, len(members), keep[key], now):
                        pipe.zremrangebyrank(key, 0, -(keep[key] + 1))
                        pipe.expire(key, TTL_S)
                await pipe.execute()

    async def after(self, stream: str, after_seq: int, limit: int) -> list[Entry]:
        keys = self.keys(stream)
        if len(keys) == 1:
            with translated(CacheUnavailable, "reading the replay cache", driver="redis"):
                raw = await self.redis.zrangebyscore(keys[0], f"({after_seq}", "+inf",
                                                     start=0, num=limit)
            return [_entry(member) for member in raw]

        async def read_pages(after: int, asked: int) -> list[list[Entry]]:
            with translated(CacheUnavailable, "reading the replay cache", driver="redis"):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.zrangebyscore(key, f"({after}", "+inf", start=0, num=asked)
                    pages = await pipe.execute()
            return [[_entry(member) for member in page] for page in pages]

        return await read_merged(read_pages, len(keys), after_seq, limit, rounds=MAX_ROUNDS)


def _entry(member: bytes | str) -> Entry:
    doc = json.loads(member)
    return Entry(seq=int(doc["seq"]), prev=int(doc["prev"]), comment=Comment.from_json(doc["c"]))
