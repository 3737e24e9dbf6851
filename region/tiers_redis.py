"""`TierStore` in the region's Redis: which gateway keeps each warm stream.

``chorus:tierk:<stream>`` holds the keeper's gateway name, with a time to live of
`LEASE_PERIODS` notice periods: the keeper renews it every period, and when it stops (its
viewers of the stream left, or it died) another gateway with viewers takes over within that
time. One round trip per period for all the streams a gateway follows.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis

from chorus.drivers import translated
from region.tiers import NOTICE_PERIOD_S, TierStoreUnavailable

LEASE_PERIODS = 3

# ARGV: gateway, lease ms, stream... Returns the streams the gateway keeps.
_KEEP = """
local gw, ttl = ARGV[1], tonumber(ARGV[2])
local kept = {}
for i = 3, #ARGV do
  local key = 'chorus:tierk:' .. ARGV[i]
  local holder = redis.call('GET', key)
  if not holder then
    redis.call('SET', key, gw, 'PX', ttl)
    kept[#kept + 1] = ARGV[i]
  elseif holder == gw then
    redis.call('PEXPIRE', key, ttl)
    kept[#kept + 1] = ARGV[i]
  end
end
return kept
"""


class RedisTierStore:
    def __init__(self, redis: aioredis.Redis,
                 lease_s: float = LEASE_PERIODS * NOTICE_PERIOD_S) -> None:
        self.lease_ms = round(lease_s * 1000)
        self._keep = redis.register_script(_KEEP)

    async def keep(self, gateway: str, streams: Iterable[str]) -> set[str]:
        wanted = list(streams)
        if not wanted:
            return set()
        with translated(TierStoreUnavailable, "tier leases", driver="redis"):
            kept = await self._keep(keys=[], args=[gateway, self.lease_ms, *wanted])
        return {k.decode() if isinstance(k, bytes) else str(k) for k in kept}
