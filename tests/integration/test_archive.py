"""The archive on real Cassandra (a datacenter per region), fed by the real persisters of the
gateways, read through the gateways' history endpoint."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import aiohttp
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats

from chorus import archive_schema
from chorus.cluster import cassandra, health
from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.ids import IdGenerator
from chorus.model import Comment
from chorus.names import comment_subject as subject
from region.archive import HistoryCursor, Layout, Stored, time_position, visible
from region.archive_cassandra import CassandraArchive
from region.persister import lag
from tests.integration.test_cell import post, token
from tests.integration.viewers import WsViewer

pytestmark = [pytest.mark.integration, pytest.mark.cassandra]

MINUTE = 60_000
# Archiving follows a post by a batch round trip; replication to another datacenter is
# asynchronous. Both are awaited by polling, bounded by these.
ARCHIVED_TIMEOUT_S = 30.0
RESTART_TIMEOUT_S = 150.0


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture
async def east_nats(archive_cluster: LocalCluster) -> AsyncIterator[Nats]:
    nc = await nats.connect(archive_cluster.config.region("us-east").nats_url)
    yield nc
    await nc.close()


def url(cluster: LocalCluster, region: str, index: int = 0) -> str:
    return cluster.config.region(region).gateway_urls[index]


async def history(http: aiohttp.ClientSession, base: str, stream: str, tok: str,
                  **params: str) -> tuple[int, dict[str, object]]:
    async with http.get(f"{base}/v1/streams/{stream}/comments", params=params,
                        headers={"Authorization": f"Bearer {tok}"}) as resp:
        return resp.status, await resp.json()


async def all_pages(http: aiohttp.ClientSession, base: str, stream: str, tok: str, *,
                    limit: int, direction: str = "before", start: str | None = None
                    ) -> list[str]:
    ids: list[str] = []
    position = start
    while True:
        params = {"limit": str(limit)} | ({direction: position} if position else {})
        status, page = await history(http, base, stream, tok, **params)
        assert status == 200, page
        items = page["items"]
        assert isinstance(items, list) and len(items) <= limit
        ids += [c["id"] for c in items]
        if page["next"] is None:
            return ids
        position = str(page["next"])


async def archived(http: aiohttp.ClientSession, base: str, stream: str, tok: str,
                   want: set[str]) -> list[str]:
    """Waits until history at ``base`` holds exactly ``want``; returns it newest first."""
    got: list[str] = []

    async def complete() -> bool:
        nonlocal got
        status, page = await history(http, base, stream, tok, limit="200")
        if status != 200:
            return False
        got = [c["id"] for c in page["items"]]  # type: ignore[attr-defined]
        return set(got) >= want

    await wait_until(complete, what=f"{len(want)} comments in the archive via {base}",
                     timeout_s=ARCHIVED_TIMEOUT_S, interval_s=0.2)
    return got


def synthetic(stream: str, count: int, *, start_ms: int, step_ms: int,
              node: str = "us-east.9") -> list[Comment]:
    """Comments whose ids carry old times, spread ``step_ms`` apart."""
    times = iter(range(start_ms, start_ms + (count + 1) * step_ms, step_ms))
    ids = IdGenerator(node, clock=lambda: next(times))
    return [Comment(id=ids.next(), stream=stream, region=node.split(".")[0], user=f"u{i % 5}",
                    name=f"User {i % 5}", text=f"old {i}", ts=start_ms + i * step_ms,
                    shadow=i % 11 == 10)
            for i in range(count)]


async def test_archive_writes_and_pages_across_buckets_and_shards(
        archive_cluster: LocalCluster, unique: str) -> None:
    config = archive_cluster.config
    # One-minute buckets over three shards: 160 comments 2.3 s apart, two hours ago, fill
    # seven buckets without waiting hours.
    layout = Layout(bucket_ms=MINUTE, shards=3, ttl_s=86_400)
    east = CassandraArchive(config, config.region("us-east"), layout=layout)
    try:
        start = int(time.time() * 1000) - 2 * 3_600_000
        comments = synthetic(unique, 160, start_ms=start, step_ms=2300)
        await east.write(comments[:90])
        await east.write(comments[90:])
        buckets = await east.buckets(unique, "before", None, 100)
        assert len(buckets) >= 6 and all(b.shards == 3 for b in buckets)
        per_shard = [len(await east.rows(unique, buckets[1].start_ms, s, "before", None, 100))
                     for s in range(3)]
        assert all(n > 0 for n in per_shard), per_shard

        ids = [c.id for c in comments]
        everyone = [c.id for c in comments if not c.shadow]

        async def pages(direction: str, position: str | None, limit: int, user: str
                        ) -> list[str]:
            out: list[str] = []
            while True:
                page = await east.page(unique, direction, position, limit,  # type: ignore[arg-type]
                                       lambda s: visible(s, user, moderator=False))
                out += [s.comment.id for s in page.items]
                if page.next is None:
                    return out
                position = HistoryCursor.decode(page.next.encode()).position

        assert await pages("before", None, 13, "nobody") == everyone[::-1]
        assert await pages("after", time_position(0), 17, "nobody") == everyone
        author = comments[0].user
        mine = [c.id for c in comments if not c.shadow or c.user == author]
        assert await pages("after", ids[40], 7, author) == [i for i in mine if i > ids[40]]
        assert await pages("before", ids[100], 200, author) == \
            [i for i in mine if i < ids[100]][::-1]
    finally:
        await east.close()


async def test_a_redelivered_comment_is_stored_once_and_keeps_its_flags(
        archive_cluster: LocalCluster, east_nats: Nats, http: aiohttp.ClientSession,
        unique: str) -> None:
    config = archive_cluster.config
    js = east_nats.jetstream()
    comment, other = synthetic(unique, 2, start_ms=int(time.time() * 1000), step_ms=5)
    foreign = Comment(**{**other.to_json(), "id": other.id.replace("us-east", "eu-west"),
                         "region": "eu-west"})
    subj = subject("us-east", unique)
    # The log hands the persisters the same comment twice (as a redelivery after a lost ack
    # would), and a comment of another region, which only its origin archives.
    for n, c in ((1, comment), (2, comment), (1, foreign)):
        await js.publish(subj, c.encode(), headers={"Nats-Msg-Id": f"{c.id}-{n}"})
    tok = token(archive_cluster, "reader")
    got = await archived(http, url(archive_cluster, "us-east"), unique, tok, {comment.id})
    await wait_until(lambda: _no_lag(east_nats), what="us-east persisters caught up",
                     timeout_s=ARCHIVED_TIMEOUT_S)
    status, page = await history(http, url(archive_cluster, "us-east"), unique, tok)
    assert status == 200
    assert [c["id"] for c in page["items"]] == [comment.id], got  # type: ignore[attr-defined]

    # Deleted, then delivered once more: still deleted.
    east = CassandraArchive(config, config.region("us-east"))
    try:
        stored = await east.get(unique, comment.id)
        assert stored is not None
        await east.mark_deleted(stored)
        await js.publish(subj, comment.encode(), headers={"Nats-Msg-Id": f"{comment.id}-3"})
        await wait_until(lambda: _no_lag(east_nats), what="us-east persisters caught up",
                         timeout_s=ARCHIVED_TIMEOUT_S)
        again = await east.get(unique, comment.id)
        assert again == Stored(comment, deleted=True)
        await east.write([comment, comment])
        assert await east.get(unique, comment.id) == Stored(comment, deleted=True)
    finally:
        await east.close()


async def _no_lag(nc: Nats) -> bool:
    return await lag(nc, "us-east") == 0


async def test_history_pages_back_and_forth_and_is_read_in_every_datacenter(
        archive_cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    a, b = archive_cluster.config.region("us-east").gateway_urls
    posted = []
    for i in range(25):
        status, body = await post(http, (a, b)[i % 2], unique,
                                  token(archive_cluster, f"{unique}-{i % 4}"), text=f"c{i}")
        assert status == 201, body
        posted.append(str(body["id"]))
    tok = token(archive_cluster, "reader")
    ordered = sorted(posted)  # id order: what every region renders
    newest_first = ordered[::-1]
    assert await archived(http, a, unique, tok, set(posted)) == newest_first

    assert await all_pages(http, a, unique, tok, limit=7) == newest_first
    assert await all_pages(http, b, unique, tok, limit=6, direction="after",
                           start="0") == ordered
    # A client that has everything up to the 10th comment pages on from its id.
    assert await all_pages(http, b, unique, tok, limit=4, direction="after",
                           start=ordered[9]) == ordered[10:]
    assert await all_pages(http, a, unique, tok, limit=200, start=ordered[5]) == \
        ordered[:5][::-1]

    # Every other region reads the same from its own datacenter.
    for region in ("eu-west", "ap-south"):
        base = url(archive_cluster, region)
        await archived(http, base, unique, tok, set(posted))
        assert await all_pages(http, base, unique, tok, limit=10) == newest_first


async def test_retraction_and_shadow_visibility(archive_cluster: LocalCluster,
                                                http: aiohttp.ClientSession,
                                                unique: str) -> None:
    a = url(archive_cluster, "us-east")
    author, shadowed = f"{unique}-ana", f"{unique}-sam"
    ana, sam = token(archive_cluster, author), token(archive_cluster, shadowed)
    reader, mod = token(archive_cluster, "reader"), token(archive_cluster, "mod", "moderator")
    async with http.put(f"{a}/v1/moderation/bans/{shadowed}", params={"kind": "shadow"},
                        headers={"Authorization": f"Bearer {mod}"}) as resp:
        assert resp.status == 200
    ids = {}
    for name, tok in (("keep", ana), ("drop", ana), ("modded", ana), ("shadow", sam)):
        status, body = await post(http, a, unique, tok, text=name)
        assert status == 201, body
        ids[name] = str(body["id"])
    await archived(http, a, unique, mod, set(ids.values()))

    async def delete(comment_id: str, tok: str) -> tuple[int, dict[str, object]]:
        async with http.delete(f"{a}/v1/streams/{unique}/comments/{comment_id}",
                               headers={"Authorization": f"Bearer {tok}"}) as resp:
            return resp.status, await resp.json()

    assert (await delete(ids["drop"], reader))[0] == 403
    assert (await delete(ids["drop"], ana))[0] == 200
    assert (await delete(ids["drop"], ana))[0] == 200  # idempotent
    assert (await delete(ids["modded"], mod))[0] == 200
    # An author can retract only what this region holds (404 otherwise); a moderator's
    # retraction is a decision about the id that holds in every region, also for a comment
    # still on its way here (docs/protocol.md, Moderation).
    status, body = await delete(ids["keep"].replace("us-east", "eu-west"), ana)
    assert (status, body["error"]["code"]) == (404, "not_found")  # type: ignore[index]
    assert (await delete("not-an-id", mod))[0] == 400

    async def seen(tok: str) -> dict[str, bool]:
        status, page = await history(http, a, unique, tok)
        assert status == 200
        return {c["text"]: c["deleted"] for c in page["items"]}  # type: ignore[attr-defined]

    assert await seen(reader) == {"keep": False}
    assert await seen(ana) == {"keep": False}
    assert await seen(sam) == {"keep": False, "shadow": False}
    # History hides a retracted comment from everyone, moderators too (they read what was
    # retracted, by whom and why, in the audit log: GET /v1/moderation/audit).
    assert await seen(mod) == {"keep": False, "shadow": False}
    # Retraction is stored in the archive: another region's datacenter hides it too.
    west = url(archive_cluster, "eu-west")
    await wait_until(lambda: _texts_are(http, west, unique, reader, ["keep"]),
                     what="retraction replicated", timeout_s=ARCHIVED_TIMEOUT_S)


async def _texts_are(http: aiohttp.ClientSession, base: str, stream: str, tok: str,
                     texts: list[str]) -> bool:
    status, page = await history(http, base, stream, tok)
    return status == 200 and [c["text"] for c in page["items"]] == texts  # type: ignore[attr-defined]


async def test_bad_cursors_and_limits_are_refused(archive_cluster: LocalCluster,
                                                  http: aiohttp.ClientSession,
                                                  unique: str) -> None:
    a = url(archive_cluster, "us-east")
    tok = token(archive_cluster, "picky")
    for i in range(3):
        assert (await post(http, a, unique, tok, text=f"p{i}"))[0] == 201
    await wait_until(lambda: _count_is(http, a, unique, tok, 3), what="archived",
                     timeout_s=ARCHIVED_TIMEOUT_S)
    status, page = await history(http, a, unique, tok, limit="1")
    assert status == 200 and page["next"]
    good = str(page["next"])
    tampered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    other_stream = HistoryCursor(unique + "x", "before", time_position(1)).encode()
    cases = [
        ({"limit": "0"}, 422, "invalid"), ({"limit": "201"}, 422, "invalid"),
        ({"limit": "x"}, 400, "malformed"), ({"limit": "-1"}, 400, "malformed"),
        ({"before": "zzz"}, 400, "malformed"), ({"after": "%%%"}, 400, "malformed"),
        ({"before": tampered}, 400, "malformed"), ({"before": good[:10]}, 400, "malformed"),
        ({"before": "x" * 5000}, 400, "malformed"),
        ({"after": "9" * 30}, 400, "malformed"), ({"after": str(16**12)}, 422, "invalid"),
        ({"before": good, "after": "0"}, 422, "invalid"),
        ({"after": good}, 422, "invalid"),          # a 'before' page's cursor
        ({"before": other_stream}, 422, "invalid"),
        ({"before": "eu-west:abc:5"}, 422, "invalid"),
    ]
    for params, want, code in cases:
        status, body = await history(http, a, unique, tok, **params)
        assert (status, body["error"]["code"]) == (want, code), (params, body)  # type: ignore[index]
    # The good cursor still works, and so does a live cursor of this region (here: the
    # head, the third comment): history before it is the first two.
    status, page = await history(http, a, unique, tok, before=good)
    assert status == 200 and len(page["items"]) == 2  # type: ignore[arg-type]
    viewer = await WsViewer(http, a, unique, tok).connect()
    await viewer.close()
    assert viewer.cursor is not None
    status, page = await history(http, a, unique, tok, before=viewer.cursor)
    assert status == 200 and [c["text"] for c in page["items"]] == ["p1", "p0"], page  # type: ignore[attr-defined]


async def _count_is(http: aiohttp.ClientSession, base: str, stream: str, tok: str,
                    n: int) -> bool:
    status, page = await history(http, base, stream, tok)
    return status == 200 and len(page["items"]) == n  # type: ignore[arg-type]


async def test_migrate_is_idempotent(archive_cluster: LocalCluster) -> None:
    assert await asyncio.to_thread(archive_schema.apply, archive_cluster.config) == []
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "chorus", "--config",
                         str(archive_cluster.layout.effective_config), "migrate"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stdout


async def test_status_shows_each_regions_archive_lag(archive_cluster: LocalCluster) -> None:
    status = await health.probe(archive_cluster.config, with_cassandra=True)
    lags = {r["name"]: r["extra"]["archive_lag"] for r in status.as_json()["regions"]}
    assert set(lags) == set(archive_cluster.config.region_names)
    assert all(isinstance(n, int) and n >= 0 for n in lags.values()), lags


async def test_cassandra_down_while_posting_loses_nothing_and_delays_no_viewer(
        archive_cluster: LocalCluster, http: aiohttp.ClientSession, east_nats: Nats,
        unique: str) -> None:
    config = archive_cluster.config
    a, b = config.region("us-east").gateway_urls
    viewers = [await WsViewer(http, a, unique, token(archive_cluster, "v1"), "ws-a").connect(),
               await WsViewer(http, b, unique, token(archive_cluster, "v2"), "ws-b").connect()]
    tok = token(archive_cluster, "reader")
    name = "us-east/cassandra"
    node = config.region("us-east")
    try:
        first = [str((await post(http, a, unique, token(archive_cluster, f"{unique}-0"),
                                 text="before"))[1]["id"])]
        await archived(http, a, unique, tok, set(first))

        archive_cluster.child(name).kill()
        posted = list(first)
        for i in range(40):
            status, body = await post(http, (a, b)[i % 2], unique,
                                      token(archive_cluster, f"{unique}-{i % 5}"),
                                      text=f"during {i}")
            assert status == 201, body
            posted.append(str(body["id"]))
        # Live delivery went on: every viewer has every comment, once, while the region's
        # archive is down.
        for viewer in viewers:
            await viewer.count(len(posted))
            assert set(viewer.ids) == set(posted) and not viewer.duplicates
        status, body = await history(http, a, unique, tok)
        assert status == 503 and body["error"]["code"] == "unavailable"  # type: ignore[index]
        backlog = await health.archive_lag(config, "us-east")
        assert backlog is not None and backlog >= 40, backlog

        child = await archive_cluster.restart(name)
        await cassandra.wait_ready(node.cassandra.address, config.cassandra.native_port,
                                   timeout_s=RESTART_TIMEOUT_S, child=child)
        # The persisters catch up by themselves: the archive ends complete, in every
        # datacenter.
        await wait_until(lambda: _archive_is(http, a, unique, tok, posted),
                         what="the archive complete after the outage",
                         timeout_s=RESTART_TIMEOUT_S, children=[child], interval_s=0.5)
        await wait_until(lambda: _no_lag(east_nats), what="no archive lag",
                         timeout_s=ARCHIVED_TIMEOUT_S)
        west = url(archive_cluster, "eu-west")
        await wait_until(lambda: _archive_is(http, west, unique, tok, posted),
                         what="eu-west's datacenter complete", timeout_s=RESTART_TIMEOUT_S)
    finally:
        for viewer in viewers:
            await viewer.close()
        if not archive_cluster.child(name).alive:
            child = await archive_cluster.restart(name)
            await cassandra.wait_ready(node.cassandra.address, config.cassandra.native_port,
                                       timeout_s=RESTART_TIMEOUT_S, child=child)
    await cassandra.wait_converged(config, timeout_s=RESTART_TIMEOUT_S)


async def _archive_is(http: aiohttp.ClientSession, base: str, stream: str, tok: str,
                      ids: list[str]) -> bool:
    status, page = await history(http, base, stream, tok, limit="200")
    return status == 200 and [c["id"] for c in page["items"]] == sorted(ids, reverse=True)  # type: ignore[attr-defined]
