"""Hot streams on the real three-region cluster: tiers that every region agrees on, with
hysteresis; a sampled viewer under its cap while twenty times that is posted; the priority
lane and one's own comments; the snapshot document's caching; resume across tier changes;
and nothing lost to sampling.

The cluster is this module's own, with thresholds a test can reach (a few viewers, tens of
comments a second); its topology, links and code are the repository's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import nats
import pytest
import pytest_asyncio

from chorus.cluster.binaries import Binaries
from chorus.cluster.health import hot_streams, outboxes, wait_until
from chorus.cluster.local import LocalCluster
from chorus.cluster.ports import relocate
from chorus.config import Config, Tiers
from region.auth import issue_token
from region.log_jetstream import JetStreamLog
from tests.integration.viewers import Poller, WsViewer

pytestmark = pytest.mark.integration

REGIONS = ("us-east", "eu-west", "ap-south")
CAP = 4   # sampled_per_viewer_per_s
HOT_TIERS = Tiers(sampled_enter_viewers=3, sampled_exit_viewers=2,
                  sampled_enter_rate_per_s=20.0, sampled_exit_rate_per_s=8.0,
                  sampled_per_viewer_per_s=CAP, snapshot_enter_viewers=6,
                  snapshot_exit_viewers=5, snapshot_interval_s=1.0)


def hot_cluster(repo_config: Config, tiers: Tiers, run_dir: Path) -> Config:
    """The local cluster of the hot-stream tests: ``tiers`` with small thresholds, and limits
    that let one stream and its posters flood it (the stream's bucket out of the way)."""
    limits = dataclasses.replace(repo_config.limits, stream_rate_per_s=100000.0,
                                 stream_burst=100000, user_rate_per_s=50.0, user_burst=100)
    return dataclasses.replace(relocate(repo_config), limits=limits, tiers=tiers,
                               run_dir=run_dir)


@pytest.fixture(scope="module")
def hot_config(repo_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return hot_cluster(repo_config, HOT_TIERS, Path(tmp_path_factory.mktemp("hot-cluster")))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hot(hot_config: Config, binaries: Binaries) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(hot_config, binaries) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        yield session


def url(cluster: LocalCluster, region: str, i: int = 0) -> str:
    return cluster.config.region(region).gateway_urls[i]


def token(cluster: LocalCluster, user: str, *roles: str) -> str:
    return issue_token(cluster.config.auth, user, roles=roles or ("viewer",))


class Poster:
    """Posts to a stream at a steady rate from a pool of users, until stopped; keeps every
    stored comment's id (and which were the priority lane's)."""

    def __init__(self, http: aiohttp.ClientSession, cluster: LocalCluster, stream: str,
                 regions: tuple[str, ...] = ("us-east",)) -> None:
        self.http = http
        self.cluster = cluster
        self.stream = stream
        self.bases = itertools.cycle([url(cluster, r, i) for r in regions for i in (0, 1)])
        self.tokens = itertools.cycle([token(cluster, f"p{i}") for i in range(20)])
        self.ids: list[str] = []
        self.failed = 0
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[str]] = set()

    async def post(self, tok: str | None = None, base: str | None = None,
                   text: str = "hi") -> str:
        async with self.http.post(f"{base or next(self.bases)}/v1/streams/{self.stream}"
                                  "/comments", json={"text": text},
                                  headers={"Authorization":
                                           f"Bearer {tok or next(self.tokens)}"}) as resp:
            body = await resp.json()
            if resp.status != 201:
                self.failed += 1
                raise AssertionError(f"post refused: {resp.status} {body}")
        self.ids.append(body["id"])
        return str(body["id"])

    def start(self, rate: float) -> None:
        self.stop_now()
        self._task = asyncio.create_task(self._run(rate))

    async def _run(self, rate: float) -> None:
        began = time.monotonic()
        for i in itertools.count():
            task = asyncio.create_task(self.post())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
            # Pacing the load itself, not waiting for anything.
            await asyncio.sleep(max(0.0, began + (i + 1) / rate - time.monotonic()))

    def stop_now(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def stop(self) -> None:
        """Stops posting; returns once the posts under way are answered."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await asyncio.gather(*self._pending, return_exceptions=True)


def tiers_of(viewer: WsViewer) -> list[str]:
    return [f["tier"] for f in viewer.of_type("tier")]


async def viewers_in(http: aiohttp.ClientSession, cluster: LocalCluster, stream: str,
                     per_region: int = 1, prefix: str = "v") -> list[WsViewer]:
    out = []
    for region in REGIONS:
        for i in range(per_region):
            viewer = WsViewer(http, url(cluster, region, i % 2), stream,
                              token(cluster, f"{prefix}{region}{i}"), f"{region}/{i}")
            out.append(await viewer.connect())
    return out


async def until_all(viewers: list[WsViewer], tier: str, timeout_s: float = 20.0) -> None:
    for viewer in viewers:
        await viewer.until(lambda v=viewer: bool(tiers_of(v)) and tiers_of(v)[-1] == tier,
                           timeout_s)


async def close_all(viewers: list[WsViewer]) -> None:
    for viewer in viewers:
        await viewer.close()


async def test_tiers_enter_and_leave_with_hysteresis_in_every_region(
        hot: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = await viewers_in(http, hot, unique)
    arrived: dict[str, float] = {}
    poster = Poster(http, hot, unique)
    try:
        poster.start(40)        # twice the entry rate, three viewers: sampled
        await until_all(viewers, "sampled")
        for viewer in viewers:
            arrived[viewer.name] = viewer.frames.index(viewer.of_type("tier")[0])
        # Every region says so too, in its API.
        for region in REGIONS:
            async with http.get(f"{url(hot, region, 1)}/v1/streams/{unique}", headers={
                    "Authorization": f"Bearer {token(hot, 'api')}"}) as resp:
                state = await resp.json()
            assert state["tier"] == "sampled", (region, state)
            assert state["tier_reading"]["viewers"] >= 3
        # And `chorus status`, which hears the regions' notices over the hub.
        status = await hot_streams(hot.config)
        assert status[unique]["tier"] == "sampled", status
        assert set(status[unique]["regions"]) == set(REGIONS)
        # Hovering between the exit and the entry rates: it stays sampled.
        poster.start(14)
        await asyncio.sleep(6)  # the condition is that nothing happens for a while
        assert all(tiers_of(v) == ["sampled"] for v in viewers), [tiers_of(v) for v in viewers]
        # Below the exit rate: every region goes back to push.
        await poster.stop()
        await until_all(viewers, "push")
        assert all(tiers_of(v) == ["sampled", "push"] for v in viewers)
        assert all(not v.duplicates for v in viewers)
    finally:
        await poster.stop()
        await close_all(viewers)


async def test_every_region_agrees_within_two_seconds(
        hot: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = await viewers_in(http, hot, unique)
    seen: dict[str, float] = {}

    async def watch(viewer: WsViewer) -> None:
        await viewer.until(lambda: "sampled" in tiers_of(viewer), 25)
        seen[viewer.name] = time.monotonic()

    poster = Poster(http, hot, unique, regions=REGIONS)
    try:
        poster.start(40)
        await asyncio.gather(*(watch(v) for v in viewers))
        assert max(seen.values()) - min(seen.values()) < 2.0, seen
    finally:
        await poster.stop()
        await close_all(viewers)


async def test_a_sampled_viewer_stays_under_its_cap_with_every_priority_comment_and_its_own(
        hot: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = await viewers_in(http, hot, unique)
    poster = Poster(http, hot, unique, regions=("us-east", "eu-west"))
    host = token(hot, "the-host", "host")
    try:
        poster.start(40)
        await until_all(viewers, "sampled")
        poster.start(20 * CAP)                       # twenty times the cap
        flood_began = time.monotonic()
        counted = {v.name: len(v.ids) for v in viewers}
        lane = []
        for i, region in enumerate(("ap-south", "us-east", "eu-west", "ap-south", "us-east")):
            lane.append(await poster.post(host, url(hot, region, i % 2), f"host {i}"))
            await asyncio.sleep(1)                   # a host comment a second, mid-flood
        me = viewers[1]                              # in eu-west: posts on its WebSocket
        await me.send({"type": "comment", "text": "my own", "ref": "mine"})
        await me.until(lambda: any(f.get("ref") == "mine" for f in me.of_type("ack")), 10)
        mine = next(f for f in me.of_type("ack") if f.get("ref") == "mine")["comment"]["id"]
        await asyncio.sleep(1)
        await poster.stop()
        flood_s = time.monotonic() - flood_began
        for viewer in viewers:
            await viewer.until(lambda v=viewer: set(lane) <= v.seen, 15)
        await me.until(lambda: mine in me.seen, 15)
        posted = len(poster.ids)
        for viewer in viewers:
            during = viewer.ids[counted[viewer.name]:]
            sampled = [c for c in during if c not in lane and c != mine]
            # At most CAP a second (seconds are the gateway's: one more for the edges).
            assert len(sampled) <= CAP * (flood_s + 2), (viewer.name, len(sampled), flood_s,
                                                         tiers_of(viewer))
            assert not viewer.duplicates
            samples = [f["sample"] for f in viewer.of_type("comments") if "sample" in f]
            assert samples and max(s["posted"] for s in samples) > 2 * CAP, samples
        assert posted > 15 * CAP * 5  # the flood did happen
        assert mine not in viewers[0].seen or mine in me.seen
    finally:
        await poster.stop()
        await close_all(viewers)


async def test_a_resume_across_tier_changes_has_no_unannounced_gap_and_no_duplicate(
        hot: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = await viewers_in(http, hot, unique)
    stayer = viewers[0]
    leaver = WsViewer(http, url(hot, "us-east", 1), unique, token(hot, "leaver"), "leaver")
    await leaver.connect()
    poster = Poster(http, hot, unique)
    try:
        for i in range(5):
            await poster.post(text=f"before {i}")
        await leaver.count(5)
        cursor = leaver.cursor
        await leaver.close()                       # away while the stream turns hot
        poster.start(40)
        await until_all(viewers, "sampled")
        await leaver.connect(cursor)               # resumes in the sampled tier
        await leaver.until(lambda: tiers_of(leaver) == ["sampled"], 10)
        await poster.stop()
        await until_all([*viewers, leaver], "push")
        after = [await poster.post(text=f"after {i}") for i in range(5)]
        for viewer in (stayer, leaver):
            await viewer.until(lambda v=viewer: set(after) <= v.seen, 15)
            assert not viewer.duplicates, viewer.name
            assert not [f for f in viewer.of_type("recovered") if not f["recovered"]]
            assert viewer.ids[-5:] == after        # back in push: everything, in order
    finally:
        await poster.stop()
        await leaver.close()
        await close_all(viewers)


async def test_the_snapshot_is_cached_by_etag_and_reaches_live_viewers(
        hot: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = await viewers_in(http, hot, unique, per_region=2)   # 6: the snapshot tier
    poster = Poster(http, hot, unique)
    host = token(hot, "snap-host", "host")
    try:
        poster.start(40)
        await until_all(viewers, "snapshot")
        lane = await poster.post(host, url(hot, "eu-west"), "from the host")
        for viewer in viewers:
            await viewer.until(lambda v=viewer: any(
                lane in [c["id"] for c in f["priority"]] for f in v.of_type("snapshot")), 15)
        tier = viewers[0].of_type("tier")[-1]
        assert tier["snapshot_url"].endswith(f"/v1/streams/{unique}/snapshot")
        for region in REGIONS:
            async with http.get(f"{url(hot, region)}/v1/streams/{unique}/snapshot") as resp:
                assert resp.status == 200, await resp.text()
                etag = resp.headers["ETag"]
                assert resp.headers["Cache-Control"] == "public, max-age=1"
                doc = json.loads(await resp.read())
            assert doc["stream"] == unique and doc["region"] == region
            async with http.get(f"{url(hot, region, 1)}/v1/streams/{unique}/snapshot",
                                headers={"If-None-Match": etag}) as again:
                # The same document from the region's other gateway, unless it was just
                # rewritten (once a second): then a fresh one.
                assert again.status in (200, 304)
                if again.status == 304:
                    assert again.headers["ETag"] == etag
            got_304 = False
            for _ in range(5):
                async with http.get(f"{url(hot, region)}/v1/streams/{unique}/snapshot") as r:
                    etag = r.headers["ETag"]
                async with http.get(f"{url(hot, region)}/v1/streams/{unique}/snapshot",
                                    headers={"If-None-Match": etag}) as r:
                    if r.status == 304:
                        got_304 = True
                        assert await r.read() == b""
                        break
            assert got_304, region
        async with http.get(f"{url(hot, 'us-east')}/v1/streams/not{unique}/snapshot") as r:
            assert r.status == 404
    finally:
        await poster.stop()
        await close_all(viewers)


async def test_a_long_poll_viewer_alone_on_its_gateway_gets_the_tier_and_its_sample(
        hot: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    # Every long poll is a new session: the gateway must hold the stream's tier between them.
    viewers = [await WsViewer(http, url(hot, region, i), unique, token(hot, f"w{region}{i}"),
                              f"{region}/{i}").connect()
               for region, i in (("eu-west", 0), ("eu-west", 1), ("ap-south", 0))]
    poller = await Poller(http, url(hot, "us-east", 1), unique, token(hot, "poller"),
                          "poller").start()
    poster = Poster(http, hot, unique, regions=("eu-west",))
    fresh: Poller | None = None
    try:
        poster.start(40)
        await until_all(viewers, "sampled")
        await poller.until(lambda: "tier" in poller.frames[-1], 20)
        began = len(poller.frames) - 1
        # A batch says what it stood for: "n of m", m the flood's second on this gateway.
        await poller.until(lambda: any(a.get("sample", {}).get("posted", 0) > 2 * CAP
                                       for a in poller.frames[began:]), 20)
        await poller.until(lambda: len(poller.frames) >= began + 5, 20)
        answers = poller.frames[began:]
        # Every answer from then on says the tier: it does not fall back to push between
        # polls (nor flap in the client, which reads an answer without it as push).
        assert all(a.get("tier", {}).get("tier") == "sampled" for a in answers), answers
        assert all(a["tier"]["per_viewer_per_s"] == CAP for a in answers)
        samples = [a["sample"] for a in answers if "sample" in a]
        assert all(0 <= s["shown"] <= s["posted"] for s in samples), samples
        assert not poller.duplicates
        # A poller the first of the stream on its gateway knows the tier from its first
        # answer: once the gateway has heard the agreement (its API says so; a machine at
        # load 30 can delay the notices past their 2 s freshness, and then the gateway
        # rightly does not know).
        async def knows() -> bool:
            async with http.get(f"{url(hot, 'us-east', 0)}/v1/streams/{unique}", headers={
                    "Authorization": f"Bearer {token(hot, 'api')}"}) as resp:
                return (await resp.json()).get("tier") == "sampled"
        await wait_until(knows, what="us-east/0 hearing the sampled tier", timeout_s=20)
        fresh = await Poller(http, url(hot, "us-east", 0), unique, token(hot, "fresh"),
                             "fresh").start()
        assert fresh.frames[0].get("tier", {}).get("tier") == "sampled", fresh.frames[0]
    finally:
        await poster.stop()
        await poller.close()
        if fresh is not None:
            await fresh.close()
        await close_all(viewers)


async def test_the_snapshot_url_answers_a_document_from_the_tiers_announcement(
        hot: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = await viewers_in(http, hot, unique, per_region=2)   # one on every gateway
    poster = Poster(http, hot, unique)
    answers: dict[str, int] = {}

    async def fetch_when_told(viewer: WsViewer) -> None:
        await viewer.until(lambda: "snapshot" in tiers_of(viewer), 30)
        told = next(f for f in viewer.of_type("tier") if f["tier"] == "snapshot")
        # At once: before the region's first render, the gateway renders it on demand.
        async with http.get(told["snapshot_url"]) as resp:
            answers[viewer.name] = resp.status
            if resp.status == 200:
                doc = json.loads(await resp.read())
                assert doc["stream"] == unique and doc["tier"] == "snapshot"
                assert resp.headers["ETag"]

    try:
        poster.start(40)
        await asyncio.gather(*(fetch_when_told(v) for v in viewers))
        assert answers == {v.name: 200 for v in viewers}, answers
    finally:
        await poster.stop()
        await close_all(viewers)


async def test_sampling_loses_nothing_every_region_stores_every_comment(
        hot: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = await viewers_in(http, hot, unique)
    poster = Poster(http, hot, unique, regions=REGIONS)
    host = token(hot, "lane-host", "host")
    try:
        poster.start(40)
        await until_all(viewers, "sampled")
        for i, region in enumerate(REGIONS):     # a flood in the sampled tier, and the
            await poster.post(host, url(hot, region), f"host {i}")  # priority lane's shortcut
            await asyncio.sleep(1)
        await poster.stop()
        total = len(poster.ids)

        async def stored(region: str, chained: bool = False) -> int:
            nc = await nats.connect(hot.config.region(region).nats_url)
            try:
                log = JetStreamLog(nc, region,
                                   hot_partitions=hot.config.tiers.hot_log_partitions)
                return await (log.count_after(unique, 0) if chained else log.count(unique))
            finally:
                await nc.close()

        for region in REGIONS:
            async def complete(region: str = region) -> bool:
                return await stored(region) >= total
            await wait_until(complete, what=f"{total} comments in {region}'s log",
                             timeout_s=20)

        async def drained() -> bool:
            depths = [d for r in REGIONS for d in (await outboxes(hot.config, r)).values()]
            return all(d == 0 for d in depths)
        await wait_until(drained, what="every outbox drained", timeout_s=20)
        # Each once: the priority lane's shortcut and the outbox's copy are one comment.
        assert [await stored(r) for r in REGIONS] == [total] * 3
        expedited = 0.0
        for region in REGIONS:
            for operator in hot.config.region(region).operator_urls:
                async with http.get(f"{operator}/metrics") as resp:
                    text = await resp.text()
                expedited += sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                                 if line.startswith("chorus_priority_expedited_total{"))
        assert expedited >= 3 * 2 * 0.5, expedited   # most shortcuts taken (cached presence)
        # The flood went to the hot partitions (no one sequence took it): every region's
        # chained log holds the host's three and what came before the stream turned hot.
        for region in REGIONS:
            chained = await stored(region, chained=True)
            assert chained >= 3 and total - chained >= 40, (region, chained, total)
        # History pages every one of them, newest first.
        seen: set[str] = set()
        before: str | None = None
        while True:
            params = {"limit": "200", **({"before": before} if before else {})}
            async with http.get(f"{url(hot, 'ap-south')}/v1/streams/{unique}/comments",
                                params=params, headers={
                                    "Authorization": f"Bearer {token(hot, 'h')}"}) as r:
                page = await r.json()
            seen.update(c["id"] for c in page["items"])
            before = page["next"]
            if not before:
                break
        assert set(poster.ids) <= seen
    finally:
        await poster.stop()
        await close_all(viewers)
