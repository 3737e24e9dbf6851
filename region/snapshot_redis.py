"""`SnapshotStore` in the region's Redis: ``chorus:snap:<stream>`` is a hash of the document's
``body`` and ``etag``, rewritten by the stream's keeper every interval and dropped when no
keeper rewrote it for `region.snapshot.KEEP_INTERVALS` intervals."""

from __future__ import annotations

import redis.asyncio as aioredis

from chorus.drivers import translated
from region.snapshot import Rendered, SnapshotUnavailable


def _key(stream: str) -> str:
    return f"chorus:snap:{stream}"


class RedisSnapshotStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def put(self, stream: str, rendered: Rendered, ttl_s: float) -> None:
        with translated(SnapshotUnavailable, "storing a snapshot", driver="redis"):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(_key(stream), mapping={"body": rendered.body, "etag": rendered.etag})
                pipe.pexpire(_key(stream), max(1, round(ttl_s * 1000)))
                await pipe.execute()

    async def get(self, stream: str) -> Rendered | None:
        with translated(SnapshotUnavailable, "reading a snapshot", driver="redis"):
            body, etag = await self.redis.hmget(_key(stream), ["body", "etag"])  # type: ignore[misc]
        if body is None or etag is None:
            return None
        return Rendered(body=bytes(body), etag=etag.decode() if isinstance(etag, bytes)
                        else str(etag))
