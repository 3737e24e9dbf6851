"""The outbox of a region's hot log partitions on the real cluster: a comment stored in
partition k of its origin reaches partition k of each region that has viewers of its stream,
once, and no other region; the operators' outbox depth counts the partitions and returns to
0."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import AsyncIterator

import nats
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from nats.aio.client import Client as Nats

from chorus.cluster.health import outboxes, wait_until
from chorus.cluster.local import LocalCluster
from chorus.cluster.ops import log_counts
from chorus.ids import IdGenerator
from chorus.model import Comment
from chorus.names import (
    hot_classifier_durable,
    hot_direct_get,
    hot_outbox_durable,
    hot_outbox_lease_key,
    hot_stream,
    hot_subject,
    outbox_lease_bucket,
)
from global_.outbox_share import SHED_EVERY_S, fair_share
from region.log import part_of
from region.log_jetstream import JetStreamLog
from region.presence_redis import RedisPresence

pytestmark = pytest.mark.integration

ORIGIN = "us-east"
WATCHING = "eu-west"       # has a viewer of the stream: forwarded to
EMPTY = "ap-south"         # says it has none: not forwarded to
DELIVERED_TIMEOUT_S = 30.0


@pytest_asyncio.fixture
async def origin(cluster: LocalCluster) -> AsyncIterator[Nats]:
    nc = await nats.connect(cluster.config.region(ORIGIN).nats_url)
    yield nc
    await nc.close()


@contextlib.asynccontextmanager
async def viewer_in(cluster: LocalCluster, region: str, stream: str) -> AsyncIterator[None]:
    """One viewer of ``stream`` in ``region``, as a gateway reports it (its heartbeat
    included, so it does not expire while the test runs)."""
    r = cluster.config.region(region)
    redis = aioredis.Redis(host=r.host, port=r.redis.port)
    presence = RedisPresence(redis, cluster.config.limits.presence_ttl_s)
    gateway = f"{region}.test-{stream}"

    async def heartbeat() -> None:
        while True:
            await presence.report(gateway, {stream: 1}, set())
            await asyncio.sleep(cluster.config.limits.presence_ttl_s / 4)

    await presence.report(gateway, {stream: 1}, set())
    task = asyncio.create_task(heartbeat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await presence.withdraw(gateway, {stream})
        await redis.aclose()


async def answers(cluster: LocalCluster, stream: str, region: str) -> int | None:
    """``region``'s answer to the outbox's presence question about ``stream``."""
    hub = cluster.config.hub
    nc = await nats.connect(f"nats://{hub.host}:{hub.client_port}")
    try:
        reply = await nc.request(f"chorus.presence.q.{region}",
                                 json.dumps({"stream": stream}).encode(), timeout=1)
        viewers: int | None = json.loads(reply.data)["viewers"]
        return viewers
    except (nats.errors.Error, TimeoutError):
        return None
    finally:
        await nc.close()


async def ids_in_partition(cluster: LocalCluster, region: str, part: int,
                           stream: str) -> list[str]:
    """The comment ids of ``stream`` in ``region``'s hot partition ``part``, in its order
    (a batch Direct Get: every copy, duplicates included)."""
    nc = await nats.connect(cluster.config.region(region).nats_url)
    try:
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        body = {"seq": 1, "batch": 10_000, "next_by_subj": hot_subject(region, part, stream)}
        await nc.publish(hot_direct_get(part), json.dumps(body).encode(), reply=inbox)
        out: list[str] = []
        while True:
            msg = await sub.next_msg(timeout=5)
            if (msg.headers or {}).get("Status"):
                return out      # 204: end of the batch; 404: nothing there
            out.append(Comment.decode(msg.data).id)
    finally:
        await nc.close()


def comments(stream: str, count: int) -> list[Comment]:
    ids = IdGenerator(f"{ORIGIN}.7")
    return [Comment(id=ids.next(), stream=stream, region=ORIGIN, user=f"u{i % 9}",
                    name=f"User {i % 9}", text=f"hot {i}", ts=int(time.time() * 1000))
            for i in range(count)]


async def test_hot_partitions_are_forwarded_to_the_partition_of_the_id_once_and_drain(
        cluster: LocalCluster, origin: Nats, unique: str) -> None:
    partitions = cluster.config.tiers.hot_log_partitions
    assert partitions > 1
    log = JetStreamLog(origin, ORIGIN, hot_partitions=partitions)
    await log.ensure()
    async with viewer_in(cluster, WATCHING, unique):
        # The empty region must be able to say 0: one still rebuilding its presence (for one
        # presence TTL after the cluster started) answers "unknown" and is forwarded to.
        async def known() -> bool:
            return (await answers(cluster, unique, WATCHING) == 1
                    and await answers(cluster, unique, EMPTY) == 0)
        await wait_until(known, what="presence of the stream known in both regions",
                         timeout_s=cluster.config.limits.presence_ttl_s + 30)
        try:
            posted = comments(unique, 60)
            appended = await asyncio.gather(*(log.append(c, msg_id=c.id, hot=True)
                                              for c in posted))
            # A retry of a post meets its first copy (the origin's duplicate window).
            again = await log.append(posted[0], msg_id=posted[0].id, hot=True)
            assert again.duplicate
            want = {part: [a.comment.id for a in appended if a.part == part]
                    for part in range(1, partitions + 1)}
            assert all(want.values())       # 60 keys cover every partition

            async def delivered() -> bool:
                for part, ids in want.items():
                    if len(await ids_in_partition(cluster, WATCHING, part, unique)) < len(ids):
                        return False
                return True
            await wait_until(delivered, what=f"{WATCHING}'s partitions to hold every comment",
                             timeout_s=DELIVERED_TIMEOUT_S)

            async def drained() -> bool:
                depths = await outboxes(cluster.config, ORIGIN)
                return all(d == 0 for d in depths.values())
            await wait_until(drained, what=f"{ORIGIN}'s outboxes empty",
                             timeout_s=DELIVERED_TIMEOUT_S)
            for part, ids in want.items():
                # Once each, in the partition it was stored in at its origin, in its order.
                stored = await ids_in_partition(cluster, ORIGIN, part, unique)
                assert sorted(stored) == sorted(ids), part
                assert await ids_in_partition(cluster, WATCHING, part, unique) == stored, part
                assert await ids_in_partition(cluster, EMPTY, part, unique) == [], part
            # The operators' busiest streams count them in every part of the origin's log.
            counts = await log_counts(cluster.config.region(ORIGIN), partitions)
            assert counts is not None and counts[unique] == len(posted)
            # Nothing went into the chained logs (neither the origin's nor the destination's).
            for region in (ORIGIN, WATCHING):
                nc = await nats.connect(cluster.config.region(region).nats_url)
                try:
                    assert await JetStreamLog(nc, region).count_after(unique, 0) == 0
                finally:
                    await nc.close()
        finally:
            await log.publisher.close()


async def test_a_post_stored_under_its_client_key_reaches_the_partition_of_its_id(
        cluster: LocalCluster, origin: Nats, unique: str) -> None:
    """A post with a client key is stored at its origin in the partition of the key, and at
    the destination in the partition of its id, where late join stores its copy too: the
    destination's duplicate window makes the outbox's copy and late join's one comment."""
    partitions = cluster.config.tiers.hot_log_partitions
    log = JetStreamLog(origin, ORIGIN, hot_partitions=partitions)
    await log.ensure()
    async with viewer_in(cluster, WATCHING, unique):
        async def visible() -> bool:
            return await answers(cluster, unique, WATCHING) == 1
        await wait_until(visible, what="the viewer known", timeout_s=30)
        posted = comments(unique, 24)
        try:
            appended = [await log.append(c, msg_id=f"k:{unique}:{i}", hot=True)
                        for i, c in enumerate(posted)]
            assert any(a.part != part_of(a.comment.id, partitions) for a in appended)
            want = {part: sorted(c.id for c in posted if part_of(c.id, partitions) == part)
                    for part in range(1, partitions + 1)}

            async def delivered() -> bool:
                got = {part: sorted(await ids_in_partition(cluster, WATCHING, part, unique))
                       for part in want}
                return got == want
            await wait_until(delivered, what=f"{WATCHING}'s partitions of the ids",
                             timeout_s=DELIVERED_TIMEOUT_S)
            # Late join's copy of the same comments adds nothing there.
            dest_nc = await nats.connect(cluster.config.region(WATCHING).nats_url)
            try:
                dest = JetStreamLog(dest_nc, WATCHING, hot_partitions=partitions)
                again = [await dest.append(c, msg_id=c.id, hot=True) for c in posted]
                assert all(a.duplicate for a in again)
                await dest.publisher.close()
            finally:
                await dest_nc.close()
        finally:
            await log.publisher.close()


async def test_a_cut_link_loses_no_hot_comment_and_the_partitions_outboxes_drain(
        cluster: LocalCluster, origin: Nats, unique: str) -> None:
    partitions = cluster.config.tiers.hot_log_partitions
    log = JetStreamLog(origin, ORIGIN, hot_partitions=partitions)
    await log.ensure()
    async with viewer_in(cluster, WATCHING, unique):
        async def visible() -> bool:
            return await answers(cluster, unique, WATCHING) == 1
        await wait_until(visible, what="the viewer known", timeout_s=30)
        posted = comments(unique, 40)
        cluster.set_link(WATCHING, enabled=False)
        try:
            appended = await asyncio.gather(*(log.append(c, msg_id=c.id, hot=True)
                                              for c in posted))

            async def waiting() -> bool:
                depth = (await outboxes(cluster.config, ORIGIN))[WATCHING]
                return depth is not None and depth > 0
            await wait_until(waiting, what="the partitions' outboxes holding the comments",
                             timeout_s=DELIVERED_TIMEOUT_S)
        finally:
            cluster.set_link(WATCHING, enabled=True)
        try:
            want = {part: sorted(a.comment.id for a in appended if a.part == part)
                    for part in range(1, partitions + 1)}

            async def drained() -> bool:
                depth = (await outboxes(cluster.config, ORIGIN))[WATCHING]
                return depth == 0
            await wait_until(drained, what=f"{ORIGIN}'s outboxes to {WATCHING} empty",
                             timeout_s=DELIVERED_TIMEOUT_S * 2)
            for part, ids in want.items():
                got = await ids_in_partition(cluster, WATCHING, part, unique)
                assert sorted(got) == ids, part        # each once, in its partition
                stored = await ids_in_partition(cluster, ORIGIN, part, unique)
                assert got == stored, part             # in the partition's order
        finally:
            await log.publisher.close()


async def partition_consumers(nc: Nats, partitions: int) -> set[str]:
    """The names of every consumer on the hot partitions of the region ``nc`` is in."""
    js = nc.jetstream()
    out: set[str] = set()
    for part in range(1, partitions + 1):
        out |= {c.name for c in await js.consumers_info(hot_stream(part)) if c.name}
    return out


async def test_no_two_regions_hold_a_consumer_of_the_same_name_on_a_partition(
        cluster: LocalCluster) -> None:
    # Acks travel on $JS.ACK.<stream>.<durable>...: a partition's consumer named the same in
    # two regions would take the other region's acknowledgements.
    partitions = cluster.config.tiers.hot_log_partitions
    names: dict[str, set[str]] = {}
    for region in cluster.config.regions:
        # Each gateway creates its consumers as it starts: wait until they are all there (an
        # outbox per other region and the classifier's; the archive's only with Cassandra).
        want = {hot_outbox_durable(region.name, dest.name, part)
                for dest in cluster.config.regions if dest.name != region.name
                for part in range(1, partitions + 1)}
        want |= {hot_classifier_durable(region.name, part) for part in range(1, partitions + 1)}
        nc = await nats.connect(region.nats_url)
        try:
            async def created(nc: Nats = nc, name: str = region.name,
                              want: set[str] = want) -> bool:
                names[name] = await partition_consumers(nc, partitions)
                return want <= names[name]
            await wait_until(created, what=f"{region.name}'s partition consumers",
                             timeout_s=30)
        finally:
            await nc.close()
    regions = list(names)
    for i, a in enumerate(regions):
        for b in regions[i + 1:]:
            assert not names[a] & names[b], (a, b, names[a] & names[b])


async def lease_holders(nc: Nats, region: str) -> dict[str, str]:
    """Each outbox lease of ``region`` that is held now, and its holder."""
    try:
        kv = await nc.jetstream().key_value(outbox_lease_bucket(region))
        keys = await kv.keys()
    except (nats.js.errors.NotFoundError, nats.js.errors.NoKeysError):
        return {}
    out = {}
    for key in keys:
        with contextlib.suppress(nats.js.errors.KeyNotFoundError):
            entry = await kv.get(key)
            if entry.value:
                out[key] = entry.value.decode()
    return out


async def test_a_regions_outbox_leases_spread_over_its_gateways(
        cluster: LocalCluster, origin: Nats) -> None:
    config = cluster.config
    dests = [r.name for r in config.regions if r.name != ORIGIN]
    leases = {hot_outbox_lease_key(dest, part) for dest in dests
              for part in range(config.tiers.hot_log_partitions + 1)}
    gateways = len(config.region(ORIGIN).gateway_urls)
    assert gateways > 1
    share = fair_share(len(leases), gateways)
    holders: dict[str, str] = {}

    async def spread() -> bool:
        nonlocal holders
        holders = await lease_holders(origin, ORIGIN)
        per_holder = Counter(holders.values())
        return (set(holders) == leases and len(per_holder) == gateways
                and max(per_holder.values()) <= share)
    # A gateway gives one lease back every SHED_EVERY_S while it holds more than its share.
    await wait_until(spread, what=f"{ORIGIN}'s outbox leases spread over its gateways",
                     timeout_s=len(leases) * SHED_EVERY_S + 30)
