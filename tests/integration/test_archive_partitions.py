"""The archive of a region with hot log partitions, on real Cassandra: each partition's
persisters archive what it holds, once, and the lag operators see counts the partitions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import nats
import pytest
import pytest_asyncio

from chorus.cluster import health
from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.ids import IdGenerator
from chorus.model import Comment
from region.log_jetstream import JetStreamLog
from region.persister import lag
from tests.integration.test_archive import ARCHIVED_TIMEOUT_S, archived, url
from tests.integration.test_cell import token

pytestmark = [pytest.mark.integration, pytest.mark.cassandra]

REGION = "us-east"


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_hot_partitions_are_archived_once_and_counted_in_the_lag(
        archive_cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    config = archive_cluster.config
    partitions = config.tiers.hot_log_partitions
    assert partitions > 1
    nc = await nats.connect(config.region(REGION).nats_url)
    log = JetStreamLog(nc, REGION, hot_partitions=partitions)
    try:
        await log.ensure()
        ids = IdGenerator(f"{REGION}.6")
        posted = [Comment(id=ids.next(), stream=unique, region=REGION, user=f"u{i % 7}",
                          name=f"User {i % 7}", text=f"hot {i}", ts=int(time.time() * 1000))
                  for i in range(40)]
        appended = await asyncio.gather(*(log.append(c, msg_id=c.id, hot=True)
                                          for c in posted[:-1]))
        chained = await log.append(posted[-1], msg_id=posted[-1].id)   # and one in part 0
        assert len({a.part for a in appended}) == partitions and chained.part == 0
        want = {c.id for c in posted}
        got = await archived(http, url(archive_cluster, "eu-west"), unique,
                             token(archive_cluster, "reader"), want)
        assert sorted(got) == sorted(want)      # each once, read in another datacenter

        async def caught_up() -> bool:
            return await lag(nc, REGION, partitions=partitions) == 0
        await wait_until(caught_up, what="every partition's persisters caught up",
                         timeout_s=ARCHIVED_TIMEOUT_S)

        async def status_says_zero() -> bool:
            return await health.archive_lag(config, REGION) == 0
        await wait_until(status_says_zero, what="chorus status showing no archive lag",
                         timeout_s=ARCHIVED_TIMEOUT_S)
    finally:
        await log.publisher.close()
        await nc.close()
