"""A hot stream's log partitions (region/log_jetstream.py) on the real cluster: a hot append
goes to the partition of its key, its retry meets it there, and each partition re-publishes on
the stream's one live subject with ``Nats-Stream`` naming it. Reads that see every comment
(`read_since`, `count`, `page_before` and the history without the archive) merge the chained
log with the partitions by the time each stored a comment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.ids import IdGenerator
from chorus.model import Comment
from chorus.names import hot_part_of, live_subject
from region.auth import issue_token
from region.cursor import Cursor, HistoryMark
from region.log import Appended
from region.log_jetstream import JetStreamLog, part_of

pytestmark = pytest.mark.integration

REGION = "us-east"


@pytest_asyncio.fixture
async def nc(cluster: LocalCluster) -> AsyncIterator[Nats]:
    client = await nats.connect(cluster.config.region(REGION).nats_url)
    yield client
    await client.close()


def _comments_url(cluster: LocalCluster, gateway: int, stream: str, user: str
                  ) -> tuple[str, dict[str, str]]:
    """The stream's comments at one of the region's gateways, and a viewer's header for it."""
    base = cluster.config.region(REGION).gateway_urls[gateway]
    token = issue_token(cluster.config.auth.dev_secret, user, roles=("viewer",))
    return f"{base}/v1/streams/{stream}/comments", {"Authorization": f"Bearer {token}"}


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


async def _mixed(log: JetStreamLog, stream: str, n: int) -> list[Appended]:
    """``n`` comments of ``stream`` with real ids, one in three to the chained log and the
    rest to the hot partitions, one after another (so their stored times follow their ids)."""
    ids = IdGenerator(f"{REGION}.9")
    out = []
    for i in range(n):
        comment = Comment(id=ids.next(), stream=stream, region=REGION, user="tester",
                          name="tester", text=f"comment {i}", ts=int(time.time() * 1000))
        out.append(await log.append(comment, msg_id=comment.id, hot=i % 3 != 0))
    return out


async def test_read_since_and_count_see_the_chained_log_and_every_partition(
        nc: Nats, cluster: LocalCluster, unique: str) -> None:
    log = JetStreamLog(nc, REGION, hot_partitions=cluster.config.tiers.hot_log_partitions)
    await log.ensure()
    try:
        since_ms = int(time.time() * 1000) - 1
        appended = await _mixed(log, unique, 30)
        assert await log.count(unique) == 30
        assert await log.count_after(unique, 0) == 10       # the cursors' log: its own only
        recent = await log.read_since(unique, since_ms, 100)
        assert [e.comment.id for e in recent] == [a.comment.id for a in appended]
        assert [(e.part, e.seq) for e in recent] == [(a.part, a.seq) for a in appended]
        assert all(e.prev == 0 for e in recent)
        assert [e.comment.id for e in await log.read_since(unique, since_ms, 7)] == [
            a.comment.id for a in appended[:7]]
        later = await log.read_since(unique, int(time.time() * 1000) + 60_000, 100)
        assert later == []
    finally:
        await log.publisher.close()


async def test_history_pages_every_comment_once_newest_first_over_the_partitions(
        nc: Nats, cluster: LocalCluster, unique: str) -> None:
    log = JetStreamLog(nc, REGION, hot_partitions=cluster.config.tiers.hot_log_partitions)
    await log.ensure()
    url, auth = _comments_url(cluster, 0, unique, "reader")
    try:
        appended = await _mixed(log, unique, 23)
        newest_first = [a.comment.id for a in reversed(appended)]
        async with aiohttp.ClientSession() as http:
            seen: list[str] = []
            nexts: list[str] = []
            before: str | None = None
            while True:
                params = {"limit": "4"} | ({"before": before} if before else {})
                async with http.get(url, params=params, headers=auth) as resp:
                    assert resp.status == 200, await resp.text()
                    page = await resp.json()
                seen += [c["id"] for c in page["items"]]
                before = page["next"]
                if before is None:
                    break
                nexts.append(before)
            assert seen == newest_first
            assert all(HistoryMark.parse(n).same_log(REGION, log.epoch) for n in nexts)

            # A cursor from a frame pages what is older than its comment, partitions too.
            chained = appended[12]
            assert chained.part == 0
            cursor = Cursor(REGION, log.epoch, chained.seq).encode()
            async with http.get(url, params={"limit": "200", "before": cursor},
                                headers=auth) as resp:
                assert resp.status == 200, await resp.text()
                page = await resp.json()
            assert [c["id"] for c in page["items"]] == newest_first[-12:]
            assert page["next"] is None

            for before, status in ((f"{REGION}:{log.epoch}:h1.x.2", 400),
                                   (f"eu-west:{log.epoch}:h1.0.2", 422),
                                   (f"{REGION}:zz:9", 422)):
                async with http.get(url, params={"before": before}, headers=auth) as resp:
                    assert resp.status == status, before
                    assert "before" in (await resp.json())["error"]["message"]
    finally:
        await log.publisher.close()


async def test_a_reply_may_name_a_comment_a_hot_partition_holds(
        nc: Nats, cluster: LocalCluster, unique: str) -> None:
    log = JetStreamLog(nc, REGION, hot_partitions=cluster.config.tiers.hot_log_partitions)
    await log.ensure()
    url, auth = _comments_url(cluster, 1, unique, "fan")
    try:
        parent = (await _mixed(log, unique, 3))[1]
        assert parent.part > 0
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json={"text": "so true", "reply_to": parent.comment.id},
                                 headers=auth) as resp:
                assert resp.status == 201, await resp.text()
            thread: dict[str, Any] = {}

            async def threaded() -> bool:
                async with http.get(f"{url}/{parent.comment.id}/replies",
                                    headers=auth) as resp:
                    assert resp.status == 200, await resp.text()
                    thread.update(await resp.json())
                return bool(thread["items"])
            await wait_until(threaded, what="the reply in its thread", timeout_s=10,
                             interval_s=0.1)
        assert thread["parent"]["id"] == parent.comment.id
        assert [r["text"] for r in thread["items"]] == ["so true"]
    finally:
        await log.publisher.close()
