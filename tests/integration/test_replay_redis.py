"""region/replay_redis.py against a real Redis: a push stream keeps its one key; a hot
stream's entries are spread over its shard keys and read back merged, in order, page by page;
a stream that changed tier is read across both layouts; each key is trimmed to its share."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from chorus.cluster.local import LocalCluster
from chorus.model import Comment
from region.log import Entry
from region.replay import CacheUnavailable
from region.replay_redis import TTL_S, RedisReplayCache
from region.replay_trim import TRIM_SHARE

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def redis(cluster: LocalCluster) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(port=cluster.config.region("us-east").redis.port)
    yield client
    await client.aclose()


def entries(stream: str, seqs: list[int], prev: int = 0) -> list[Entry]:
    out = []
    for seq in seqs:
        out.append(Entry(seq, prev, Comment(f"{seq:016x}-us-east.0", stream, "us-east", "u",
                                            "U", f"c{seq}", seq)))
        prev = seq
    return out


async def test_a_push_stream_keeps_one_key(redis: aioredis.Redis, unique: str) -> None:
    stream = f"{unique}-push"
    cache = RedisReplayCache(redis, window=100, hot=lambda s: False)
    await cache.add(entries(stream, list(range(1, 151))))
    assert await redis.keys(f"chorus:r*:{stream}*") == [f"chorus:r:{stream}".encode()]
    assert await redis.zcard(f"chorus:r:{stream}") == 100
    got = await cache.after(stream, 120, 500)
    assert [e.seq for e in got] == list(range(121, 151))


async def test_a_key_expires_from_its_first_write_and_stays_near_its_window(
        redis: aioredis.Redis, unique: str) -> None:
    stream = f"{unique}-small"
    cache = RedisReplayCache(redis, window=100, hot=lambda s: False)
    written = entries(stream, list(range(1, 1001)))
    await cache.add(written[:1])
    assert 0 < await redis.ttl(f"chorus:r:{stream}") <= TTL_S
    sizes = []
    for at in range(1, len(written), 5):    # small writes: most of them only add
        await cache.add(written[at:at + 5])
        sizes.append(await redis.zcard(f"chorus:r:{stream}"))
    assert max(sizes) < 100 + 100 // TRIM_SHARE + 5, sizes
    got = await cache.after(stream, 950, 100)
    assert [e.seq for e in got] == list(range(951, 1001))


async def test_a_hot_stream_is_spread_over_its_keys_and_read_back_in_order(
        redis: aioredis.Redis, unique: str) -> None:
    stream = f"{unique}-hot"
    cache = RedisReplayCache(redis, window=2000, hot=lambda s: s == stream, shards=16)
    seqs = list(range(2, 3000, 2))   # another stream holds the odd sequences
    written = entries(stream, seqs)
    for at in range(0, len(written), 100):   # a tick's batch at a time, as the fanout writes
        await cache.add(written[at:at + 100])
    sizes = [await redis.zcard(f"chorus:rs:{stream}:{n}") for n in range(16)]
    # One writer: trimmed once it was given an eighth of its share since (replay_trim.py).
    assert all(0 < size < cache.shard_window + cache.shard_window // TRIM_SHARE
               for size in sizes), sizes
    assert max(sizes) < len(seqs) / 4 and not await redis.exists(f"chorus:r:{stream}")
    # A resume reads the window back page by page, in order, nothing twice or missing.
    got, cursor = [], 1000
    while True:
        page = await cache.after(stream, cursor, 500)
        if not page:
            break
        assert [e.prev for e in page[1:]] == [e.seq for e in page[:-1]]
        got += page
        cursor = page[-1].seq
    assert [e.seq for e in got] == list(range(1002, 3000, 2))


async def test_a_stream_that_turned_hot_is_read_across_both_layouts(
        redis: aioredis.Redis, unique: str) -> None:
    stream = f"{unique}-turned"
    hot = False
    cache = RedisReplayCache(redis, window=2000, hot=lambda s: hot, shards=8)
    written = entries(stream, list(range(1, 401)))
    await cache.add(written[:200])
    hot = True
    await cache.add(written[200:])
    got = await cache.after(stream, 150, 100)
    assert [e.seq for e in got] == list(range(151, 251))
    assert [e.seq for e in await cache.after(stream, 390, 100)] == list(range(391, 401))


async def test_each_key_of_a_hot_stream_is_trimmed_to_its_share(
        redis: aioredis.Redis, unique: str) -> None:
    stream = f"{unique}-trim"
    cache = RedisReplayCache(redis, window=160, hot=lambda s: True, shards=4)
    await cache.add(entries(stream, list(range(1, 2001))))
    sizes = [await redis.zcard(f"chorus:rs:{stream}:{n}") for n in range(4)]
    assert sizes == [80] * 4
    # The newest entries are all there: the window's tail reads back whole.
    assert [e.seq for e in await cache.after(stream, 1900, 500)] == list(range(1901, 2001))


async def test_redis_not_answering_is_cache_unavailable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = aioredis.Redis(port=port, socket_connect_timeout=1)
    cache = RedisReplayCache(client, window=100, hot=lambda s: True)
    with pytest.raises(CacheUnavailable):
        await cache.after("s", 0, 10)
    with pytest.raises(CacheUnavailable):
        await cache.add(entries("s", [1]))
    await client.aclose()
