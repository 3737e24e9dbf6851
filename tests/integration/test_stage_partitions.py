"""A hot stream's partition entries reach viewers on the real cluster (the repo's cluster, with
its hot partitions), out of the chain: a gateway that delivers the stream in push writes each
one as it comes off the live subject, the cursors its viewers are given stay the chained
log's, the next chained comment follows without a gap, and a resume replays the chained log
alone (the sample is lossy by nature; nothing routes to partitions on a push stream but this
test)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats

from chorus.cluster.local import LocalCluster
from chorus.ids import IdGenerator
from chorus.model import Comment
from region.auth import issue_token
from region.cursor import Cursor
from region.log import Appended
from region.log_jetstream import JetStreamLog
from tests.integration.viewers import WsViewer

pytestmark = pytest.mark.integration

REGION = "us-east"


@pytest_asyncio.fixture
async def log(cluster: LocalCluster) -> AsyncIterator[JetStreamLog]:
    nc: Nats = await nats.connect(cluster.config.region(REGION).nats_url)
    jlog = JetStreamLog(nc, REGION, hot_partitions=cluster.config.tiers.hot_log_partitions)
    await jlog.ensure()
    try:
        yield jlog
    finally:
        await jlog.publisher.close()
        await nc.close()


class Poster:
    """Comments stored straight in the region's log, to its chained log or to a partition."""

    def __init__(self, log: JetStreamLog, stream: str) -> None:
        self.log = log
        self.stream = stream
        self.ids = IdGenerator(f"{REGION}.9")

    async def post(self, *, hot: bool) -> Appended:
        c = Comment(id=self.ids.next(), stream=self.stream, region=REGION, user="poster",
                    name="poster", text="hello", ts=int(time.time() * 1000))
        return await self.log.append(c, msg_id=c.id, hot=hot)


def seq_of(cursor: str | None) -> int:
    assert cursor is not None
    return Cursor.parse(cursor).seq


async def test_partition_entries_reach_push_viewers_out_of_the_chain(
        cluster: LocalCluster, log: JetStreamLog, unique: str) -> None:
    base = cluster.config.region(REGION).gateway_urls[0]
    token = issue_token(cluster.config.auth.dev_secret, "watcher", roles=("viewer",))
    poster = Poster(log, unique)
    async with aiohttp.ClientSession() as http:
        viewer = await WsViewer(http, base, unique, token).connect()
        try:
            first = await poster.post(hot=False)
            await viewer.count(1)
            hot = [await poster.post(hot=True) for _ in range(8)]
            assert {a.part for a in hot} - {0}            # into partitions
            await viewer.count(9)
            last = await poster.post(hot=False)
            await viewer.count(10)
            # (Each partition re-publishes from a loop of its own: they may come in any order.)
            assert viewer.ids[0] == first.comment.id
            assert sorted(viewer.ids) == sorted(a.comment.id for a in [first, *hot, last])
            assert not viewer.duplicates
            # Every frame's cursor is the chained log's: the first comment's, then the last's.
            seqs = [seq_of(f["cursor"]) for f in viewer.of_type("comments")]
            assert seqs[0] == first.seq and seqs[-1] == last.seq
            assert set(seqs) == {first.seq, last.seq}
            assert not viewer.of_type("recovered")        # no gap, nothing read back
            cursor = viewer.cursor
        finally:
            await viewer.close()
        # A resume replays the chained log (the replay cache holds nothing else).
        back = await WsViewer(http, base, unique, token, "back").connect(
            Cursor(REGION, log.epoch, first.seq).encode())
        try:
            await back.until(lambda: bool(back.of_type("recovered")))
            assert back.ids == [last.comment.id]
            assert back.of_type("recovered")[0]["recovered"] is True
            assert seq_of(back.cursor) == seq_of(cursor) == last.seq
        finally:
            await back.close()
