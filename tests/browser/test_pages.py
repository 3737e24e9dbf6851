"""The viewer page and the ops dashboard in a real headless Chromium, against the real
local cluster (the session's `cluster`): what a person on a phone would see."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from chorus.cluster import ops, plan
from chorus.cluster.health import http_json, wait_until
from chorus.cluster.local import LocalCluster
from chorus.config import Config
from region.auth import issue_token
from tests.browser.conftest import Page

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# CHORUS_SCREENSHOTS=docs/img makes the tests leave their pages there (the README's pictures).
SHOTS = os.environ.get("CHORUS_SCREENSHOTS")

# The ids of the comments the page shows, in order, each at most once.
RENDERED = "return [...document.querySelectorAll('#comments li[data-id]')].map(li => li.dataset.id)"


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def token(cluster: LocalCluster, user: str, *, name: str | None = None,
          roles: tuple[str, ...] = ("viewer",)) -> str:
    return issue_token(cluster.config.auth.dev_secret, user, name=name, roles=roles)


def gateway(cluster: LocalCluster, region: str, i: int = 0) -> str:
    return cluster.config.region(region).gateway_urls[i]


async def post(http: aiohttp.ClientSession, cluster: LocalCluster, region: str, stream: str,
               text: str, *, user: str = "poster", name: str | None = None) -> dict[str, Any]:
    async with http.post(f"{gateway(cluster, region)}/v1/streams/{stream}/comments",
                         json={"text": text, "client_key": os.urandom(8).hex()},
                         headers={"Authorization": f"Bearer {token(cluster, user, name=name)}"}
                         ) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 201, body
        return body


async def watch(page: Page, cluster: LocalCluster, region: str, stream: str,
                user: str = "viewer") -> None:
    """Opens the stream's page on ``region``'s gateway and waits until it is live there."""
    await page.open(f"{gateway(cluster, region)}/watch/{stream}#token={token(cluster, user)}")
    await page.until("const s = document.getElementById('status').dataset;"
                     "return s.state === 'live' && s.region === arguments[0]", region,
                     what=f"the page going live in {region}")


async def shows(page: Page, comment_id: str, *, timeout_s: float = 20.0) -> None:
    await page.until("return document.querySelector(`li[data-id='${arguments[0]}']`) !== null",
                     comment_id, what=f"comment {comment_id} on the page", timeout_s=timeout_s)


async def test_a_page_in_eu_west_shows_a_comment_posted_in_ap_south(
        page: Page, cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    await watch(page, cluster, "eu-west", unique)
    comment = await post(http, cluster, "ap-south", unique, "hello from ap-south",
                         user="asha", name="Asha")
    await shows(page, comment["id"])
    item = await page.js("const li = document.querySelector(`li[data-id='${arguments[0]}']`);"
                         "return {text: li.querySelector('.text').textContent,"
                         "        name: li.querySelector('.name').textContent,"
                         "        origin: li.dataset.region}", comment["id"])
    assert item == {"text": "hello from ap-south", "name": "Asha", "origin": "ap-south"}
    # The round trip to the gateway is measured and shown (WebSocket ping/pong).
    latency = await page.until("return document.getElementById('status').dataset.latency",
                               what="a latency figure")
    assert 0 <= float(latency) < 1000
    transport = await page.js("return document.getElementById('transport').textContent")
    assert transport.startswith("ws")
    severe = [line for line in await page.console() if line.startswith("SEVERE")]
    assert not severe, severe
    if SHOTS:
        await page.screenshot(Path(SHOTS) / "test-viewer.png")


@pytest.mark.parametrize("transport", ["sse", "poll"])
async def test_the_fallback_transports_show_comments(
        page: Page, cluster: LocalCluster, http: aiohttp.ClientSession, unique: str,
        transport: str) -> None:
    await page.open(f"{gateway(cluster, 'ap-south')}/watch/{unique}?transport={transport}"
                    f"#token={token(cluster, 'viewer')}")
    await page.until("const s = document.getElementById('status').dataset;"
                     "return s.state === 'live' && s.transport === arguments[0]", transport,
                     what=f"the page going live over {transport}")
    first = await post(http, cluster, "us-east", unique, f"over {transport} 1")
    second = await post(http, cluster, "ap-south", unique, f"over {transport} 2")
    await shows(page, first["id"])
    await shows(page, second["id"])
    assert await page.js(RENDERED) == sorted([first["id"], second["id"]])
    await page.until("return document.getElementById('status').dataset.latency",
                     what=f"a latency figure over {transport}")


async def test_hostile_text_renders_as_text(page: Page, cluster: LocalCluster,
                                            http: aiohttp.ClientSession, unique: str) -> None:
    await watch(page, cluster, "us-east", unique)
    text = ('<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> '
            '"quotes" & <b>bold</b> \u202e not reversed? no: refused')
    text = text.replace("\u202e", "")  # a bidi override is refused at the door (422)
    name = '<b id="evil" onmouseover="window.pwned=3">Mallory</b>'
    comment = await post(http, cluster, "us-east", unique, text, user="mallory", name=name)
    await shows(page, comment["id"])
    seen = await page.js(
        "const li = document.querySelector(`li[data-id='${arguments[0]}']`);"
        "return {text: li.querySelector('.text').textContent,"
        "        name: li.querySelector('.name').textContent,"
        "        elements: li.querySelectorAll('img, script, b').length,"
        "        evil: document.getElementById('evil') !== null,"
        "        pwned: window.pwned === undefined ? null : window.pwned}", comment["id"])
    assert seen == {"text": text, "name": name, "elements": 0, "evil": False, "pwned": None}


async def test_a_page_whose_region_is_killed_fails_over_without_duplicates(
        page: Page, cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    config = cluster.config
    await watch(page, cluster, "eu-west", unique)
    # A poster per phase: thirteen posts in a few seconds are more than one user's burst.
    posted = [(await post(http, cluster, "us-east", unique, f"before {i}",
                          user="before-poster"))["id"]
              for i in range(5)]
    for comment_id in posted:
        await shows(page, comment_id)
    region = config.region("eu-west")
    dead = [plan.gateway_name(region, i) for i in range(region.gateways)] + [
        plan.nats_name(region)]
    try:
        for name in dead:
            cluster.child(name).kill()
        posted += [(await post(http, cluster, "us-east", unique, f"during {i}",
                               user="during-poster"))["id"]
                   for i in range(5)]
        moved_to = await page.until(
            "const s = document.getElementById('status').dataset;"
            "return s.state === 'live' && s.region !== 'eu-west' && s.region", what="a failover",
            timeout_s=45)
        assert moved_to in ("us-east", "ap-south")
        posted += [(await post(http, cluster, moved_to, unique, f"after {i}",
                               user="after-poster"))["id"]
                   for i in range(3)]
        for comment_id in posted:
            await shows(page, comment_id, timeout_s=30)
        rendered = await page.js(RENDERED)
        assert len(rendered) == len(set(rendered)), "a comment is shown twice"
        assert rendered == sorted(rendered), "comments are not in id order"
        assert set(posted) <= set(rendered)
        state = await page.js("return document.getElementById('status').dataset")
        assert int(state["failovers"]) >= 1 and int(state["reconnects"]) >= 1
        events = await page.js("return document.getElementById('events').textContent")
        assert "failing over" in events
        assert await page.js("return document.querySelectorAll('#comments .gap').length") == 0
        if SHOTS:
            await page.screenshot(Path(SHOTS) / "test-viewer-failover.png")
    finally:
        for name in reversed(dead):
            await cluster.restart(name)
        for base in region.gateway_urls:
            await wait_until(_healthy_check(http, base), what=base, timeout_s=60)


def _healthy_check(http: aiohttp.ClientSession, base: str) -> Callable[[], Awaitable[bool]]:
    async def healthy() -> bool:
        body = await http_json(http, f"{base}/healthz")
        return body is not None and body.get("status") == "ok"
    return healthy


async def test_the_dashboard_shows_a_cut_link(page: Page, cluster: LocalCluster,
                                              http: aiohttp.ClientSession) -> None:
    async with ops.serve(cluster, port=0) as (_dashboard, url):
        host = token(cluster, "ops", roles=("host",))
        await page.open(f"{url}/#token={host}")
        row = "document.querySelector(\"#regions tr[data-region='ap-south']\")"
        await page.until(f"return {row} !== null && {row}.dataset.link === 'up'",
                         what="ap-south's link shown up")
        try:
            await page.js(f"{row}.querySelector(\"button[data-action='cut']\").click()")
            await page.until(f"return {row}.dataset.link === 'cut' && "
                             f"{row}.querySelector('.link').textContent === 'CUT'",
                             what="ap-south's link shown cut")
            assert (await page.js("return document.getElementById('control-error').textContent")
                    == "")
            if SHOTS:
                await page.screenshot(Path(SHOTS) / "test-dashboard-cut.png")
            await page.js(f"{row}.querySelector(\"button[data-action='restore']\").click()")
            await page.until(f"return {row}.dataset.link === 'up'",
                             what="ap-south's link shown up again")
        finally:
            cluster.set_link("ap-south", enabled=True)


@dataclass
class _FakeReport:
    passed: bool = True

    def text(self) -> str:
        return "drill link-slow: PASSED"


async def _fake_drill(config: Config, **kwargs: Any) -> _FakeReport:
    progress = kwargs.pop("progress")   # the page shows a running drill's lines
    assert kwargs == {"drill": "link-slow", "region": "eu-west", "seconds": 2.0}
    progress("t=  1.0 s")
    return _FakeReport()


async def test_controls_need_a_moderator_or_host(cluster: LocalCluster,
                                                http: aiohttp.ClientSession) -> None:
    async with ops.serve(cluster, port=0, drill_runner=_fake_drill) as (dashboard, url):
        body = {"action": "cut"}
        async with http.post(f"{url}/api/links/ap-south", json=body) as resp:
            assert resp.status == 401
        viewer = token(cluster, "someone")
        async with http.post(f"{url}/api/links/ap-south", json=body,
                             headers={"Authorization": f"Bearer {viewer}"}) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["code"] == "forbidden"
        async with http.get(f"{url}/api/status") as resp:
            assert resp.status == 200
        host = {"Authorization": f"Bearer {token(cluster, 'ops', roles=('moderator',))}"}
        async with http.post(f"{url}/api/drills", headers=host,
                             json={"drill": "no-such-drill", "region": "eu-west"}) as resp:
            assert resp.status == 422
        async with http.post(f"{url}/api/drills", headers=host,
                             json={"drill": "link-slow", "region": "eu-west", "seconds": 2}
                             ) as resp:
            assert resp.status == 202, await resp.text()

        async def reported() -> bool:
            await dashboard.refresh()
            drill = dashboard.status["drill"]
            return drill is not None and drill["state"] == "passed"
        await wait_until(reported, what="the drill's report", timeout_s=10)
        assert dashboard.status["drill"]["report"] == "drill link-slow: PASSED"


async def test_gateways_serve_the_page_and_answer_browsers_of_allowed_origins(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    base = gateway(cluster, "eu-west")
    async with http.get(f"{base}/watch/{unique}") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    async with http.get(f"{base}/watch/not%20a%20stream") as resp:
        assert resp.status == 400
    async with http.get(f"{base}/web/viewer.js") as resp:
        assert resp.status == 200 and resp.content_type == "text/javascript"
    for name in ("..%2Fpages%2Fviewer.html", "package.json", "viewer.ts"):
        async with http.get(f"{base}/web/{name}") as resp:
            assert resp.status == 404, name
    async with http.get(f"{base}/no-such-page") as resp:
        assert resp.status == 404  # unknown paths are still the API's 404

    # Another region's page (another origin) may call this gateway: CORS for allowed origins.
    page_origin = gateway(cluster, "us-east")
    comments = f"{base}/v1/streams/{unique}/comments"
    preflight = {"Origin": page_origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    async with http.options(comments, headers=preflight) as resp:
        assert resp.status == 204
        assert "POST" in resp.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    async with http.options(comments, headers={**preflight, "Origin": "https://evil.example"}
                            ) as resp:
        assert resp.status == 403
    viewer = token(cluster, "cors")
    async with http.get(comments, params={"access_token": viewer},
                        headers={"Origin": page_origin}) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == page_origin
    async with http.get(comments, params={"access_token": viewer},
                        headers={"Origin": "https://evil.example"}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers
    async with http.get(comments, params={"access_token": viewer}) as resp:
        assert "Access-Control-Allow-Origin" not in resp.headers  # not a browser
