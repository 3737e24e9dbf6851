"""Reply threads on the real three-region cluster: a reply names a comment of its stream,
threads page in every region that holds them, and the parent carries its reply count."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from tests.integration.test_cell import post, token
from tests.integration.test_global import _presence_visible, url
from tests.integration.viewers import WsViewer

pytestmark = pytest.mark.integration

REGIONS = ("us-east", "eu-west", "ap-south")


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http: aiohttp.ClientSession, address: str, tok: str) -> tuple[int, Any]:
    async with http.get(address, headers={"Authorization": f"Bearer {tok}"}) as resp:
        return resp.status, await resp.json()


async def test_replies_name_a_comment_of_their_stream_and_threads_page_everywhere(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = [await WsViewer(http, url(cluster, r), unique, token(cluster, f"w-{r}"),
                              f"ws-{r}").connect() for r in REGIONS]
    await _presence_visible(cluster, unique, REGIONS)
    reader = token(cluster, "reader")
    try:
        status, parent = await post(http, url(cluster, "us-east"), unique,
                                    token(cluster, "ana"), text="who scored?")
        assert status == 201
        pid = str(parent["id"])
        for viewer in viewers:
            await viewer.until(lambda v=viewer: pid in v.seen, 15)
        # Replies through every region: the parent reached each with the stream's comments.
        replies = []
        for i in range(6):
            region = REGIONS[i % 3]
            status, doc = await post(http, url(cluster, region, i % 2), unique,
                                     token(cluster, f"fan{i}"), text=f"number {i}!",
                                     reply_to=pid)
            assert status == 201, (region, doc)
            assert doc["reply_to"] == pid
            replies.append(str(doc["id"]))
        for viewer in viewers:
            await viewer.until(lambda v=viewer: set(replies) <= v.seen, 15)
        # A reply to nothing, or to another stream's comment: 422.
        _, elsewhere = await post(http, url(cluster, "us-east"), f"{unique}-b",
                                  token(cluster, "ana"), text="other stream")
        for bad in (str(elsewhere["id"]), "0000000000000000-us-east.0"):
            status, doc = await post(http, url(cluster, "eu-west"), unique,
                                     token(cluster, "bo"), text="hm", reply_to=bad)
            assert status == 422 and doc["error"]["code"] == "invalid", doc

        for region in REGIONS:
            base = f"{url(cluster, region)}/v1/streams/{unique}/comments"

            async def indexed(base: str = base) -> bool:
                status, doc = await get(http, f"{base}/{pid}/replies", reader)
                return status == 200 and doc["parent"]["replies"] == 6
            await wait_until(indexed, what=f"{region} to index the thread", timeout_s=10,
                             interval_s=0.1)
            # Pages of the thread, oldest first in the region's order.
            seen: list[str] = []
            after = ""
            while True:
                status, page = await get(http, f"{base}/{pid}/replies?limit=4{after}", reader)
                assert status == 200 and page["parent"]["id"] == pid
                seen += [c["id"] for c in page["items"]]
                if page["next"] is None:
                    break
                after = f"&after={page['next']}"
            assert sorted(seen) == sorted(replies) and len(seen) == 6, region
            # History shows the parent with its count.
            status, history = await get(http, f"{base}?limit=50", reader)
            counted = {c["id"]: c.get("replies") for c in history["items"]}
            assert counted[pid] == 6 and counted[replies[0]] is None, region
        status, doc = await get(http, f"{url(cluster, 'us-east')}/v1/streams/{unique}/comments/"
                                "0000000000000000-us-east.0/replies", reader)
        assert status == 404
    finally:
        for viewer in viewers:
            await viewer.close()
