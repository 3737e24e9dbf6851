"""Token buckets: the arithmetic, pure, and the one Redis script that applies it.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s``; a post takes one token
from its user's bucket and one from its stream's, and is refused (429) unless both have one.
`take` is the reference; `ADMIT_LUA` does the same inside Redis, atomically, together with
the ban checks, so that admitting a post costs one round trip.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    tokens: float
    updated_ms: int


def refill(bucket: Bucket | None, now_ms: int, rate_per_s: float, burst: int) -> float:
    if bucket is None:
        return float(burst)
    elapsed_s = max(0, now_ms - bucket.updated_ms) / 1000
    return min(float(burst), bucket.tokens + elapsed_s * rate_per_s)


def take(bucket: Bucket | None, now_ms: int, rate_per_s: float, burst: int
         ) -> tuple[bool, Bucket, float]:
    """(allowed, the bucket after, seconds until a token is there when refused)."""
    tokens = refill(bucket, now_ms, rate_per_s, burst)
    if tokens >= 1:
        return True, Bucket(tokens - 1, now_ms), 0.0
    return False, Bucket(tokens, now_ms), (1 - tokens) / rate_per_s


# KEYS: banned set, shadow-banned set, user bucket, stream bucket
# ARGV: user, user rate, user burst, stream rate, stream burst
# Returns {verdict, retry_after_ms, shadow}: verdict 0 ok, 1 banned, 2 user limited,
# 3 stream limited. Time comes from Redis itself so that every gateway shares one clock.
ADMIT_LUA = """
local user = ARGV[1]
if redis.call('SISMEMBER', KEYS[1], user) == 1 then return {1, 0, 0} end
local shadow = redis.call('SISMEMBER', KEYS[2], user)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, rate, burst)
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  if not b[1] then return burst end
  local elapsed = math.max(0, now - tonumber(b[2])) / 1000
  return math.min(burst, tonumber(b[1]) + elapsed * rate)
end
local ur, ub = tonumber(ARGV[2]), tonumber(ARGV[3])
local sr, sb = tonumber(ARGV[4]), tonumber(ARGV[5])
local u = level(KEYS[3], ur, ub)
local s = level(KEYS[4], sr, sb)
if u < 1 then return {2, math.ceil((1 - u) / ur * 1000), shadow} end
if s < 1 then return {3, math.ceil((1 - s) / sr * 1000), shadow} end
redis.call('HSET', KEYS[3], 'tokens', u - 1, 'ts', now)
redis.call('HSET', KEYS[4], 'tokens', s - 1, 'ts', now)
redis.call('PEXPIRE', KEYS[3], math.ceil(ub / ur * 1000) + 1000)
redis.call('PEXPIRE', KEYS[4], math.ceil(sb / sr * 1000) + 1000)
return {0, 0, shadow}
"""
