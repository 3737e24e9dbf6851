"""Token buckets, applied inside Redis by the one script that admits a post.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_s`` (fractions count); a post
takes one token from its user's bucket and one from its stream's, and is refused (429)
unless both have one; a refused post takes nothing. `ADMIT_LUA` does this atomically,
together with slow mode, so that admitting a post costs one round trip and every gateway of
a region shares one set of buckets and one clock (Redis's). Bans are not its business: they
are the moderation state's, checked before it (region/moderation_service.py). A bucket's key
expires once it would have refilled completely: a missing bucket is a full one.

The script is what runs, so it is what is tested: tests/integration/test_admission.py runs
it against a real Redis.
"""

from __future__ import annotations

# KEYS: user bucket, stream bucket[, slow-mode key]
# ARGV: user rate, user burst, stream rate, stream burst[, slow-mode interval ms]
# Returns {verdict, retry_after_ms}: verdict 0 ok, 2 user limited, 3 stream limited, 4 slow
# mode (the user's last comment in the stream is too recent). (1 was "banned", by the Redis
# sets of earlier versions: region/moderation_legacy.py carries those bans over.)
# Time comes from Redis itself so that every gateway shares one clock. Slow mode is a key per
# user and stream that lives for the interval: present means "too soon", and its PTTL is
# the wait.
ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, rate, burst)
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  if not b[1] then return burst end
  local elapsed = math.max(0, now - tonumber(b[2])) / 1000
  return math.min(burst, tonumber(b[1]) + elapsed * rate)
end
local ur, ub = tonumber(ARGV[1]), tonumber(ARGV[2])
local sr, sb = tonumber(ARGV[3]), tonumber(ARGV[4])
local slow = tonumber(ARGV[5] or '0')
if slow > 0 then
  local left = redis.call('PTTL', KEYS[3])
  if left > 0 then return {4, left} end
end
local u = level(KEYS[1], ur, ub)
local s = level(KEYS[2], sr, sb)
if u < 1 then return {2, math.ceil((1 - u) / ur * 1000)} end
if s < 1 then return {3, math.ceil((1 - s) / sr * 1000)} end
redis.call('HSET', KEYS[1], 'tokens', u - 1, 'ts', now)
redis.call('HSET', KEYS[2], 'tokens', s - 1, 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(ub / ur * 1000) + 1000)
redis.call('PEXPIRE', KEYS[2], math.ceil(sb / sr * 1000) + 1000)
if slow > 0 then redis.call('SET', KEYS[3], '1', 'PX', slow) end
return {0, 0}
"""
