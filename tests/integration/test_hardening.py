"""What an attacker or a careless client can send a real gateway: every bad input a
documented 4xx or close code, connection caps, no version banner (docs/security.md)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import aiohttp
import jwt
import pytest
import pytest_asyncio

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from region.auth import issue_token

pytestmark = pytest.mark.integration

WAIT_S = 10.0


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def token(cluster: LocalCluster, user: str, *roles: str) -> str:
    return issue_token(cluster.config.auth, user, roles=roles or ("viewer",))


def gateway(cluster: LocalCluster) -> str:
    return cluster.config.region("us-east").gateway_urls[0]


async def error_of(resp: aiohttp.ClientResponse) -> tuple[int, str]:
    body = await resp.json()
    return resp.status, body["error"]["code"]


async def test_one_token_cannot_take_a_gateway_nor_inflate_the_viewer_count(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    base = gateway(cluster)
    cap = cluster.config.limits.max_connections_per_user
    tok = token(cluster, f"{unique}-greedy")
    url = f"{base}/v1/streams/{unique}/live"
    opened = [await http.ws_connect(url, params={"access_token": tok}) for _ in range(cap)]
    try:
        # One more WebSocket: upgraded, told why, closed with 4429.
        extra = await http.ws_connect(url, params={"access_token": tok})
        first = await asyncio.wait_for(extra.receive(), WAIT_S)
        assert json.loads(first.data)["code"] == "too_many_connections"
        closing = await asyncio.wait_for(extra.receive(), WAIT_S)
        assert closing.type is aiohttp.WSMsgType.CLOSE and extra.close_code == 4429
        # SSE and long-poll of the same user: 429 before anything is streamed.
        async with http.get(f"{base}/v1/streams/{unique}/events",
                            params={"access_token": tok}) as resp:
            assert await error_of(resp) == (429, "too_many_connections")
            assert resp.headers["Retry-After"]
        async with http.get(f"{base}/v1/streams/{unique}/poll",
                            params={"access_token": tok, "timeout": "0"}) as resp:
            assert await error_of(resp) == (429, "too_many_connections")
        # Another user is not affected, and the stream has two viewers, not cap + 1.
        other = await http.ws_connect(url, params={"access_token": token(cluster, "o")})
        opened.append(other)
        counts: list[int] = []

        async def two_viewers() -> bool:
            msg = await other.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                frame = json.loads(msg.data)
                if frame["type"] == "viewers":
                    counts.append(frame["count"])
            return bool(counts) and counts[-1] == 2
        await wait_until(two_viewers, what="a viewers frame", timeout_s=15)
        assert max(counts) == 2
    finally:
        for ws in opened:
            await ws.close()
    # Closed connections give their slots back.
    again = await http.ws_connect(url, params={"access_token": tok})
    hello = json.loads((await asyncio.wait_for(again.receive(), WAIT_S)).data)
    assert hello["type"] == "hello"
    await again.close()


def frame(payload: bytes, *, masked: bool) -> bytes:
    head = bytes([0x81, (0x80 if masked else 0) | len(payload)])
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def test_an_unmasked_client_frame_closes_the_connection_with_1002(
        cluster: LocalCluster, unique: str) -> None:
    parts = urlsplit(gateway(cluster))
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /v1/streams/{unique}/live?access_token={token(cluster, 'raw')} "
                  f"HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
        assert head.startswith(b"HTTP/1.1 101")
        writer.write(frame(b'{"type":"ping"}', masked=False))
        while True:   # hello (and maybe viewers) come first
            top = await asyncio.wait_for(reader.readexactly(2), WAIT_S)
            n = top[1] & 0x7F
            if n == 126:
                n = struct.unpack("!H", await reader.readexactly(2))[0]
            payload = await reader.readexactly(n)
            if top[0] & 0x0F == 0x8:
                break
            assert b'"pong"' not in payload   # the unmasked ping was never read
        assert struct.unpack("!H", payload[:2])[0] == 1002
    finally:
        writer.close()


async def test_no_version_banner_even_on_malformed_requests(cluster: LocalCluster,
                                                            http: aiohttp.ClientSession) -> None:
    async with http.get(f"{gateway(cluster)}/healthz") as resp:
        assert resp.headers["Server"] == "chorus"
    parts = urlsplit(gateway(cluster))
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(4096), WAIT_S)
    finally:
        writer.close()
    assert answer.split(b" ", 2)[1] == b"400"
    assert b"Server: chorus\r\n" in answer and b"aiohttp" not in answer.lower()


async def test_hostile_inputs_are_documented_4xx(cluster: LocalCluster,
                                                 http: aiohttp.ClientSession,
                                                 unique: str) -> None:
    base = gateway(cluster)
    tok = token(cluster, f"{unique}-h")
    auth = {"Authorization": f"Bearer {tok}"}
    as_json = {**auth, "Content-Type": "application/json"}
    comments = f"{base}/v1/streams/{unique}/comments"
    cases: list[tuple[str, str, dict[str, object], tuple[int, str]]] = [
        # A stream id ending in a newline, on every transport.
        ("GET", f"{base}/v1/streams/x%0A/poll", {"headers": auth}, (400, "malformed")),
        ("GET", f"{base}/v1/streams/x%0A/events", {"headers": auth}, (400, "malformed")),
        ("GET", f"{base}/v1/streams/x%0A/live", {"headers": auth}, (400, "malformed")),
        ("POST", f"{base}/v1/streams/x%0A/comments", {"headers": as_json, "data": b"{}"},
         (400, "malformed")),
        # JSON Python's parser cannot hold.
        ("POST", comments, {"headers": as_json, "data": b"[" * 1000 + b"]" * 1000},
         (400, "malformed")),
        ("POST", comments, {"headers": as_json, "data": b'{"text": ' + b"9" * 5000 + b"}"},
         (400, "malformed")),
        # Origins: malformed or foreign, on REST and live alike.
        ("POST", comments, {"headers": {**as_json, "Origin": "http://[::1"},
                            "data": b'{"text": "x"}'}, (403, "forbidden")),
        ("GET", comments, {"headers": {**auth, "Origin": "https://evil.example.com"}},
         (403, "forbidden")),
        ("GET", f"{base}/v1/streams/{unique}/poll",
         {"headers": {**auth, "Origin": "http://[::1"}}, (403, "forbidden")),
        # Bodies a browser sends cross-site without a preflight.
        ("POST", comments, {"headers": {**auth, "Content-Type": "text/plain"},
                            "data": b'{"text": "x"}'}, (415, "unsupported_media_type")),
        # Invisible text, a final newline in a key or a reply.
        ("POST", comments, {"headers": auth, "json": {"text": "\u200b\u2060\ufeff"}},
         (422, "invalid")),
        ("POST", comments, {"headers": auth, "json": {"text": "x", "client_key": "k\n"}},
         (422, "invalid")),
        ("POST", comments, {"headers": auth, "json": {"text": "x", "reply_to":
                                                      "018f2a3b4c5d0000-us-east.0\n"}},
         (422, "invalid")),
        # History without the archive: no after=, and not both.
        ("GET", comments, {"headers": auth, "params": {"after": "0"}}, (422, "invalid")),
        ("GET", comments, {"headers": auth, "params": {"after": "0", "before": "1"}},
         (422, "invalid")),
        ("GET", comments, {"headers": auth, "params": {"limit": "\u0665"}},
         (400, "malformed")),
        # A user id outside the alphabet.
        ("PUT", f"{base}/v1/moderation/bans/a%3Ab",
         {"headers": {"Authorization": f"Bearer {token(cluster, 'mod', 'moderator')}"}},
         (400, "malformed")),
    ]
    for method, url, kw, want in cases:
        async with http.request(method, url, **kw) as resp:  # type: ignore[arg-type]
            assert await error_of(resp) == want, (method, url, kw)
    # Well signed, but with a name that would rewrite other viewers' screens, a subject
    # outside the alphabet, a string expiry, or no audience.
    config = cluster.config.auth
    now = int(time.time())
    good = {"sub": "ok", "iss": config.issuer, "aud": config.audience, "iat": now,
            "exp": now + 60}
    for claims in ({**good, "name": "\x1b[2J\u202eAna"}, {**good, "sub": "a\n"},
                   {**good, "exp": str(now + 60)}, {k: v for k, v in good.items()
                                                      if k != "aud"}):
        forged = jwt.encode(claims, config.dev_secret, algorithm="HS256")
        async with http.get(comments, headers={"Authorization": f"Bearer {forged}"}) as resp:
            assert await error_of(resp) == (401, "unauthenticated"), claims


async def test_a_frame_the_parser_cannot_hold_is_an_error_frame_not_a_dead_link(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    ws = await http.ws_connect(f"{gateway(cluster)}/v1/streams/{unique}/live",
                               params={"access_token": token(cluster, f"{unique}-f")})
    try:
        await ws.send_str('{"type": "ping", "ref": ' + "[" * 1000 + "]" * 1000 + "}")
        await ws.send_str('{"type": "ping", "ref": ' + "1" * 5000 + "}")
        await ws.send_str('{"type": "ping", "ref": "alive"}')
        seen: list[dict[str, object]] = []
        while not any(f.get("type") == "pong" for f in seen):
            msg = await asyncio.wait_for(ws.receive(), WAIT_S)
            assert msg.type is aiohttp.WSMsgType.TEXT
            seen.append(json.loads(msg.data))
        errors = [f for f in seen if f["type"] == "error"]
        assert [e["code"] for e in errors] == ["malformed", "malformed"]
        assert seen[-1] == {"type": "pong", "ref": "alive"}
    finally:
        await ws.close()
