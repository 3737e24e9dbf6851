"""`ReactionCounter` in the region's Redis: per-user token buckets, sharded per-second counters,
and the leases that let one gateway of the region emit each closed second.

Keys (the region's own Redis; every time is Redis's own clock, so the region's gateways agree
on where a second ends):

- ``chorus:rxb:<user>``: the user's token bucket (``tokens``, ``ts``), as the comment buckets
  of region/ratelimit.py; it expires once it would be full again.
- ``chorus:rx:<stream>:<second>:<shard>``: a hash of counts per kind. A batch of one gateway
  goes to one shard, the next batch to the next one, so a hot stream's second is written as
  ``shards`` keys (no single hot key; in a Redis Cluster they spread over nodes). They expire
  after `COUNTER_TTL_S`: a second that nobody could emit in that time is dropped.
- ``chorus:rx:open``: a sorted set of ``<second>|<stream>`` scored by the second: the seconds
  that have counts and have not been claimed.
- ``chorus:rx:claimed``: the same members scored by the ms their lease ends; a lease that ran
  out (its gateway died, or the log would not take the aggregate) is claimed again.

Why a Redis loss costs little: it holds only the seconds not emitted yet (normally the last
one or two) and the buckets; the running totals are in the reaction log (JetStream).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from chorus.drivers import translated
from region.reactions import Closed, Counted, ReactionsUnavailable, Tap, by_user

COUNTER_TTL_S = 600
LEASE_MS = 5000      # a claimed second not done within this is claimed by another gateway
PREFIX = "chorus"

# KEYS: open. ARGV: prefix, rate, burst, shard, ttl_s, n_users, then per user: user, n_taps,
# n_taps x (stream, kind)
# Returns {second, then per user: admitted, retry_ms}. A user's first taps are admitted while
# their bucket has tokens; a refused tap takes nothing.
_COUNT = """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
local shard, ttl = ARGV[4], tonumber(ARGV[5])
local users = tonumber(ARGV[6])
local i = 7
local out = {sec}
local sums, keys, streams = {}, {}, {}
for _ = 1, users do
  local user, taps = ARGV[i], tonumber(ARGV[i + 1])
  i = i + 2
  local bucket = prefix .. ':rxb:' .. user
  local b = redis.call('HMGET', bucket, 'tokens', 'ts')
  local level = burst
  if b[1] then
    level = math.min(burst, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) / 1000 * rate)
  end
  local take = math.min(taps, math.floor(level))
  local retry = 0
  if take > 0 then
    redis.call('HSET', bucket, 'tokens', level - take, 'ts', now)
    redis.call('PEXPIRE', bucket, math.ceil(burst / rate * 1000) + 1000)
  end
  if take < taps then retry = math.ceil((1 - (level - take)) / rate * 1000) end
  for j = 0, take - 1 do
    local stream, kind = ARGV[i + 2 * j], ARGV[i + 2 * j + 1]
    local key = prefix .. ':rx:' .. stream .. ':' .. sec .. ':' .. shard
    if not sums[key] then
      sums[key] = {}
      keys[#keys + 1] = key
      streams[key] = stream
    end
    sums[key][kind] = (sums[key][kind] or 0) + 1
  end
  i = i + 2 * taps
  out[#out + 1] = take
  out[#out + 1] = retry
end
for _, key in ipairs(keys) do
  for kind, n in pairs(sums[key]) do redis.call('HINCRBY', key, kind, n) end
  redis.call('EXPIRE', key, ttl)
  redis.call('ZADD', KEYS[1], 'NX', sec, sec .. '|' .. streams[key])
end
return out
"""

# KEYS: open, claimed. ARGV: prefix, lease_ms, limit, shards.
# Returns {{member, {kind, n, kind, n, ...}}, ...}: closed seconds (score below the current
# second) first, then seconds whose lease ran out; each now leased to the caller.
_CLAIM = """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix = ARGV[1]
local lease, limit, shards = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', sec - 1, 'LIMIT', 0, limit)
for _, m in ipairs(members) do redis.call('ZREM', KEYS[1], m) end
if #members < limit then
  local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0,
                             limit - #members)
  for _, m in ipairs(expired) do members[#members + 1] = m end
end
local out = {}
for _, m in ipairs(members) do
  redis.call('ZADD', KEYS[2], now + lease, m)
  local sep = string.find(m, '|', 1, true)
  local s, stream = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
  local sums, kinds = {}, {}
  for shard = 0, shards - 1 do
    local h = redis.call('HGETALL', prefix .. ':rx:' .. stream .. ':' .. s .. ':' .. shard)
    for k = 1, #h, 2 do
      if not sums[h[k]] then kinds[#kinds + 1] = h[k] end
      sums[h[k]] = (sums[h[k]] or 0) + tonumber(h[k + 1])
    end
  end
  local flat = {}
  for _, kind in ipairs(kinds) do
    flat[#flat + 1] = kind
    flat[#flat + 1] = sums[kind]
  end
  out[#out + 1] = {m, flat}
end
return out
"""

# KEYS: claimed. ARGV: prefix, shards, then members. Forgets each member and its counters.
_DONE = """
local prefix = ARGV[1]
local shards = tonumber(ARGV[2])
for i = 3, #ARGV do
  local m = ARGV[i]
  redis.call('ZREM', KEYS[1], m)
  local sep = string.find(m, '|', 1, true)
  local s, stream = string.sub(m, 1, sep - 1), string.sub(m, sep + 1)
  for shard = 0, shards - 1 do
    redis.call('DEL', prefix .. ':rx:' .. stream .. ':' .. s .. ':' .. shard)
  end
end
return #ARGV - 2
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisReactionCounter:
    """``rate_per_s`` and ``burst``: each user's bucket (``reactions.user_rate_per_s``,
    ``reactions.user_burst``); ``shards``: counters per stream per second. ``prefix`` starts
    every key (a test uses its own, apart from the gateways' emitters)."""

    def __init__(self, redis: aioredis.Redis, *, rate_per_s: float, burst: int,
                 shards: int, lease_ms: int = LEASE_MS, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix
        self.open_key = f"{prefix}:rx:open"
        self.claimed_key = f"{prefix}:rx:claimed"
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.shards = shards
        self.lease_ms = lease_ms
        self._count = redis.register_script(_COUNT)
        self._claim = redis.register_script(_CLAIM)
        self._done = redis.register_script(_DONE)

    async def count(self, taps: Sequence[Tap], *, shard: int) -> Counted:
        groups = by_user(taps)
        args: list[str | int | float] = [self.prefix, self.rate_per_s, self.burst,
                                         shard % self.shards, COUNTER_TTL_S, len(groups)]
        for user, indexes in groups:
            args += [user, len(indexes)]
            for i in indexes:
                args += [taps[i].stream, taps[i].kind]
        with translated(ReactionsUnavailable, "counting reactions", driver="redis"):
            reply = await self._count(keys=[self.open_key], args=args)
        second = int(reply[0])
        rest = [int(x) for x in reply[1:]]
        return Counted(second=second, admitted=tuple(rest[0::2]), retry_ms=tuple(rest[1::2]))

    async def claim(self, limit: int) -> list[Closed]:
        with translated(ReactionsUnavailable, "claiming closed seconds", driver="redis"):
            reply = await self._claim(keys=[self.open_key, self.claimed_key],
                                      args=[self.prefix, self.lease_ms, limit, self.shards])
        out = []
        for member, flat in reply:
            second, _, stream = _text(member).partition("|")
            counts = {_text(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}
            out.append(Closed(stream=stream, second=int(second), counts=counts))
        return out

    async def done(self, closed: Sequence[Closed]) -> None:
        if not closed:
            return
        members = [f"{c.second}|{c.stream}" for c in closed]
        with translated(ReactionsUnavailable, "forgetting emitted seconds", driver="redis"):
            await self._done(keys=[self.claimed_key], args=[self.prefix, self.shards, *members])
