"""The region's sampling stage and a hot stream's partition entries: items that carry their
``part`` on the wire (a kind of their own, so a follower of older code refuses them instead of
moving cursors by a partition's sequence), and two gateways of one region (tests/unit/
test_stage.py's) where the keeper decides partition entries and the follower delivers them out
of the chain: the same sample, each author's own once, no cursor moved by them."""

from __future__ import annotations

import json

import pytest

from chorus.model import Comment
from region.cursor import Cursor
from region.log import Entry
from region.protocol import Comments
from region.stage import StageItem, StageMessage, decode, encode
from tests.unit.test_stage import TIERS, Gateway, Region, a_comment, clean

# -- the messages ------------------------------------------------------------------------------


def test_an_item_with_its_part_round_trips() -> None:
    item = StageItem(source="us-east.0", seq=900_001, prev=899_950, comment=a_comment(), part=3)
    assert decode(encode(item)) == item


def test_an_item_of_the_chained_log_is_encoded_as_before() -> None:
    item = StageItem(source="us-east.0", seq=7, prev=3, comment=a_comment())
    doc = json.loads(encode(item))
    assert doc["k"] == "item" and "part" not in doc
    older = b'{"k":"item","src":"g","seq":7,"prev":3,"c":' + a_comment().encode() + b"}"
    decoded = decode(older)                  # an older keeper's item
    assert isinstance(decoded, StageItem) and decoded.part == 0


def test_an_older_follower_refuses_an_item_with_a_part() -> None:
    """What an older decoder does with it: its kinds are "item" and "tick" alone."""
    doc = json.loads(encode(StageItem(source="g", seq=9, prev=2, comment=a_comment(), part=1)))
    assert doc["k"] not in ("item", "tick")


@pytest.mark.parametrize("part", ["0", "-1", "true", '"2"', None])
def test_an_item_of_no_partition_is_refused(part: str | None) -> None:
    field = "" if part is None else f'"part":{part},'
    data = (f'{{"k":"loose","src":"g",{field}"seq":9,"prev":2,"c":'.encode()
            + a_comment().encode() + b"}")
    with pytest.raises(ValueError):
        decode(data)


# -- two gateways of a region ---------------------------------------------------------------


class Parts:
    """Partition entries of stream "s", posted to the region's gateways' live feeds."""

    def __init__(self, region: Region) -> None:
        self.region = region
        self.heads = {1: 500_000, 2: 700_000}
        self.n = 0

    def post(self, user: str = "fan") -> Entry:
        self.n += 1
        part = 1 + self.n % 2
        c = Comment(id=f"{10_000_000 + self.n:016x}-us-east.0", stream="s", region="us-east",
                    user=user, name=user, text=f"p{self.n}",
                    ts=int(self.region.clock.now * 1000))
        prev = self.heads[part]
        entry = Entry(seq=prev + 1, prev=prev, comment=c, part=part)
        self.heads[part] = entry.seq
        for gw in (self.region.a, self.region.b):
            gw.deliver(entry)
        return entry

    async def second(self, n: int, user: str = "fan") -> list[Entry]:
        out = []
        for _ in range(n):
            out.append(self.post(user))
            self.region.clock.now += 1 / n
        for gw in (self.region.a, self.region.b):
            await gw.feeds.step()
        return out


def cursors(comments: list[Comments]) -> list[int]:
    return [Cursor.parse(f.cursor).seq for f in comments]


async def settled(*gateways: Gateway) -> None:
    for gw in gateways:
        await gw.settled()


async def test_a_follower_delivers_the_stages_partition_items_out_of_the_chain() -> None:
    region = Region()
    published: list[StageMessage] = []
    bus_shared, bus_own = region.bus.shared, region.bus.own

    def shared(stream: str, message: StageMessage) -> None:
        published.append(message)
        bus_shared(stream, message)

    def own(stream: str, user: str, item: StageItem) -> None:
        published.append(item)
        bus_own(stream, user, item)

    region.bus.shared, region.bus.own = shared, own   # type: ignore[method-assign]
    try:
        ka, fb, me = (await region.a.viewer("ka"), await region.b.viewer("fb"),
                      await region.b.viewer("me"))
        parts = Parts(region)
        await region.second(5)
        region.hot(keeper=region.a)
        await region.second(60)                      # the follower hears a tick
        assert region.b.feeds.plan().quiet == {"s"}
        flood = []
        for _ in range(3):
            await settled(region.a, region.b)
            flood += await parts.second(60)
        mine = [parts.post(user="me") for _ in range(3)]
        host = await region.post(user="h", badge="host")
        await parts.second(60)
        await settled(region.a, region.b)
        # One sample for the region, partition entries in it, the follower's as the keeper's.
        assert ka.ids[5:] == fb.ids[5:]
        assert host.comment.id in fb.ids
        sampled = set(fb.ids) & {e.comment.id for e in flood}
        assert 2 * TIERS.sampled_per_viewer_per_s <= len(sampled)
        assert len(sampled) <= 4 * TIERS.sampled_per_viewer_per_s
        assert all(e.comment.id in me.ids for e in mine)   # each once (`clean`)
        # The stage said what the partitions' items are, and never ticked past the chain.
        loose = [m for m in published if isinstance(m, StageItem) and m.part]
        assert loose and all(m.seq > 500_000 for m in loose)
        head = region.log.entries[-1].seq
        assert all(m.seq <= head for m in published if not (isinstance(m, StageItem) and m.part))
        for v in (ka, fb, me):
            clean(v)
            assert v.session.cursor == v.session.sent == head
            assert max(cursors(v.transport.of_type(Comments))) == head
        samples = [f.sample for f in fb.transport.of_type(Comments) if f.sample is not None]
        assert samples and max(s.posted for s in samples) >= 60
        assert region.b.feeds.feeds["s"].accounted == head
    finally:
        await region.close()
