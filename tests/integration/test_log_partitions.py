"""A hot stream's log partitions (region/log_jetstream.py) on the real cluster: a hot append
goes to the partition of its key, its retry meets it there, and each partition re-publishes on
the stream's one live subject with ``Nats-Stream`` naming it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg

from chorus.cluster.local import LocalCluster
from chorus.model import Comment
from chorus.names import hot_part_of, live_subject
from region.log_jetstream import JetStreamLog, part_of

pytestmark = pytest.mark.integration

REGION = "us-east"


@pytest_asyncio.fixture
async def nc(cluster: LocalCluster) -> AsyncIterator[Nats]:
    client = await nats.connect(cluster.config.region(REGION).nats_url)
    yield client
    await client.close()


def _comment(stream: str, i: int) -> Comment:
    return Comment(id=f"{stream}-{i}", stream=stream, region=REGION, user="tester",
                   name="tester", text=f"comment {i}", ts=int(time.time() * 1000))


async def test_hot_appends_spread_over_partitions_and_reach_the_live_subject(
        nc: Nats, cluster: LocalCluster, unique: str) -> None:
    partitions = cluster.config.tiers.hot_log_partitions
    assert partitions > 1
    log = JetStreamLog(nc, REGION, hot_partitions=partitions)
    await log.ensure()
    heard: list[Msg] = []
    done = asyncio.Event()

    async def on_live(msg: Msg) -> None:
        heard.append(msg)
        if len(heard) == 41:
            done.set()
    sub = await nc.subscribe(live_subject(REGION, unique), cb=on_live)
    await nc.flush()
    try:
        hot = await asyncio.gather(*(log.append(_comment(unique, i), msg_id=f"{unique}-{i}",
                                                hot=True) for i in range(40)))
        chained = await log.append(_comment(unique, 40), msg_id=f"{unique}-40")
        assert [a.part for a in hot] == [part_of(f"{unique}-{i}", partitions)
                                         for i in range(40)]
        assert len({a.part for a in hot}) == partitions     # 40 keys cover every partition
        assert chained.part == 0
        assert await log.count_after(unique, 0) == 1        # the chained log has one of them
        again = await log.append(_comment(unique, 99), msg_id=f"{unique}-7", hot=True)
        assert again.duplicate and again.part == hot[7].part and again.seq == hot[7].seq
        assert again.comment == hot[7].comment
        await asyncio.wait_for(done.wait(), 10)
        parts = sorted(hot_part_of((m.headers or {})["Nats-Stream"]) for m in heard)
        assert parts == sorted([a.part for a in hot] + [0])
    finally:
        await sub.unsubscribe()
        await log.publisher.close()
