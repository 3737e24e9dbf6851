"""A region whose Redis lost its presence index counts as having viewers until every gateway
has reported again (DESIGN G1): no other region skips its comments meanwhile."""

from __future__ import annotations

import json

import nats
import pytest
import redis.asyncio as aioredis

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.names import presence_query
from region.presence import PresenceUnknown
from region.presence_redis import RedisPresence
from tests.integration.test_global import watchers

pytestmark = pytest.mark.integration


async def test_after_a_flush_presence_is_unknown_until_rebuilt(cluster: LocalCluster,
                                                              unique: str) -> None:
    import aiohttp

    region = cluster.config.region("us-east")
    redis = aioredis.Redis(port=region.redis.port)
    presence = RedisPresence(redis, cluster.config.limits.presence_ttl_s)
    hub = await nats.connect(f"nats://{cluster.config.hub.host}:"
                             f"{cluster.config.hub.client_port}")
    async with aiohttp.ClientSession() as http:
        viewers = await watchers(http, cluster, unique, ("us-east",))
        try:
            await redis.flushall()
            with pytest.raises(PresenceUnknown):
                await presence.count(unique)
            # Asked over the hub, the region does not answer a count it cannot vouch for:
            # the asker fails open (a region without an answer has viewers).
            with pytest.raises(nats.errors.TimeoutError):
                await hub.request(presence_query("us-east"),
                                  json.dumps({"stream": unique}).encode(), timeout=1)

            async def rebuilt() -> bool:
                try:
                    return await presence.count(unique) == 1
                except PresenceUnknown:
                    return False
            await wait_until(rebuilt, what="presence rebuilt",
                             timeout_s=cluster.config.limits.presence_ttl_s + 5)
        finally:
            for viewer in viewers.values():
                await viewer.close()
            await redis.aclose()
            await hub.close()
