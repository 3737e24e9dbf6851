"""Live endpoints: WebSocket, SSE and long-poll, each a thin adapter around `Session`.

Common to the three: the token (header or ``?access_token=``), the connection caps (the
gateway's, the user's and the client address's: region/connections.py), and the resume cursor
(``?cursor=``; SSE also ``Last-Event-ID``). The browser Origin check is region/edge.py's, as
for every API request.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import time
from collections.abc import Sequence

from aiohttp import WSMsgType, web

from region.auth import Claims
from region.broadcast import Prepared
from region.cell import CELL, Cell
from region.connections import Ticket
from region.cursor import Cursor
from region.errors import ApiError, ErrorCode
from region.masking import MaskedWebSocketResponse
from region.protocol import (
    Ack,
    Bye,
    CloseCode,
    Comments,
    Error,
    Hello,
    Ping,
    Pinned,
    Pong,
    PostComment,
    React,
    Reactions,
    Recovered,
    Restore,
    Resume,
    Retract,
    ServerFrame,
    Tier,
    Viewers,
    encode,
    error_of,
    parse_client_frame,
    to_json,
)
from region.reactions import Tap
from region.session import Gone, Session
from region.validation import check_stream

BAD_FRAMES_IN_A_ROW = 10      # then the connection is closed with CloseCode.BAD_FRAMES
SEND_BUFFER_BYTES = 64 * 1024  # kernel send buffer per connection: bounds memory, and makes
#                                a peer that stops reading show up as a full queue quickly
# Bytes a WebSocket's transport may hold unsent and still take a shared frame directly
# (asyncio's own high-water mark, at which aiohttp's writes start to wait).
SHARED_WRITE_MAX = 64 * 1024
SSE_KEEPALIVE_S = 15.0
POLL_MAX_TIMEOUT_S = 60.0
# A poll answer carries the comments approved this recently (a poller between two polls
# misses the live restore frame; clients take a comment once by its id).
RESTORED_POLL_S = 30
_SECONDS = re.compile(r"\A[0-9]{1,3}(\.[0-9]{1,3})?\Z")
# Why aiohttp ended a WebSocket, by its close code: the session's close reason.
_CLOSED_BY_PROTOCOL = {int(CloseCode.PROTOCOL_ERROR): "protocol_error",
                       int(CloseCode.MESSAGE_TOO_BIG): "message_too_big",
                       1007: "invalid_utf8"}

log = logging.getLogger(__name__)


def cursor_param(value: str | None) -> Cursor | None:
    if value is None or value == "":
        return None
    try:
        return Cursor.parse(value)
    except ValueError as exc:
        raise ApiError(ErrorCode.MALFORMED, str(exc)) from None


def _limit_send_buffer(request: web.Request) -> None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)


def _open(request: web.Request) -> tuple[Cell, Claims, str]:
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    claims = cell.authenticate(request)
    return cell, claims, stream


def _admit(cell: Cell, request: web.Request, claims: Claims) -> Ticket:
    """A slot among the gateway's live connections (ApiError 503 or 429 when none)."""
    return cell.connections.admit(claims.user, request.remote)


async def _serve(cell: Cell, session: Session, resume: Cursor | None) -> None:
    cell.metrics.connection_opened(_TRANSPORT_KIND.get(type(session.transport), "other"))
    cell.sessions.add(session)
    try:
        await cell.fanout.join(session)
        await session.start(resume)
        _greet(cell, session)
        await session.run()
    except Exception:
        # A connection must never go silent: whatever broke serving it, the client is told
        # (1011 and a bye with its cursor) and resumes, here or elsewhere.
        log.exception("serving a viewer of %s failed", session.stream)
        await session.close("internal_error", CloseCode.INTERNAL_ERROR)
    finally:
        cell.sessions.discard(session)
        if session.close_reason == "slow_consumer":
            cell.metrics.slow_consumers.inc()
            _CUTS.cut(session, cell.config.limits.send_queue_max)
        await cell.fanout.leave(session)


class _CutLog:
    """One log line per slow-consumer cut, at most one every `EVERY_S` (a storm of cuts
    becomes one line with a count): the counter alone left an operator no stream or cursor
    to look at."""

    EVERY_S = 10.0

    def __init__(self) -> None:
        self.last = -self.EVERY_S
        self.held = 0

    def cut(self, session: Session, limit: int) -> None:
        now = time.monotonic()
        if now - self.last < self.EVERY_S:
            self.held += 1
            return
        more = f" ({self.held} more since the last line)" if self.held else ""
        log.warning("cut a slow consumer of %s (user %s): more than %d comments waited; "
                    "its bye carries cursor %s to resume from%s", session.stream,
                    session.user, limit, session.encode_cursor(session.sent), more)
        self.last, self.held = now, 0


_CUTS = _CutLog()


# -- WebSocket ---------------------------------------------------------------------------------


class WebSocketTransport:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request
        # The connection's socket transport, looked up once: `send_prepared` runs per viewer
        # per batch (a closed one says so with is_closing()).
        self._socket = request.transport

    async def send(self, frames: Sequence[ServerFrame]) -> None:
        try:
            for frame in frames:
                await self.ws.send_str(encode(frame))
        except (ConnectionResetError, RuntimeError) as exc:
            raise Gone(str(exc)) from exc

    async def close(self, code: CloseCode, bye: Bye | None) -> None:
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            if bye is not None:
                await self.ws.send_str(encode(bye))
            await self.ws.close(code=int(code), message=(bye.reason if bye else "").encode())

    def abort(self) -> None:
        if self.request.transport is not None:
            self.request.transport.abort()

    def send_prepared(self, frame: Prepared) -> bool:
        """Writes a stream's batch frame, encoded once for every viewer, straight onto the
        socket: aiohttp would frame it again per viewer and await per write. Refused while
        the socket holds `SHARED_WRITE_MAX` bytes or more not yet sent: the frame then goes
        through the writer's queue, whose bound cuts a viewer that stopped reading."""
        transport = self._socket
        if (self.ws.closed or transport is None or transport.is_closing()
                or transport.get_write_buffer_size() >= SHARED_WRITE_MAX):
            return False
        transport.write(frame.websocket)
        return True


async def websocket(request: web.Request) -> web.StreamResponse:
    cell, claims, stream = _open(request)
    resume = cursor_param(request.query.get("cursor"))
    # compress=False declines permessage-deflate, which every browser offers: compressing
    # each frame once per connection cost more CPU than the whole rest of a delivery, and a
    # compressor per connection ~70 KiB of memory; frames are small JSON (docs/benchmarks.md).
    ws = MaskedWebSocketResponse(max_msg_size=cell.config.limits.frame_max_bytes,
                                 heartbeat=30.0, compress=False)
    try:
        ticket = _admit(cell, request, claims)
    except ApiError as err:
        if err.code is not ErrorCode.TOO_MANY_CONNECTIONS:
            raise
        return await _refuse(ws, request, err)
    with ticket:
        await ws.prepare(request)
        _limit_send_buffer(request)
        session = cell.new_session(stream, claims.user, WebSocketTransport(ws, request))
        serving = asyncio.create_task(_serve(cell, session, resume), name=f"ws {stream}")
        reason = "client_closed"
        try:
            reason = await _read_frames(cell, claims, stream, ws, session)
        finally:
            if not session.closed:
                await session.close(reason)
            await serving
    return ws


async def _refuse(ws: web.WebSocketResponse, request: web.Request,
                  err: ApiError) -> web.WebSocketResponse:
    """Refuses a WebSocket past a connection cap after the upgrade, with an ``error`` frame
    and close 4429: a browser sees neither the status nor the body of a refused upgrade."""
    await ws.prepare(request)
    with contextlib.suppress(ConnectionResetError, RuntimeError):
        await ws.send_str(encode(error_of(err)))
        await ws.close(code=int(CloseCode.TOO_MANY_CONNECTIONS),
                       message=err.code.code.encode())
    return ws


async def _read_frames(cell: Cell, claims: Claims, stream: str, ws: web.WebSocketResponse,
                       session: Session) -> str:
    """Reads the client's frames until the connection ends; returns why it ended."""
    bad = 0
    async for msg in ws:
        if session.closed:
            return "client_closed"
        if msg.type is WSMsgType.TEXT:
            ok = await _handle_frame(cell, claims, stream, session, msg.data)
        elif msg.type is WSMsgType.BINARY:
            session.push(Error(code=ErrorCode.MALFORMED.code,
                               message="frames are JSON text, not binary"))
            ok = False
        else:
            continue
        bad = 0 if ok else bad + 1
        if bad >= BAD_FRAMES_IN_A_ROW:
            await session.close(f"{bad} bad frames in a row", CloseCode.BAD_FRAMES)
            return "bad_frames"
    # aiohttp closes by itself with 1009 when a frame is larger than max_msg_size, with 1002
    # on a frame that is not WebSocket (an unmasked one, region/masking.py).
    return _CLOSED_BY_PROTOCOL.get(ws.close_code or 0, "client_closed")


async def _handle_frame(cell: Cell, claims: Claims, stream: str, session: Session,
                        text: str) -> bool:
    try:
        frame = parse_client_frame(text, cell.config.limits)
    except ApiError as err:
        cell.metrics.error(err.code.code)
        session.push(error_of(err, _ref_of(text)))
        return False
    match frame:
        case Resume(cursor=cursor):
            session.resume(cursor)
        case PostComment(post=post, ref=ref):
            try:
                appended = await cell.ingest.post(claims, stream, post)
            except ApiError as err:
                cell.metrics.error(err.code.code)
                session.push(error_of(err, ref))
                return err.code.status != 422 and err.code.status != 413
            session.push(Ack(comment=appended.comment, ref=ref, duplicate=appended.duplicate))
        case Ping(ref=ref):
            session.push(Pong(ref=ref))
        case React(kind=kind, ref=ref):
            return _react(cell, claims, stream, session, kind, ref)
    return True


def _react(cell: Cell, claims: Claims, stream: str, session: Session, kind: str,
           ref: str | None) -> bool:
    """Queues a tap for the next count; the client hears of it only when it is refused
    (a counted one shows in the next ``reactions`` frame). Never waits."""
    if cell.reactions is None:
        session.push(Error(code=ErrorCode.INVALID.code, ref=ref,
                           message="reactions are not available on this server"))
        return True

    def refused(err: ApiError) -> None:
        cell.metrics.error(err.code.code)
        session.push(error_of(err, ref))

    try:
        verdict = cell.reactions.ingest.take(Tap(user=claims.user, stream=stream, kind=kind))
    except ApiError as err:
        refused(err)
        return err.code.status != 422
    cell.reactions.ingest.on_refused(verdict, refused)
    return True


def _greet(cell: Cell, session: Session) -> None:
    """A viewer that comes, comes back or fails over gets the stream's viewer counts and
    reaction totals at once, right after its hello, as this gateway knows them."""
    cell.fanout.greet(session)
    if cell.reactions is not None:
        cell.reactions.feed.greet(session.stream, session.push)


def _ref_of(text: str) -> str | None:
    try:
        ref = json.loads(text).get("ref")
    except (ValueError, AttributeError, RecursionError):
        return None
    return str(ref)[:64] if isinstance(ref, str | int) else None


# -- Server-Sent Events ------------------------------------------------------------------------


class SseTransport:
    def __init__(self, response: web.StreamResponse, request: web.Request) -> None:
        self.response = response
        self.request = request
        self._lock = asyncio.Lock()

    async def _write(self, text: str) -> None:
        try:
            async with self._lock:
                await self.response.write(text.encode())
        except (ConnectionResetError, RuntimeError) as exc:
            raise Gone(str(exc)) from exc

    async def send(self, frames: Sequence[ServerFrame]) -> None:
        out = []
        for frame in frames:
            # Every frame that carries a cursor gives it as the event id, which the browser
            # sends back as Last-Event-ID when it reconnects: from `hello` on, so that a
            # viewer cut off before its first comment still resumes instead of skipping.
            event_id = (f"id: {frame.cursor}\n"
                        if isinstance(frame, Hello | Comments | Recovered | Tier) else "")
            out.append(f"{event_id}event: {frame.type}\ndata: {encode(frame)}\n\n")
        await self._write("".join(out))

    async def keepalive(self) -> None:
        await self._write(": keepalive\n\n")

    async def close(self, code: CloseCode, bye: Bye | None) -> None:
        if bye is not None:
            await self.send([bye])
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await self.response.write_eof()

    def abort(self) -> None:
        if self.request.transport is not None:
            self.request.transport.abort()


async def sse(request: web.Request) -> web.StreamResponse:
    cell, claims, stream = _open(request)
    resume = cursor_param(request.headers.get("Last-Event-ID")
                          or request.query.get("last_event_id") or request.query.get("cursor"))
    with _admit(cell, request, claims):
        return await _sse(request, cell, claims, stream, resume)


async def _sse(request: web.Request, cell: Cell, claims: Claims, stream: str,
               resume: Cursor | None) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"})
    await response.prepare(request)
    _limit_send_buffer(request)
    transport = SseTransport(response, request)
    # Browsers reconnect by themselves; `retry` is how long they wait (ms).
    await response.write(b"retry: 1000\n\n")
    session = cell.new_session(stream, claims.user, transport)
    serving = asyncio.create_task(_serve(cell, session, resume), name=f"sse {stream}")
    try:
        while not session.closed:
            try:
                await asyncio.wait_for(session.wait_closed(), SSE_KEEPALIVE_S)
            except TimeoutError:
                try:
                    await transport.keepalive()
                except Gone:
                    await session.close("gone")
    finally:
        if not session.closed:
            await session.close("client_closed")
        await serving
    return response


# -- long-poll ---------------------------------------------------------------------------------


def _poll_moderation(cell: Cell, stream: str, user: str, frames: Sequence[ServerFrame]
                     ) -> dict[str, object]:
    """What a long-poll response adds for moderation: ``retracted``, the stream's latest
    retracted comments (a poller learns of them at its next poll, whenever it polls),
    ``restored``, comments approved while the poll waited (``restore`` frames) or shortly
    before (`RESTORED_POLL_S`: the poller may have been between two polls), and ``pin``, the
    pinned comment. Each absent when empty, as before moderation."""
    if cell.moderation is None:
        return {}
    state = cell.moderation.state
    retracted = dict.fromkeys(state.recent_retractions(stream))
    for frame in frames:
        if isinstance(frame, Retract):
            retracted.update(dict.fromkeys(frame.ids))
    out: dict[str, object] = {}
    if retracted:
        out["retracted"] = list(retracted)
    since_ms = time.time_ns() // 1_000_000 - RESTORED_POLL_S * 1000
    restored = {c.id: c for c in state.recent_restorations(stream, since_ms)}
    restored.update((f.comment.id, f.comment) for f in frames if isinstance(f, Restore))
    shown = [c.to_json() for c in restored.values() if c.visible_to(user)]
    if shown:
        out["restored"] = shown
    pin = state.pin(stream)
    if pin is not None:
        out["pin"] = pin.to_json()
    return out


class PollTransport:
    """Collects frames until one the poller must act on, then ends the poll: comments, a gap
    (``recovered: false``), a moderation change, or a tier change. A resume that recovered
    (which every poll with a cursor gets after its catch-up) is no such frame: ending on it
    answered every poll at once, and pollers looped as fast as the round trip."""

    def __init__(self) -> None:
        self.frames: list[ServerFrame] = []
        self.done = asyncio.Event()

    async def send(self, frames: Sequence[ServerFrame]) -> None:
        self.frames.extend(frames)
        if any(ends_poll(f) for f in frames):
            self.done.set()

    async def close(self, code: CloseCode, bye: Bye | None) -> None:
        if bye is not None:
            self.frames.append(bye)
        self.done.set()

    def abort(self) -> None:
        self.done.set()


def ends_poll(frame: ServerFrame) -> bool:
    match frame:
        case Comments(items=items):
            return bool(items)
        case Recovered(recovered=recovered):
            return not recovered
        case Retract() | Restore() | Pinned() | Tier():
            return True
    return False


async def poll(request: web.Request) -> web.Response:
    cell, claims, stream = _open(request)
    resume = cursor_param(request.query.get("cursor"))
    raw_timeout = request.query.get("timeout", "25")
    if not _SECONDS.match(raw_timeout):
        raise ApiError(ErrorCode.MALFORMED, "timeout is a number of seconds")
    timeout_s = float(raw_timeout)
    if not 0 <= timeout_s <= POLL_MAX_TIMEOUT_S:
        raise ApiError(ErrorCode.INVALID, f"timeout is 0 to {POLL_MAX_TIMEOUT_S:.0f} seconds")
    transport = PollTransport()
    with _admit(cell, request, claims):
        session = cell.new_session(stream, claims.user, transport, send_hello=False)
        cell.fanout.lease(stream, claims.user)
        serving = asyncio.create_task(_serve(cell, session, resume), name=f"poll {stream}")
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(transport.done.wait(), timeout_s)
        finally:
            await session.close("poll_done")
            await serving
    items: list[dict[str, object]] = []
    recovered: bool | None = None
    cursor = session.encode_cursor(session.sent)
    for frame in transport.frames:
        match frame:
            case Comments(items=batch, cursor=c):
                items.extend(x.to_json() for x in batch)
                cursor = c
            case Recovered(recovered=r, cursor=c):
                recovered = r
                cursor = c
            case _:
                pass  # errors and goodbyes end the poll; its cursor says where to go on
    body: dict[str, object] = {"items": items, "cursor": cursor}
    if recovered is not None:
        body["recovered"] = recovered
    body.update(_poll_moderation(cell, stream, claims.user, transport.frames))
    body.update(_poll_counts(transport.frames))
    body.update(_poll_tier(session, transport.frames))
    if session.close_reason == "unavailable":
        raise ApiError(ErrorCode.UNAVAILABLE, "the region's log is not answering",
                       retry_after_s=1)
    return web.json_response(body)


def _poll_counts(frames: Sequence[ServerFrame]) -> dict[str, object]:
    """The newest ``viewers`` and ``reactions`` the poll saw, as those frames' JSON without
    their type (a poll carries them without waiting for them)."""
    out: dict[str, object] = {}
    for frame in frames:
        if isinstance(frame, Viewers | Reactions):
            doc = to_json(frame)
            del doc["type"]
            out[frame.type] = doc
    return out


def _poll_tier(session: Session, frames: Sequence[ServerFrame]) -> dict[str, object]:
    """A stream above push (region/tiers_feed.py): ``tier`` as its frame has it (without its
    type and cursor: the poll's cursor is the one to keep), and what the last batch stood for
    (``sample``). Nothing for a stream in the push tier, as before tiers."""
    if session.view is None:
        return {}
    tier = to_json(session.view.announce(session.encode_cursor(session.sent)))
    del tier["type"], tier["cursor"]
    out: dict[str, object] = {"tier": tier}
    for frame in frames:
        if isinstance(frame, Comments) and frame.sample is not None:
            out["sample"] = {"shown": frame.sample.shown, "posted": frame.sample.posted}
    return out


# The transport label of chorus_connections_opened (chorus/metrics.py TRANSPORTS).
_TRANSPORT_KIND: dict[type, str] = {WebSocketTransport: "websocket", SseTransport: "sse",
                                    PollTransport: "poll"}
