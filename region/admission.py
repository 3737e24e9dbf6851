"""Admitting a post: slow mode and rate limits, in one Redis round trip.

Redis keys (the region's own Redis): ``chorus:rl:u:<user>`` and ``chorus:rl:s:<stream>``
(token buckets), ``chorus:slow:<stream>:<user>`` (slow mode: present while the user must
wait).

Bans, shadow bans and timeouts live in the moderation state that every region shares
(region/moderation.py), checked before this. The Redis sets ``chorus:banned`` and
``chorus:shadowbanned`` of earlier versions are read by nothing here any more: each gateway
carries what is left in them over into that state when it starts
(region/moderation_legacy.py).
"""

from __future__ import annotations

import redis.asyncio as aioredis

from chorus.config import Limits
from chorus.drivers import driver_errors
from region.errors import ApiError, ErrorCode
from region.ratelimit import ADMIT_LUA
from region.redis_batch import BatchedScript
from region.tiers import StreamBucket


class Admission:
    def __init__(self, redis: aioredis.Redis, limits: Limits) -> None:
        self.redis = redis
        self.limits = limits
        # Concurrent posts share one round trip (region/redis_batch.py).
        self._admit = BatchedScript(redis, ADMIT_LUA)

    async def admit(self, user: str, stream: str, *, slow_ms: int = 0,
                    bucket: StreamBucket | None = None) -> None:
        """Returns when the post may be stored. Raises ApiError 429 (rate limited or, with
        ``slow_ms`` > 0, the user's previous comment in the stream is less than ``slow_ms``
        old: slow mode; with retry time) or 503 (Redis down). ``bucket``: the stream's token
        bucket of a hot stream's tier (region/tiers.py `stream_bucket`); None: the stream's
        own, ``limits.stream_*``."""
        lim = self.limits
        if bucket is None:
            bucket = StreamBucket(f"chorus:rl:s:{stream}", lim.stream_rate_per_s,
                                  lim.stream_burst)
        try:
            verdict, retry_ms = await self._admit(
                keys=[f"chorus:rl:u:{user}", bucket.key, f"chorus:slow:{stream}:{user}"],
                args=[lim.user_rate_per_s, lim.user_burst, bucket.rate_per_s, bucket.burst,
                      slow_ms])
        except driver_errors("redis") as exc:
            raise ApiError(ErrorCode.UNAVAILABLE, "the region's Redis is not answering; "
                                                  "nothing was stored, retry", retry_after_s=1
                           ) from exc
        if verdict == 2:
            raise ApiError(ErrorCode.RATE_LIMITED, f"too many comments from this user (limit "
                           f"{lim.user_rate_per_s}/s, burst {lim.user_burst})",
                           retry_after_s=retry_ms / 1000)
        if verdict == 3:
            raise ApiError(ErrorCode.RATE_LIMITED, f"too many comments on this stream (limit "
                           f"{bucket.rate_per_s}/s, burst {bucket.burst})",
                           retry_after_s=retry_ms / 1000)
        if verdict == 4:
            raise ApiError(ErrorCode.RATE_LIMITED, f"slow mode: one comment every "
                           f"{slow_ms // 1000} s in this stream", retry_after_s=retry_ms / 1000)
