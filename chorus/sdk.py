"""The Python client (asyncio): watch a stream and post to it from the nearest healthy region.

    client = Client(["http://127.0.0.1:8101"], token=token, stream="match-42")
    async with client:                      # connects in the background
        await client.post("what a goal!")   # retried with the same client_key, failover included
        ...                                 # client.timeline: comments by id, once each

What it does for the application:
- discovers the regions from any gateway (``/v1/regions``) and ranks the healthy ones by
  measured round trip, breaking near-ties by the configured link latency (``prefer`` first);
- watches over WebSocket, falling back to SSE when a WebSocket cannot be opened;
- resumes with its cursor after a disconnect, backing off exponentially with jitter;
- fails over when its region is gone (``failover_after`` failed attempts in a row) to the
  next healthy region, where cursors do not apply: it joins at the head and fills what it may
  have missed from that region's history, by comment id and time;
- hands the application a `Timeline`: no duplicate, and an explicit `Gap` where history
  could not fill a hole (``recovered: false`` that paging could not repair).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from chorus.ids import id_time_ms, is_id
from chorus.model import Comment
from chorus.timeline import Timeline

REORDER_WINDOW_MS = 5000    # comments of other regions reach a log up to this much out of order
HISTORY_PAGE = 200
HISTORY_MAX_PAGES = 20
CONNECT_TIMEOUT_S = 3.0


class ChorusClientError(Exception):
    """A request was refused for good (4xx other than 429), or no region could take it."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code


@dataclass(frozen=True)
class RegionInfo:
    name: str
    urls: tuple[str, ...]
    healthy: bool
    link_latency_ms: int
    rtt_ms: float = float("inf")


class _Unreachable(Exception):
    """A gateway could not be reached or refused the connection; try the next one."""


class Client:
    def __init__(self, seeds: Sequence[str], *, token: str, stream: str,
                 prefer: str | None = None, transport: str = "auto",
                 failover_after: int = 3, backoff_max_s: float = 5.0,
                 on_comment: Callable[[Comment], None] | None = None) -> None:
        if transport not in ("auto", "ws", "sse"):
            raise ValueError("transport is auto, ws or sse")
        self.seeds = tuple(seeds)
        self.token = token
        self.stream = stream
        self.prefer = prefer
        self.transport = transport
        self.failover_after = failover_after
        self.backoff_max_s = backoff_max_s
        self.on_comment = on_comment
        self.timeline = Timeline()
        self.region: str | None = None
        self.cursor: str | None = None          # valid in self.region only
        self.connected = asyncio.Event()
        self.failovers = 0
        self.reconnects = 0
        self.regions: list[RegionInfo] = []
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._changed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S))
        self.regions = await self._discover()
        self._task = asyncio.create_task(self._run(), name=f"chorus watch {self.stream}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()

    async def wait_for(self, check: Callable[[Timeline], bool], timeout_s: float = 30.0) -> None:
        """Waits until ``check(self.timeline)`` holds (re-checked on every change)."""
        async def wait() -> None:
            while not check(self.timeline):
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(wait(), timeout_s)

    # -- regions -----------------------------------------------------------------------------

    async def _discover(self) -> list[RegionInfo]:
        assert self._http is not None
        urls = list(self.seeds) + [u for r in self.regions for u in r.urls]
        for url in urls:
            try:
                async with self._http.get(f"{url}/v1/regions",
                                          timeout=aiohttp.ClientTimeout(total=3)) as resp:
                    if resp.status != 200:
                        continue
                    doc = await resp.json()
            except (aiohttp.ClientError, TimeoutError):
                continue
            regions = [RegionInfo(r["name"], tuple(r["urls"]), bool(r["healthy"]),
                                  int(r.get("link_latency_ms", 0))) for r in doc["regions"]]
            return await self._rank(regions)
        raise ChorusClientError(0, "unavailable", f"no gateway of {urls} answered")

    async def _rank(self, regions: list[RegionInfo]) -> list[RegionInfo]:
        assert self._http is not None

        async def rtt(region: RegionInfo) -> RegionInfo:
            began = time.perf_counter()
            try:
                async with self._http.get(f"{region.urls[0]}/healthz",  # type: ignore[union-attr]
                                          timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    ok = resp.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            ms = (time.perf_counter() - began) * 1000 if ok else float("inf")
            return RegionInfo(region.name, region.urls, region.healthy and ok,
                              region.link_latency_ms, ms)

        measured = await asyncio.gather(*(rtt(r) for r in regions))
        # Round trips within 5 ms of each other are a tie (one machine, a LAN): the
        # configured link latency decides.
        def rtt_bucket(r: RegionInfo) -> float:
            return r.rtt_ms // 5 if r.rtt_ms != float("inf") else float("inf")

        return sorted(measured, key=lambda r: (r.name != self.prefer, not r.healthy,
                                               rtt_bucket(r), r.link_latency_ms))

    def _next_region(self, current: str | None) -> RegionInfo:
        healthy = [r for r in self.regions if r.healthy and r.name != current]
        candidates = healthy or [r for r in self.regions if r.name != current] or self.regions
        return candidates[0]

    # -- watching ----------------------------------------------------------------------------

    async def _run(self) -> None:
        region = self.regions[0]
        failures = 0
        backoff = 0.1
        while True:
            url = random.choice(region.urls)
            try:
                await self._watch(region, url)
                failures, backoff = 0, 0.1  # a connection that worked, then ended
            except _Unreachable:
                failures += 1
            self.connected.clear()
            self.reconnects += 1
            if failures >= self.failover_after:
                with contextlib.suppress(ChorusClientError):
                    self.regions = await self._discover()
                region = self._next_region(region.name)
                self.failovers += 1
                failures = 0
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(self.backoff_max_s, backoff * 2)

    async def _watch(self, region: RegionInfo, url: str) -> None:
        cursor = self.cursor if self.region == region.name else None
        if self.transport in ("auto", "ws"):
            try:
                await self._watch_ws(region, url, cursor)
                return
            except aiohttp.WSServerHandshakeError as exc:
                if self.transport == "ws" or exc.status in (401, 403):
                    raise _Unreachable(str(exc)) from exc
        await self._watch_sse(region, url, cursor)

    async def _watch_ws(self, region: RegionInfo, url: str, cursor: str | None) -> None:
        assert self._http is not None
        params = {"cursor": cursor} if cursor else {}
        try:
            self._ws = await self._http.ws_connect(f"{url}/v1/streams/{self.stream}/live",
                                                   params=params, heartbeat=30)
        except aiohttp.WSServerHandshakeError:
            raise
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Unreachable(str(exc)) from exc
        try:
            async for msg in self._ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    await self._frame(region, url, json.loads(msg.data))
        except (aiohttp.ClientError, OSError):
            pass
        finally:
            await self._ws.close()

    async def _watch_sse(self, region: RegionInfo, url: str, cursor: str | None) -> None:
        assert self._http is not None
        headers = {"Last-Event-ID": cursor} if cursor else {}
        try:
            resp = await self._http.get(f"{url}/v1/streams/{self.stream}/events",
                                        headers=headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise _Unreachable(str(exc)) from exc
        if resp.status != 200:
            resp.release()
            raise _Unreachable(f"SSE answered {resp.status}")
        data: list[str] = []
        try:
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("data:"):
                    data.append(line[5:].lstrip(" "))
                elif not line and data:
                    await self._frame(region, url, json.loads("\n".join(data)))
                    data = []
        except (aiohttp.ClientError, OSError):
            pass
        finally:
            resp.release()

    async def _frame(self, region: RegionInfo, url: str, frame: dict[str, Any]) -> None:
        match frame.get("type"):
            case "hello":
                arrived_fresh = self.region != region.name or self.cursor is None
                self.region = region.name
                if arrived_fresh:
                    # New here (first connect, or a failover): cursors of another region mean
                    # nothing, so whatever may be missing comes from this region's history.
                    self.cursor = frame["cursor"]
                    await self._fill_from_history(url)
                self.connected.set()
            case "comments":
                for item in frame["items"]:
                    self._deliver(Comment.from_json(item))
                self.cursor = frame["cursor"]
            case "recovered":
                self.cursor = frame["cursor"]
                if not frame["recovered"]:
                    await self._fill_from_history(url)
            case "bye":
                pass  # the connection ends next; the loop resumes with our own cursor
        self._changed.set()

    def _deliver(self, comment: Comment) -> None:
        if self.timeline.add(comment) and self.on_comment is not None:
            self.on_comment(comment)

    async def _fill_from_history(self, url: str) -> None:
        """Pages history newest first until it reaches comments older than the newest one we
        had (less the reorder window); a fresh client takes one page as its start."""
        assert self._http is not None
        anchor = self.timeline.last_id
        stop_ms = id_time_ms(anchor) - REORDER_WINDOW_MS if anchor and is_id(anchor) else None
        before: str | None = None
        for _ in range(HISTORY_MAX_PAGES):
            params = {"limit": str(HISTORY_PAGE)} | ({"before": before} if before else {})
            try:
                async with self._http.get(f"{url}/v1/streams/{self.stream}/comments",
                                          params=params) as resp:
                    if resp.status != 200:
                        break
                    page = await resp.json()
            except (aiohttp.ClientError, OSError):
                break
            items = [Comment.from_json(c) for c in page["items"]]
            for comment in items:
                self._deliver(comment)
            if stop_ms is None or page.get("next") is None:
                return  # a fresh client's first page, or history is exhausted
            if items and id_time_ms(min(c.id for c in items)) < stop_ms:
                return
            before = page["next"]
        if anchor is not None:
            self.timeline.mark_gap(anchor, None)

    # -- posting -----------------------------------------------------------------------------

    async def post(self, text: str, *, client_key: str | None = None,
                   reply_to: str | None = None, attempts: int = 6) -> Comment:
        """Posts to the current region (then the others), retrying with one client_key so
        the comment is stored once whichever attempt got through."""
        assert self._http is not None, "start() the client first"
        body: dict[str, Any] = {"text": text, "client_key": client_key or uuid.uuid4().hex}
        if reply_to:
            body["reply_to"] = reply_to
        order = sorted(self.regions, key=lambda r: r.name != self.region)
        targets = [u for r in order for u in r.urls]
        last: Exception | None = None
        delay = 0.1
        for attempt in range(attempts):
            url = targets[attempt % len(targets)]
            try:
                async with self._http.post(f"{url}/v1/streams/{self.stream}/comments",
                                           json=body) as resp:
                    doc = await resp.json()
                    if resp.status in (200, 201):
                        return Comment.from_json({k: v for k, v in doc.items() if k != "seq"})
                    error = doc.get("error", {})
                    last = ChorusClientError(resp.status, error.get("code", "?"),
                                             error.get("message", ""))
                    if resp.status not in (429, 500, 502, 503, 504):
                        raise last
                    if resp.status == 429:
                        delay = max(delay, float(resp.headers.get("Retry-After", "1")))
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                last = exc
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(self.backoff_max_s, delay * 2)
        raise ChorusClientError(503, "unavailable", f"no region took the post: {last}")
