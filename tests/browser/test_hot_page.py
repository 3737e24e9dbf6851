"""The viewer page on a hot stream, in a real headless Chromium: the tier is announced,
a sampled stream shows "showing n of m", nothing is shown twice or drawn as a gap, and when
the stream cools down every comment is shown again from where the page was; in the snapshot
tier the page shows the document, and its priority lane joins the comments (over long-poll,
from the document the client fetches).

The cluster is this module's own, with tier thresholds a test can reach (three viewers,
twenty comments a second), as in tests/integration/test_hot.py; its topology and code are the
repository's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from chorus.cluster.binaries import Binaries
from chorus.cluster.local import LocalCluster
from chorus.config import Config, Tiers
from region.auth import issue_token
from tests.browser.conftest import Page
from tests.integration.test_hot import hot_cluster
from tests.integration.viewers import WsViewer

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CAP = 4  # sampled_per_viewer_per_s
HOT_TIERS = Tiers(sampled_enter_viewers=3, sampled_exit_viewers=2,
                  sampled_enter_rate_per_s=20.0, sampled_exit_rate_per_s=8.0,
                  sampled_per_viewer_per_s=CAP, snapshot_enter_viewers=7,
                  snapshot_exit_viewers=6, snapshot_interval_s=1.0)
RATE = 40  # comments a second: twice the entry rate
RENDERED = "return [...document.querySelectorAll('#comments li[data-id]')].map(li => li.dataset.id)"
TIER = "return document.getElementById('tier').dataset"


@pytest.fixture(scope="module")
def hot_page_config(repo_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Config:
    return hot_cluster(repo_config, HOT_TIERS, Path(tmp_path_factory.mktemp("hot-page-cluster")))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def hot(hot_page_config: Config, binaries: Binaries) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(hot_page_config, binaries) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        yield session


def token(cluster: LocalCluster, user: str, role: str = "viewer") -> str:
    return issue_token(cluster.config.auth.dev_secret, user, roles=(role,))


def gateway(cluster: LocalCluster, region: str, i: int = 0) -> str:
    return cluster.config.region(region).gateway_urls[i]


@contextlib.asynccontextmanager
async def flood(http: aiohttp.ClientSession, cluster: LocalCluster, stream: str,
                rate: float) -> AsyncIterator[list[str]]:
    """Posts ``rate`` comments a second through us-east's gateways, from a pool of users, until
    the block ends; yields the ids stored so far."""
    bases = itertools.cycle(cluster.config.region("us-east").gateway_urls)
    tokens = itertools.cycle([token(cluster, f"fan{i}") for i in range(20)])
    ids: list[str] = []

    async def post(i: int) -> None:
        async with http.post(f"{next(bases)}/v1/streams/{stream}/comments",
                             json={"text": f"goal {i}"},
                             headers={"Authorization": f"Bearer {next(tokens)}"}) as resp:
            if resp.status == 201:
                ids.append((await resp.json())["id"])

    async def run() -> None:
        began = time.monotonic()
        async with asyncio.TaskGroup() as posts:
            for i in itertools.count():
                posts.create_task(post(i))
                # Pacing the load itself, not waiting for anything.
                await asyncio.sleep(max(0.0, began + (i + 1) / rate - time.monotonic()))

    task = asyncio.create_task(run(), name=f"flood {stream}")
    try:
        yield ids
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def open_live(page: Page, cluster: LocalCluster, stream: str, transport: str) -> None:
    await page.open(f"{gateway(cluster, 'us-east')}/watch/{stream}?transport={transport}"
                    f"#token={token(cluster, 'watcher')}")
    await page.until("const s = document.getElementById('status').dataset;"
                     "return s.state === 'live' && s.transport === arguments[0]", transport,
                     what=f"the page going live over {transport}")


async def connect_viewers(http: aiohttp.ClientSession, cluster: LocalCluster, stream: str,
                          places: tuple[tuple[str, int], ...]) -> list[WsViewer]:
    """WebSocket viewers at (region, gateway index), each a user of its own."""
    return [await WsViewer(http, gateway(cluster, region, i), stream,
                           token(cluster, f"v-{region}{i}-{n}"), f"{region}/{i}/{n}").connect()
            for n, (region, i) in enumerate(places)]


@pytest.mark.parametrize("transport", ["ws", "sse", "poll"])
async def test_a_sampled_stream_shows_n_of_m_and_comes_back_to_push_without_a_gap(
        page: Page, hot: LocalCluster, http: aiohttp.ClientSession, unique: str,
        transport: str) -> None:
    await open_live(page, hot, unique, transport)
    # Five viewers in all, in three regions (under the snapshot tier's seven): with the
    # flood, the stream is sampled. The page is the only viewer in us-east.
    others = await connect_viewers(http, hot, unique, (("eu-west", 0), ("eu-west", 1),
                                                       ("ap-south", 0), ("ap-south", 1)))
    try:
        async with flood(http, hot, unique, RATE):
            await page.until(f"const t = (() => {{ {TIER} }})();"
                             "return t.tier === 'sampled' && Number(t.posted) > 0",
                             what="the page showing what a sampled batch stands for",
                             timeout_s=30)
            text = await page.js("return document.getElementById('tier').textContent")
            shown, posted = (await page.js(f"const t = (() => {{ {TIER} }})();"
                                           "return [Number(t.shown), Number(t.posted)]"))
            assert text == f"showing {shown} of {posted} in the last second"
            assert 0 <= shown <= posted, text
            assert await page.js("return !document.getElementById('tier').hidden")
            events = await page.js("return document.getElementById('events').textContent")
            assert "busy stream" in events
            if os.environ.get("CHORUS_SCREENSHOTS"):
                await page.screenshot(Path(os.environ["CHORUS_SCREENSHOTS"])
                                      / f"test-viewer-sampled-{transport}.png")
        # The flood is over: below the exit rate every region goes back to push.
        await page.until(f"return (() => {{ {TIER} }})().tier === 'push'",
                         what="the page back in the push tier", timeout_s=30)
        assert await page.js("return document.getElementById('tier').hidden")
        after = []
        for i in range(3):
            async with http.post(f"{gateway(hot, 'eu-west')}/v1/streams/{unique}/comments",
                                 json={"text": f"after {i}"},
                                 headers={"Authorization": f"Bearer {token(hot, 'late')}"}
                                 ) as resp:
                assert resp.status == 201
                after.append((await resp.json())["id"])
        await page.until("const ids = new Set(arguments[0]);"
                         "return [...document.querySelectorAll('#comments li[data-id]')]"
                         ".filter(li => ids.has(li.dataset.id)).length === ids.size", after,
                         what="every comment after the flood on the page")
        rendered = await page.js(RENDERED)
        assert len(rendered) == len(set(rendered)), "a comment is shown twice"
        assert rendered == sorted(rendered), "comments are not in id order"
        assert rendered[-3:] == after
        # A tier change is announced, never drawn as a gap.
        assert await page.js("return document.querySelectorAll('#comments .gap').length") == 0
        severe = [line for line in await page.console() if line.startswith("SEVERE")]
        assert not severe, severe
    finally:
        for viewer in others:
            await viewer.close()


@pytest.mark.parametrize("transport", ["ws", "poll"])
async def test_a_snapshot_stream_shows_its_document_and_priority_lane(
        page: Page, hot: LocalCluster, http: aiohttp.ClientSession, unique: str,
        transport: str) -> None:
    await open_live(page, hot, unique, transport)
    # Seven viewers: the snapshot tier. The page is the only viewer in us-east.
    others = await connect_viewers(http, hot, unique, tuple(
        (region, i) for region in ("eu-west", "ap-south") for i in (0, 1, 0)))
    try:
        async with flood(http, hot, unique, RATE):
            await page.until(f"const t = (() => {{ {TIER} }})();"
                             "return t.tier === 'snapshot' && t.posted !== undefined",
                             what="the page showing the snapshot document", timeout_s=30)
            text = await page.js("return document.getElementById('tier').textContent")
            assert text.startswith("snapshot: ") and "watching" in text, text
            # A host's comment is in the priority lane: every viewer gets it, in the document.
            async with http.post(f"{gateway(hot, 'eu-west')}/v1/streams/{unique}/comments",
                                 json={"text": "from the host"},
                                 headers={"Authorization":
                                          f"Bearer {token(hot, 'the-host', 'host')}"}) as resp:
                assert resp.status == 201
                lane = (await resp.json())["id"]
            await page.until("return document.querySelector(`li[data-id='${arguments[0]}']`)"
                             " !== null", lane, what="the host's comment on the page",
                             timeout_s=20)
            events = await page.js("return document.getElementById('events').textContent")
            assert "very busy stream" in events
        rendered = await page.js(RENDERED)
        assert len(rendered) == len(set(rendered)), "a comment is shown twice"
        assert rendered == sorted(rendered), "comments are not in id order"
        assert await page.js("return document.querySelectorAll('#comments .gap').length") == 0
        # The document is there from the tier's announcement on: no 404 (nor any other
        # failed request) in the browser's log.
        severe = [line for line in await page.console() if line.startswith("SEVERE")]
        assert not severe, severe
    finally:
        for viewer in others:
            await viewer.close()
