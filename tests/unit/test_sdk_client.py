"""The client against a scripted gateway on a free port: what a real gateway never sends
(malformed and unknown frames) and failures it cannot be made to give on cue (a 429, then a
503, a connection refused or closed before hello). The real system is exercised by
tests/integration/test_global.py."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from chorus.cluster.health import wait_until
from chorus.model import Comment
from chorus.sdk import ChorusClientError, Client
from chorus.sdk.reconnect import retry_after

STREAM = "s"


def comment(n: int) -> Comment:
    return Comment(f"{n:012x}0000-r.0", STREAM, "r", "u", "U", f"c{n}", n)


# The live connection, in order: a malformed known frame, an unknown frame and a non-JSON
# one between two good batches. A client that survives them sees both batches.
SCRIPT = [
    {"type": "hello", "region": "r", "stream": STREAM, "epoch": "e", "cursor": "r:e:0",
     "gateway": "r.0"},
    {"type": "comments", "items": [comment(1).to_json()], "cursor": "r:e:1"},
    {"type": "comments", "items": "oops", "cursor": "r:e:2"},
    {"type": "reactions", "counts": {"heart": 2}},
    "not json",
    {"type": "comments", "items": [comment(3).to_json()], "cursor": "r:e:3"},
]


def _text(frame: object) -> str:
    return frame if isinstance(frame, str) else json.dumps(frame)


class Gateway:
    """One region, one gateway; ``post_answers`` are popped one per post attempt."""

    def __init__(self) -> None:
        self.url = ""
        self.post_answers: list[web.Response] = []
        self.posts: list[dict[str, object]] = []
        # How the live endpoints answer: the script; "refuse": as a gateway past a user's
        # connection cap (an error frame, close 4429; SSE: 429 with Retry-After 7);
        # "close": closed at once, before any hello.
        self.live_mode = "script"
        self.live_attempts = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/regions", self.regions)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/v1/streams/{stream}/live", self.live)
        app.router.add_get("/v1/streams/{stream}/events", self.events)
        app.router.add_get("/v1/streams/{stream}/comments", self.history)
        app.router.add_post("/v1/streams/{stream}/comments", self.post)
        return app

    async def regions(self, request: web.Request) -> web.Response:
        return web.json_response({"region": "r", "regions": [
            {"name": "r", "urls": [self.url], "healthy": True, "link_latency_ms": 0}]})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def history(self, request: web.Request) -> web.Response:
        return web.json_response({"items": [], "next": None})

    async def live(self, request: web.Request) -> web.WebSocketResponse:
        self.live_attempts += 1
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if self.live_mode == "refuse":
            await ws.send_str(json.dumps({"type": "error", "code": "too_many_connections",
                                          "message": "close one first", "retryable": True,
                                          "ref": None}))
            await ws.close(code=4429, message=b"too_many_connections")
            return ws
        if self.live_mode == "close":
            await ws.close()
            return ws
        for frame in SCRIPT:
            await ws.send_str(_text(frame))
        async for _ in ws:  # until the client leaves
            pass
        return ws

    async def events(self, request: web.Request) -> web.StreamResponse:
        self.live_attempts += 1
        if self.live_mode == "refuse":
            return web.json_response(
                {"error": {"code": "too_many_connections", "message": "close one first"}},
                status=429, headers={"Retry-After": "7"})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for frame in SCRIPT:
            await resp.write(f": keepalive\n\ndata: {_text(frame)}\n\n".encode())
        return resp  # the stream ends; the client resumes

    async def post(self, request: web.Request) -> web.Response:
        self.posts.append(await request.json())
        return self.post_answers.pop(0)


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    runner = web.AppRunner(gw.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    gw.url = f"http://127.0.0.1:{port}"
    try:
        yield gw
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_malformed_and_unknown_frames_are_skipped_and_counted(
        gateway: Gateway, transport: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="chorus.sdk.client")
    async with Client([gateway.url], token="t", stream=STREAM, transport=transport) as client:
        await client.wait_for(lambda t: comment(3).id in t, timeout_s=10)
        assert client.region == "r"
        assert client.timeline.ids() == [comment(1).id, comment(3).id]
        assert client.malformed_frames >= 2  # the bad batch and the non-JSON text
        assert client.cursor is not None
    assert "skipped a frame" in caplog.text and "'items' is not a list" in caplog.text


async def test_post_retries_with_one_client_key_until_stored(gateway: Gateway) -> None:
    stored = comment(7).to_json() | {"seq": 7}
    gateway.post_answers = [
        web.json_response({"error": {"code": "rate_limited", "message": "slow down"}},
                          status=429, headers={"Retry-After": "0"}),
        web.json_response({"error": {"code": "unavailable", "message": "later"}}, status=503),
        web.json_response(stored, status=201),
    ]
    async with Client([gateway.url], token="t", stream=STREAM, transport="ws") as client:
        assert await client.post("c7") == comment(7)
    keys = {p["client_key"] for p in gateway.posts}
    assert len(gateway.posts) == 3 and len(keys) == 1


async def test_post_refused_for_good_is_not_retried(gateway: Gateway) -> None:
    gateway.post_answers = [
        web.json_response({"error": {"code": "invalid", "message": "empty"}}, status=422)]
    async with Client([gateway.url], token="t", stream=STREAM, transport="ws") as client:
        with pytest.raises(ChorusClientError, match="422 invalid: empty") as caught:
            await client.post("")
    assert caught.value.status == 422 and len(gateway.posts) == 1


async def test_no_seed_answering_is_a_client_error() -> None:
    client = Client(["http://127.0.0.1:9"], token="t", stream=STREAM)
    try:
        with pytest.raises(ChorusClientError, match="unavailable") as caught:
            await client.start()
        assert caught.value.status == 0
    finally:
        await client.close()


def test_retry_after_reads_seconds_and_falls_back_to_one() -> None:
    assert retry_after("2.5") == 2.5
    assert retry_after(None) == 1.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 1.0
    assert retry_after("inf") == 1.0
    assert retry_after("-3") == 0.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="transport"):
        Client(["http://x"], token="t", stream=STREAM, transport="carrier-pigeon")
    with pytest.raises(ValueError, match="backoff_max_s"):
        Client(["http://x"], token="t", stream=STREAM, backoff_max_s=0)


# -- reconnecting -------------------------------------------------------------------------------


async def _retrying(client: Client) -> float:
    """The wait the watch loop chose after its first attempt, once it waits."""
    async def waiting() -> bool:
        return client.retry_in_s > 0
    await wait_until(waiting, what="the client to wait before reconnecting", timeout_s=10)
    return client.retry_in_s


@pytest.mark.parametrize(("transport", "hint_s"), [("ws", 5.0), ("sse", 7.0)])
async def test_a_refused_connection_waits_as_long_as_the_server_asks(
        gateway: Gateway, transport: str, hint_s: float) -> None:
    # The backoff alone would retry within 50 ms; close 4429 stands for Retry-After 5 (what
    # the same refusal says over HTTP), and the SSE refusal says 7.
    gateway.live_mode = "refuse"
    async with Client([gateway.url], token="t", stream=STREAM, transport=transport,
                      backoff_max_s=0.05) as client:
        assert await _retrying(client) >= hint_s
        assert gateway.live_attempts == 1 and client.region is None


async def test_a_connection_closed_before_hello_is_a_failed_attempt(gateway: Gateway) -> None:
    # Not a connection that worked: the attempts count towards failover (here, the one region
    # again), where before each one started the backoff over.
    gateway.live_mode = "close"
    async with Client([gateway.url], token="t", stream=STREAM, transport="ws",
                      failover_after=2, backoff_max_s=0.05) as client:
        async def failed_over() -> bool:
            return client.failovers >= 1
        await wait_until(failed_over, what="a failover", timeout_s=10)
        assert client.region is None and gateway.live_attempts >= 2
