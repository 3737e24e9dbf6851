"""A gateway's hot streams on real sessions (fake transports, an in-memory log): what each
viewer gets in the sampled and snapshot tiers, their own comments, the priority lane, and the
cursor across tier changes (announced, no duplicate, no gap)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from chorus.config import Limits, Tiers
from chorus.metrics import Metrics
from chorus.model import Badge, Comment
from region.cursor import Cursor
from region.log import Entry
from region.protocol import Comments, Recovered, Snapshot, Tier
from region.replay import Replayer
from region.session import Position, Session
from region.snapshot import Rendered
from region.tiers import Reading
from region.tiers import Tier as TierName
from region.tiers_feed import LINGER_S, MAX_LINGERING, TierFeeds
from tests.unit.fake_transport import FakeTransport
from tests.unit.memory_log import MemoryLog, MemoryReplayCache

LIMITS = Limits(send_queue_max=64, tick_ms=1, replay_window=500)
TIERS = Tiers(sampled_per_viewer_per_s=3, snapshot_interval_s=1.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class MemoryStore:
    def __init__(self) -> None:
        self.docs: dict[str, Rendered] = {}

    async def put(self, stream: str, rendered: Rendered, ttl_s: float) -> None:
        self.docs[stream] = rendered

    async def get(self, stream: str) -> Rendered | None:
        return self.docs.get(stream)


class Viewer:
    def __init__(self, session: Session, transport: FakeTransport) -> None:
        self.session = session
        self.transport = transport

    @property
    def ids(self) -> list[str]:
        return self.transport.comment_ids

    def tiers(self) -> list[str]:
        return [f.tier for f in self.transport.of_type(Tier)]

    async def settled(self) -> None:
        """Waits until everything queued is written."""
        await self.transport.wait_for(lambda: not self.session.writer._queue, "queue empty")


class Gateway:
    """One gateway's feeds with the fanout's part played by `deliver`."""

    def __init__(self, store: MemoryStore | None = None, *,
                 agreed: Callable[[str, float], TierName] | None = None,
                 max_lingering: int = MAX_LINGERING) -> None:
        self.log = MemoryLog()
        self.cache = MemoryReplayCache(LIMITS.replay_window)
        self.clock = Clock()
        self.store = store or MemoryStore()
        self.feeds = TierFeeds(region="us-east", tiers=TIERS, metrics=Metrics("us-east", "0"),
                               store=self.store, clock=self.clock, wall=lambda: 1.7e9,
                               snapshot_url=lambda s: f"http://gw/v1/streams/{s}/snapshot",
                               rng=random.Random(5), agreed=agreed,
                               max_lingering=max_lingering)
        self.viewers: list[Viewer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.n = 0

    async def viewer(self, user: str, resume: Cursor | None = None, *, stream: str = "s",
                     send_hello: bool = True) -> Viewer:
        transport = FakeTransport()
        session = Session(stream=stream, user=user, transport=transport, log=self.log,
                          replayer=Replayer(self.log, self.cache, LIMITS.replay_window),
                          position=Position("us-east", self.log.epoch), limits=LIMITS,
                          gateway="us-east.0", send_hello=send_hello)
        self.feeds.joined(session)
        self._tasks.append(asyncio.create_task(session.run()))
        await session.start(resume)
        viewer = Viewer(session, transport)
        self.viewers.append(viewer)
        return viewer

    async def post(self, *, user: str = "fan", badge: Badge = "", deliver: bool = True
                   ) -> Entry:
        self.n += 1
        c = Comment(id=f"{self.n:016x}-us-east.0", stream="s", region="us-east", user=user,
                    name=user, text=f"c{self.n}", ts=int(self.clock.now * 1000), badge=badge)
        await self.log.append(c, msg_id=c.id)
        entry = self.log.entries[-1]
        await self.cache.add([entry])
        if deliver:
            self.deliver(entry)
        return entry

    def deliver(self, entry: Entry) -> None:
        """What the fanout does with a live entry."""
        if not self.feeds.take(entry):
            for viewer in self.viewers:
                viewer.session.offer(entry)

    async def second(self, n: int, **post: object) -> list[Entry]:
        """``n`` comments spread over one second, then the tick."""
        out = []
        for _ in range(n):
            out.append(await self.post(**post))  # type: ignore[arg-type]
            self.clock.now += 1 / n
        await self.feeds.step()
        return out

    async def settled(self) -> None:
        for viewer in self.viewers:
            await viewer.settled()

    async def poll(self, user: str) -> Viewer:
        """A long poll: a session without hello that leaves as soon as it is positioned."""
        poller = await self.viewer(user, send_hello=False)
        await self.leave(poller)
        return poller

    async def leave(self, viewer: Viewer) -> None:
        """What the fanout does when a session ends."""
        self.feeds.left(viewer.session)
        self.viewers.remove(viewer)
        await viewer.session.close("left")

    async def close(self) -> None:
        for viewer in self.viewers:
            await viewer.session.close("test over")
        await asyncio.gather(*self._tasks)


@asynccontextmanager
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    try:
        yield gw
    finally:
        await gw.close()


HOT = Reading(viewers=10_000, rate_per_s=100.0)


async def test_sampled_viewers_share_a_capped_sample_and_every_priority_comment() -> None:
    async with gateway() as gw:
        a, b = await gw.viewer("a"), await gw.viewer("b")
        await gw.second(5)                          # push: everything, and the rate
        gw.feeds.apply("s", "sampled", keeper=True, reading=HOT)
        flood = []
        for _ in range(5):
            flood += await gw.second(60)            # 20 x the cap
        host = await gw.post(user="h", badge="host")
        await gw.feeds.step()
        await gw.settled()
        assert a.tiers() == b.tiers() == ["sampled"]
        shown = set(a.ids[5:])
        assert shown == set(b.ids[5:])              # one sample, shared
        assert host.comment.id in shown             # the priority lane, always
        sampled = shown - {host.comment.id}
        assert len(sampled) <= 5 * TIERS.sampled_per_viewer_per_s
        assert len(sampled) >= 4 * TIERS.sampled_per_viewer_per_s  # and the budget is used
        assert len(a.ids) == len(set(a.ids))        # no duplicate
        # Every cursor was moved past the whole flood, and the batches said what they were.
        assert a.session.sent == b.session.sent == host.seq
        samples = [f.sample for f in a.transport.of_type(Comments) if f.sample is not None]
        assert samples and max(s.posted for s in samples) == 60


async def test_an_author_sees_their_own_comment_outside_the_sample() -> None:
    async with gateway() as gw:
        me, other = await gw.viewer("me"), await gw.viewer("other")
        await gw.second(5)
        gw.feeds.apply("s", "sampled", keeper=True, reading=HOT)
        await gw.second(60)
        mine = [await gw.post(user="me") for _ in range(5)]
        await gw.second(60)
        await gw.settled()
        assert all(e.comment.id in me.ids for e in mine)
        not_shown = [e for e in mine if e.comment.id not in other.ids]
        assert not_shown       # the sample took some of them at most
        assert len(me.ids) == len(set(me.ids))
        assert me.session.sent == other.session.sent


async def test_a_tier_change_is_announced_and_costs_no_cursor() -> None:
    async with gateway() as gw:
        v = await gw.viewer("v")
        first = await gw.second(5)
        gw.feeds.apply("s", "sampled", keeper=True, reading=HOT)
        await gw.second(60)
        reads = gw.log.reads
        gw.feeds.apply("s", "push", keeper=True, reading=None)
        after = await gw.second(5)
        await gw.settled()
        assert v.tiers() == ["sampled", "push"]
        tier_frames = v.transport.of_type(Tier)
        assert tier_frames[0].cursor == v.session.encode_cursor(first[-1].seq)
        # Back in push every comment comes again, chained to what the sample left out,
        # without a catch-up from the log (no gap) and without a duplicate.
        assert v.ids[-5:] == [e.comment.id for e in after]
        assert gw.log.reads == reads
        assert not v.transport.of_type(Recovered)
        assert len(v.ids) == len(set(v.ids))


async def test_a_resume_in_the_sampled_tier_is_thinned_like_the_live_sample() -> None:
    async with gateway() as gw:
        first = await gw.viewer("first")
        await gw.second(5)
        gw.feeds.apply("s", "sampled", keeper=True, reading=HOT)
        cursor = Cursor("us-east", gw.log.epoch, first.session.sent)
        missed = await gw.second(60)
        mine = await gw.post(user="back")
        host = await gw.post(user="h", badge="host")
        back = await gw.viewer("back", resume=cursor)
        await gw.second(60)
        await gw.settled()
        assert back.tiers() == ["sampled"]
        got = set(back.ids)
        assert {mine.comment.id, host.comment.id} <= got
        assert len(got & {e.comment.id for e in missed}) <= 2 * TIERS.sampled_per_viewer_per_s
        assert back.session.sent == first.session.sent


async def test_a_hole_in_the_gateways_live_feed_is_read_from_the_log() -> None:
    async with gateway() as gw:
        v = await gw.viewer("v")
        await gw.second(5)
        gw.feeds.apply("s", "sampled", keeper=True, reading=HOT)
        await gw.second(60)
        lost = await gw.post(user="h", badge="host", deliver=False)   # NATS dropped it
        await gw.second(10)
        await gw.settled()
        await v.transport.wait_for(lambda: lost.comment.id in v.ids, "the lost host comment")
        assert len(v.ids) == len(set(v.ids))


async def test_snapshot_viewers_get_the_regions_document_and_their_own_comments() -> None:
    store = MemoryStore()
    keeper_gw, other_gw = Gateway(store), Gateway(store)
    try:
        k = await keeper_gw.viewer("k")
        o = await other_gw.viewer("o")
        for gw, keeper in ((keeper_gw, True), (other_gw, False)):
            await gw.second(5)
            gw.feeds.apply("s", "snapshot", keeper=keeper, reading=HOT)
        host = await keeper_gw.post(user="h", badge="host")
        mine = await keeper_gw.post(user="k")
        await keeper_gw.second(60)
        await other_gw.second(1)
        await keeper_gw.settled()
        await other_gw.settled()
        assert k.tiers() == o.tiers() == ["snapshot"]
        assert k.transport.of_type(Tier)[0].snapshot_url == "http://gw/v1/streams/s/snapshot"
        ks, os_ = k.transport.of_type(Snapshot), o.transport.of_type(Snapshot)
        assert ks and os_ and ks[-1].rendered == os_[-1].rendered == store.docs["s"]
        assert host.comment.id in ks[-1].rendered.body.decode()
        # Live, a snapshot viewer gets its own comments only.
        assert k.ids[5:] == [mine.comment.id]
    finally:
        await keeper_gw.close()
        await other_gw.close()


async def test_a_long_poll_finds_its_streams_tier_and_sample_between_polls() -> None:
    async with gateway() as gw:
        await gw.poll("poller")                    # alone on the gateway, between polls
        await gw.second(5)
        gw.feeds.apply("s", "sampled", keeper=True, reading=HOT)
        await gw.second(60)
        await gw.second(60)
        # The next poll is a new session: the stream's feed waited for it.
        again = await gw.viewer("poller", send_hello=False)
        assert again.session.view is not None
        assert again.session.view.announce("c") == Tier(
            tier="sampled", cursor="c", per_viewer_per_s=TIERS.sampled_per_viewer_per_s)
        sample = again.session.view.describe()
        assert sample is not None and abs(sample.posted - 60) <= 1   # the last second's
        await gw.leave(again)
        # Forgotten once it lingered long enough.
        gw.clock.now += LINGER_S
        await gw.feeds.step()
        assert gw.feeds.tier("s") == "push" and "s" not in gw.feeds.followed()


async def test_lingering_streams_are_bounded_the_longest_idle_forgotten_first() -> None:
    gw = Gateway(max_lingering=2)
    try:
        for stream in ("a", "b", "c"):
            await gw.leave(await gw.viewer("u", stream=stream))
            gw.clock.now += 1
        assert set(gw.feeds.followed()) == {"b", "c"}
        await gw.leave(await gw.viewer("u", stream="b"))   # idle anew: now the newest
        await gw.leave(await gw.viewer("u", stream="d"))
        assert set(gw.feeds.followed()) == {"b", "d"}
    finally:
        await gw.close()


async def test_a_stream_new_to_the_gateway_is_delivered_in_the_agreed_tier_at_once() -> None:
    gw = Gateway(agreed=lambda stream, now: "sampled" if stream == "s" else "push")
    try:
        poller = await gw.viewer("poller", send_hello=False)
        assert poller.session.view is not None and gw.feeds.tier("s") == "sampled"
        ws = await gw.viewer("ws")
        await gw.second(30)
        await gw.settled()
        assert ws.tiers() == ["sampled"]           # announced right after hello
        assert len(ws.ids) <= TIERS.sampled_per_viewer_per_s
        cold = await gw.viewer("cold", stream="other")
        assert cold.session.view is None
    finally:
        await gw.close()


async def test_the_first_document_is_rendered_on_demand_once_for_concurrent_requests(
        ) -> None:
    store = MemoryStore()
    puts = 0
    put = store.put

    async def counted(stream: str, rendered: Rendered, ttl_s: float) -> None:
        nonlocal puts
        puts += 1
        await put(stream, rendered, ttl_s)
    store.put = counted  # type: ignore[method-assign]
    async with gateway() as gw:
        gw.store = gw.feeds.store = store
        await gw.viewer("v")
        await gw.second(5)
        assert await gw.feeds.document("s") is None              # push: no document
        gw.feeds.apply("s", "snapshot", keeper=False, reading=None)
        host = await gw.post(user="h", badge="host")
        # Asked before the region's keeper rendered it: rendered here, once for all.
        docs = await asyncio.gather(*(gw.feeds.document("s", HOT) for _ in range(5)))
        assert puts == 1 and store.docs["s"] == docs[0]
        assert all(doc == docs[0] for doc in docs)
        assert docs[0] is not None and host.comment.id in docs[0].body.decode()
        assert b'"viewers":10000' in docs[0].body                 # the leader's reading
        assert await gw.feeds.document("s") == docs[0]            # from the store now
        assert puts == 1
