"""`ThreadIndex` in the region's Redis.

``chorus:th:<stream>:<parent>`` is a sorted set of the parent's replies scored by log sequence
(members ``{"seq", "c": comment}``, as the replay cache's), trimmed to `THREAD_MAX`;
``chorus:thn:<stream>`` a hash of reply counts by parent. One script adds a reply to both,
so a reply indexed twice (the log's feed and a rebuild) is counted once. Both expire
`TTL_S` after the stream's last reply: the log keeps comments that long.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import redis.asyncio as aioredis

from chorus.drivers import translated
from chorus.model import Comment
from region.log import Entry
from region.log_jetstream import MAX_AGE_S
from region.replies import THREAD_MAX, RepliesUnavailable

TTL_S = MAX_AGE_S

# KEYS: thread, counts. ARGV: seq, member, parent, THREAD_MAX, TTL_S.
_ADD = """
if redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[3], 1)
  if redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[4]) then
    redis.call('ZREMRANGEBYRANK', KEYS[1], 0, 0)
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
"""


def _thread(stream: str, parent: str) -> str:
    return f"chorus:th:{stream}:{parent}"


def _counts(stream: str) -> str:
    return f"chorus:thn:{stream}"


class RedisThreadIndex:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._add = redis.register_script(_ADD)

    async def add(self, entries: Sequence[Entry]) -> None:
        replies = [e for e in entries if e.comment.reply_to is not None]
        if not replies:
            return
        with translated(RepliesUnavailable, "indexing replies", driver="redis"):
            async with self.redis.pipeline(transaction=False) as pipe:
                for e in replies:
                    c = e.comment
                    assert c.reply_to is not None
                    member = json.dumps({"seq": e.seq, "c": c.to_json()}, ensure_ascii=False,
                                        separators=(",", ":"))
                    await self._add(keys=[_thread(c.stream, c.reply_to), _counts(c.stream)],
                                    args=[e.seq, member, c.reply_to, THREAD_MAX, TTL_S],
                                    client=pipe)
                await pipe.execute()

    async def page(self, stream: str, parent: str, after_seq: int, limit: int
                   ) -> list[Entry]:
        with translated(RepliesUnavailable, "reading a thread", driver="redis"):
            raw = await self.redis.zrangebyscore(_thread(stream, parent), f"({after_seq}",
                                                 "+inf", start=0, num=limit)
        out = []
        for member in raw:
            doc = json.loads(member)
            out.append(Entry(seq=int(doc["seq"]), prev=0, comment=Comment.from_json(doc["c"])))
        return out

    async def counts(self, stream: str, parents: Sequence[str]) -> dict[str, int]:
        if not parents:
            return {}
        with translated(RepliesUnavailable, "reading reply counts", driver="redis"):
            raw = await self.redis.hmget(_counts(stream), list(parents))  # type: ignore[misc]
        return {p: int(n) for p, n in zip(parents, raw, strict=True) if n is not None}
