"""Admitting a post (region/admission.py) with the Lua script production runs
(region/ratelimit.py `ADMIT_LUA`), against the region's real Redis: the per-user and
per-stream token buckets, burst, refill and the retry time a refusal carries, and that the
ban sets of earlier versions are not read any more.

Every test uses its own users and streams (``unique``), hence its own bucket keys. Refill is
tested without waiting: a bucket's state is written as it would be some milliseconds ago, by
Redis's own clock (the one the script reads).
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from chorus.cluster.local import LocalCluster
from chorus.config import Limits
from region.admission import Admission
from region.errors import ApiError
from region.ratelimit import ADMIT_LUA

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def redis(cluster: LocalCluster) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis(port=cluster.config.region("us-east").redis.port)
    yield client
    await client.aclose()


def admission(cluster: LocalCluster, redis: aioredis.Redis, *, user_rate: float = 100.0,
              user_burst: int = 100, stream_rate: float = 100.0, stream_burst: int = 100
              ) -> Admission:
    limits = dataclasses.replace(cluster.config.limits, user_rate_per_s=user_rate,
                                 user_burst=user_burst, stream_rate_per_s=stream_rate,
                                 stream_burst=stream_burst)
    return Admission(redis, limits)


async def refused(admit: Admission, user: str, stream: str) -> ApiError:
    with pytest.raises(ApiError) as info:
        await admit.admit(user, stream)
    return info.value


async def redis_now_ms(redis: aioredis.Redis) -> int:
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def set_bucket(redis: aioredis.Redis, key: str, tokens: float, age_ms: int) -> None:
    """Leaves ``key`` as the script would have, ``age_ms`` ago by Redis's clock."""
    now = await redis_now_ms(redis)
    await redis.hset(key, mapping={"tokens": tokens, "ts": now - age_ms})  # type: ignore[misc]


# -- bans are not the script's ---------------------------------------------------------------


async def test_the_ban_sets_of_earlier_versions_refuse_no_one(cluster: LocalCluster,
                                                              redis: aioredis.Redis,
                                                              unique: str) -> None:
    # Bans are the moderation state's (tests/integration/test_moderation.py); what is left in
    # the old sets is carried over into it at a gateway's start, not read on the post path.
    admit = admission(cluster, redis)
    user, stream = f"{unique}-u", f"{unique}-s"
    await redis.sadd("chorus:banned", user)  # type: ignore[misc]
    try:
        await admit.admit(user, stream)
    finally:
        await redis.srem("chorus:banned", user)  # type: ignore[misc]


# -- buckets --------------------------------------------------------------------------------------


async def test_a_user_gets_a_burst_then_429_with_the_time_to_the_next_token(
        cluster: LocalCluster, redis: aioredis.Redis, unique: str) -> None:
    admit = admission(cluster, redis, user_rate=2.0, user_burst=3)
    user, stream = f"{unique}-u", f"{unique}-s"
    for _ in range(3):
        await admit.admit(user, stream)
    err = await refused(admit, user, stream)
    assert err.code.status == 429 and "user" in err.message
    # An empty bucket at 2 tokens/s has its next token within 0.5 s (less the few ms that
    # have refilled it since the first post).
    assert err.retry_after_s is not None and 0.3 < err.retry_after_s <= 0.5
    # The bucket is the user's, on every stream, and nobody else's.
    assert (await refused(admit, user, f"{unique}-s2")).code.status == 429
    await admit.admit(f"{unique}-other", stream)


async def test_a_stream_gets_a_burst_over_all_its_users_then_429(
        cluster: LocalCluster, redis: aioredis.Redis, unique: str) -> None:
    admit = admission(cluster, redis, stream_rate=4.0, stream_burst=5)
    stream = f"{unique}-s"
    for i in range(5):
        await admit.admit(f"{unique}-u{i}", stream)
    err = await refused(admit, f"{unique}-late", stream)
    assert err.code.status == 429 and "stream" in err.message
    assert err.retry_after_s is not None and 0.15 < err.retry_after_s <= 0.25
    await admit.admit(f"{unique}-late", f"{unique}-s2")  # another stream


async def test_a_refused_post_takes_no_token_from_the_other_bucket(
        cluster: LocalCluster, redis: aioredis.Redis, unique: str) -> None:
    admit = admission(cluster, redis, user_rate=0.001, user_burst=2, stream_rate=0.001,
                      stream_burst=2)
    ana, bob = f"{unique}-ana", f"{unique}-bob"
    s1, s2, s3 = f"{unique}-s1", f"{unique}-s2", f"{unique}-s3"
    # Refused by the stream: ana keeps her token.
    await admit.admit(bob, s1)
    await admit.admit(bob, s1)
    assert "stream" in (await refused(admit, ana, s1)).message
    await admit.admit(ana, s2)
    await admit.admit(ana, s2)
    # Refused by the user: the stream keeps its tokens, both of them.
    assert "user" in (await refused(admit, ana, s3)).message
    await admit.admit(f"{unique}-cy", s3)
    await admit.admit(f"{unique}-dee", s3)


async def test_a_bucket_refills_at_its_rate(cluster: LocalCluster, redis: aioredis.Redis,
                                            unique: str) -> None:
    admit = admission(cluster, redis, user_rate=2.0, user_burst=3)
    user, stream = f"{unique}-u", f"{unique}-s"
    key = f"chorus:rl:u:{user}"
    # Empty 250 ms ago at 2 tokens/s: half a token since, the next one in a quarter second.
    await set_bucket(redis, key, 0.0, age_ms=250)
    err = await refused(admit, user, stream)
    assert err.retry_after_s is not None and 0.15 < err.retry_after_s <= 0.25
    # Empty 500 ms ago: one token since.
    await set_bucket(redis, key, 0.0, age_ms=500)
    await admit.admit(user, stream)
    assert (await refused(admit, user, stream)).code.status == 429


async def test_refill_stops_at_the_burst(cluster: LocalCluster, redis: aioredis.Redis,
                                         unique: str) -> None:
    admit = admission(cluster, redis, user_rate=2.0, user_burst=3)
    user, stream = f"{unique}-u", f"{unique}-s"
    # Empty an hour ago: 7,200 tokens' worth of time, but a bucket holds 3.
    await set_bucket(redis, f"chorus:rl:u:{user}", 0.0, age_ms=3_600_000)
    for _ in range(3):
        await admit.admit(user, stream)
    assert (await refused(admit, user, stream)).code.status == 429


async def test_a_bucket_expires_once_it_would_be_full(cluster: LocalCluster,
                                                      redis: aioredis.Redis,
                                                      unique: str) -> None:
    admit = admission(cluster, redis, user_rate=2.0, user_burst=10, stream_rate=50.0,
                      stream_burst=100)
    user, stream = f"{unique}-u", f"{unique}-s"
    await admit.admit(user, stream)
    # Full again after burst / rate (5 s and 2 s), plus a second: a missing key is a full
    # bucket, so Redis keeps no state for users who stopped posting.
    user_ttl = await redis.pttl(f"chorus:rl:u:{user}")
    stream_ttl = await redis.pttl(f"chorus:rl:s:{stream}")
    assert 5_000 < user_ttl <= 6_000 and 2_000 < stream_ttl <= 3_000


async def test_the_script_answers_verdict_and_retry_ms(redis: aioredis.Redis,
                                                      unique: str) -> None:
    script = redis.register_script(ADMIT_LUA)
    keys = [f"{unique}:rl:u", f"{unique}:rl:s"]

    async def run() -> list[int]:
        return list(await script(keys=keys, args=[1, 1, 10, 10]))

    try:
        assert await run() == [0, 0]
        verdict, retry_ms = await run()
        assert verdict == 2 and 900 < retry_ms <= 1000
    finally:
        await redis.delete(*keys)


async def test_a_redis_that_does_not_answer_is_a_503(cluster: LocalCluster) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = aioredis.Redis(port=port, socket_connect_timeout=1.0)
    try:
        admit = Admission(down, Limits())
        err = await refused(admit, "ana", "s")
        assert err.code.status == 503 and err.retry_after_s == 1
        assert isinstance(err.__cause__, OSError | RedisError)
    finally:
        await down.aclose()
