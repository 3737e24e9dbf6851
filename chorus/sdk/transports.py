"""The two ways a client watches a stream, each a thin adapter: open the connection, yield
the server's frames typed (chorus/sdk/frames.py), and end when the connection does.

A transport knows nothing of cursors, regions or failover (chorus/sdk/client.py does); it
reports what went wrong in the SDK's terms: `Unreachable` when no connection could be opened
(`HandshakeRefused` for a refused WebSocket upgrade; either with the refusal's
``Retry-After``), a plain end of iteration when an open connection ends (a WebSocket's close
code to ``on_close`` first), and every malformed frame to ``on_malformed`` before skipping
it. Close the generator (``contextlib.aclosing``) to close the connection.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import aiohttp

from chorus.sdk import frames
from chorus.sdk.errors import HandshakeRefused, Unreachable
from chorus.sdk.frames import MalformedFrame, ServerFrame
from chorus.sdk.reconnect import retry_after

WS_HEARTBEAT_S = 30.0   # ping an idle WebSocket this often, so a dead peer is noticed

OnMalformed = Callable[[MalformedFrame], None]
OnClose = Callable[[int], None]
Frames = AsyncGenerator[ServerFrame, None]


def _decoded(text: str, on_malformed: OnMalformed) -> ServerFrame | None:
    try:
        return frames.decode(text)
    except MalformedFrame as exc:
        on_malformed(exc)
        return None


async def websocket(http: aiohttp.ClientSession, url: str, stream: str, cursor: str | None,
                    on_malformed: OnMalformed, on_close: OnClose | None = None) -> Frames:
    """``GET {url}/v1/streams/{stream}/live``, resuming after ``cursor`` when given;
    ``on_close`` gets the close code when the server closed the connection with one."""
    params = {"cursor": cursor} if cursor else {}
    try:
        ws = await http.ws_connect(f"{url}/v1/streams/{stream}/live", params=params,
                                   heartbeat=WS_HEARTBEAT_S)
    except aiohttp.WSServerHandshakeError as exc:
        hint = exc.headers.get("Retry-After") if exc.headers else None
        raise HandshakeRefused(exc.status, exc.message,
                               retry_after_s=retry_after(hint) if hint else None) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise Unreachable(str(exc)) from exc
    try:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                frame = _decoded(msg.data, on_malformed)
                if frame is not None:
                    yield frame
    except (aiohttp.ClientError, OSError):
        pass  # the connection ended under us: the caller resumes, as after a close
    finally:
        await ws.close()
    if on_close is not None and ws.close_code is not None:
        on_close(ws.close_code)


async def sse(http: aiohttp.ClientSession, url: str, stream: str, cursor: str | None,
              on_malformed: OnMalformed) -> Frames:
    """``GET {url}/v1/streams/{stream}/events``, resuming after ``cursor`` when given."""
    headers = {"Last-Event-ID": cursor} if cursor else {}
    try:
        resp = await http.get(f"{url}/v1/streams/{stream}/events", headers=headers)
    except (aiohttp.ClientError, OSError) as exc:
        raise Unreachable(str(exc)) from exc
    try:
        if resp.status != 200:
            hint = resp.headers.get("Retry-After")
            raise Unreachable(f"SSE answered {resp.status}",
                              retry_after_s=retry_after(hint) if hint else None)
        events = SseEvents()
        async for raw in resp.content:
            data = events.feed(raw.decode())
            if data is not None:
                frame = _decoded(data, on_malformed)
                if frame is not None:
                    yield frame
    except (aiohttp.ClientError, OSError):
        pass  # the connection ended under us: the caller resumes, as after a close
    finally:
        resp.release()


@dataclass
class SseEvents:
    """The data of each event of a ``text/event-stream``, fed one line at a time. Pure.

    Only ``data:`` matters to the client: the frame's JSON names its own type (the ``event:``
    line repeats it) and carries its cursor (the ``id:`` line repeats it). Comment lines
    (``: keepalive``) and the other fields are skipped."""

    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> str | None:
        """The event's data when ``line`` (with or without its newline) ends an event."""
        line = line.rstrip("\n")
        if line.startswith("data:"):
            self._data.append(line[5:].lstrip(" "))
        elif not line and self._data:
            data, self._data = "\n".join(self._data), []
            return data
        return None
