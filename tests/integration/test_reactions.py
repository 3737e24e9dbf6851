"""Reactions and viewer counts on the real three-region cluster: totals that agree in every
region, a cut link that delays aggregates and heals, counts that follow viewers across regions
and a killed gateway, what a viewer gets with its hello, and the limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.sdk import Client
from tests.integration.test_cell import _healthy, token
from tests.integration.test_global import _presence_visible, close_all, url
from tests.integration.viewers import WsViewer

pytestmark = pytest.mark.integration

REGIONS = ("us-east", "eu-west", "ap-south")


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


class TimedViewer(WsViewer):
    """A WebSocket viewer that also notes when each frame arrived (monotonic seconds)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.times: list[float] = []

    def record(self, frame: dict[str, Any]) -> None:
        self.times.append(time.monotonic())
        super().record(frame)

    def totals(self) -> dict[str, int] | None:
        frames = self.of_type("reactions")
        return frames[-1]["totals"] if frames else None

    def counts(self) -> dict[str, Any] | None:
        frames = self.of_type("viewers")
        return frames[-1] if frames else None

    def first_time(self, check: Any) -> float:
        """When the first frame that passes ``check`` arrived."""
        return next(t for f, t in zip(self.frames, self.times, strict=True) if check(f))


async def watching(http: aiohttp.ClientSession, cluster: LocalCluster, stream: str,
                   regions: tuple[str, ...] = REGIONS) -> dict[str, TimedViewer]:
    out = {r: await TimedViewer(http, url(cluster, r), stream, token(cluster, f"{stream}-w-{r}"),
                                r).connect() for r in regions}
    await _presence_visible(cluster, stream, regions)
    return out


async def react(http: aiohttp.ClientSession, base: str, stream: str, tok: str | None,
                body: Any) -> tuple[int, Any, aiohttp.typedefs.LooseHeaders]:
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    async with http.post(f"{base}/v1/streams/{stream}/reactions", json=body,
                         headers=headers) as resp:
        return resp.status, await resp.json(), resp.headers


async def get(http: aiohttp.ClientSession, base: str, path: str, tok: str,
              **params: str) -> tuple[int, Any]:
    async with http.get(f"{base}{path}", params=params,
                        headers={"Authorization": f"Bearer {tok}"}) as resp:
        return resp.status, await resp.json()


async def tap_everywhere(http: aiohttp.ClientSession, cluster: LocalCluster, stream: str,
                         plan: dict[str, dict[str, int]]) -> None:
    """Posts ``plan[region][kind]`` reactions in each region, from users of their own (a
    few each, within their bucket), over both gateways."""
    for region, kinds in plan.items():
        n = 0
        for kind, count in kinds.items():
            for _ in range(count):
                tok = token(cluster, f"{stream}-{region}-{n // 5}")
                status, body, _ = await react(http, url(cluster, region, n % 2), stream, tok,
                                              {"kind": kind})
                assert status == 202, body
                n += 1


async def test_reactions_posted_in_three_regions_sum_to_the_same_totals_everywhere(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = await watching(http, cluster, unique)
    try:
        await tap_everywhere(http, cluster, unique, {"us-east": {"heart": 6, "like": 2},
                                                     "eu-west": {"heart": 4},
                                                     "ap-south": {"like": 3, "clap": 1}})
        for region, viewer in viewers.items():   # and over each region's WebSocket
            await viewer.send({"type": "react", "kind": "wow", "ref": region})
        expected = {"heart": 10, "like": 5, "clap": 1, "wow": 3}
        for viewer in viewers.values():
            await viewer.until(lambda v=viewer: v.totals() == expected, timeout_s=20)
        seen = [v.first_time(lambda f: f.get("type") == "reactions" and f["totals"] == expected)
                for v in viewers.values()]
        assert max(seen) - min(seen) <= 2.0, seen
        assert not any(f.get("type") == "error" for v in viewers.values() for f in v.frames)
        # What arrived in the last second adds up to the totals over the frames.
        for viewer in viewers.values():
            got: dict[str, int] = {}
            for frame in viewer.of_type("reactions"):
                for kind, n in frame["counts"].items():
                    got[kind] = got.get(kind, 0) + n
            assert got == expected, viewer.name

        tok = token(cluster, f"{unique}-reader")
        for region in REGIONS:
            async def stated(region: str = region) -> bool:
                status, body = await get(http, url(cluster, region), f"/v1/streams/{unique}",
                                         tok)
                assert status == 200, body
                return bool(body["reactions"]["totals"] == expected
                            and body["viewers"]["total"] == 3
                            and body["viewers"]["regions"] == {r: 1 for r in REGIONS})
            await wait_until(stated, what=f"the stream's state in {region}", timeout_s=15)

        for resolution in ("1s", "1m"):
            status, body = await get(http, url(cluster, "eu-west"),
                                     f"/v1/streams/{unique}/reactions", tok,
                                     resolution=resolution)
            assert status == 200, body
            assert body["partial"] == [] and body["next"] is None
            summed: dict[str, int] = {}
            for item in body["items"]:
                assert body["after"] <= item["t"] < body["before"]
                for kind, n in item["counts"].items():
                    summed[kind] = summed.get(kind, 0) + n
            assert summed == expected, resolution
    finally:
        await close_all(viewers)  # type: ignore[arg-type]


async def test_a_cut_link_delays_aggregates_and_the_totals_converge_after_it_heals(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = await watching(http, cluster, unique)
    try:
        cluster.set_link("eu-west", enabled=False)
        try:
            await tap_everywhere(http, cluster, unique, {"us-east": {"heart": 2},
                                                         "eu-west": {"like": 3},
                                                         "ap-south": {"wow": 4}})
            # Each side of the cut sees its own; eu-west's aggregates wait in its outbox.
            await viewers["us-east"].until(
                lambda: viewers["us-east"].totals() == {"heart": 2, "wow": 4}, timeout_s=20)
            await viewers["eu-west"].until(
                lambda: viewers["eu-west"].totals() == {"like": 3}, timeout_s=20)
            await viewers["ap-south"].until(
                lambda: viewers["ap-south"].totals() == {"heart": 2, "wow": 4}, timeout_s=20)
        finally:
            cluster.set_link("eu-west", enabled=True)
        expected = {"heart": 2, "like": 3, "wow": 4}
        for viewer in viewers.values():
            await viewer.until(lambda v=viewer: v.totals() == expected, timeout_s=60)
    finally:
        cluster.set_link("eu-west", enabled=True)
        await close_all(viewers)  # type: ignore[arg-type]


async def test_counts_follow_viewers_in_every_region_and_a_killed_gateway(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    victim = "ap-south/gateway-1"
    a = await TimedViewer(http, url(cluster, "us-east"), unique, token(cluster, f"{unique}-a"),
                          "a").connect()
    others = [await TimedViewer(http, url(cluster, region, i), unique,
                                token(cluster, f"{unique}-{name}"), name).connect()
              for region, i, name in (("eu-west", 0, "b1"), ("eu-west", 1, "b2"),
                                      ("ap-south", 1, "d"))]
    limits = cluster.config.limits

    def counted(total: int, regions: dict[str, int]) -> bool:
        last = a.counts()
        return bool(last and last["count"] == 1 and last["total"] == total
                    and last["regions"] == regions)
    try:
        await a.until(lambda: counted(4, {"us-east": 1, "eu-west": 2, "ap-south": 1}),
                      timeout_s=20)
        await others[1].close()
        await a.until(lambda: counted(3, {"us-east": 1, "eu-west": 1, "ap-south": 1}),
                      timeout_s=20)
        cluster.child(victim).kill()    # no goodbye: its viewer leaves presence by expiry
        began = time.monotonic()
        await a.until(lambda: counted(2, {"us-east": 1, "eu-west": 1, "ap-south": 0}),
                      timeout_s=limits.presence_ttl_s + 15)
        waited = time.monotonic() - began
        assert waited <= limits.presence_ttl_s + limits.presence_cache_ms / 1000 + 3, waited
        # Counts go to each viewer of the stream, in every region.
        b1 = others[0]
        await b1.until(lambda: bool(b1.counts() and b1.counts()["total"] == 2), timeout_s=20)
    finally:
        await a.close()
        for viewer in others:
            await viewer.close()
        restarted = await cluster.restart(victim)
        await wait_until(lambda: _healthy(http, url(cluster, "ap-south", 1)), what=victim,
                         timeout_s=30, children=[restarted])


async def test_a_viewer_gets_the_totals_and_counts_with_its_hello(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    first = await TimedViewer(http, url(cluster, "us-east", 0), unique,
                              token(cluster, f"{unique}-first"), "first").connect()
    try:
        await tap_everywhere(http, cluster, unique, {"ap-south": {"heart": 3}})
        await first.until(lambda: first.totals() == {"heart": 3}, timeout_s=20)
        await first.until(lambda: bool(first.counts()), timeout_s=10)
        # No more taps: any reactions frame from here on is a greeting, not news. A resume on
        # the region's other gateway (which had no viewer of the stream), then a failover to
        # another region without a cursor.
        for base, cursor in ((url(cluster, "us-east", 1), first.cursor),
                             (url(cluster, "eu-west", 0), None)):
            later = TimedViewer(http, base, unique, token(cluster, f"{unique}-later"), "later")
            await later.connect(cursor)
            try:
                await later.until(lambda v=later: v.totals() == {"heart": 3} and bool(v.counts()),
                                  timeout_s=3)
                hello = later.first_time(lambda f: f.get("type") == "hello")
                greeted = later.first_time(lambda f: f.get("type") == "reactions")
                assert greeted - hello < 1.0, (base, greeted - hello)
            finally:
                await later.close()
        # A long-poll carries them too.
        status, body = await get(http, url(cluster, "us-east", 0), f"/v1/streams/{unique}/poll",
                                 token(cluster, f"{unique}-poller"), timeout="2")
        assert status == 200, body
        assert body["reactions"]["totals"] == {"heart": 3} and body["viewers"]["count"] >= 1
    finally:
        await first.close()


async def test_limits_and_bad_input(cluster: LocalCluster, http: aiohttp.ClientSession,
                                    unique: str) -> None:
    base = url(cluster, "us-east")
    tok = token(cluster, f"{unique}-u")
    status, body, _ = await react(http, base, unique, tok, {"kind": "rocket"})
    assert status == 422 and body["error"]["code"] == "invalid"
    assert "heart" in body["error"]["message"]          # it says what the server takes
    for bad, code in (([], 400), ({"kind": "heart", "n": 2}, 422), ({}, 422),
                      ({"kind": 3}, 422)):
        status, body, _ = await react(http, base, unique, tok, bad)
        assert (status, body["error"]["code"]) == (code, "malformed" if code == 400
                                                   else "invalid"), bad
    status, body, _ = await react(http, base, unique, None, {"kind": "heart"})
    assert status == 401
    async with http.post(f"{base}/v1/streams/{unique}/reactions", data=b"{",
                         headers={"Authorization": f"Bearer {tok}",
                                  "Content-Type": "application/json"}) as resp:
        assert resp.status == 400

    # The user's bucket: a burst, then 429 with Retry-After.
    burst = cluster.config.reactions.user_burst
    results = await asyncio.gather(*(react(http, base, unique, tok, {"kind": "heart"})
                                     for _ in range(burst + 5)))
    statuses = [s for s, _, _ in results]
    assert statuses.count(202) == burst and statuses.count(429) == 5, statuses
    limited = next(r for r in results if r[0] == 429)
    assert limited[1]["error"]["code"] == "rate_limited" and limited[1]["error"]["retryable"]
    assert int(limited[2]["Retry-After"]) >= 1

    # The same over a WebSocket: refusals come back as errors with the frame's ref.
    ws_user = token(cluster, f"{unique}-ws")
    viewer = await WsViewer(http, base, unique, ws_user, "ws").connect()
    try:
        await viewer.send({"type": "react", "kind": "rocket", "ref": "k1"})
        await viewer.send({"type": "react", "kind": "Not A Kind", "ref": "k2"})
        for i in range(burst + 3):
            await viewer.send({"type": "react", "kind": "like", "ref": f"r{i}"})
        await viewer.until(lambda: sum(e["code"] == "rate_limited"
                                       for e in viewer.of_type("error")) >= 3, timeout_s=10)
        errors = {e["ref"]: e for e in viewer.of_type("error")}
        assert errors["k1"]["code"] == "invalid" and errors["k2"]["code"] == "invalid"
        limited_refs = [r for r, e in errors.items() if e["code"] == "rate_limited"]
        assert all(errors[r]["retryable"] for r in limited_refs)
        assert not viewer.closed.is_set()   # refusals are not bad frames to cut a client for
    finally:
        await viewer.close()

    for params, code in (({"resolution": "5s"}, 422), ({"after": "abc"}, 400),
                         ({"after": "2000", "before": "1000"}, 422)):
        status, body = await get(http, base, f"/v1/streams/{unique}/reactions", tok, **params)
        assert (status, body["error"]["code"]) == (code, "malformed" if code == 400
                                                   else "invalid"), params
    status, body = await get(http, base, "/v1/streams/not.a.stream", tok)
    assert status == 400


async def test_the_sdk_exposes_totals_and_counts(cluster: LocalCluster,
                                                  http: aiohttp.ClientSession,
                                                  unique: str) -> None:
    client = Client(list(cluster.config.region("eu-west").gateway_urls),
                    token=token(cluster, f"{unique}-sdk"), stream=unique, prefer="eu-west")
    async with client:
        await asyncio.wait_for(client.connected.wait(), 15)
        assert await client.react("clap") > 0
        await tap_everywhere(http, cluster, unique, {"us-east": {"clap": 2}})

        async def told() -> bool:
            return bool(client.reaction_totals == {"clap": 3} and client.viewers is not None
                        and client.viewers.total >= 1)
        await wait_until(told, what="totals and counts in the SDK", timeout_s=20)
        assert client.reactions is not None and dict(client.reactions.totals) == {"clap": 3}
        assert dict(client.viewers.regions)["eu-west"] >= 1  # type: ignore[union-attr]
