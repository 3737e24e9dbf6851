"""A region answers a batched presence question from its presence index in Redis, and still
answers the per-stream question that regions on older code ask."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import nats
import pytest
import pytest_asyncio

from chorus.cluster.local import LocalCluster
from chorus.names import presence_batch_query, presence_query
from global_.hub import PresenceAnswer, PresenceBatchAnswer, PresenceBatchQuery, PresenceQuery
from tests.integration.test_global import close_all, watchers

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_batched_question_is_answered_for_every_stream_and_the_old_one_too(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = await watchers(http, cluster, unique, ("eu-west",))
    hub = await nats.connect(f"nats://{cluster.config.hub.host}:{cluster.config.hub.client_port}")
    try:
        query = PresenceBatchQuery((unique, f"{unique}-quiet"))
        reply = await hub.request(presence_batch_query("eu-west"), query.encode(), timeout=2)
        answer = PresenceBatchAnswer.decode(reply.data)
        assert answer.answers("eu-west", query)
        assert answer.viewers == {unique: 1, f"{unique}-quiet": 0}
        reply = await hub.request(presence_query("eu-west"), PresenceQuery(unique).encode(),
                                  timeout=2)
        assert PresenceAnswer.decode(reply.data).viewers == 1
    finally:
        await hub.close()
        await close_all(viewers)
