"""Live endpoints: WebSocket, SSE and long-poll, each a thin adapter around `Session`.

Common to the three: the token (header or ``?access_token=``), the browser Origin check, the
gateway's connection limit, and the resume cursor (``?cursor=``; SSE also ``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Sequence

from aiohttp import WSMsgType, web

from region.auth import Claims
from region.cell import CELL, Cell
from region.cursor import Cursor
from region.errors import ApiError, ErrorCode
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
    Recovered,
    Resume,
    Retract,
    ServerFrame,
    encode,
    parse_client_frame,
)
from region.session import Gone, Session
from region.validation import check_stream

BAD_FRAMES_IN_A_ROW = 10      # then the connection is closed with CloseCode.BAD_FRAMES
SEND_BUFFER_BYTES = 64 * 1024  # kernel send buffer per connection: bounds memory, and makes
#                                a peer that stops reading show up as a full queue quickly
SSE_KEEPALIVE_S = 15.0
POLL_MAX_TIMEOUT_S = 60.0


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
    cell.check_origin(request)
    cell.check_capacity()
    return cell, claims, stream


async def _serve(cell: Cell, session: Session, resume: Cursor | None) -> None:
    cell.metrics.connection_opened(_TRANSPORT_KIND.get(type(session.transport), "other"))
    cell.sessions.add(session)
    try:
        await cell.fanout.join(session)
        await session.start(resume)
        await session.run()
    finally:
        cell.sessions.discard(session)
        if session.close_reason == "slow_consumer":
            cell.metrics.slow_consumers.inc()
        await cell.fanout.leave(session)


# -- WebSocket ---------------------------------------------------------------------------------


class WebSocketTransport:
    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.request = request

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


async def websocket(request: web.Request) -> web.StreamResponse:
    cell, claims, stream = _open(request)
    resume = cursor_param(request.query.get("cursor"))
    ws = web.WebSocketResponse(max_msg_size=cell.config.limits.frame_max_bytes, heartbeat=30.0)
    await ws.prepare(request)
    _limit_send_buffer(request)
    session = cell.new_session(stream, claims.user, WebSocketTransport(ws, request))
    serving = asyncio.create_task(_serve(cell, session, resume), name=f"ws {stream}")
    try:
        await _read_frames(cell, claims, stream, ws, session)
    finally:
        if not session.closed:
            await session.close("client_closed")
        await serving
    return ws


async def _read_frames(cell: Cell, claims: Claims, stream: str, ws: web.WebSocketResponse,
                       session: Session) -> None:
    bad = 0
    async for msg in ws:
        if session.closed:
            return
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
            return
    if ws.close_code == WSMsgType.ERROR or ws.exception() is not None:
        # aiohttp closes with 1009 by itself when a frame is larger than max_msg_size.
        return


async def _handle_frame(cell: Cell, claims: Claims, stream: str, session: Session,
                        text: str) -> bool:
    try:
        frame = parse_client_frame(text, cell.config.limits)
    except ApiError as err:
        cell.metrics.error(err.code.code)
        session.push(Error.of(err, _ref_of(text)))
        return False
    match frame:
        case Resume(cursor=cursor):
            session.resume(cursor)
        case PostComment(post=post, ref=ref):
            try:
                appended = await cell.ingest.post(claims, stream, post)
            except ApiError as err:
                cell.metrics.error(err.code.code)
                session.push(Error.of(err, ref))
                return err.code.status != 422 and err.code.status != 413
            session.push(Ack(comment=appended.comment, ref=ref, duplicate=appended.duplicate))
        case Ping(ref=ref):
            session.push(Pong(ref=ref))
        case React():
            session.push(Error(code=ErrorCode.INVALID.code,
                               message="reactions are not available on this server yet"))
    return True


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
                        if isinstance(frame, Hello | Comments | Recovered) else "")
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

def _poll_moderation(cell: Cell, stream: str, frames: Sequence[ServerFrame]
                     ) -> dict[str, object]:
    """What a long-poll response adds for moderation: ``retracted``, the stream's latest
    retracted comments (a poller learns of them at its next poll, whenever it polls), and
    ``pin``, the pinned comment. Both absent when empty, as before moderation."""
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
    pin = state.pin(stream)
    if pin is not None:
        out["pin"] = pin.to_json()
    return out




class PollTransport:
    """Collects the first comments (or recovery notice) and then ends the poll."""

    def __init__(self) -> None:
        self.frames: list[ServerFrame] = []
        self.done = asyncio.Event()

    async def send(self, frames: Sequence[ServerFrame]) -> None:
        self.frames.extend(frames)
        if any(isinstance(f, Recovered | Retract | Pinned)
               or (isinstance(f, Comments) and f.items) for f in frames):
            self.done.set()

    async def close(self, code: CloseCode, bye: Bye | None) -> None:
        if bye is not None:
            self.frames.append(bye)
        self.done.set()

    def abort(self) -> None:
        self.done.set()


async def poll(request: web.Request) -> web.Response:
    cell, claims, stream = _open(request)
    resume = cursor_param(request.query.get("cursor"))
    try:
        timeout_s = float(request.query.get("timeout", "25"))
    except ValueError:
        raise ApiError(ErrorCode.MALFORMED, "timeout is a number of seconds") from None
    if not 0 <= timeout_s <= POLL_MAX_TIMEOUT_S:
        raise ApiError(ErrorCode.INVALID, f"timeout is 0 to {POLL_MAX_TIMEOUT_S:.0f} seconds")
    transport = PollTransport()
    session = cell.new_session(stream, claims.user, transport, send_hello=False)
    cell.fanout.lease(stream, hash(claims.user))
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
    body.update(_poll_moderation(cell, stream, transport.frames))
    if session.close_reason == "unavailable":
        raise ApiError(ErrorCode.UNAVAILABLE, "the region's log is not answering",
                       retry_after_s=1)
    return web.json_response(body)


# The transport label of chorus_connections_opened (chorus/metrics.py TRANSPORTS).
_TRANSPORT_KIND: dict[type, str] = {WebSocketTransport: "websocket", SseTransport: "sse",
                                    PollTransport: "poll"}
