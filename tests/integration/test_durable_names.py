"""Consumers named per region: acknowledgements stay in their region, and an older
deployment's consumers are taken over where they had got to."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from chorus.cluster.local import LocalCluster
from chorus.durable import ConsumerSpec
from chorus.durable_migration import adopt
from chorus.model import Comment
from chorus.names import COMMENTS_STREAM, comment_subject

pytestmark = pytest.mark.integration


async def test_no_two_regions_hold_a_consumer_of_the_same_name(cluster: LocalCluster) -> None:
    names: dict[str, set[str]] = {}
    for region in cluster.config.regions:
        nc = await nats.connect(region.nats_url)
        try:
            js = nc.jetstream()
            names[region.name] = {c.name for c in await js.consumers_info(COMMENTS_STREAM)
                                  if c.name}
        finally:
            await nc.close()
    regions = list(names)
    for i, a in enumerate(regions):
        for b in regions[i + 1:]:
            assert not names[a] & names[b], (a, b, names[a] & names[b])


async def test_no_region_logs_a_foreign_acknowledgement(cluster: LocalCluster) -> None:
    # With shared names, us-east's acks reached eu-west's consumer of that name, and NATS
    # logged "ACK sequence past last stream sequence" there.
    for region in cluster.config.regions:
        log = cluster.layout.log(f"{region.name}/nats").read_text(errors="replace")
        assert "past last stream sequence" not in log, region.name


async def test_a_consumer_is_taken_over_after_the_old_ones_ack_floor(
        cluster: LocalCluster, unique: str) -> None:
    region = cluster.config.region("us-east")
    nc = await nats.connect(region.nats_url)
    js = nc.jetstream()
    subject = comment_subject(region.name, unique)
    legacy, durable = f"{unique}-old", f"{unique}-new"
    try:
        for i in range(10):
            comment = Comment(f"{i + 1:012x}0000-us-east.0", unique, "us-east", "u", "U",
                              f"c{i}", i)
            await js.publish(subject, comment.encode(), headers={"Nats-Msg-Id": comment.id})
        await js.add_consumer(COMMENTS_STREAM, ConsumerConfig(
            durable_name=legacy, ack_policy=AckPolicy.EXPLICIT, filter_subject=subject))
        old = await js.pull_subscribe_bind(durable=legacy, stream=COMMENTS_STREAM)
        for msg in await old.fetch(6, timeout=5):
            await msg.ack_sync()
        spec = ConsumerSpec(durable=durable, filter_subject=subject, ack_wait_s=10,
                            max_ack_pending=100, batch=10)
        assert "ack floor" in await adopt(nc, spec, legacy)
        assert await adopt(nc, spec, legacy) == "exists"
        new = await js.pull_subscribe_bind(durable=durable, stream=COMMENTS_STREAM)
        texts = [Comment.decode(m.data).text for m in await new.fetch(10, timeout=5)]
        assert texts == ["c6", "c7", "c8", "c9"]   # neither lost nor sent again
        # Without an old consumer, a new one starts at the beginning (a new deployment).
        fresh = ConsumerSpec(durable=f"{unique}-fresh", filter_subject=subject, ack_wait_s=10,
                             max_ack_pending=100, batch=10)
        assert "start of the log" in await adopt(nc, fresh, f"{unique}-none")
        sub = await js.pull_subscribe_bind(durable=fresh.durable, stream=COMMENTS_STREAM)
        assert len(await sub.fetch(10, timeout=5)) == 10
    finally:
        for name in (legacy, durable, f"{unique}-fresh"):
            try:
                await js.delete_consumer(COMMENTS_STREAM, name)
            except nats.js.errors.NotFoundError:
                pass
        await asyncio.wait_for(nc.close(), 5)
