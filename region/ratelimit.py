"""Token buckets, applied inside Redis by the one script that admits a post.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s`` (fractions count); a post
takes one token from its user's bucket and one from its stream's, and is refused (429)
unless both have one; a refused post takes nothing. `ADMIT_LUA` does this atomically,
together with the ban checks, so that admitting a post costs one round trip and every
gateway of a region shares one set of buckets and one clock (Redis's). A bucket's key
expires once it would have refilled completely: a missing bucket is a full one.

The script is what runs, so it is what is tested: tests/integration/test_admission.py runs
it against a real Redis.
"""

from __future__ import annotations

# KEYS: banned set, shadow-banned set, user bucket, stream bucket[, slow-mode key]
# ARGV: user, user rate, user burst, stream rate, stream burst[, slow-mode interval ms]
# Returns {verdict, retry_after_ms, shadow}: verdict 0 ok, 1 banned, 2 user limited,
# 3 stream limited, 4 slow mode (the user's last comment in the stream is too recent).
# Time comes from Redis itself so that every gateway shares one clock. Slow mode is a key per
# user and stream that lives for the interval: present means "too soon", and its PTTL is
# the wait.
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
local slow = tonumber(ARGV[6] or '0')
if slow > 0 then
  local left = redis.call('PTTL', KEYS[5])
  if left > 0 then return {4, left, shadow} end
end
local u = level(KEYS[3], ur, ub)
local s = level(KEYS[4], sr, sb)
if u < 1 then return {2, math.ceil((1 - u) / ur * 1000), shadow} end
if s < 1 then return {3, math.ceil((1 - s) / sr * 1000), shadow} end
redis.call('HSET', KEYS[3], 'tokens', u - 1, 'ts', now)
redis.call('HSET', KEYS[4], 'tokens', s - 1, 'ts', now)
redis.call('PEXPIRE', KEYS[3], math.ceil(ub / ur * 1000) + 1000)
redis.call('PEXPIRE', KEYS[4], math.ceil(sb / sr * 1000) + 1000)
if slow > 0 then redis.call('SET', KEYS[5], '1', 'PX', slow) end
return {0, 0, shadow}
"""
