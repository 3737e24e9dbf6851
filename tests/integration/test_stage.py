"""The region's sampling stage on the real three-region cluster (test_hot.py's small-threshold
cluster, a cluster of this module's own): the region's gateways show one sample, decided by
the stream's keeper; when the keeper dies, the viewers of the region's other gateway keep
getting a sample, the priority lane and their own comments, without a duplicate or an
unannounced gap, and a viewer of the dead keeper resumes on the survivor the same way.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from chorus.cluster.binaries import Binaries
from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.config import Config
from tests.integration.test_hot import (
    CAP,
    HOT_TIERS,
    Poster,
    close_all,
    hot_cluster,
    tiers_of,
    token,
    until_all,
    url,
)
from tests.integration.viewers import WsViewer

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stage_config(repo_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return hot_cluster(repo_config, HOT_TIERS, Path(tmp_path_factory.mktemp("stage-cluster")))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def staged(stage_config: Config, binaries: Binaries) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(stage_config, binaries) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        yield session


async def keeper_of(cluster: LocalCluster, stream: str) -> int | None:
    """Which of us-east's gateways holds the stream's lease (region/tiers_redis.py)."""
    redis = aioredis.Redis(port=cluster.config.region("us-east").redis.port)
    try:
        holder = await redis.get(f"chorus:tierk:{stream}")
    finally:
        await redis.aclose()
    return None if holder is None else int(holder.decode().rsplit(".", 1)[1])


async def one_sample(poster: Poster, host: str, a: WsViewer, b: WsViewer,
                     timeout_s: float = 30.0) -> list[str]:
    """Waits until two viewers of us-east's two gateways got the same sample between two
    of the host's comments; returns it."""
    async def same() -> bool:
        first = await poster.post(host, text="marker")
        for viewer in (a, b):
            await viewer.until(lambda v=viewer: first in v.seen, 15)
        marks = [len(a.ids), len(b.ids)]
        # A window of a few sampled comments on each side, whatever the machine's pace.
        for viewer, at in ((a, marks[0]), (b, marks[1])):
            await viewer.until(lambda v=viewer, at=at: len(v.ids) >= at + 2 * CAP, 15)
        last = await poster.post(host, text="marker")
        for viewer in (a, b):
            await viewer.until(lambda v=viewer: last in v.seen, 15)

        def window(v: WsViewer) -> list[str]:
            return v.ids[v.ids.index(first) + 1:v.ids.index(last)]
        shown = window(a)
        if shown and shown == window(b):
            got[:] = shown
            return True
        return False

    got: list[str] = []
    await wait_until(same, what="one sample in the region's two gateways",
                     timeout_s=timeout_s)
    return got


async def watching(staged: LocalCluster, http: aiohttp.ClientSession, unique: str
                   ) -> list[WsViewer]:
    """A viewer on each of us-east's gateways (a and b) and one in eu-west (c)."""
    return [await WsViewer(http, url(staged, region, i), unique, token(staged, name),
                           f"{region}/{i}").connect()
            for region, i, name in (("us-east", 0, "a"), ("us-east", 1, "b"),
                                    ("eu-west", 0, "c"))]


async def test_the_regions_gateways_show_the_stages_one_sample(
        staged: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = a, b, _ = await watching(staged, http, unique)
    poster = Poster(http, staged, unique, regions=("us-east", "eu-west"))
    host = token(staged, "stage-host", "host")
    try:
        poster.start(20 * CAP)
        await until_all(viewers, "sampled")
        shown = await one_sample(poster, host, a, b)
        assert 0 < len(shown) <= 4 * CAP * 4      # a sample, not the flood
        # The author's own comment reaches them on the follower as on the keeper.
        for viewer in (a, b):
            await viewer.send({"type": "comment", "text": "my own", "ref": "mine"})
        for viewer in (a, b):
            await viewer.until(lambda v=viewer: any(
                f.get("ref") == "mine" for f in v.of_type("ack")), 10)
            mine = next(f for f in viewer.of_type("ack") if f.get("ref") == "mine")
            await viewer.until(lambda v=viewer, m=mine: m["comment"]["id"] in v.seen, 15)
        # "n of m" is the region's count: the stage's, the same on both gateways.
        await poster.stop()
        for viewer in viewers:
            assert not viewer.duplicates, viewer.name
            assert not [f for f in viewer.of_type("recovered") if not f["recovered"]]
            samples = [f["sample"] for f in viewer.of_type("comments") if "sample" in f]
            assert samples and max(s["posted"] for s in samples) > 2 * CAP, viewer.name
    finally:
        await poster.stop()
        await close_all(viewers)


async def test_the_keepers_death_costs_the_other_gateways_viewers_nothing(
        staged: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    on = [await WsViewer(http, url(staged, "us-east", i), unique, token(staged, f"u{i}"),
                         f"us-east/{i}").connect() for i in (0, 1)]
    others = [await WsViewer(http, url(staged, region, 0), unique, token(staged, region),
                             region).connect() for region in ("eu-west", "ap-south")]
    poster = Poster(http, staged, unique, regions=("eu-west", "ap-south"))
    host = token(staged, "lane-host", "host")
    victim_name = ""
    resumed: WsViewer | None = None
    try:
        poster.start(20 * CAP)
        await until_all([*on, *others], "sampled")
        await one_sample(poster, host, on[0], on[1])
        keeper = await keeper_of(staged, unique)
        assert keeper in (0, 1)
        dead, survivor = on[keeper], on[1 - keeper]
        victim_name = f"us-east/gateway-{keeper}"
        counted = len(survivor.ids)
        staged.child(victim_name).kill()
        await dead.closed.wait()
        # The dead keeper's viewer resumes on the survivor with its cursor.
        resumed = WsViewer(http, url(staged, "us-east", 1 - keeper), unique,
                           token(staged, f"u{keeper}"), "resumed")
        await resumed.connect(dead.cursor)
        lane = []
        for i in range(6):     # a host comment a second while the stage changes hands
            lane.append(await poster.post(host, url(staged, "eu-west"), f"lane {i}"))
            await asyncio.sleep(1)   # pacing the lane, not waiting for anything
        # The survivor takes the lease and is the region's stage now.
        async def survivor_keeps() -> bool:
            return await keeper_of(staged, unique) == 1 - keeper
        await wait_until(survivor_keeps, what="the survivor's lease", timeout_s=30)
        after = await one_sample(poster, host, survivor, resumed)
        await poster.stop()
        for viewer in (survivor, resumed):
            await viewer.until(lambda v=viewer: set(lane) <= v.seen, 15)
            assert not viewer.duplicates, viewer.name
            assert not [f for f in viewer.of_type("recovered") if not f["recovered"]], (
                viewer.name)
            assert tiers_of(viewer)[-1] == "sampled"
        assert [f["recovered"] for f in resumed.of_type("recovered")] == [True]
        assert not set(dead.ids) & set(resumed.ids)   # nothing twice across the resume
        # A sample all along, not the flood: at most CAP a second and the lane.
        during = [i for i in survivor.ids[counted:] if i not in set(lane)]
        assert during and after
        assert len(during) < len(poster.ids) / 2, (len(during), len(poster.ids))
    finally:
        await poster.stop()
        await close_all([*on, *others])
        if resumed is not None:
            await resumed.close()
        if victim_name:
            restarted = await staged.restart(victim_name)

            async def healthy() -> bool:
                try:
                    async with http.get(f"{url(staged, 'us-east', int(victim_name[-1]))}"
                                        "/healthz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False
            await wait_until(healthy, what=victim_name, timeout_s=30, children=[restarted])


async def test_a_frozen_keeper_is_replaced_and_follows_the_new_stage_when_it_wakes(
        staged: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    on = [await WsViewer(http, url(staged, "us-east", i), unique, token(staged, f"f{i}"),
                         f"us-east/{i}").connect() for i in (0, 1)]
    others = [await WsViewer(http, url(staged, region, 0), unique, token(staged, region),
                             region).connect() for region in ("eu-west", "ap-south")]
    poster = Poster(http, staged, unique, regions=("eu-west", "ap-south"))
    host = token(staged, "frozen-host", "host")
    frozen = None
    try:
        poster.start(20 * CAP)
        await until_all([*on, *others], "sampled")
        await one_sample(poster, host, on[0], on[1])
        keeper = await keeper_of(staged, unique)
        assert keeper in (0, 1)
        frozen = staged.child(f"us-east/gateway-{keeper}")
        frozen.freeze()          # its stage silent, its lease lapsing: two stages after it
        lane = []
        for i in range(5):
            lane.append(await poster.post(host, url(staged, "eu-west"), f"lane {i}"))
            await asyncio.sleep(1)   # pacing the lane while the keeper is frozen

        async def survivor_keeps() -> bool:
            return await keeper_of(staged, unique) == 1 - keeper
        await wait_until(survivor_keeps, what="the survivor's lease", timeout_s=30)
        frozen.thaw()
        frozen = None
        for i in range(3):
            lane.append(await poster.post(host, url(staged, "eu-west"), f"after {i}"))
        # The old keeper, awake, follows the new stage: one sample for the region again.
        await one_sample(poster, host, on[0], on[1])
        await poster.stop()
        for viewer in on:
            await viewer.until(lambda v=viewer: set(lane) <= v.seen, 20)
            assert not viewer.duplicates, viewer.name
            assert not [f for f in viewer.of_type("recovered") if not f["recovered"]], (
                viewer.name)
    finally:
        if frozen is not None:
            frozen.thaw()
        await poster.stop()
        await close_all([*on, *others])


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples in a /metrics text whose labels include ``labels``."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and all(w in line for w in want))


async def scraped(http: aiohttp.ClientSession, cluster: LocalCluster, i: int) -> str:
    async with http.get(f"{cluster.config.region('us-east').operator_urls[i]}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


async def test_an_author_who_just_came_to_a_follower_gets_a_comment_posted_at_once(
        staged: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = a, b, _ = await watching(staged, http, unique)
    poster = Poster(http, staged, unique, regions=("us-east", "eu-west"))
    host = token(staged, "join-host", "host")
    authors: list[WsViewer] = []
    try:
        poster.start(20 * CAP)
        await until_all(viewers, "sampled")
        await one_sample(poster, host, a, b)      # the follower follows the keeper's stage
        keeper = await keeper_of(staged, unique)
        assert keeper in (0, 1)
        follower = 1 - keeper
        # Authors new to the follower post the moment their session starts (its hello):
        # their user's own subject must already be at the server, or the stage's item for
        # them passes the gateway by. Their comments are mostly left out of the sample.
        for i in range(5):
            author = await WsViewer(http, url(staged, "us-east", follower), unique,
                                    token(staged, f"joiner-{unique}-{i}"), f"author {i}").connect()
            await author.send({"type": "comment", "text": "at once", "ref": "now"})
            authors.append(author)
        for author in authors:
            await author.until(lambda v=author: bool(v.of_type("ack")), 10)
            mine = author.of_type("ack")[0]["comment"]["id"]
            await author.until(lambda v=author, m=mine: m in v.seen, 15)
            assert not author.of_type("recovered")     # live (a resume would read it back)
            assert not author.duplicates
        await poster.stop()
        # The stage's messages and the gateways' parts are counted.
        on_keeper, on_follower = (await scraped(http, staged, keeper),
                                  await scraped(http, staged, follower))
        assert metric(on_keeper, "chorus_stage_messages_total", kind="own",
                      outcome="published") > 0
        assert metric(on_keeper, "chorus_stage_messages_total", kind="shared",
                      outcome="published") > 0
        assert metric(on_follower, "chorus_stage_messages_total", kind="shared",
                      outcome="received") > 0
        assert metric(on_follower, "chorus_stage_messages_total", kind="own",
                      outcome="received") > 0
        assert metric(on_keeper, "chorus_stage_streams", role="keeper") >= 1
        assert metric(on_follower, "chorus_stage_streams", role="follower") >= 1
    finally:
        await poster.stop()
        await close_all([*viewers, *authors])
