"""What every request passes before a handler (region/edge.py), on a small aiohttp app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from chorus.config import AuthConfig, Config, Limits
from region.app import error_middleware
from region.edge import request_guard

WAIT_S = 5.0


def config() -> Config:
    return Config(regions=(), limits=Limits(frame_max_bytes=1000, request_body_timeout_s=0.5),
                  auth=AuthConfig(allowed_origins=("https://app.example.com",)))


async def handler(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"got": len(body)})


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[error_middleware, request_guard(config())],
                          client_max_size=1000)
    app.router.add_route("*", "/v1/thing", handler)
    app.router.add_get("/page", handler)
    async with TestClient(TestServer(app)) as running:
        yield running


JSON = {"Content-Type": "application/json"}


async def test_json_bodies_pass(client: TestClient[web.Request, web.Application]) -> None:
    resp = await client.post("/v1/thing", data=b'{"a": 1}', headers=JSON)
    assert resp.status == 200 and await resp.json() == {"got": 8}
    resp = await client.post("/v1/thing", data=b"{}",
                             headers={"Content-Type": "application/json; charset=utf-8"})
    assert resp.status == 200
    resp = await client.put("/v1/thing")              # no body, no type needed
    assert resp.status == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
async def test_other_bodies_are_415(client: TestClient[web.Request, web.Application],
                                    content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    resp = await client.post("/v1/thing", data=b'{"a": 1}', headers=headers)
    body = await resp.json()
    assert resp.status == 415 and body["error"]["code"] == "unsupported_media_type"


async def test_foreign_origins_are_403_on_every_api_method(
        client: TestClient[web.Request, web.Application]) -> None:
    for method in ("GET", "POST", "PUT", "DELETE"):
        for origin in ("https://evil.example.com", "http://[::1", "null"):
            resp = await client.request(method, "/v1/thing", data=b"{}",
                                        headers={**JSON, "Origin": origin})
            assert resp.status == 403, (method, origin)
            assert (await resp.json())["error"]["code"] == "forbidden"
    resp = await client.get("/v1/thing", headers={"Origin": "https://app.example.com:8443"})
    assert resp.status == 200
    own = f"http://{client.host}:{client.port}"
    assert (await client.get("/v1/thing", headers={"Origin": own})).status == 200
    # A page is not the API: it carries no data to protect.
    assert (await client.get("/page", headers={"Origin": "https://evil.example.com"})
            ).status == 200


async def answer(client: TestClient[web.Request, web.Application], head: bytes) -> bytes:
    """The status line, headers and body the server answers ``head`` with."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    try:
        writer.write(head)
        await writer.drain()
        top = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
        length = next(int(line.split(b":")[1]) for line in top.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        assert b"connection: close" in top.lower()    # the rest is not worth reading
        return top + await asyncio.wait_for(reader.readexactly(length), WAIT_S)
    finally:
        writer.close()


async def test_a_declared_length_over_the_limit_is_refused_at_once(
        client: TestClient[web.Request, web.Application]) -> None:
    got = await answer(client, b"POST /v1/thing HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Type: application/json\r\n"
                               b"Content-Length: 1000000000\r\n\r\n{")
    assert got.startswith(b"HTTP/1.1 413") and b'"too_large"' in got


async def test_a_body_that_does_not_arrive_is_408(
        client: TestClient[web.Request, web.Application]) -> None:
    got = await answer(client, b"POST /v1/thing HTTP/1.1\r\nHost: x\r\n"
                               b"Content-Type: application/json\r\n"
                               b"Content-Length: 100\r\n\r\n{")
    assert got.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in got
