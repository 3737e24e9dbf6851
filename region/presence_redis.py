"""`Presence` in the region's Redis.

Per stream: ``chorus:p:<stream>`` is a sorted set of gateways scored by the expiry time (ms)
of their last report, and ``chorus:pn:<stream>`` a hash of each gateway's count. A count is
summed only over gateways whose report has not expired, by Redis's own clock.

Redis holds nothing that cannot be rebuilt, and may lose everything (FLUSHALL, a restart
without persistence, a failover to an empty replica). Right after such a loss every count
reads 0, and a region that answers 0 has its comments skipped by the other regions' outboxes:
acknowledged comments that its connected viewers would never get. So the index knows when it
was lost: ``chorus:p-trusted`` holds the Redis time (ms) from which counts are complete, and
whichever script first finds it missing (the loss removed it too) sets it to now plus the
presence TTL. Until then `count` raises `PresenceUnknown`, which readers treat as "has
viewers". One TTL is enough: a live gateway reports at least once per TTL (its reports would
expire otherwise), so by then every gateway with viewers has reported again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis

from chorus.drivers import translated
from region.presence import PresenceUnavailable, PresenceUnknown

TRUSTED_KEY = "chorus:p-trusted"

# Both scripts start here: KEYS[1] is the marker, ARGV[1] the TTL in ms. Returns the Redis
# time in ms and whether counts are complete yet.
_TRUSTED = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local trusted = tonumber(redis.call('GET', KEYS[1]))
if not trusted then
  trusted = now + tonumber(ARGV[1])
  redis.call('SET', KEYS[1], trusted)
end
"""

_REPORT = _TRUSTED + """
local ttl = tonumber(ARGV[1])
local gw = ARGV[2]
local n = (#ARGV - 2) / 2
for i = 1, n do
  local stream, count = ARGV[2 + 2 * i - 1], tonumber(ARGV[2 + 2 * i])
  local z, h = 'chorus:p:' .. stream, 'chorus:pn:' .. stream
  if count > 0 then
    redis.call('ZADD', z, now + ttl, gw)
    redis.call('HSET', h, gw, count)
    redis.call('PEXPIRE', z, ttl * 2)
    redis.call('PEXPIRE', h, ttl * 2)
  else
    redis.call('ZREM', z, gw)
    redis.call('HDEL', h, gw)
  end
end
return n
"""

_COUNT = _TRUSTED + """
if now < trusted then return -1 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local live = redis.call('ZRANGE', KEYS[2], 0, -1)
if #live == 0 then return 0 end
local counts = redis.call('HMGET', KEYS[3], unpack(live))
local total = 0
for _, c in ipairs(counts) do total = total + (tonumber(c) or 0) end
return total
"""


class RedisPresence:
    def __init__(self, redis: aioredis.Redis, ttl_s: int) -> None:
        self.redis = redis
        self.ttl_ms = ttl_s * 1000
        self._report = redis.register_script(_REPORT)
        self._count = redis.register_script(_COUNT)

    async def report(self, gateway: str, counts: Mapping[str, int], gone: set[str]) -> None:
        args: list[str | int] = [self.ttl_ms, gateway]
        for stream, count in counts.items():
            args += [stream, count]
        for stream in gone:
            args += [stream, 0]
        if len(args) == 2:
            return
        with translated(PresenceUnavailable, "presence report failed", driver="redis"):
            await self._report(keys=[TRUSTED_KEY], args=args)

    async def count(self, stream: str) -> int:
        with translated(PresenceUnavailable, "presence read failed", driver="redis"):
            total = int(await self._count(
                keys=[TRUSTED_KEY, f"chorus:p:{stream}", f"chorus:pn:{stream}"],
                args=[self.ttl_ms]))
        if total < 0:
            raise PresenceUnknown("presence is being rebuilt after Redis lost it; every "
                                  "gateway reports again within the presence TTL")
        return total

    async def counts(self, streams: Sequence[str]) -> dict[str, int]:
        # One pipeline, one round trip: the script per stream, as `count` runs it.
        with translated(PresenceUnavailable, "presence read failed", driver="redis"):
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream in streams:
                    await self._count(keys=[TRUSTED_KEY, f"chorus:p:{stream}",
                                            f"chorus:pn:{stream}"],
                                      args=[self.ttl_ms], client=pipe)
                totals = [int(t) for t in await pipe.execute()]
        if any(total < 0 for total in totals):
            raise PresenceUnknown("presence is being rebuilt after Redis lost it; every "
                                  "gateway reports again within the presence TTL")
        return dict(zip(streams, totals, strict=True))

    async def withdraw(self, gateway: str, streams: set[str]) -> None:
        await self.report(gateway, {}, streams)
