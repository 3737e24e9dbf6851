"""region/stage_nats.py's `StageLink` on a real NATS (the test cluster's us-east server): a
follower's own subscription for an author who has just come is at the server before the
session starts, a round of the plan and a join subscribe it once, and what the link
publishes, hears and refuses is counted. The sessions run on fake transports and an
in-memory log (tests/unit): only the bus is what these cases are about."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from nats.aio.client import Client as Nats

from chorus import natsclient
from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.metrics import Metrics
from chorus.names import own_subject, stage_subject
from region.replay import Replayer
from region.session import Position, Session
from region.stage import StageItem, StageTick, encode
from region.stage_nats import StageLink
from region.tiers_feed import TierFeeds
from tests.unit.fake_transport import FakeTransport
from tests.unit.memory_log import MemoryLog, MemoryReplayCache
from tests.unit.test_stage import HOT, LIMITS, TIERS, a_comment

pytestmark = pytest.mark.integration

REGION = "us-east"


class Quiet:
    """The fanout's `LiveSwitch`: which streams' live feed is not read."""

    def __init__(self) -> None:
        self.quiet: set[str] = set()

    async def set_live(self, stream: str, on: bool) -> None:
        (self.quiet.discard if on else self.quiet.add)(stream)


class Follower:
    """A gateway following us-east.0's stage of stream "s" through a `StageLink`."""

    def __init__(self, nc: Nats, log: MemoryLog, cache: MemoryReplayCache) -> None:
        self.nc = nc
        self.log, self.cache = log, cache
        self.metrics = Metrics(REGION, "us-east.1")
        self.link = StageLink(self.nc, region=REGION, metrics=self.metrics)
        self.feeds = TierFeeds(region=REGION, tiers=TIERS, metrics=self.metrics, store=None,
                               snapshot_url=lambda s: f"http://gw/v1/streams/{s}/snapshot",
                               rng=random.Random(1), gateway="us-east.1", stage=self.link,
                               on_plan=self.link.replan)
        self.link.bind(self.feeds, Quiet())
        self.tasks: list[asyncio.Task[None]] = []
        self.sessions: list[Session] = []

    async def viewer(self, user: str) -> FakeTransport:
        """A session comes, as `Fanout.join` (which waits for the user's own subscription)
        then `Session.start` bring it."""
        transport = FakeTransport()
        session = Session(stream="s", user=user, transport=transport, log=self.log,
                          replayer=Replayer(self.log, self.cache, LIMITS.replay_window),
                          position=Position(REGION, self.log.epoch), limits=LIMITS,
                          gateway="us-east.1")
        self.feeds.joined(session)
        await self.link.own_ready("s", user)
        self.tasks.append(asyncio.create_task(session.run()))
        self.sessions.append(session)
        await session.start(None)
        return transport

    def counted(self, kind: str, outcome: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "chorus_stage_messages_total", {"region": REGION, "gateway": "us-east.1",
                                            "kind": kind, "outcome": outcome})
        return value or 0.0

    def streams(self, role: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "chorus_stage_streams", {"region": REGION, "gateway": "us-east.1", "role": role})
        return value or 0.0

    async def close(self) -> None:
        for session in self.sessions:
            await session.close("test over")
        await asyncio.gather(*self.tasks)


def until(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return check()
    return probe


async def connect(cluster: LocalCluster, n: int) -> list[Nats]:
    """Gateways' clients (chorus/natsclient.py): a flush covers what is still queued."""
    url = cluster.config.region(REGION).nats_url
    return [await natsclient.connect(url, name=f"stage-link-test-{i}") for i in range(n)]


def server_subjects(cluster: LocalCluster, name: str) -> list[str]:
    """The subjects the NATS server holds for the connection called ``name`` (its monitor)."""
    region = cluster.config.region(REGION)
    url = f"http://{region.host}:{region.nats.monitor_port}/connz?subs=1"
    with urllib.request.urlopen(url, timeout=5) as resp:
        doc = json.load(resp)
    return [s for c in doc["connections"] if c.get("name") == name
            for s in c.get("subscriptions_list", [])]


async def _following(follower: Follower, keeper: Nats, log: MemoryLog) -> None:
    """The stream goes sampled with us-east.0 its keeper; the follower hears its stage."""
    follower.metrics.track_stage(follower.feeds.stage_roles)
    follower.feeds.apply("s", "sampled", keeper=False, reading=HOT)
    assert follower.streams("fallback") == 1      # no stage heard yet: samples here
    await follower.link.follow()                   # a round of the plan: the stage subject
    head = log.entries[-1].seq
    await keeper.publish(stage_subject(REGION, "s"), encode(
        StageTick(source="us-east.0", prev=head, seq=head, shown=0, posted=0)))
    await wait_until(until(lambda: follower.feeds.feeds["s"].following),
                     what="the follower hearing the stage", timeout_s=10)
    assert follower.streams("follower") == 1 and follower.streams("fallback") == 0


@contextlib.asynccontextmanager
async def followed(cluster: LocalCluster, fan_posts: int
                   ) -> AsyncIterator[tuple[Follower, Nats, MemoryLog]]:
    """A follower (us-east.1) hearing us-east.0's stage of "s", with a fan watching it after
    ``fan_posts`` of the fan's comments, and the keeper's connection; closed after."""
    follower_nc, keeper = await connect(cluster, 2)
    log = MemoryLog()
    follower = Follower(follower_nc, log, MemoryReplayCache(LIMITS.replay_window))
    try:
        for _ in range(fan_posts):
            log.publish("s", user="fan")
        await follower.viewer("fan")
        await _following(follower, keeper, log)
        yield follower, keeper, log
    finally:
        await follower.close()
        for nc in (follower_nc, keeper):
            await nc.close()


async def _own_post(log: MemoryLog, keeper: Nats, user: str,
                    follower: Follower) -> tuple[str, str]:
    """``user`` posts; the keeper leaves it out of the sample and publishes it to its
    author's own subject at once, and right behind it a comment it shows everyone, chained
    past it. nats-py hands each subscription's messages to a task of its own, so the
    follower may handle the two in either order: the author gets theirs either way."""
    prev = log.entries[-1].seq
    entry = log.publish("s", user=user)
    await keeper.publish(own_subject(REGION, "s", user), encode(StageItem(
        source="us-east.0", seq=entry.seq, prev=prev, comment=entry.comment)))
    shown = log.publish("s", user="fan")
    await keeper.publish(stage_subject(REGION, "s"), encode(StageItem(
        source="us-east.0", seq=shown.seq, prev=prev, comment=shown.comment)))
    return entry.comment.id, shown.comment.id


async def test_an_author_who_just_came_gets_a_comment_posted_at_once(
        cluster: LocalCluster) -> None:
    async with followed(cluster, 3) as (follower, keeper, log):
        # No round of the plan runs between the join and the post (the race): only the
        # join's own wait can have made the subscription.
        me = await follower.viewer("me")
        mine, shown = await _own_post(log, keeper, "me", follower)
        await me.wait_for(lambda: {mine, shown} <= set(me.comment_ids), "both items")
        assert sorted(me.comment_ids[-2:]) == sorted([mine, shown])   # live, once each
        assert len(me.comment_ids) == len(set(me.comment_ids))
        assert follower.counted("own", "received") == 1
        assert own_subject(REGION, "s", "me") in server_subjects(cluster, "stage-link-test-0")


async def test_a_round_of_the_plan_and_a_join_subscribe_an_own_subject_once(
        cluster: LocalCluster) -> None:
    async with followed(cluster, 1) as (follower, _, log):
        session = Session(stream="s", user="me", transport=FakeTransport(), log=log,
                          replayer=Replayer(log, follower.cache, LIMITS.replay_window),
                          position=Position(REGION, log.epoch), limits=LIMITS,
                          gateway="us-east.1")
        follower.feeds.joined(session)
        await asyncio.gather(follower.link.follow(), follower.link.own_ready("s", "me"),
                             follower.link.follow())
        mine = own_subject(REGION, "s", "me")
        # At the server once each (own_ready flushed): what a publish would reach.
        assert server_subjects(cluster, "stage-link-test-0").count(mine) == 1
        # Not a follower's business when it is the stage, nor for a stream in push.
        assert not follower.feeds.wants_own("s", "nobody")
        assert not follower.feeds.wants_own("other", "me")


async def test_what_the_link_publishes_hears_and_refuses_is_counted(
        cluster: LocalCluster) -> None:
    follower_nc, keeper_nc, keeper_link_nc, probe = await connect(cluster, 4)
    log = MemoryLog()
    follower = Follower(follower_nc, log, MemoryReplayCache(LIMITS.replay_window))
    keeper_metrics = Metrics(REGION, "us-east.0")
    keeper = StageLink(keeper_link_nc, region=REGION, metrics=keeper_metrics, max_waiting=2)

    def published(kind: str, outcome: str) -> float:
        value = keeper_metrics.registry.get_sample_value(
            "chorus_stage_messages_total", {"region": REGION, "gateway": "us-east.0",
                                            "kind": kind, "outcome": outcome})
        return value or 0.0

    keeper.bind(follower.feeds, Quiet())   # its planning is not what is tested here
    heard: list[str] = []

    async def hear(msg: object) -> None:
        heard.append(getattr(msg, "subject", ""))
    try:
        log.publish("s", user="fan")
        await follower.viewer("fan")
        await _following(follower, keeper_nc, log)
        assert follower.counted("shared", "received") == 1
        await keeper_nc.publish(stage_subject(REGION, "s"), b"{not json")
        await keeper_nc.publish(stage_subject(REGION, "s"), encode(
            StageTick(source="us-east.0", prev=1, seq=1, shown=0, posted=0)))
        await wait_until(until(lambda: follower.counted("shared", "received") == 2),
                         what="the second tick heard", timeout_s=10)
        assert follower.counted("shared", "rejected") == 1
        # An item on a user's subject that is not that user's comment is refused.
        await follower.viewer("me")
        await keeper_nc.publish(own_subject(REGION, "s", "me"), encode(StageItem(
            source="us-east.0", seq=2, prev=1, comment=a_comment(2, user="eve"))))
        await wait_until(until(lambda: follower.counted("own", "rejected") == 1),
                         what="eve's item refused", timeout_s=10)
        assert follower.counted("own", "received") == 0
        # The keeper: three messages into a queue of two, the oldest goes.
        for subject in (stage_subject(REGION, "s"), own_subject(REGION, "s", "me")):
            await probe.subscribe(subject, cb=hear)
        await probe.flush()
        tick = StageTick(source="us-east.0", prev=1, seq=1, shown=0, posted=0)
        keeper.shared("s", tick)
        keeper.own("s", "me", StageItem(source="us-east.0", seq=2, prev=1,
                                        comment=a_comment(2, user="me")))
        keeper.shared("s", tick)
        assert published("shared", "dropped") == 1
        task = asyncio.create_task(keeper.run())
        try:
            await wait_until(until(lambda: len(heard) >= 2), what="the keeper's two messages",
                             timeout_s=10)
            assert published("shared", "published") == 1
            assert published("own", "published") == 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await follower.close()
        for nc in (follower_nc, keeper_nc, keeper_link_nc, probe):
            await nc.close()
