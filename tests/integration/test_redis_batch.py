"""region/redis_batch.py against a real Redis: concurrent calls share round trips, each
caller gets its own reply (or its own error), a script Redis forgot is loaded again, and a
Redis that does not answer fails every caller of the batch, as a lone call would."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from chorus.cluster.local import LocalCluster
from region.redis_batch import BatchedScript

pytestmark = pytest.mark.integration

# Adds ARGV[1] to a counter and answers {ARGV[1], new value}; a negative ARGV[1] is an error.
INCR = """
if tonumber(ARGV[1]) < 0 then return redis.error_reply('negative') end
return {tonumber(ARGV[1]), redis.call('INCRBY', KEYS[1], ARGV[1])}
"""


@pytest_asyncio.fixture
async def redis(cluster: LocalCluster) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(port=cluster.config.region("us-east").redis.port)
    yield client
    await client.aclose()


async def test_concurrent_calls_share_round_trips_and_each_gets_its_reply(
        redis: aioredis.Redis) -> None:
    key = f"test:batch:{uuid.uuid4().hex}"
    script = BatchedScript(redis, INCR)
    replies = await asyncio.gather(*(script(keys=[key], args=[n]) for n in range(1, 101)))
    assert [r[0] for r in replies] == list(range(1, 101))
    assert sorted(r[1] for r in replies)[-1] == sum(range(1, 101))
    assert await redis.get(key) == str(sum(range(1, 101))).encode()
    assert script.batches < 10  # 100 calls, a handful of round trips
    await script.close()


async def test_a_lone_call_goes_at_once(redis: aioredis.Redis) -> None:
    key = f"test:batch:{uuid.uuid4().hex}"
    script = BatchedScript(redis, INCR)
    assert await asyncio.wait_for(script(keys=[key], args=[5]), 2) == [5, 5]
    assert script.batches == 1


async def test_an_error_reaches_only_its_caller(redis: aioredis.Redis) -> None:
    key = f"test:batch:{uuid.uuid4().hex}"
    script = BatchedScript(redis, INCR)
    results = await asyncio.gather(script(keys=[key], args=[1]), script(keys=[key], args=[-1]),
                                   script(keys=[key], args=[2]), return_exceptions=True)
    assert results[0] == [1, 1]
    assert isinstance(results[1], ResponseError)
    assert results[2] == [2, 3]


async def test_a_runtime_error_reaches_only_its_caller_and_the_others_run(
        redis: aioredis.Redis) -> None:
    # The batch is one script: a call whose command fails inside Redis (INCRBY on a hash)
    # must not take its neighbours down with it.
    key, wrong = f"test:batch:{uuid.uuid4().hex}", f"test:batch:{uuid.uuid4().hex}"
    await redis.hset(wrong, "f", "v")
    script = BatchedScript(redis, INCR)
    results = await asyncio.gather(script(keys=[key], args=[1]), script(keys=[wrong], args=[1]),
                                   script(keys=[key], args=[2]), return_exceptions=True)
    assert results[0] == [1, 1] and results[2] == [2, 3], results
    assert isinstance(results[1], ResponseError) and "WRONGTYPE" in str(results[1])
    assert script.batches <= 2


async def test_a_forgotten_script_is_loaded_again_and_nothing_runs_twice(
        redis: aioredis.Redis) -> None:
    key = f"test:batch:{uuid.uuid4().hex}"
    script = BatchedScript(redis, INCR)
    await script(keys=[key], args=[1])
    await redis.script_flush()
    await asyncio.gather(*(script(keys=[key], args=[1]) for _ in range(10)))
    assert await redis.get(key) == b"11"


async def test_redis_not_answering_fails_every_caller() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = aioredis.Redis(port=port, socket_connect_timeout=1)
    script = BatchedScript(client, INCR)
    results = await asyncio.gather(*(script(keys=["k"], args=[1]) for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, RedisConnectionError | OSError) for r in results), results
    await client.aclose()
