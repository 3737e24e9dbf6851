"""The classifier of a region with hot log partitions, on the real cluster: its one worker
under the region's lease reads the chained log and every partition into one window, so a
flood spread over the partitions (no partition holding enough copies to be a flood by
itself) is taken down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import nats
import pytest
import pytest_asyncio

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.durable import pending_all
from chorus.ids import IdGenerator
from chorus.model import Comment
from chorus.names import hot_classifier_durable, log_stream
from region.log_jetstream import JetStreamLog, part_of
from tests.integration.test_global import url
from tests.integration.test_moderation import FLOOD, call, mod_token

pytestmark = pytest.mark.integration

REGION = "us-east"
PER_PART = 2          # copies of the flood per partition: under the flood rule's 4 users
SCORED_TIMEOUT_S = 30.0


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def spread_flood(stream: str, partitions: int) -> list[Comment]:
    """The flood text from as many users as fit ``PER_PART`` copies in each partition."""
    ids = IdGenerator(f"{REGION}.8")
    per_part = dict.fromkeys(range(1, partitions + 1), 0)
    out: list[Comment] = []
    while len(out) < PER_PART * partitions:
        comment_id = ids.next()
        part = part_of(comment_id, partitions)
        if per_part[part] == PER_PART:
            continue
        per_part[part] += 1
        user = f"{stream}-bot{len(out)}"
        out.append(Comment(id=comment_id, stream=stream, region=REGION, user=user, name=user,
                           text=FLOOD, ts=int(time.time() * 1000)))
    return out


async def test_a_flood_spread_over_the_partitions_is_judged_in_one_window(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    partitions = cluster.config.tiers.hot_log_partitions
    assert partitions > 1
    status, doc = await call(http, "PUT", f"{url(cluster, REGION)}/v1/streams/{unique}/"
                             "moderation", mod_token(cluster), {"classifier": "retract"})
    assert status == 200, doc
    nc = await nats.connect(cluster.config.region(REGION).nats_url)
    log = JetStreamLog(nc, REGION, hot_partitions=partitions)
    try:
        await log.ensure()
        flood = spread_flood(unique, partitions)
        appended = await asyncio.gather(*(log.append(c, msg_id=c.id, hot=True)
                                          for c in flood))
        assert sorted(a.part for a in appended) == sorted(
            part for part in range(1, partitions + 1) for _ in range(PER_PART))
        ids = {c.id for c in flood}
        verdicts: dict[str, dict[str, Any]] = {}

        async def taken_down() -> bool:
            nonlocal verdicts
            status, audit = await call(http, "GET", f"{url(cluster, REGION)}/v1/moderation/"
                                       "audit?limit=500", mod_token(cluster))
            assert status == 200, audit
            verdicts = {d["action"]["comment_id"]: d for d in audit["items"]
                        if d["by"] == "classifier" and d["action"]["stream"] == unique}
            # Every copy from the fourth user on (whichever three the window saw first).
            return len(verdicts) >= len(flood) - 3
        await wait_until(taken_down, what="the flood's copies retracted",
                         timeout_s=SCORED_TIMEOUT_S)

        async def scored() -> bool:
            return await pending_all(nc, ((hot_classifier_durable(REGION, part),
                                           log_stream(part))
                                          for part in range(partitions + 1))) == 0
        await wait_until(scored, what="every partition's classifier consumer caught up",
                         timeout_s=SCORED_TIMEOUT_S)
        assert set(verdicts) <= ids
        assert all(d["action"]["state"] == "retracted" for d in verdicts.values())
    finally:
        await log.publisher.close()
        await nc.close()
