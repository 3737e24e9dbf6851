"""A region whose Redis lost its presence index counts as having viewers until every gateway
has reported again (DESIGN G1): no other region skips its comments meanwhile. It says so: its
answer is "unknown" (global_/hub.py, ``"viewers": null``), at once, so the others forward to
it without waiting out their question's timeout."""

from __future__ import annotations

import aiohttp
import nats
import pytest
import redis.asyncio as aioredis

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.names import presence_batch_query, presence_query
from global_.hub import PresenceAnswer, PresenceBatchAnswer, PresenceBatchQuery, PresenceQuery
from region.presence import PresenceUnknown
from region.presence_redis import RedisPresence
from tests.integration.test_cell import post, token
from tests.integration.test_global import _metrics, entries_in_log, url, watchers

pytestmark = pytest.mark.integration


async def test_after_a_flush_presence_is_unknown_until_rebuilt(cluster: LocalCluster,
                                                              unique: str) -> None:
    region = cluster.config.region("us-east")
    redis = aioredis.Redis(port=region.redis.port)
    presence = RedisPresence(redis, cluster.config.limits.presence_ttl_s)
    hub = await nats.connect(f"nats://{cluster.config.hub.host}:"
                             f"{cluster.config.hub.client_port}")
    quiet = f"{unique}-quiet"   # watched nowhere: only failing open forwards it to us-east
    async with aiohttp.ClientSession() as http:
        viewers = await watchers(http, cluster, unique, ("us-east",))
        try:
            before = await _metrics(http, cluster, "eu-west")
            await redis.flushall()
            with pytest.raises(PresenceUnknown):
                await presence.count(unique)
            # Asked over the hub, the region answers that it cannot vouch for a count: for
            # one stream, and for every stream of a batched question.
            reply = await hub.request(presence_query("us-east"),
                                      PresenceQuery(unique).encode(), timeout=5)
            assert PresenceAnswer.decode(reply.data) == PresenceAnswer("us-east", unique, None)
            query = PresenceBatchQuery((unique, quiet))
            reply = await hub.request(presence_batch_query("us-east"), query.encode(),
                                      timeout=5)
            assert PresenceBatchAnswer.decode(reply.data) == PresenceBatchAnswer("us-east",
                                                                                 None)
            # So another region's forward of a stream nobody watches is made (fail-open),
            # on an answer, not a timeout.
            status, body = await post(http, url(cluster, "eu-west"), quiet,
                                      token(cluster, f"{unique}-p"), text="while rebuilding")
            assert status == 201, body

            async def forwarded() -> bool:
                return await entries_in_log(cluster, "us-east", quiet) == 1
            await wait_until(forwarded, what="the forward to a region rebuilding presence",
                             timeout_s=30)
            after = await _metrics(http, cluster, "eu-west")
            assert (after["chorus_presence_unknown_total"]
                    > before["chorus_presence_unknown_total"])

            async def rebuilt() -> bool:
                try:
                    return await presence.count(unique) == 1
                except PresenceUnknown:
                    return False
            await wait_until(rebuilt, what="presence rebuilt",
                             timeout_s=cluster.config.limits.presence_ttl_s + 5)
            reply = await hub.request(presence_query("us-east"),
                                      PresenceQuery(unique).encode(), timeout=5)
            assert PresenceAnswer.decode(reply.data).viewers == 1
        finally:
            for viewer in viewers.values():
                await viewer.close()
            await redis.aclose()
            await hub.close()
