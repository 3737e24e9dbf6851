"""A hot stream's partition entries through one gateway's feeds (fake transports, an
in-memory log for the chained part): decided and counted like any other comment (the rate the
tiers are agreed on, the second's "n of m", the snapshot's count), shown ones to every viewer
and hidden ones to their authors, all out of the chain: no cursor, no `Skip`, no ``accounted``
moves by a partition's sequence."""

from __future__ import annotations

from chorus.model import Badge, Comment
from region.cursor import Cursor
from region.log import Entry
from region.protocol import Comments, Recovered
from tests.unit.test_tiers_feed import HOT, TIERS, Gateway, Viewer, gateway

FIRST_PART_SEQ = 1_000_000   # far above any sequence of the chained log in these tests


class Partitions:
    """Entries of a stream's hot partitions, numbered per partition as JetStream does."""

    def __init__(self, gw: Gateway, parts: int = 4) -> None:
        self.gw = gw
        self.parts = parts
        self.heads = dict.fromkeys(range(1, parts + 1), FIRST_PART_SEQ)
        self.n = 0

    def post(self, *, user: str = "fan", badge: Badge = "", deliver: bool = True) -> Entry:
        self.n += 1
        part = 1 + self.n % self.parts
        c = Comment(id=f"{self.gw.clock.now * 1e6:016.0f}-p{self.n}", stream="s",
                    region="us-east", user=user, name=user, text=f"p{self.n}",
                    ts=int(self.gw.clock.now * 1000), badge=badge)
        prev = self.heads[part]
        entry = Entry(seq=prev + 1, prev=prev, comment=c, part=part)
        self.heads[part] = entry.seq
        if deliver:
            self.gw.deliver(entry)
        return entry

    async def second(self, n: int, **post: str) -> list[Entry]:
        out = []
        for _ in range(n):
            out.append(self.post(**post))  # type: ignore[arg-type]
            self.gw.clock.now += 1 / n
        await self.gw.feeds.step()
        return out


def cursors(viewer: Viewer) -> list[int]:
    return [Cursor.parse(f.cursor).seq for f in viewer.transport.of_type(Comments)]


def chained_head(gw: Gateway) -> int:
    return gw.log.entries[-1].seq


async def test_a_sampled_feed_counts_and_samples_partition_entries_out_of_the_chain() -> None:
    async with gateway() as gw:
        a, b = await gw.viewer("a"), await gw.viewer("b")
        hot = Partitions(gw)
        await gw.second(5)                              # push: the chained log
        gw.feeds.apply("s", "sampled", keeper=True, reading=HOT)
        flood = []
        for _ in range(4):
            flood += await hot.second(60)               # 20 x the cap, all in partitions
        host = await gw.post(user="h", badge="host")    # the priority lane: chained
        await gw.feeds.step()
        await gw.settled()
        shown = set(a.ids[5:])
        assert shown == set(b.ids[5:])                  # one sample, shared
        assert host.comment.id in shown
        sampled = shown - {host.comment.id}
        assert sampled <= {e.comment.id for e in flood}
        assert 3 * TIERS.sampled_per_viewer_per_s <= len(sampled)
        assert len(sampled) <= 4 * TIERS.sampled_per_viewer_per_s
        assert len(a.ids) == len(set(a.ids))
        # Counted: the stream's rate and what each second stood for.
        assert gw.feeds.followed()["s"] >= 50
        samples = [f.sample for f in a.transport.of_type(Comments) if f.sample is not None]
        assert samples and max(s.posted for s in samples) == 60
        # No cursor moved by a partition's sequence: the client's, the session's, the feed's.
        feed = gw.feeds.feeds["s"]
        assert feed.accounted == feed.shared == host.seq
        for v in (a, b):
            assert max(cursors(v)) == v.session.sent == v.session.cursor == host.seq
            assert not v.transport.of_type(Recovered)
        assert chained_head(gw) == host.seq < FIRST_PART_SEQ


async def test_a_partition_entry_outside_the_sample_reaches_its_author_alone() -> None:
    async with gateway() as gw:
        me, other = await gw.viewer("me"), await gw.viewer("other")
        hot = Partitions(gw)
        await gw.second(5)
        gw.feeds.apply("s", "sampled", keeper=True, reading=HOT)
        await hot.second(60)
        mine = [hot.post(user="me") for _ in range(5)]
        await hot.second(60)
        await gw.settled()
        assert all(e.comment.id in me.ids for e in mine)
        assert [e for e in mine if e.comment.id not in other.ids]   # some left out
        assert len(me.ids) == len(set(me.ids))
        assert me.session.sent == other.session.sent == chained_head(gw)


async def test_in_push_partition_entries_count_toward_the_stream_going_hot() -> None:
    """The tier decision reads the rate: partition entries delivered while this gateway
    still delivers in push are counted, and the last chained entry stays the feed's start."""
    async with gateway() as gw:
        v = await gw.viewer("v")
        hot = Partitions(gw)
        chained = await gw.second(5)
        flood = []
        for _ in range(2):
            await gw.settled()            # (within the viewer's queue: all comes at once here)
            flood += await hot.second(30)
        await gw.settled()
        gw.clock.now += 0.5               # the last second over, whatever the float sum says
        assert gw.feeds.followed()["s"] == 30
        assert gw.feeds.streams["s"].last == chained[-1].seq
        assert v.ids == [e.comment.id for e in chained + flood]
        assert v.session.sent == v.session.cursor == chained[-1].seq
        gw.feeds.apply("s", "sampled", keeper=True, reading=HOT)
        assert gw.feeds.feeds["s"].accounted == chained[-1].seq


async def test_the_snapshot_counts_partition_entries() -> None:
    async with gateway() as gw:
        await gw.viewer("v")
        hot = Partitions(gw)
        await gw.second(5)
        gw.feeds.apply("s", "snapshot", keeper=True, reading=HOT)
        feed = gw.feeds.feeds["s"]
        for _ in range(30):
            hot.post()
        assert feed.posted == 30
        assert feed.sample_ring
        feed.render("us-east", gw.clock.now, 1_700_000_000_000, None)
        assert feed.doc is not None and feed.doc.posted == 30
        assert {c.id for c in feed.doc.comments} <= {c.id for c in feed.sample_ring}
