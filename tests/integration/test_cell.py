"""One region doing the whole job for its viewers, against real NATS and Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from region.auth import issue_token
from tests.integration.viewers import Poller, SseViewer, WsViewer

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def token(cluster: LocalCluster, user: str, *roles: str) -> str:
    return issue_token(cluster.config.auth.dev_secret, user, roles=roles or ("viewer",))


def gateways(cluster: LocalCluster, region: str = "us-east") -> tuple[str, ...]:
    return cluster.config.region(region).gateway_urls


async def post(http: aiohttp.ClientSession, base: str, stream: str, tok: str,
               **body: object) -> tuple[int, dict[str, object]]:
    async with http.post(f"{base}/v1/streams/{stream}/comments", json=body,
                         headers={"Authorization": f"Bearer {tok}"}) as resp:
        return resp.status, await resp.json()


async def test_posts_reach_ws_sse_and_poll_viewers_on_both_gateways_in_one_order(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    a, b = gateways(cluster)
    viewers = [await WsViewer(http, a, unique, token(cluster, "v1"), "ws-a").connect(),
               await WsViewer(http, b, unique, token(cluster, "v2"), "ws-b").connect(),
               await SseViewer(http, a, unique, token(cluster, "v3"), "sse-a").connect(),
               await SseViewer(http, b, unique, token(cluster, "v4"), "sse-b").connect()]
    poller = await Poller(http, b, unique, token(cluster, "v5"), "poll-b").start()
    writer = await WsViewer(http, b, unique, token(cluster, "poster")).connect()
    try:
        sent = []
        for i in range(20):
            if i % 2:
                status, body = await post(http, a, unique, token(cluster, f"u{i}"),
                                          text=f"http {i}")
                assert status == 201, body
                sent.append(body["id"])
            else:
                await writer.send({"type": "comment", "text": f"ws {i}", "ref": str(i)})
                await writer.until(lambda i=i: any(f.get("ref") == str(i)
                                                   for f in writer.of_type("ack")))
                ack = next(f for f in writer.of_type("ack") if f.get("ref") == str(i))
                sent.append(ack["comment"]["id"])
        for viewer in [*viewers, poller]:
            await viewer.count(20)
        orders = {v.name: v.ids for v in [*viewers, poller]}
        assert all(ids == orders["ws-a"] for ids in orders.values()), orders
        assert sorted(orders["ws-a"]) == sorted(sent)
        assert not any(v.duplicates for v in [*viewers, poller])
    finally:
        for viewer in viewers:
            await viewer.close()
        await poller.close()
        await writer.close()


async def test_ten_thousand_concurrent_posts_reach_every_viewer_once_in_one_order(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    a, b = gateways(cluster)
    viewers = [await WsViewer(http, a, unique, token(cluster, "w1"), "ws-a").connect(),
               await WsViewer(http, b, unique, token(cluster, "w2"), "ws-b").connect(),
               await SseViewer(http, b, unique, token(cluster, "w3"), "sse-b").connect()]
    total, users = 10_000, 1000
    tokens = [token(cluster, f"{unique}-user{i}") for i in range(users)]
    lane = asyncio.Semaphore(64)
    connector = aiohttp.TCPConnector(limit=64)

    async with aiohttp.ClientSession(connector=connector) as posters:
        async def one(i: int) -> str:
            async with lane:
                status, body = await post(posters, (a, b)[i % 2], unique, tokens[i % users],
                                          text=f"comment {i}", client_key=f"k{i}")
                assert status == 201, body
                return str(body["id"])
        ids = await asyncio.gather(*(one(i) for i in range(total)))
    try:
        for viewer in viewers:
            await viewer.count(total, timeout_s=120)
        assert len(set(ids)) == total
        for viewer in viewers:
            assert not viewer.duplicates, viewer.name
            assert len(viewer.ids) == total and set(viewer.ids) == set(ids)
            assert viewer.ids == viewers[0].ids, f"{viewer.name} saw another order"
    finally:
        for viewer in viewers:
            await viewer.close()


async def test_resume_on_the_other_gateway_after_a_gateway_is_killed(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    a, b = gateways(cluster)
    victim = "us-east/gateway-0"
    poster_token = token(cluster, "poster")
    ws = await WsViewer(http, a, unique, token(cluster, "r1"), "ws").connect()
    sse = await SseViewer(http, a, unique, token(cluster, "r2"), "sse").connect()
    stop = asyncio.Event()
    posted: list[str] = []

    async def keep_posting() -> None:
        i = 0
        while not stop.is_set():
            status, body = await post(http, b, unique, poster_token if i % 5 else
                                      token(cluster, f"p{i}"), text=f"n{i}")
            if status == 201:
                posted.append(str(body["id"]))
            i += 1
            await asyncio.sleep(0)

    posting = asyncio.create_task(keep_posting())
    try:
        await ws.count(5)
        cluster.child(victim).kill()
        await ws.closed.wait()
        await sse.closed.wait()
        # Resume on the surviving gateway with the cursors they had.
        ws2 = await WsViewer(http, b, unique, token(cluster, "r1"), "ws").connect(ws.cursor)
        sse2 = await SseViewer(http, b, unique, token(cluster, "r2"), "sse").connect(
            sse.last_event_id)
        await ws2.count(10)
        stop.set()
        await posting
        for old, new in ((ws, ws2), (sse, sse2)):
            await new.until(lambda old=old, new=new: len(old.ids) + len(new.ids) >= len(posted))
            timeline = old.ids + new.ids
            assert timeline == sorted(timeline, key=posted.index), "order"
            assert len(timeline) == len(set(timeline)) == len(posted), "gap or duplicate"
            await new.until(lambda new=new: bool(new.of_type("recovered")))
            assert new.of_type("recovered")[0]["recovered"] is True
        await ws2.close()
        await sse2.close()
    finally:
        stop.set()
        await posting
        await ws.close()
        await sse.close()
        restarted = await cluster.restart(victim)
        await wait_until(lambda: _healthy(http, a), what=victim, timeout_s=30,
                         children=[restarted])


async def _healthy(http: aiohttp.ClientSession, base: str) -> bool:
    try:
        async with http.get(f"{base}/healthz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def test_a_redis_restart_loses_nothing(cluster: LocalCluster,
                                             http: aiohttp.ClientSession, unique: str) -> None:
    a, b = gateways(cluster)
    tok = token(cluster, "writer")
    viewer = await WsViewer(http, a, unique, token(cluster, "reader"), "ws").connect()
    first = [await post(http, b, unique, tok, text=f"before {i}") for i in range(5)]
    await viewer.count(5)
    cursor = viewer.cursor
    await viewer.close()
    redis = cluster.child("us-east/redis")
    await cluster.restart(redis.spec.name)
    # /healthz rides out a short Redis outage (region/dependencies.py): wait for what this
    # test needs, a post that gets through, on a stream of its own.
    async def takes_posts() -> bool:
        status, _ = await post(http, b, f"{unique}-probe", tok, text="probe")
        return status == 201
    await wait_until(takes_posts, what="gateway sees Redis again", timeout_s=30)
    later = []
    for i in range(5):
        status, body = await post(http, b, unique, tok, text=f"after {i}")
        assert status == 201, body
        later.append(body["id"])
    # The replay cache is empty now: the resume must come from JetStream.
    again = await WsViewer(http, a, unique, token(cluster, "reader"), "ws").connect(cursor)
    try:
        await again.count(5)
        await again.until(lambda: bool(again.of_type("recovered")))
        assert again.ids == later and not again.duplicates
        assert again.of_type("recovered")[0]["recovered"] is True
        assert [s for s, _ in first] == [201] * 5
    finally:
        await again.close()


async def test_a_cursor_beyond_the_replay_window_is_told_not_recovered(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    a, _ = gateways(cluster)
    viewer = await WsViewer(http, a, unique, token(cluster, "old"), "ws").connect()
    start = viewer.cursor
    await viewer.close()
    window = cluster.config.limits.replay_window
    tokens = [token(cluster, f"{unique}-{i}") for i in range(window // 10 + 1)]
    lane = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with lane:
            status, body = await post(http, a, unique, tokens[i // 10], text=f"x{i}")
            assert status == 201, body
    await asyncio.gather(*(one(i) for i in range(window + 1)))
    late = await WsViewer(http, a, unique, token(cluster, "old"), "ws").connect(start)
    try:
        await late.until(lambda: bool(late.of_type("recovered")))
        frame = late.of_type("recovered")[0]
        assert frame["recovered"] is False and "history" in frame["reason"]
        assert late.ids == []
        # History pages fill the gap, newest first, without repeats.
        seen: list[str] = []
        before = None
        while len(seen) < window + 1:
            params = {"limit": "200"} | ({"before": before} if before else {})
            async with http.get(f"{a}/v1/streams/{unique}/comments", params=params,
                                headers={"Authorization": f"Bearer {tokens[0]}"}) as resp:
                page = await resp.json()
            seen += [c["id"] for c in page["items"]]
            before = page["next"]
            if before is None:
                break
        assert len(seen) == len(set(seen)) == window + 1
        assert seen == sorted(seen, reverse=True)
    finally:
        await late.close()


async def test_idempotent_retry_is_stored_once(cluster: LocalCluster,
                                               http: aiohttp.ClientSession, unique: str) -> None:
    a, b = gateways(cluster)
    tok = token(cluster, "retrier")
    viewer = await WsViewer(http, a, unique, token(cluster, "v"), "ws").connect()
    s1, first = await post(http, a, unique, tok, text="once", client_key="abc")
    s2, second = await post(http, b, unique, tok, text="once", client_key="abc")
    s3, other = await post(http, b, unique, token(cluster, "someone-else"), text="once",
                           client_key="abc")
    assert (s1, s2, s3) == (201, 200, 201)
    assert second["id"] == first["id"] and second["seq"] == first["seq"]
    assert other["id"] != first["id"]
    await viewer.count(2)
    assert viewer.ids == [first["id"], other["id"]]
    await viewer.close()


async def test_error_codes(cluster: LocalCluster, http: aiohttp.ClientSession,
                           unique: str) -> None:
    a, _ = gateways(cluster)
    url = f"{a}/v1/streams/{unique}/comments"
    tok = token(cluster, f"{unique}-e")
    auth = {"Authorization": f"Bearer {tok}"}

    async def call(method: str, target: str, **kw: object) -> tuple[int, dict[str, object],
                                                                     aiohttp.ClientResponse]:
        async with http.request(method, target, **kw) as resp:  # type: ignore[arg-type]
            return resp.status, await resp.json(), resp

    as_json = {**auth, "Content-Type": "application/json"}
    cases = [
        (400, "malformed", dict(data=b"{nope", headers=as_json)),
        (400, "malformed", dict(data=b'{"text": "x"}', headers=as_json,
                                url=f"{a}/v1/streams/a.b/comments")),
        (401, "unauthenticated", dict(json={"text": "x"})),
        (401, "unauthenticated", dict(json={"text": "x"}, headers={"Authorization": "Bearer x"})),
        (413, "too_large", dict(json={"text": "x" * 3000}, headers=auth)),
        (413, "too_large", dict(data=b"x" * 100_000, headers=as_json)),
        (415, "unsupported_media_type", dict(data=b'{"text": "x"}', headers=auth)),
        (422, "invalid", dict(json={"text": ""}, headers=auth)),
        (422, "invalid", dict(data=b'{"text": "\xff"}', headers=as_json)),
        (422, "invalid", dict(json={"text": "bell \u0007"}, headers=auth)),
        (422, "invalid", dict(json={"text": "x", "mood": "happy"}, headers=auth)),
        (404, "not_found", dict(headers=auth, url=f"{a}/v1/nope")),
    ]
    for status, code, kw in cases:
        target = str(kw.pop("url", url))
        got, body, _ = await call("POST", target, **kw)
        assert (got, body["error"]["code"]) == (status, code), (kw, body)   # type: ignore[index]
        assert body["error"]["message"]  # type: ignore[index]
    # 403: a banned user; 429 with Retry-After: a user past their burst.
    mod = token(cluster, "mod", "moderator")
    got, _, _ = await call("PUT", f"{a}/v1/moderation/bans/{unique}-banned",
                           headers={"Authorization": f"Bearer {mod}"})
    assert got == 200
    got, _, _ = await call("PUT", f"{a}/v1/moderation/bans/x",
                           headers={"Authorization": f"Bearer {tok}"})
    assert got == 403
    got, body, _ = await call("POST", url, json={"text": "hi"}, headers={
        "Authorization": f"Bearer {token(cluster, f'{unique}-banned')}"})
    assert got == 403 and body["error"]["code"] == "forbidden"  # type: ignore[index]
    burst = cluster.config.limits.user_burst
    statuses = []
    for i in range(burst + 1):
        got, body, resp = await call("POST", url, json={"text": f"{i}"}, headers=auth)
        statuses.append(got)
    assert statuses[:burst] == [201] * burst and statuses[-1] == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert body["error"]["retryable"] is True  # type: ignore[index]
    # History's own checks.
    for query, status in (("limit=0", 422), ("limit=x", 400), ("before=zzz", 400),
                          ("before=eu-west:abc:5", 422)):
        got, _, _ = await call("GET", f"{url}?{query}", headers=auth)
        assert got == status, query


async def test_503_when_a_dependency_is_down_and_nothing_is_half_stored(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    a, _ = gateways(cluster)
    tok = token(cluster, f"{unique}-d")
    status, body = await post(http, a, unique, tok, text="before")
    assert status == 201
    head = body["seq"]
    for part in ("us-east/redis", "us-east/nats"):
        child = cluster.child(part)
        child.kill()
        try:
            status, body = await post(http, a, unique, tok, text="while down",
                                      client_key=f"down-{part[-4:]}")
            assert status == 503, body
            assert body["error"]["code"] == "unavailable"  # type: ignore[index]
        finally:
            await cluster.restart(part)
        await wait_until(lambda: _healthy(http, a), what=f"{a} after {part}", timeout_s=60)
    await wait_until(lambda: _leaf_up(cluster), what="leaf link back", timeout_s=60)
    status, body = await post(http, a, unique, tok, text="after")
    assert status == 201 and body["seq"] > head
    async with http.get(f"{a}/v1/streams/{unique}/comments",
                        headers={"Authorization": f"Bearer {tok}"}) as resp:
        texts = [c["text"] for c in (await resp.json())["items"]]
    assert texts == ["after", "before"]


async def _leaf_up(cluster: LocalCluster) -> bool:
    from chorus.cluster.health import probe

    return (await probe(cluster.config, with_cassandra=False)).healthy


async def test_a_slow_consumer_is_cut_without_delaying_the_others(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    a, b = gateways(cluster)
    operator = cluster.config.region("us-east").operator_urls[0]  # gateway a's
    cut_before = await _slow_consumers(http, operator)
    fast = await WsViewer(http, a, unique, token(cluster, "fast"), "fast").connect()
    slow = await _stalled_websocket(a, unique, token(cluster, "slow"))
    try:
        tokens = [token(cluster, f"{unique}-{i}") for i in range(100)]
        big = "y" * 1500
        total = 1000
        lane = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with lane:
                status, body = await post(http, b, unique, tokens[i % 100], text=f"{i} {big}")
                assert status == 201, body
        await asyncio.gather(*(one(i) for i in range(total)))
        await fast.count(total, timeout_s=60)
        assert not fast.duplicates
        # The stalled reader was cut: its connection ends (a peer that does not read cannot
        # always get the goodbye, 4408, in time; then it is dropped), and the gateway counts it.
        reader, _ = slow
        await asyncio.wait_for(_read_until_close(reader), 30)

        async def counted() -> bool:
            return await _slow_consumers(http, operator) == cut_before + 1
        await wait_until(counted, what="the cut counted as a slow consumer", timeout_s=10)
    finally:
        await fast.close()
        slow[1].close()


async def _slow_consumers(http: aiohttp.ClientSession, operator: str) -> int:
    """Gateway's cuts, from its operator listener's /metrics."""
    async with http.get(f"{operator}/metrics") as resp:
        text = await resp.text()
    line = next(x for x in text.splitlines() if x.startswith("chorus_slow_consumers_total"))
    return int(float(line.rsplit(" ", 1)[1]))


async def _stalled_websocket(base: str, stream: str, tok: str
                             ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client that completes the handshake and then stops reading."""
    import base64
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
    # A tiny reader buffer: asyncio stops reading the socket once it holds 2 x 1 KiB, so the
    # kernel's receive window closes and the gateway's writes back up, as with a stuck phone.
    reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    key = base64.b64encode(uuid.uuid4().bytes).decode()
    writer.write((f"GET /v1/streams/{stream}/live?access_token={tok} HTTP/1.1\r\n"
                  f"Host: {parts.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    await writer.drain()
    status = await reader.readuntil(b"\r\n\r\n")
    assert b" 101 " in status.split(b"\r\n")[0]
    return reader, writer


async def _read_until_close(reader: asyncio.StreamReader) -> bytes | None:
    """The last bytes before the gateway closed the connection; None if it reset it."""
    chunks = []
    while True:
        try:
            chunk = await reader.read(65536)
        except ConnectionResetError:
            return None
        if not chunk:
            return b"".join(chunks)[-4096:]
        chunks.append(chunk)
        chunks = chunks[-4:]


async def test_bad_and_oversized_frames(cluster: LocalCluster, http: aiohttp.ClientSession,
                                        unique: str) -> None:
    a, _ = gateways(cluster)
    viewer = await WsViewer(http, a, unique, token(cluster, "f"), "ws").connect()
    await viewer.send({"type": "comment", "text": "", "ref": "r1"})
    await viewer.send({"type": "warp"})
    await viewer.ws.send_str("not json")  # type: ignore[union-attr]
    await viewer.send({"type": "resume", "cursor": "nope"})
    await viewer.send({"type": "ping", "ref": 7})
    await viewer.until(lambda: bool(viewer.of_type("pong")))
    errors = viewer.of_type("error")
    assert [e["code"] for e in errors] == ["invalid", "invalid", "malformed", "invalid"]
    assert errors[0]["ref"] == "r1"
    # Ten bad frames in a row close the connection with 4400.
    for _ in range(10):
        await viewer.ws.send_str("{")  # type: ignore[union-attr]
    await asyncio.wait_for(viewer.closed.wait(), 10)
    assert viewer.ws.close_code == 4400  # type: ignore[union-attr]
    bye = viewer.of_type("bye")
    assert bye and bye[0]["cursor"]
    # A frame over frame_max_bytes closes with 1009.
    big = await WsViewer(http, a, unique, token(cluster, "g"), "big").connect()
    await big.ws.send_str("x" * (cluster.config.limits.frame_max_bytes + 1))  # type: ignore[union-attr]
    await asyncio.wait_for(big.closed.wait(), 10)
    assert big.ws.close_code == 1009  # type: ignore[union-attr]
    await big.close()
    # A browser from a foreign origin is refused.
    async with http.get(f"{a}/v1/streams/{unique}/events",
                        params={"access_token": token(cluster, "h")},
                        headers={"Origin": "https://evil.example"}) as resp:
        assert resp.status == 403


async def test_presence_counts_viewers_and_a_dead_gateways_viewers_expire(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    import redis.asyncio as aioredis

    from region.presence import PresenceUnknown
    from region.presence_redis import RedisPresence

    a, b = gateways(cluster)
    region = cluster.config.region("us-east")
    redis = aioredis.Redis(port=region.redis.port)
    presence = RedisPresence(redis, cluster.config.limits.presence_ttl_s)
    viewers = [await WsViewer(http, a, unique, token(cluster, f"c{i}"), f"c{i}").connect()
               for i in range(3)]
    viewers.append(await WsViewer(http, b, unique, token(cluster, "d"), "d").connect())
    try:
        async def count_is(n: int) -> bool:
            try:
                return await presence.count(unique) == n
            except PresenceUnknown:  # just after the cluster's start or a Redis restart
                return False
        await wait_until(lambda: count_is(4), what="4 viewers", timeout_s=15)
        await viewers[0].until(lambda: any(f["count"] == 4 for f in viewers[0].of_type("viewers")))
        await viewers[3].close()
        await wait_until(lambda: count_is(3), what="3 viewers", timeout_s=15)
        # Kill gateway 0 without a word: its viewers leave presence within presence_ttl_s.
        cluster.child("us-east/gateway-0").kill()
        await wait_until(lambda: count_is(0), what="no viewers",
                         timeout_s=cluster.config.limits.presence_ttl_s + 5)
    finally:
        for viewer in viewers:
            await viewer.close()
        await redis.aclose()
        restarted = await cluster.restart("us-east/gateway-0")
        await wait_until(lambda: _healthy(http, a), what="gateway-0", timeout_s=30,
                         children=[restarted])


async def test_stream_rate_limit_in_redis(cluster: LocalCluster, unique: str) -> None:
    import dataclasses

    import redis.asyncio as aioredis

    from region.admission import Admission
    from region.errors import ApiError

    region = cluster.config.region("us-east")
    redis = aioredis.Redis(port=region.redis.port)
    limits = dataclasses.replace(cluster.config.limits, stream_rate_per_s=1.0, stream_burst=3)
    admission = Admission(redis, limits)
    try:
        for i in range(3):
            await admission.admit(f"{unique}-{i}", unique)
        with pytest.raises(ApiError) as info:
            await admission.admit(f"{unique}-x", unique)
        assert info.value.code.status == 429 and "stream" in info.value.message
        assert info.value.retry_after_s is not None and 0 < info.value.retry_after_s <= 1
    finally:
        await redis.aclose()


