"""The reaction adapters against the real servers: the Redis scripts (buckets, sharded
counters, leases) and the JetStream reaction log (conditional appends, deduplication, range
reads, the live RePublish). Each test uses its own streams and users."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from nats.aio.client import Client as Nats

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.names import reaction_live_subject
from region.reactions import Aggregate, Closed, Tap, next_aggregate
from region.reactions_jetstream import JetStreamReactionLog
from region.reactions_redis import RedisReactionCounter

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def redis(cluster: LocalCluster) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(port=cluster.config.region("us-east").redis.port)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def nc(cluster: LocalCluster) -> AsyncIterator[Nats]:
    client = await nats.connect(cluster.config.region("us-east").nats_url)
    yield client
    await client.close()


async def claim_of(counter: RedisReactionCounter, stream: str, timeout_s: float = 5.0
                   ) -> list[Closed]:
    """Claims until ``stream`` has a closed second (the current one closes within 1 s)."""
    got: list[Closed] = []

    async def closed() -> bool:
        got.extend(c for c in await counter.claim(100) if c.stream == stream)
        return bool(got)
    await wait_until(closed, what=f"a closed second of {stream}", timeout_s=timeout_s)
    return got


async def test_buckets_refuse_past_the_burst_and_shards_sum_per_second(
        redis: aioredis.Redis, unique: str) -> None:
    counter = RedisReactionCounter(redis, rate_per_s=1.0, burst=3, shards=4, prefix=unique)
    user = f"{unique}-u"
    taps = [Tap(user, unique, "heart")] * 5 + [Tap(f"{unique}-v", unique, "like")]
    first = await counter.count(taps[:3], shard=0)
    second = await counter.count(taps[3:], shard=1)
    assert first.admitted == (3,) and first.retry_ms == (0,)
    assert second.admitted == (0, 1)                       # the user's bucket is empty
    assert 0 < second.retry_ms[0] <= 1000
    # Two batches, two shards (of the same second, or of two seconds).
    assert len([k async for k in redis.scan_iter(match=f"{unique}:rx:{unique}:*")]) == 2
    closed = await claim_of(counter, unique)
    while len(closed) < (1 if first.second == second.second else 2):
        closed += await claim_of(counter, unique)
    assert sum(sum(c.counts.values()) for c in closed) == 4
    assert {k for c in closed for k in c.counts} == {"heart", "like"}
    await counter.done(closed)
    assert [k async for k in redis.scan_iter(match=f"{unique}:rx:{unique}:*")] == []


async def test_a_lease_that_runs_out_is_claimed_again(redis: aioredis.Redis,
                                                      unique: str) -> None:
    a = RedisReactionCounter(redis, rate_per_s=10.0, burst=10, shards=2, lease_ms=300,
                             prefix=unique)
    b = RedisReactionCounter(redis, rate_per_s=10.0, burst=10, shards=2, lease_ms=300,
                             prefix=unique)
    await a.count([Tap(f"{unique}-u", unique, "wow")], shard=0)
    taken = await claim_of(a, unique)
    assert [c for c in await b.claim(100) if c.stream == unique] == []  # a holds it
    again = await claim_of(b, unique)                                     # a "died"
    assert [(c.second, dict(c.counts)) for c in again] == [
        (c.second, dict(c.counts)) for c in taken]
    await b.done(again)


async def test_the_log_appends_conditionally_deduplicates_and_reads_ranges(
        nc: Nats, unique: str) -> None:
    log = JetStreamReactionLog(nc, "us-east", retention_days=1)
    await log.ensure()
    await log.ensure()  # every gateway calls it: the same config is fine
    live = await nc.subscribe(reaction_live_subject("us-east", unique))
    now = int(time.time())
    first = next_aggregate("us-east", unique, now - 2, {"heart": 2}, None)
    stored = await log.append(first, expected_last_seq=0)
    assert stored.outcome == "stored" and stored.seq > 0
    # A second append built on nothing is refused: another gateway got there first.
    racing = next_aggregate("us-east", unique, now - 1, {"heart": 1}, None)
    assert (await log.append(racing, expected_last_seq=0)).outcome == "moved"
    # The same second again (a lease taken over): JetStream checks the expected sequence
    # first (moved), and once built on the newest it is a duplicate of its id.
    assert (await log.append(first, expected_last_seq=0)).outcome == "moved"
    assert (await log.append(first, expected_last_seq=stored.seq)).outcome == "duplicate"
    following = next_aggregate("us-east", unique, now - 1, {"like": 1}, first)
    assert (await log.append(following, expected_last_seq=stored.seq)).outcome == "stored"
    newest = await log.last("us-east", unique)
    assert newest is not None and newest.aggregate == following
    assert await log.last("eu-west", unique) is None
    assert await log.read("us-east", unique, now - 2, now, limit=10) == [first, following]
    assert await log.read("us-east", unique, now - 1, now, limit=10) == [following]
    got = [Aggregate.decode((await live.next_msg(timeout=5)).data) for _ in range(2)]
    assert got == [first, following]
    await live.unsubscribe()


async def test_a_forwarded_aggregate_is_stored_under_its_origin(nc: Nats, unique: str) -> None:
    log = JetStreamReactionLog(nc, "us-east", retention_days=1)
    await log.ensure()
    theirs = next_aggregate("ap-south", unique, int(time.time()), {"clap": 3}, None)
    js = nc.jetstream()
    from chorus.names import reaction_subject

    await js.publish(reaction_subject("us-east", "ap-south", unique), theirs.encode(),
                     headers={"Nats-Msg-Id": theirs.msg_id})
    found = await log.last("ap-south", unique)
    assert found is not None and found.aggregate == theirs
    assert await log.last("us-east", unique) is None
    await asyncio.sleep(0)
