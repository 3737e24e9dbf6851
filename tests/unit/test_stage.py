"""The region's sampling stage without servers: its messages, a follower's choice of stage,
and two gateways of one region on real sessions (fake transports, one in-memory log), the
keeper publishing through an in-memory bus and the other following it: one sample for the
region, the priority lane and authors' own comments everywhere, and a follower that falls
back to its live feed when the stage goes silent and takes a new stage, without a gap or a
duplicate."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

from chorus.config import Limits, Tiers
from chorus.metrics import Metrics
from chorus.model import Badge, Comment
from chorus.names import own_subject, stage_subject
from region.log import Entry
from region.protocol import Comments, Recovered
from region.replay import Replayer
from region.session import Position, Session
from region.stage import StageItem, StageMessage, StageTick, StageWatch, decode, encode
from region.tiers import Reading
from region.tiers_feed import StagePlan, TierFeeds
from tests.unit.fake_transport import FakeTransport
from tests.unit.memory_log import MemoryLog, MemoryReplayCache

LIMITS = Limits(send_queue_max=64, tick_ms=1, replay_window=500)
TIERS = Tiers(sampled_per_viewer_per_s=3, snapshot_interval_s=1.0)
HOT = Reading(viewers=10_000, rate_per_s=100.0)


def a_comment(n: int = 1, user: str = "ana", badge: Badge = "") -> Comment:
    return Comment(id=f"{n:016x}-us-east.0", stream="s", region="us-east", user=user,
                   name=user, text=f"c{n} \u00e9\"", ts=1_700_000_000_000 + n, badge=badge)


# -- the messages ------------------------------------------------------------------------------


def test_messages_round_trip() -> None:
    item = StageItem(source="us-east.0", seq=7, prev=3, comment=a_comment())
    tick = StageTick(source="us-east.1", prev=7, seq=12, shown=4, posted=60)
    beat = StageTick(source="us-east.1", prev=12, seq=12, shown=0, posted=0)
    for message in (item, tick, beat):
        assert decode(encode(message)) == message


@pytest.mark.parametrize("data", [
    b"", b"[]", b"{}", b'{"k":"item"}',
    b'{"k":"item","src":"g","seq":3,"prev":3,"c":{}}',         # chained to itself
    b'{"k":"tick","src":"g","seq":2,"prev":3,"shown":0,"posted":0}',   # backwards
    b'{"k":"tick","src":"g","seq":3,"prev":2,"shown":5,"posted":4}',   # more shown than posted
    b'{"k":"tick","src":"g","seq":3,"prev":2,"shown":true,"posted":4}',
    b'{"k":"tick","src":"","seq":3,"prev":2,"shown":0,"posted":4}',
    b'{"k":"nope","src":"g","seq":3,"prev":2}',
    b'{"k":"item","src":"g","seq":3,"prev":-1,"c":{}}',
    b"\xff",
])
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode(data)


def test_the_subjects_hold_any_user_id() -> None:
    assert stage_subject("us-east", "s") == "sampled.us-east.s"
    subject = own_subject("us-east", "s", ".ana..b|c@d")
    assert subject.startswith("own.us-east.s.") and subject.count(".") == 3


# -- a follower's choice ----------------------------------------------------------------------


def test_a_follower_keeps_its_stage_until_it_is_silent() -> None:
    watch = StageWatch(silent_s=2.0)
    assert not watch.following and not watch.lapsed(0.0)
    assert watch.hear("a", 0.0) and watch.following
    assert not watch.hear("b", 1.0)      # two stages while the lease changes hands
    assert watch.hear("a", 1.5)
    assert not watch.accepts("b") and watch.accepts("a")
    assert not watch.lapsed(3.4)
    assert watch.lapsed(3.6) and not watch.following
    assert not watch.lapsed(10.0)        # once
    assert watch.hear("b", 10.0)         # a new stage is taken as soon as it is heard
    assert watch.hear("c", 12.5)         # and another when that one went silent


# -- two gateways of a region ---------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Bus:
    """The region's NATS for stage messages: delivered at once, in order, to every gateway
    that subscribed (`TierFeeds.plan`)."""

    def __init__(self) -> None:
        self.gateways: list[Gateway] = []
        self.up = True
        self.sent = 0

    def shared(self, stream: str, message: StageMessage) -> None:
        if not self.up:
            return
        self.sent += 1
        for gw in self.gateways:
            if stream in gw.feeds.plan().stages:
                gw.feeds.heard(stream, message)

    def own(self, stream: str, user: str, item: StageItem) -> None:
        if not self.up:
            return
        self.sent += 1
        for gw in self.gateways:
            if (stream, user) in gw.feeds.plan().own:
                gw.feeds.heard_own(stream, user, item)


class Viewer:
    def __init__(self, session: Session, transport: FakeTransport) -> None:
        self.session = session
        self.transport = transport

    @property
    def ids(self) -> list[str]:
        return self.transport.comment_ids


class Gateway:
    def __init__(self, name: str, log: MemoryLog, cache: MemoryReplayCache, clock: Clock,
                 bus: Bus, seed: int) -> None:
        self.name = name
        self.log = log
        self.cache = cache
        self.plans: list[StagePlan] = []
        self.feeds = TierFeeds(region="us-east", tiers=TIERS, metrics=Metrics("us-east", name),
                               store=None, clock=clock, wall=lambda: 1.7e9,
                               snapshot_url=lambda s: f"http://gw/v1/streams/{s}/snapshot",
                               rng=random.Random(seed), gateway=name, stage=bus,
                               on_plan=lambda: self.plans.append(self.feeds.plan()))
        self.viewers: list[Viewer] = []
        self.tasks: list[asyncio.Task[None]] = []
        self.live_read = 0
        bus.gateways.append(self)

    async def viewer(self, user: str) -> Viewer:
        transport = FakeTransport()
        session = Session(stream="s", user=user, transport=transport, log=self.log,
                          replayer=Replayer(self.log, self.cache, LIMITS.replay_window),
                          position=Position("us-east", self.log.epoch), limits=LIMITS,
                          gateway=self.name)
        self.feeds.joined(session)
        self.tasks.append(asyncio.create_task(session.run()))
        await session.start(None)
        viewer = Viewer(session, transport)
        self.viewers.append(viewer)
        return viewer

    def deliver(self, entry: Entry) -> None:
        """The fanout: the live feed, unless the stage delivers the stream here."""
        if "s" in self.feeds.plan().quiet:
            return
        self.live_read += 1
        if not self.feeds.take(entry):
            for viewer in self.viewers:
                viewer.session.offer(entry)

    async def settled(self) -> None:
        for viewer in self.viewers:
            await viewer.transport.wait_for(_written(viewer.session), "written")

    async def close(self) -> None:
        for viewer in self.viewers:
            await viewer.session.close("test over")
        await asyncio.gather(*self.tasks)


def _written(session: Session) -> Callable[[], bool]:
    return lambda: not session.writer._queue


class Region:
    def __init__(self) -> None:
        self.log = MemoryLog()
        self.cache = MemoryReplayCache(LIMITS.replay_window)
        self.clock = Clock()
        self.bus = Bus()
        self.a = Gateway("us-east.0", self.log, self.cache, self.clock, self.bus, 1)
        self.b = Gateway("us-east.1", self.log, self.cache, self.clock, self.bus, 2)
        self.n = 0

    async def post(self, user: str = "fan", badge: Badge = "",
                   dead: Gateway | None = None) -> Entry:
        self.n += 1
        c = Comment(id=f"{self.n:016x}-us-east.0", stream="s", region="us-east", user=user,
                    name=user, text=f"c{self.n}", ts=int(self.clock.now * 1000), badge=badge)
        await self.log.append(c, msg_id=c.id)
        entry = self.log.entries[-1]
        await self.cache.add([entry])
        for gw in (self.a, self.b):
            if gw is not dead:
                gw.deliver(entry)
        return entry

    async def second(self, n: int, dead: Gateway | None = None, **post: str) -> list[Entry]:
        out = []
        for _ in range(n):
            out.append(await self.post(dead=dead, **post))  # type: ignore[arg-type]
            self.clock.now += 1 / n
        for gw in (self.a, self.b):
            if gw is not dead:
                await gw.feeds.step()
        return out

    def hot(self, keeper: Gateway | None) -> None:
        for gw in (self.a, self.b):
            gw.feeds.apply("s", "sampled", keeper=gw is keeper, reading=HOT)

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()


def clean(viewer: Viewer) -> None:
    assert len(viewer.ids) == len(set(viewer.ids)), "a duplicate"
    assert not [f for f in viewer.transport.of_type(Recovered) if not f.recovered]


async def test_a_follower_delivers_the_stages_sample_lane_and_own_comments() -> None:
    region = Region()
    try:
        ka, fb, me = (await region.a.viewer("ka"), await region.b.viewer("fb"),
                      await region.b.viewer("me"))
        await region.second(5)
        region.hot(keeper=region.a)
        assert region.a.feeds.plan().stages == frozenset()     # the stage hears no stage
        assert region.b.feeds.plan().own == {("s", "fb"), ("s", "me")}
        await region.second(60)                                # the follower hears a tick
        assert region.b.feeds.plan().quiet == {"s"}            # and stops reading live
        read = region.b.live_read
        flood = []
        for _ in range(4):
            flood += await region.second(60)
        host = await region.post(user="h", badge="host")
        mine = [await region.post(user="me") for _ in range(3)]
        await region.second(60)
        await region.a.settled()
        await region.b.settled()
        assert region.b.live_read == read                      # not one live entry read
        # One sample for the region: the follower shows what the keeper shows.
        assert ka.ids[5:] == fb.ids[5:]
        assert host.comment.id in fb.ids
        assert all(e.comment.id in me.ids for e in mine)       # the author's own, in chain
        assert ka.session.sent == fb.session.sent == me.session.sent
        sampled = set(fb.ids[5:]) - {host.comment.id} - {e.comment.id for e in mine}
        assert len(sampled) <= 6 * TIERS.sampled_per_viewer_per_s
        # "n of m": the region's whole second, as the stage counted it.
        samples = [f.sample for f in fb.transport.of_type(Comments) if f.sample is not None]
        assert samples and max(s.posted for s in samples) >= 60
        for v in (ka, fb, me):
            clean(v)
    finally:
        await region.close()


async def test_a_silent_stage_is_replaced_by_sampling_here_then_by_a_new_stage() -> None:
    region = Region()
    try:
        await region.a.viewer("ka")
        fb, host_fan = await region.b.viewer("fb"), await region.b.viewer("me")
        await region.second(5)
        region.hot(keeper=region.a)
        for _ in range(2):
            await region.second(60)
        assert region.b.feeds.plan().quiet == {"s"}
        lane = [await region.post(user="h", badge="host")]
        # The keeper dies: nothing from its stage, nothing from its live feed.
        region.bus.up = False
        gone: list[Entry] = []
        for _ in range(2):
            gone += await region.second(60, dead=region.a)
        assert region.b.feeds.plan().quiet == {"s"}     # 2 s: not yet
        gone += await region.second(60, dead=region.a)
        assert region.b.feeds.plan().quiet == frozenset()   # sampling its live feed itself
        for _ in range(2):
            await region.second(60, dead=region.a)
            lane.append(await region.post(user="h", badge="host", dead=region.a))
            mine = await region.post(user="me", dead=region.a)
        # The follower takes the lease: it is the stage now.
        region.bus.up = True
        region.b.feeds.apply("s", "sampled", keeper=True, reading=HOT)
        for _ in range(2):
            await region.second(60, dead=region.a)
            lane.append(await region.post(user="h", badge="host", dead=region.a))
        await region.second(60, dead=region.a)
        await region.b.settled()
        await fb.transport.wait_for(lambda: set(e.comment.id for e in lane) <= set(fb.ids),
                                    "the whole lane")
        assert mine.comment.id in host_fan.ids
        for v in (fb, host_fan):
            clean(v)
        # The silent stretch was read from the log, thinned: a sample, not the flood.
        assert len(set(fb.ids) & {e.comment.id for e in gone}) <= 5 * 3 + 2
        assert fb.session.sent == region.log.entries[-1].seq
    finally:
        await region.close()


async def test_a_follower_takes_a_new_keepers_stage_without_a_gap_or_a_duplicate() -> None:
    region = Region()
    try:
        ka = await region.a.viewer("ka")
        fb = await region.b.viewer("fb")
        await region.second(5)
        region.hot(keeper=region.a)
        await region.second(60)
        # The lease changes hands while both are alive: a reads its live feed again and
        # becomes a follower; b samples until it hears a (b stays its own stage meanwhile).
        region.a.feeds.apply("s", "sampled", keeper=False, reading=HOT)
        region.b.feeds.apply("s", "sampled", keeper=True, reading=HOT)
        lane = []
        for _ in range(3):
            await region.second(60)
            lane.append(await region.post(user="h", badge="host"))
        await region.second(60)
        assert region.a.feeds.plan().quiet == {"s"}            # a follows b's stage
        await region.a.settled()
        await region.b.settled()
        await ka.transport.wait_for(lambda: {e.comment.id for e in lane} <= set(ka.ids),
                                    "the lane on the new follower")
        for v in (ka, fb):
            clean(v)
        assert ka.session.sent == fb.session.sent == region.log.entries[-1].seq
        # Back to push: every gateway reads the live feed again.
        for gw in (region.a, region.b):
            gw.feeds.apply("s", "push", keeper=gw is region.b, reading=None)
        assert region.a.feeds.plan() == StagePlan(frozenset(), frozenset(), frozenset())
        after = [await region.post() for _ in range(3)]
        await region.a.settled()
        await ka.transport.wait_for(lambda: ka.ids[-3:] == [e.comment.id for e in after],
                                    "push again")
        clean(ka)
    finally:
        await region.close()
