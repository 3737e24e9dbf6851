"""Test-side viewers over each transport: they record what a real client would render.

Every viewer keeps the comment ids it received in order and the last cursor, and fails the
test on a duplicate id. Waiting is on events with timeouts, never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ids: list[str] = []
        self.seen: set[str] = set()
        self.cursor: str | None = None
        self.frames: list[dict[str, Any]] = []
        self.duplicates: list[str] = []
        self._changed = asyncio.Event()

    def record(self, frame: dict[str, Any]) -> None:
        self.frames.append(frame)
        if frame.get("type") in ("comments", "recovered") or "items" in frame:
            for item in frame.get("items", []):
                if item["id"] in self.seen:
                    self.duplicates.append(item["id"])
                self.seen.add(item["id"])
                self.ids.append(item["id"])
            if frame.get("cursor"):
                self.cursor = frame["cursor"]
        if frame.get("type") == "hello" and self.cursor is None:
            self.cursor = frame["cursor"]
        self._changed.set()

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("type") == kind]

    async def until(self, check: Callable[[], bool], timeout_s: float = 30.0) -> None:
        async def wait() -> None:
            while not check():
                self._changed.clear()
                await self._changed.wait()
        try:
            await asyncio.wait_for(wait(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"{self.name}: condition not met in {timeout_s} s; "
                                 f"{len(self.ids)} comments, last frames "
                                 f"{self.frames[-3:]}") from None

    async def count(self, n: int, timeout_s: float = 30.0) -> None:
        await self.until(lambda: len(self.ids) >= n, timeout_s)


class WsViewer(Recorder):
    def __init__(self, session: aiohttp.ClientSession, base: str, stream: str, token: str,
                 name: str = "ws") -> None:
        super().__init__(name)
        self.http = session
        self.url = f"{base}/v1/streams/{stream}/live"
        self.token = token
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()

    async def connect(self, cursor: str | None = None) -> WsViewer:
        params = {"access_token": self.token}
        if cursor:
            params["cursor"] = cursor
        self.closed.clear()
        self.ws = await self.http.ws_connect(self.url, params=params)
        self._reader = asyncio.create_task(self._read())
        await self.until(lambda: bool(self.of_type("hello")), 10)
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self.record(json.loads(msg.data))
        finally:
            self.closed.set()
            self._changed.set()

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(frame))

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await self._reader


class SseViewer(Recorder):
    def __init__(self, session: aiohttp.ClientSession, base: str, stream: str, token: str,
                 name: str = "sse") -> None:
        super().__init__(name)
        self.http = session
        self.url = f"{base}/v1/streams/{stream}/events"
        self.token = token
        self._reader: asyncio.Task[None] | None = None
        self.last_event_id: str | None = None
        self.closed = asyncio.Event()

    async def connect(self, last_event_id: str | None = None) -> SseViewer:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.closed.clear()
        resp = await self.http.get(self.url, params={"access_token": self.token},
                                   headers=headers, timeout=aiohttp.ClientTimeout(total=None))
        assert resp.status == 200, await resp.text()
        self._reader = asyncio.create_task(self._read(resp))
        await self.until(lambda: bool(self.of_type("hello")), 10)
        return self

    async def _read(self, resp: aiohttp.ClientResponse) -> None:
        event: dict[str, str] = {}
        try:
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if not line:
                    if "data" in event:
                        # As a browser's EventSource does: the last id seen is what
                        # Last-Event-ID sends on reconnect.
                        if "id" in event:
                            self.last_event_id = event["id"]
                        self.record(json.loads(event["data"]))
                    event = {}
                    continue
                if line.startswith(":"):
                    continue
                key, _, value = line.partition(":")
                event[key] = value.lstrip(" ")
        except (aiohttp.ClientError, asyncio.CancelledError):
            pass
        finally:
            resp.release()
            self.closed.set()
            self._changed.set()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class Poller(Recorder):
    """Long-polls in a loop, each poll resuming from the last one's cursor."""

    def __init__(self, session: aiohttp.ClientSession, base: str, stream: str, token: str,
                 name: str = "poll") -> None:
        super().__init__(name)
        self.http = session
        self.url = f"{base}/v1/streams/{stream}/poll"
        self.token = token
        self._task: asyncio.Task[None] | None = None
        self.started = asyncio.Event()

    async def start(self) -> Poller:
        self._task = asyncio.create_task(self._loop())
        await asyncio.wait_for(self.started.wait(), 10)
        return self

    async def _loop(self) -> None:
        while True:
            params = {"access_token": self.token, "timeout": "0" if self.cursor is None else "5"}
            if self.cursor:
                params["cursor"] = self.cursor
            async with self.http.get(self.url, params=params) as resp:
                body = await resp.json()
                assert resp.status == 200, body
            self.record(body)
            self.started.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
