"""`Client`: watch one stream and post to it, from the nearest healthy region.

The watch loop owns one connection at a time: it resumes with its cursor after a disconnect,
fails over to the next region after ``failover_after`` failed attempts in a row (an attempt
that ended before the server's ``hello`` failed too), and fills from history whatever the
live connection cannot vouch for. Decisions live in regions.py, reconnect.py and history.py,
wire formats in frames.py and transports.py; this module only sequences them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, assert_never

import aiohttp

from chorus.backoff import Backoff
from chorus.model import Comment
from chorus.sdk import history, transports
from chorus.sdk.errors import ChorusClientError, HandshakeRefused, Unreachable
from chorus.sdk.frames import (
    Ack,
    Bye,
    Comments,
    Error,
    Hello,
    MalformedFrame,
    Pin,
    Pong,
    Reactions,
    Recovered,
    Restore,
    Retract,
    Sample,
    ServerFrame,
    Snapshot,
    Tier,
    Viewers,
)
from chorus.sdk.posting import Outcome, Pins, outcome_of, post_targets
from chorus.sdk.reconnect import Attempt, retry_after, wait_after
from chorus.sdk.regions import Failback, RegionInfo, Rotation, discover, measure, next_region
from chorus.timeline import Timeline

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
RETRACTED_KEPT = 10_000  # retracted ids remembered, so that a later copy is not shown again
RETRY_FIRST_S = 0.1     # the first wait of the reconnect and post retries (then doubling)


class Client:
    """One stream, watched and posted to. Construct, then ``async with client:`` (or
    `start` and `close`); `timeline` fills in the background.

    ``seeds``: gateway URLs to discover the regions from. ``prefer``: the region to rank
    first (None: the nearest by round trip). ``transport``: "ws", "sse", or "auto"
    (WebSocket, SSE where a WebSocket cannot be opened). ``failover_after``: failed
    connection attempts in a row before moving to another region. ``backoff_max_s``: the
    longest wait between attempts, seconds. ``failback_every_s``: how often a client that
    failed over checks its home region (the one it ranked first) to go back to it once it is
    healthy again (None: it stays where it is). ``on_comment``: called once per new comment,
    in arrival order (the timeline is in id order)."""

    def __init__(self, seeds: Sequence[str], *, token: str, stream: str,
                 prefer: str | None = None, transport: str = "auto",
                 failover_after: int = 3, backoff_max_s: float = 5.0,
                 failback_every_s: float | None = 10.0,
                 on_comment: Callable[[Comment], None] | None = None) -> None:
        if transport not in ("auto", "ws", "sse"):
            raise ValueError("transport is auto, ws or sse")
        if backoff_max_s <= 0:
            raise ValueError("backoff_max_s is a positive number of seconds")
        self.seeds = tuple(seeds)
        self.token = token
        self.stream = stream
        self.prefer = prefer
        self.transport = transport
        self.failover_after = failover_after
        self.backoff_max_s = backoff_max_s
        self.failback_every_s = failback_every_s
        self.on_comment = on_comment
        self.timeline = Timeline()
        self.region: str | None = None
        self.cursor: str | None = None          # valid in self.region only
        self.connected = asyncio.Event()
        self.failovers = 0
        self.failbacks = 0                      # returns to the home region after a failover
        self.reconnects = 0
        # Seconds the watch loop waits before its next attempt (0: it is not waiting).
        self.retry_in_s = 0.0
        self.malformed_frames = 0               # frames a server got wrong, skipped
        self.regions: list[RegionInfo] = []
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._pins = Pins()
        self._attempt = Attempt()               # the connection attempt under way
        # Moderation: the stream's pinned comment (None: none), and the comments taken down,
        # remembered so that a copy arriving later (history, another region) stays out.
        self.pin: Comment | None = None
        self.retracted: OrderedDict[str, None] = OrderedDict()
        # The stream's viewer counts (this region, every region) and reactions (the last
        # frame, and the totals over every region) as the server last told them.
        self.viewers: Viewers | None = None
        self.reactions: Reactions | None = None
        self.reaction_totals: dict[str, int] = {}
        # Hot streams: the tier the server delivers the stream in (None: push, as on any
        # connection until told otherwise), what the last batch stood for ("showing n of m"),
        # and the last snapshot document (whose comments also join the timeline).
        self.tier: Tier | None = None
        self.sample: Sample | None = None
        self.snapshot: Snapshot | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> Client:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Discovers the regions (`ChorusClientError` when no seed answers) and starts
        watching in the background."""
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S))
        self.regions = await self._discover()
        self._task = asyncio.create_task(self._run(), name=f"chorus watch {self.stream}")

    async def close(self) -> None:
        """Stops watching; the watch loop's own failure, if any, is raised here."""
        try:
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        finally:
            if self._http is not None:
                await self._http.close()

    async def wait_for(self, check: Callable[[Timeline], bool], timeout_s: float = 30.0) -> None:
        """Waits until ``check(self.timeline)`` holds (re-checked on every change)."""
        async def wait() -> None:
            while not check(self.timeline):
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(wait(), timeout_s)

    async def _discover(self) -> list[RegionInfo]:
        assert self._http is not None
        urls = [*self.seeds, *(u for r in self.regions for u in r.urls)]
        return await discover(self._http, urls, self.prefer)

    # -- watching ----------------------------------------------------------------------------

    async def _run(self) -> None:
        home = region = self.regions[0]
        rotation = self._rotation(region)
        backoff = Backoff(first_s=min(RETRY_FIRST_S, self.backoff_max_s),
                          max_s=self.backoff_max_s)
        while True:
            url = rotation.url()
            went_home = False
            attempt = self._attempt = Attempt()
            try:
                went_home = await self._watch_away(region, url, home)
            except Unreachable as exc:
                log.debug("%s: %s", url, exc)
                attempt.retry_after_s = exc.retry_after_s
            self.connected.clear()
            self.reconnects += 1
            if went_home:
                region = next((r for r in self.regions if r.name == home.name), home)
                rotation = self._rotation(region)
                self.failbacks += 1
                continue  # home is healthy: no reason to wait
            if attempt.hello:
                rotation.succeeded()  # a connection that worked, then ended
            elif rotation.failed():   # never opened, refused, or closed before hello
                with contextlib.suppress(ChorusClientError):
                    self.regions = await self._discover()
                region = next_region(self.regions, region.name)
                rotation = self._rotation(region)
                self.failovers += 1
            self.retry_in_s = wait_after(attempt, backoff)
            try:
                await asyncio.sleep(self.retry_in_s)  # pacing the retry (reconnect.py)
            finally:
                self.retry_in_s = 0.0

    def _rotation(self, region: RegionInfo) -> Rotation:
        return Rotation(region.urls, self.failover_after,
                        start=random.randrange(len(region.urls)))

    async def _watch_away(self, region: RegionInfo, url: str, home: RegionInfo) -> bool:
        """`_watch`, and while away from ``home`` a check of it every ``failback_every_s``:
        True when the connection was closed to go back home (`Failback` decides)."""
        if region.name == home.name or self.failback_every_s is None:
            await self._watch(region, url)
            return False
        rule = Failback(home.name, every_s=self.failback_every_s)
        watch = asyncio.create_task(self._watch(region, url), name=f"watch {self.stream}")
        try:
            while True:
                done, _ = await asyncio.wait({watch}, timeout=rule.every_s)
                if done:
                    watch.result()  # the connection ended (or never opened: Unreachable)
                    return False
                if rule.observe(await self._healthy(home)):
                    return True
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch

    async def _healthy(self, region: RegionInfo) -> bool:
        """Whether any of ``region``'s gateways answers its health check now."""
        assert self._http is not None
        probes = [replace(region, urls=(u,), healthy=True) for u in region.urls]
        return any(r.healthy for r in await measure(self._http, probes))

    async def _watch(self, region: RegionInfo, url: str) -> None:
        """One connection, until it ends; `Unreachable` when none could be opened."""
        assert self._http is not None
        cursor = self.cursor if self.region == region.name else None
        if self.transport in ("auto", "ws"):
            try:
                await self._consume(region, url, transports.websocket(
                    self._http, url, self.stream, cursor, self._malformed, self._closed))
                return
            except HandshakeRefused as exc:
                # A refusal about the client holds for SSE too; anything else (a proxy
                # without WebSocket support, say) may not.
                if self.transport == "ws" or exc.status in (401, 403, 429):
                    raise
        await self._consume(region, url, transports.sse(
            self._http, url, self.stream, cursor, self._malformed))

    async def _consume(self, region: RegionInfo, url: str, frames: transports.Frames) -> None:
        async with contextlib.aclosing(frames):
            async for frame in frames:
                await self._on_frame(region, url, frame)

    async def _on_frame(self, region: RegionInfo, url: str, frame: ServerFrame) -> None:
        match frame:
            case Hello(cursor=cursor, pin=pin):
                self._attempt.hello = True
                self.pin = pin
                self.tier = None  # a stream above push says so right after hello
                arrived_fresh = self.region != region.name or self.cursor is None
                self.region = region.name
                if arrived_fresh:
                    # New here (first connect, or a failover): cursors of another region mean
                    # nothing, so whatever may be missing comes from this region's history.
                    self.cursor = cursor
                    await self._fill_from_history(url)
                self.connected.set()
            case Comments(items=items, cursor=cursor, sample=sample):
                for comment in items:
                    self._deliver(comment)
                self.cursor = cursor
                self.sample = sample
            case Recovered(recovered=recovered, cursor=cursor):
                self.cursor = cursor
                if not recovered and self.tier_name == "push":
                    # (Above push the timeline is a sample by design: a gap that the server
                    # could not replay is not paged in from history either.)
                    await self._fill_from_history(url)
            case Tier(cursor=cursor):
                self.tier = frame
                self.cursor = cursor
                if frame.tier == "push":
                    self.sample = None
            case Snapshot(comments=comments, priority=lane):
                self.snapshot = frame
                for comment in (*lane, *comments):
                    self._deliver(comment)
            case Bye(retry_in_ms=retry_in_ms):
                # The connection ends next; the loop resumes with our own cursor, not sooner
                # than the server asked.
                if retry_in_ms > 0:
                    self._attempt.retry_after_s = retry_in_ms / 1000
            case Retract(ids=ids):
                for comment_id in ids:
                    self._retract(comment_id)
            case Restore(comment=comment):
                self.retracted.pop(comment.id, None)
                self._deliver(comment)
            case Pin(comment=comment):
                self.pin = comment
            case Viewers():
                self.viewers = frame
            case Reactions(totals=totals):
                self.reactions = frame
                self.reaction_totals = dict(totals)
            case Ack() | Pong() | Error():
                pass  # answers to frames this client does not send
            case _:
                assert_never(frame)
        self._changed.set()

    @property
    def tier_name(self) -> str:
        """push, sampled or snapshot: how the stream is delivered now."""
        return self.tier.tier if self.tier is not None else "push"

    def _closed(self, code: int) -> None:
        self._attempt.close_code = code

    def _malformed(self, exc: MalformedFrame) -> None:
        self.malformed_frames += 1
        n = self.malformed_frames
        if n & (n - 1) == 0:  # the 1st, 2nd, 4th, ...: a broken server cannot flood the log
            log.warning("%s: skipped a frame (%d so far): %s", self.stream, n, exc)

    def _retract(self, comment_id: str) -> None:
        self.timeline.remove(comment_id)
        self.retracted[comment_id] = None
        if len(self.retracted) > RETRACTED_KEPT:
            self.retracted.popitem(last=False)
        if self.pin is not None and self.pin.id == comment_id:
            self.pin = None

    def _deliver(self, comment: Comment) -> None:
        if comment.id in self.retracted:
            return
        if self.timeline.add(comment) and self.on_comment is not None:
            self.on_comment(comment)

    async def _fill_from_history(self, url: str) -> None:
        """Pages history back to the anchor (`history.anchor_of`: how far the timeline is
        complete for every origin region); a hole it cannot fill becomes a `Gap` after the
        anchor (a fresh client, with nothing before, takes one page)."""
        assert self._http is not None
        anchor = history.anchor_of(self.timeline.comments)
        filled = await history.fill(self._http, url, self.stream, anchor=anchor,
                                    deliver=self._deliver)
        if not filled and anchor is not None:
            self.timeline.mark_gap(anchor, None)

    # -- posting -----------------------------------------------------------------------------

    async def post(self, text: str, *, client_key: str | None = None,
                   reply_to: str | None = None, attempts: int = 6) -> Comment:
        """Posts to the current region (then the others), retrying with one client_key so
        the comment is stored once whichever attempt got through. After an attempt whose
        outcome is unknown (a 5xx, a connection that broke after the request left) the post
        stays with that region (posting.py says why). `ChorusClientError` when it is refused
        for good, when ``attempts`` attempts found no region to take it, or (code
        ``outcome_unknown``, with ``client_key``) when its region never answered for good:
        retry later with that key."""
        assert self._http is not None, "start() the client first"
        key = client_key or uuid.uuid4().hex
        body: dict[str, Any] = {"text": text, "client_key": key}
        if reply_to:
            body["reply_to"] = reply_to
        backoff = Backoff(first_s=min(RETRY_FIRST_S, self.backoff_max_s),
                          max_s=self.backoff_max_s)
        last: Exception | None = None
        retry_after_s = 0.0
        for attempt in range(attempts):
            if attempt:
                # A 429's Retry-After says when a slot frees up: wait at least that long.
                await asyncio.sleep(max(backoff.next(), retry_after_s))
                retry_after_s = 0.0
            region, url = self._post_target(key, attempt)
            status: int | None = None
            sent = True
            doc: Any = None
            try:
                async with self._http.post(f"{url}/v1/streams/{self.stream}/comments",
                                           json=body) as resp:
                    status = resp.status
                    retry_after_s = (retry_after(resp.headers.get("Retry-After"))
                                     if status == 429 else 0.0)
                    with contextlib.suppress(aiohttp.ContentTypeError, ValueError):
                        doc = await resp.json()
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                sent, last = False, exc   # the request never left: nothing was stored
            except (aiohttp.ClientError, OSError) as exc:
                last = exc
            match outcome_of(status, sent=sent):
                case Outcome.STORED if doc is not None:
                    self._pins.release(key)
                    return Comment.from_json(doc)
                case Outcome.REFUSED:
                    self._pins.release(key)
                    raise _refusal(status or 0, doc)
                case Outcome.NOT_TAKEN:
                    last = _refusal(status, doc) if status is not None else last
                case _:
                    # Unknown (or a 2xx whose body was lost): it may be stored in ``region``.
                    self._pins.pin(key, region)
                    last = _refusal(status, doc) if status is not None else last
        pinned = self._pins.region(key)
        if pinned is not None:
            raise ChorusClientError(
                503, "outcome_unknown", f"{pinned} may have stored the post and did not say "
                f"(last: {last}); post again later with client_key {key!r}", client_key=key)
        raise ChorusClientError(503, "unavailable", f"no region took the post: {last}",
                                client_key=key)

    async def react(self, kind: str) -> int:
        """Sends one reaction of ``kind`` to the current region (its first gateway that takes
        it); returns the second it was counted in. Not retried once a gateway answered: a
        reaction has no key to make a retry safe, and one lost tap matters little.
        `ChorusClientError` when it is refused (422 an unknown kind, 429 too many from this
        user: its bucket refills at ``reactions.user_rate_per_s``) or no gateway answered."""
        assert self._http is not None, "start() the client first"
        last: Exception | None = None
        for _, url in post_targets(self.regions, self.region, None):
            try:
                async with self._http.post(f"{url}/v1/streams/{self.stream}/reactions",
                                           json={"kind": kind}) as resp:
                    doc: Any = None
                    with contextlib.suppress(aiohttp.ContentTypeError, ValueError):
                        doc = await resp.json()
                    if resp.status == 202 and isinstance(doc, dict):
                        return int(doc.get("second", 0))
                    raise _refusal(resp.status, doc)
            except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
                last = exc  # never left: try the next gateway
        raise ChorusClientError(503, "unavailable", f"no gateway took the reaction: {last}")

    def _post_target(self, key: str, attempt: int) -> tuple[str, str]:
        """(region, gateway URL) for one attempt: the pinned region's gateways in turn when
        the key is pinned, else the current region's and then the others'."""
        pinned = self._pins.region(key)
        targets = post_targets(self.regions, self.region, pinned)
        if not targets:
            raise ChorusClientError(503, "outcome_unknown", f"{pinned} may have stored the "
                                    f"post and lists no gateway now (client_key {key!r})",
                                    client_key=key)
        return targets[attempt % len(targets)]


def _refusal(status: int, doc: Any) -> ChorusClientError:
    error = doc.get("error", {}) if isinstance(doc, dict) else {}
    if not isinstance(error, dict):
        error = {}
    return ChorusClientError(status, str(error.get("code", "?")), str(error.get("message", "")))

