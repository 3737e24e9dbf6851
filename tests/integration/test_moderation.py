"""Moderation everywhere, on the real three-region cluster: one state for every region.

Each decision is made through one region and checked in the others; the cut-link test cuts
eu-west's leaf link with toxiproxy. Waiting is on conditions with timeouts, never on sleeps.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nats
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.durable import pending
from chorus.names import classifier_durable
from tests.integration.test_cell import post, token
from tests.integration.test_global import _presence_visible, url
from tests.integration.viewers import Poller, SseViewer, WsViewer

pytestmark = pytest.mark.integration

REGIONS = ("us-east", "eu-west", "ap-south")
DECISION_S = 2.0     # DESIGN G5: a decision holds in every region within this


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def mod_token(cluster: LocalCluster) -> str:
    return token(cluster, "the-moderator", "moderator")


async def call(http: aiohttp.ClientSession, method: str, address: str, tok: str,
               body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    async with http.request(method, address, json=body,
                            headers={"Authorization": f"Bearer {tok}"}) as resp:
        return resp.status, await resp.json()


async def decide(http: aiohttp.ClientSession, cluster: LocalCluster, method: str, path: str,
                 body: dict[str, Any] | None = None, region: str = "us-east"
                 ) -> dict[str, Any]:
    """A moderator's request through ``region``; it must answer with every region applied
    (none is cut) and within the 2 s a decision has to hold everywhere."""
    began = time.monotonic()
    status, doc = await call(http, method, f"{url(cluster, region)}{path}", mod_token(cluster),
                             body)
    took = time.monotonic() - began
    assert status == 200, doc
    assert sorted(doc["applied"]) == sorted(REGIONS) and doc["pending"] == [], doc
    assert took < DECISION_S, f"{path} took {took:.2f} s"
    return doc


async def refill(cluster: LocalCluster, region: str, user: str) -> None:
    """Empties ``user``'s rate-limit bucket in ``region``: the shadow-ban test posts far more
    than a user's burst, and the rate limit is not what it tests."""
    r = aioredis.from_url(cluster.config.region(region).redis_url)
    try:
        await r.delete(f"chorus:rl:u:{user}")
    finally:
        await r.aclose()


# -- bans, shadow bans, timeouts, slow mode ------------------------------------------------------


async def test_a_ban_made_in_one_region_holds_in_every_region(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    user = f"{unique}-troll"
    tok = token(cluster, user)
    for region in REGIONS:
        status, _ = await post(http, url(cluster, region), unique, tok, text="before")
        assert status == 201
    await decide(http, cluster, "PUT", f"/v1/moderation/bans/{user}", {"reason": "spam"})
    for region in REGIONS:
        for i in range(2):  # every gateway of the region
            status, doc = await post(http, url(cluster, region, i), unique, tok, text="after")
            assert status == 403 and doc["error"]["code"] == "forbidden", (region, doc)
    # Lifted through another region, lifted everywhere.
    await decide(http, cluster, "DELETE", f"/v1/moderation/bans/{user}", region="ap-south")
    for region in REGIONS:
        await refill(cluster, region, user)
        status, _ = await post(http, url(cluster, region), unique, tok, text="again")
        assert status == 201
    # Every decision is an audit record: who, what, when, why.
    status, doc = await call(http, "GET", f"{url(cluster, 'eu-west')}/v1/moderation/audit"
                             f"?user={user}", mod_token(cluster))
    assert status == 200
    actions = [(d["action"]["active"], d["by"], d["reason"]) for d in doc["items"]]
    assert actions == [(False, "the-moderator", ""), (True, "the-moderator", "spam")]
    status, doc = await call(http, "GET", f"{url(cluster, 'eu-west')}/v1/moderation/audit",
                             token(cluster, user))
    assert status == 403


async def test_a_timeout_ends_by_itself_and_slow_mode_spares_moderators(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    user = f"{unique}-hasty"
    tok = token(cluster, user)
    status, doc = await call(http, "PUT", f"{url(cluster, 'us-east')}/v1/moderation/timeouts/"
                             f"{user}", mod_token(cluster), {"duration_s": 10})
    assert status == 200 and not doc["pending"], doc
    for region in REGIONS:
        status, doc = await post(http, url(cluster, region), unique, tok, text="x")
        assert status == 403 and "timed out" in doc["error"]["message"]
    status, doc = await call(http, "PUT", f"{url(cluster, 'us-east')}/v1/moderation/timeouts/"
                             f"{user}", mod_token(cluster), {"duration_s": 5 * 86400})
    assert status == 422

    async def free() -> bool:
        status, _ = await post(http, url(cluster, "eu-west"), unique, tok, text="free")
        return status == 201
    await wait_until(free, what="the timeout to end", timeout_s=15, interval_s=0.5)

    await decide(http, cluster, "PUT", f"/v1/streams/{unique}/slow_mode", {"interval_s": 30},
                 region="eu-west")
    other = token(cluster, f"{unique}-chatty")
    for region in REGIONS:
        status, _ = await post(http, url(cluster, region), unique, other, text="one")
        assert status == 201
        async with http.post(f"{url(cluster, region)}/v1/streams/{unique}/comments",
                             json={"text": "two"},
                             headers={"Authorization": f"Bearer {other}"}) as resp:
            doc = await resp.json()
            assert resp.status == 429 and "slow mode" in doc["error"]["message"], doc
            assert 25 <= int(resp.headers["Retry-After"]) <= 30
        for i in range(3):  # moderators are never slowed down
            status, _ = await post(http, url(cluster, region), unique, mod_token(cluster),
                                   text=f"mod {i}")
            assert status == 201


async def test_a_shadow_banned_users_comments_are_seen_by_no_one_else(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    shadow = f"{unique}-shade"
    stok = token(cluster, shadow)
    viewers: list[Any] = [await WsViewer(http, url(cluster, r), unique,
                                         token(cluster, f"w-{r}"), f"ws-{r}").connect()
                          for r in REGIONS]
    viewers.append(await SseViewer(http, url(cluster, "eu-west", 1), unique,
                                   token(cluster, "sse"), "sse").connect())
    viewers.append(await Poller(http, url(cluster, "ap-south", 1), unique,
                                token(cluster, "poll"), "poll").start())
    author = await WsViewer(http, url(cluster, "us-east", 1), unique, stok, "author").connect()
    await _presence_visible(cluster, unique, REGIONS)
    try:
        await decide(http, cluster, "PUT", f"/v1/moderation/bans/{shadow}?kind=shadow",
                     region="ap-south")
        posted: set[str] = set()
        n = 1000
        for i in range(n):
            region = REGIONS[i % 3]
            if i % 30 < 3:
                await refill(cluster, region, shadow)
            status, doc = await post(http, url(cluster, region, i % 2), unique, stok,
                                     text=f"shadow {i}")
            assert status == 201 and doc["shadow"] is True, doc
            posted.add(str(doc["id"]))
        markers = []
        for region in REGIONS:
            status, doc = await post(http, url(cluster, region), unique,
                                     token(cluster, f"marker-{region}"), text="marker")
            assert status == 201
            markers.append(doc["id"])
        for viewer in viewers:
            await viewer.until(lambda v=viewer: all(m in v.seen for m in markers), 30)
            assert not posted & viewer.seen, viewer.name
        # The author sees their own (a shadow ban is not a ban they can tell).
        await author.until(lambda: len(posted & author.seen) == n, 60)
        for region in REGIONS:
            status, doc = await call(http, "GET", f"{url(cluster, region)}/v1/streams/{unique}"
                                     "/comments?limit=200", token(cluster, "reader"))
            assert status == 200
            ids = {c["id"] for c in doc["items"]}
            assert set(markers) <= ids and not ids & posted, region
    finally:
        for viewer in [*viewers, author]:
            await viewer.close()


# -- retraction and pins -------------------------------------------------------------------------


async def test_a_retraction_reaches_every_viewer_and_no_late_joiner_gets_the_comment(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers: list[Any] = [await WsViewer(http, url(cluster, r), unique,
                                         token(cluster, f"w-{r}"), f"ws-{r}").connect()
                          for r in REGIONS]
    viewers.append(await SseViewer(http, url(cluster, "eu-west", 1), unique,
                                   token(cluster, "sse"), "sse").connect())
    viewers.append(await Poller(http, url(cluster, "ap-south", 1), unique,
                                token(cluster, "poll"), "poll").start())
    await _presence_visible(cluster, unique, REGIONS)
    author = token(cluster, f"{unique}-author")
    try:
        before = viewers[0].cursor
        status, doc = await post(http, url(cluster, "us-east"), unique, author, text="oops")
        assert status == 201
        cid = str(doc["id"])
        status, keep = await post(http, url(cluster, "us-east"), unique, author, text="keep")
        for viewer in viewers:
            await viewer.until(lambda v=viewer: cid in v.seen and keep["id"] in v.seen, 15)
        began = time.monotonic()
        # Someone else may not; the author may, through any region.
        status, _ = await call(http, "DELETE", f"{url(cluster, 'eu-west')}/v1/streams/{unique}"
                               f"/comments/{cid}", token(cluster, "someone-else"))
        assert status in (403, 404)
        status, doc = await call(http, "DELETE", f"{url(cluster, 'eu-west')}/v1/streams/"
                                 f"{unique}/comments/{cid}", author)
        assert status == 200 and doc["deleted"] is True and not doc["pending"], doc

        def retracted(v: Any) -> bool:
            return any(cid in f.get("ids", ()) or cid in f.get("retracted", ())
                       for f in v.frames)
        for viewer in viewers:
            await viewer.until(lambda v=viewer: retracted(v), 5)
        assert time.monotonic() - began < DECISION_S + 0.5
        # Late joiners and resumes never get it; history hides it.
        for region in REGIONS:
            late = WsViewer(http, url(cluster, region, 1), unique,
                            token(cluster, f"late-{region}"), f"late-{region}")
            if region == "us-east":
                await late.connect(cursor=before)
                await late.until(lambda v=late: keep["id"] in v.seen, 10)
            else:
                await late.connect()
            assert cid not in late.seen
            await late.close()
            status, page = await call(http, "GET", f"{url(cluster, region)}/v1/streams/"
                                      f"{unique}/comments", token(cluster, "reader"))
            ids = [c["id"] for c in page["items"]]
            assert keep["id"] in ids and cid not in ids, region
    finally:
        for viewer in viewers:
            await viewer.close()


async def test_a_pin_reaches_viewers_and_late_joiners_in_every_region(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = [await WsViewer(http, url(cluster, r), unique, token(cluster, f"w-{r}"),
                              f"ws-{r}").connect() for r in REGIONS]
    await _presence_visible(cluster, unique, REGIONS)
    try:
        _, doc = await post(http, url(cluster, "ap-south"), unique,
                            token(cluster, "host", "host"), text="welcome!")
        cid = doc["id"]
        for viewer in viewers:
            await viewer.until(lambda v=viewer: cid in v.seen, 15)
        await decide(http, cluster, "PUT", f"/v1/streams/{unique}/pin", {"comment_id": cid},
                     region="ap-south")
        for viewer in viewers:
            await viewer.until(lambda v=viewer: any(
                f.get("type") == "pin" and (f.get("comment") or {}).get("id") == cid
                for f in v.frames), 5)
        for region in REGIONS:
            late = await WsViewer(http, url(cluster, region, 1), unique,
                                  token(cluster, "late"), "late").connect()
            assert late.of_type("hello")[0]["pin"]["id"] == cid
            await late.close()
            _, page = await call(http, "GET", f"{url(cluster, region)}/v1/streams/{unique}/"
                                 "comments", token(cluster, "reader"))
            assert page["pin"]["id"] == cid, region   # and in history
        await decide(http, cluster, "DELETE", f"/v1/streams/{unique}/pin")
        for viewer in viewers:
            await viewer.until(lambda v=viewer: any(
                f.get("type") == "pin" and f.get("comment") is None for f in v.frames), 5)
        _, page = await call(http, "GET", f"{url(cluster, 'eu-west')}/v1/streams/{unique}/"
                             "comments", token(cluster, "reader"))
        assert "pin" not in page
    finally:
        for viewer in viewers:
            await viewer.close()


# -- the prefilter -------------------------------------------------------------------------------


async def test_blocked_terms_set_in_one_region_block_evasions_in_every_region(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    term = f"zorp{unique[-4:]}"   # a made-up word: other tests' streams are unaffected
    doc = await decide(http, cluster, "POST", "/v1/moderation/terms",
                       {"add": [term, "buy followers"], "stream": unique})
    assert doc["added"] == 2
    tok = token(cluster, f"{unique}-evader")
    leet = term.replace("o", "0").upper()
    evasions = [term, leet, " ".join(term), term.replace("o", "oooo"),
                term[:2] + "\u200b" + term[2:], "BUY   f0ll0wers now"]
    for i, text in enumerate(evasions):
        region = REGIONS[i % 3]
        await refill(cluster, region, f"{unique}-evader")
        status, body = await post(http, url(cluster, region), unique, tok, text=text)
        assert status == 422 and body["error"]["code"] == "blocked", (text, body)
    status, _ = await post(http, url(cluster, "eu-west"), f"{unique}-other", tok, text=term)
    assert status == 201   # a stream's own list
    status, listed = await call(http, "GET", f"{url(cluster, 'ap-south')}/v1/moderation/terms"
                                f"?stream={unique}", mod_token(cluster))
    assert status == 200 and sorted(listed["terms"]) == sorted([term, "buy followers"])


# -- a cut link ----------------------------------------------------------------------------------


async def test_a_region_cut_off_during_a_ban_applies_it_when_healed(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    user = f"{unique}-cut"
    tok = token(cluster, user)
    eu = url(cluster, "eu-west")
    cluster.set_link("eu-west", enabled=False)
    try:
        status, doc = await call(http, "PUT", f"{url(cluster, 'us-east')}/v1/moderation/bans/"
                                 f"{user}", mod_token(cluster))
        # Answered once the reachable regions applied it, naming the one that has not.
        assert status == 200 and doc["pending"] == ["eu-west"], doc
        assert sorted(doc["applied"]) == ["ap-south", "us-east"]
        status, _ = await post(http, url(cluster, "ap-south"), unique, tok, text="x")
        assert status == 403
        # Cut off, eu-west cannot know: it keeps serving its own users.
        status, _ = await post(http, eu, unique, tok, text="during the cut")
        assert status == 201
    finally:
        cluster.set_link("eu-west", enabled=True)
    healed = time.monotonic()

    async def applied_everywhere_in_eu() -> bool:
        for i in range(2):
            status, doc = await call(http, "GET", f"{url(cluster, 'eu-west', i)}/v1/"
                                     f"moderation/users/{user}", mod_token(cluster))
            if status != 200 or not doc["banned"]:
                return False
        return True
    await wait_until(applied_everywhere_in_eu, what="eu-west to apply the ban after the heal",
                     timeout_s=15, interval_s=0.05)
    took = time.monotonic() - healed
    for i in range(2):
        status, _ = await post(http, url(cluster, "eu-west", i), unique, tok, text="after")
        assert status == 403
    # The leaf link reconnects within ~1 s; then one head interval and a round trip.
    assert took < 10, f"eu-west applied the ban {took:.1f} s after the heal"


async def test_a_gateway_behind_catches_up_before_it_admits(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    """Many decisions at once from two regions: every region ends with the same state."""
    users = [f"{unique}-u{i}" for i in range(20)]

    async def ban(i: int, user: str) -> None:
        region = REGIONS[i % 3]
        status, doc = await call(http, "PUT", f"{url(cluster, region, i % 2)}/v1/moderation/"
                                 f"bans/{user}", mod_token(cluster))
        assert status == 200 and not doc["pending"], doc
    await asyncio.gather(*(ban(i, u) for i, u in enumerate(users)))
    for region in REGIONS:
        for i in range(2):
            for user in users:
                _, doc = await call(http, "GET", f"{url(cluster, region, i)}/v1/"
                                    f"moderation/users/{user}", mod_token(cluster))
                assert doc["banned"], (region, i, user)


# -- the classifier ------------------------------------------------------------------------------

ORDINARY = [line for line in (Path(__file__).parent.parent / "data" / "ordinary_comments.txt"
                              ).read_text(encoding="utf-8").splitlines() if line.strip()]
FLOOD = "Free followers at bots.example/free"


def _retracted_ids(viewer: Any) -> set[str]:
    return {i for f in viewer.of_type("retract") for i in f["ids"]}


async def _classified(cluster: LocalCluster, region: str) -> None:
    """Waits until the region's classifier has scored (and acknowledged) every comment."""
    nc = await nats.connect(cluster.config.region(region).nats_url)
    try:
        async def done() -> bool:
            return await pending(nc, classifier_durable(region)) == 0
        await wait_until(done, what=f"{region}'s classifier to score everything",
                         timeout_s=15, interval_s=0.1)
    finally:
        await nc.close()


async def test_the_classifier_takes_a_flood_down_by_stream_policy_and_leaves_chat_alone(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    retracting, holding = f"{unique}-r", f"{unique}-h"   # "hold" is the default policy
    await decide(http, cluster, "PUT", f"/v1/streams/{retracting}/moderation",
                 {"classifier": "retract"})
    streams = (retracting, holding)
    viewers = {(s, r): await WsViewer(http, url(cluster, r), s, token(cluster, f"w-{r}"),
                                      f"{s[-1]}-{r}").connect()
               for s in streams for r in REGIONS}
    # A flood comment's author, in the holding stream: a held comment stays on their screen.
    bots = [f"{unique}-bot{i}" for i in range(10)]
    author = await WsViewer(http, url(cluster, "us-east", 1), holding,
                            token(cluster, bots[9]), "author").connect()
    for stream in streams:
        await _presence_visible(cluster, stream, REGIONS)
    try:
        # Ordinary chat in both streams through both of us-east's gateways (the classifier
        # judges its region's own comments), then a flood across users and both streams.
        chat: list[str] = []
        for i, text in enumerate(ORDINARY[:60]):
            status, doc = await post(http, url(cluster, "us-east", i % 2), streams[i % 2],
                                     token(cluster, f"{unique}-fan{i % 12}"), text=text)
            assert status == 201, doc
            chat.append(str(doc["id"]))
        flood: dict[str, str] = {}     # id -> stream
        for i, bot in enumerate(bots):
            stream = streams[i % 2]
            status, doc = await post(http, url(cluster, "us-east", i % 2), stream,
                                     token(cluster, bot), text=FLOOD)
            assert status == 201, doc
            flood[str(doc["id"])] = stream
        last_post = time.monotonic()
        ids = list(flood)
        # From the fourth user on, every copy is taken down (the first ones may be too, when
        # a window heard of later ones first), and nothing else.
        expected = set(ids[3:])
        for (stream, _), viewer in viewers.items():
            mine = {i for i in expected if flood[i] == stream}
            await viewer.until(lambda v=viewer, m=mine: m <= _retracted_ids(v), 5)
        took = time.monotonic() - last_post
        assert took < DECISION_S, f"the flood was taken down {took:.2f} s after it was posted"
        await _classified(cluster, "us-east")
        for viewer in viewers.values():
            assert _retracted_ids(viewer) <= set(ids), viewer.name
        # Retracted in one stream, held in the other: the held comments' author still has
        # theirs, every other reader's history hides both.
        status, audit = await call(http, "GET", f"{url(cluster, 'eu-west')}/v1/moderation/"
                                   "audit?limit=500", mod_token(cluster))
        verdicts = {d["action"]["comment_id"]: d for d in audit["items"]
                    if d["by"] == "classifier" and d["action"]["stream"] in streams}
        assert expected <= set(verdicts) <= set(ids), verdicts
        for cid, d in verdicts.items():
            want = "retracted" if flood[cid] == retracting else "held"
            assert d["action"]["state"] == want and "the same text" in d["reason"], d
        assert not set(chat) & set(verdicts)
        assert ids[9] in author.seen and ids[9] not in _retracted_ids(author)
        for stream in streams:
            status, page = await call(http, "GET", f"{url(cluster, 'ap-south')}/v1/streams/"
                                      f"{stream}/comments?limit=200", token(cluster, "reader"))
            shown = {c["id"] for c in page["items"]}
            assert shown & set(chat) and not shown & set(verdicts), stream
    finally:
        for viewer in [*viewers.values(), author]:
            await viewer.close()


async def test_an_approved_comment_comes_back_to_live_viewers_in_every_region(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers: list[Any] = [await WsViewer(http, url(cluster, r), unique,
                                         token(cluster, f"w-{r}"), f"ws-{r}").connect()
                          for r in REGIONS]
    viewers.append(await SseViewer(http, url(cluster, "eu-west", 1), unique,
                                   token(cluster, "sse"), "sse").connect())
    viewers.append(await Poller(http, url(cluster, "ap-south", 1), unique,
                                token(cluster, "poll"), "poll").start())
    await _presence_visible(cluster, unique, REGIONS)
    try:
        status, doc = await post(http, url(cluster, "us-east"), unique,
                                 token(cluster, f"{unique}-author"), text="is this ok?")
        assert status == 201
        cid = str(doc["id"])
        for viewer in viewers:
            await viewer.until(lambda v=viewer: cid in v.seen, 15)
        await decide(http, cluster, "DELETE", f"/v1/streams/{unique}/comments/{cid}",
                     region="eu-west")

        def retracted(v: Any) -> bool:
            return any(cid in f.get("ids", ()) or cid in f.get("retracted", ())
                       for f in v.frames)
        for viewer in viewers:
            await viewer.until(lambda v=viewer: retracted(v), 5)
        began = time.monotonic()
        doc = await decide(http, cluster, "POST",
                           f"/v1/streams/{unique}/comments/{cid}/approve", region="ap-south")
        assert doc["decision"]["action"]["comment"]["id"] == cid

        def restored(v: Any) -> bool:
            return any((f.get("type") == "restore" and f["comment"]["id"] == cid)
                       or any(c["id"] == cid for c in f.get("restored", ()))
                       for f in v.frames)
        for viewer in viewers:
            await viewer.until(lambda v=viewer: restored(v), 5)
        assert time.monotonic() - began < DECISION_S + 0.5
        for region in REGIONS:
            status, page = await call(http, "GET", f"{url(cluster, region)}/v1/streams/"
                                      f"{unique}/comments", token(cluster, "reader"))
            assert cid in [c["id"] for c in page["items"]], region
    finally:
        for viewer in viewers:
            await viewer.close()


async def test_bans_left_in_the_old_redis_sets_are_carried_over_when_a_gateway_starts(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    banned, shadow = f"{unique}-old-ban", f"{unique}-old-shadow"
    r = aioredis.from_url(cluster.config.region("eu-west").redis_url)
    try:
        await r.sadd("chorus:banned", banned)  # type: ignore[misc]
        await r.sadd("chorus:shadowbanned", shadow)  # type: ignore[misc]
        victim = "eu-west/gateway-1"
        restarted = await cluster.restart(victim)

        async def carried_everywhere() -> bool:
            for region in REGIONS:
                _, ban = await call(http, "GET", f"{url(cluster, region)}/v1/moderation/users/"
                                    f"{banned}", mod_token(cluster))
                _, shade = await call(http, "GET", f"{url(cluster, region)}/v1/moderation/"
                                      f"users/{shadow}", mod_token(cluster))
                if not (ban.get("banned") and shade.get("shadow")):
                    return False
            return True
        await wait_until(carried_everywhere, what="the old bans to hold in every region",
                         timeout_s=30, interval_s=0.2, children=[restarted])
        assert not await r.exists("chorus:banned", "chorus:shadowbanned")
        status, _ = await post(http, url(cluster, "us-east"), unique, token(cluster, banned),
                               text="still here?")
        assert status == 403
        status, doc = await post(http, url(cluster, "ap-south"), unique,
                                 token(cluster, shadow), text="me too")
        assert status == 201 and doc["shadow"] is True
        _, audit = await call(http, "GET", f"{url(cluster, 'us-east')}/v1/moderation/audit"
                              f"?user={banned}", mod_token(cluster))
        assert [(d["by"], d["reason"]) for d in audit["items"]][-1] == (
            "carry-over", "chorus:banned of eu-west")
        # Lifted like any other ban.
        await decide(http, cluster, "DELETE", f"/v1/moderation/bans/{banned}")
        status, _ = await post(http, url(cluster, "us-east"), unique, token(cluster, banned),
                               text="back")
        assert status == 201
    finally:
        await r.delete("chorus:banned", "chorus:shadowbanned")
        await r.aclose()
