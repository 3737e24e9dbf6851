"""RFC 6455 5.1: unmasked client frames close the connection (region/masking.py).

The scanner on plain bytes, and the response on a real aiohttp server over a raw socket,
since no WebSocket client library sends unmasked frames."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import struct
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from aiohttp.web_protocol import RequestHandler

from region.masking import MaskedWebSocketResponse, MaskScanner

WAIT_S = 5.0


def frame(payload: bytes, *, masked: bool = True, opcode: int = 0x1) -> bytes:
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def scan_in_pieces(data: bytes, rng: random.Random) -> bool:
    scanner = MaskScanner()
    pos = 0
    while pos < len(data):
        step = rng.randint(1, 40)
        scanner.feed(data[pos:pos + step])
        pos += step
    return scanner.ok


def test_masked_frames_of_every_length_class_pass_however_split() -> None:
    rng = random.Random(7)
    stream = b"".join(frame(b"x" * n) for n in (0, 1, 125, 126, 127, 300, 65535, 65536))
    stream += frame(b"", opcode=0x9)   # a ping
    for _ in range(20):
        assert scan_in_pieces(stream, rng)


def test_an_unmasked_frame_is_caught_wherever_it_is() -> None:
    rng = random.Random(8)
    for before in (0, 1, 3):
        stream = b"".join(frame(b"y" * (50 * i)) for i in range(before))
        stream += frame(b"hello", masked=False) + frame(b"after")
        for _ in range(10):
            assert not scan_in_pieces(stream, rng)


def test_aiohttp_still_has_the_attributes_the_response_reaches_into() -> None:
    assert {"_message_tail", "_payload_parser"} <= set(RequestHandler.__slots__)


# -- on a real aiohttp server --------------------------------------------------------------


async def echo(request: web.Request) -> web.WebSocketResponse:
    ws = MaskedWebSocketResponse()
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(msg.data)
    return ws


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_get("/ws", echo)
    async with TestServer(app) as running:
        yield running


def upgrade(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readexactly(2)
    n = head[1] & 0x7F
    if n == 126:
        n = struct.unpack("!H", await reader.readexactly(2))[0]
    return head[0] & 0x0F, await reader.readexactly(n)


async def open_ws(server: TestServer, first: bytes = b"") -> tuple[
        asyncio.StreamReader, asyncio.StreamWriter]:
    assert server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(upgrade(server.port) + first)   # `first`: frames pipelined with the upgrade
    await writer.drain()
    status = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    assert status.startswith(b"HTTP/1.1 101")
    return reader, writer


@pytest.mark.parametrize("with_upgrade", [False, True])
async def test_the_server_closes_with_1002_on_an_unmasked_frame(
        server: TestServer, with_upgrade: bool) -> None:
    unmasked = frame(b'{"type":"ping"}', masked=False)
    reader, writer = await open_ws(server, unmasked if with_upgrade else b"")
    try:
        if not with_upgrade:
            writer.write(frame(b"masked is fine"))
            assert await asyncio.wait_for(read_frame(reader), WAIT_S) == (
                0x1, b"masked is fine")
            writer.write(unmasked)
        opcode, payload = await asyncio.wait_for(read_frame(reader), WAIT_S)
        assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1002
    finally:
        writer.close()
