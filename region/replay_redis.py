"""`ReplayCache` in the region's Redis: ``chorus:r:<stream>`` is a sorted set scored by log
sequence whose members are ``{"seq", "prev", "c": comment}``, trimmed to the window."""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis.asyncio as aioredis

from chorus.drivers import translated
from chorus.model import Comment
from region.log import Entry
from region.replay import CacheUnavailable

TTL_S = 24 * 3600  # a stream nobody posts to for a day drops out of the cache


def _key(stream: str) -> str:
    return f"chorus:r:{stream}"


class RedisReplayCache:
    def __init__(self, redis: aioredis.Redis, window: int) -> None:
        self.redis = redis
        self.window = window

    async def add(self, entries: Sequence[Entry]) -> None:
        by_stream: dict[str, dict[str, int]] = {}
        for e in entries:
            member = json.dumps({"seq": e.seq, "prev": e.prev, "c": e.comment.to_json()},
                                ensure_ascii=False, separators=(",", ":"))
            by_stream.setdefault(e.comment.stream, {})[member] = e.seq
        with translated(CacheUnavailable, "writing the replay cache", driver="redis"):
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream, members in by_stream.items():
                    pipe.zadd(_key(stream), members)
                    pipe.zremrangebyrank(_key(stream), 0, -(self.window + 1))
                    pipe.expire(_key(stream), TTL_S)
                await pipe.execute()

    async def after(self, stream: str, after_seq: int, limit: int) -> list[Entry]:
        with translated(CacheUnavailable, "reading the replay cache", driver="redis"):
            raw = await self.redis.zrangebyscore(_key(stream), f"({after_seq}", "+inf",
                                                 start=0, num=limit)
        out = []
        for member in raw:
            doc = json.loads(member)
            out.append(Entry(seq=int(doc["seq"]), prev=int(doc["prev"]),
                             comment=Comment.from_json(doc["c"])))
        return out
