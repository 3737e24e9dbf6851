"""The NATS client a gateway connects with: nats-py's, with a cheaper header parser and a
flush that covers what is still queued.

Every message of a gateway's live feed (the log's RePublish) carries five headers
(``Nats-Stream``, ``Nats-Subject``, ``Nats-Sequence``, ``Nats-Time-Stamp``,
``Nats-Last-Sequence``), and nats-py parses them for each subscription that receives it,
line by line (each name decoded on its own and checked for whitespace one character at a
time): about 11 µs a message, 5-7 % of a busy gateway's CPU. `parse_plain` reads the same
block in about 2 µs: one decode of the block, then a split per line, with nats-py's rules
(names stripped and ASCII with no whitespace inside, values stripped, malformed UTF-8 as
U+FFFD; a later repeat of a name wins). A block with an inline status (``NATS/1.0 503``...:
no responders, flow control, heartbeats) is rarer and still nats-py's to parse.

The override is of `Client._process_headers`, a private method of nats-py (checked with
nats-py 2.16): tests/unit/test_natsclient.py compares the two parsers on the blocks the
server sends, so an upgrade that changes the method's contract shows there.

`Client.flush`: nats-py 2.16 writes a flush's PING straight to the socket, while a command just
made (a SUB, a publish) waits in its queue for the flusher task; the PING can then overtake
it, and the PONG returns before the server has the subscription. A gateway relies on "the
server has it once flush returns" (a session's own subject before the session starts, a
stream's live subscription before its first viewer reads the log), so the override first
waits for the flusher to write what is queued. On the real server that race showed in about
one test run of three (tests/integration/test_natsclient_flush.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from nats import errors
from nats.aio.client import DEFAULT_FLUSH_TIMEOUT
from nats.aio.client import Client as NatsClient

PLAIN = b"NATS/1.0\r\n"     # a header block without an inline status


def parse_plain(block: bytes) -> dict[str, str] | None:
    """The headers of a block that starts with `PLAIN` (None when it holds none). Pure."""
    out: dict[str, str] = {}
    for line in block[len(PLAIN):].decode("utf-8", "replace").split("\r\n"):
        name, sep, value = line.partition(":")
        if not sep:
            continue
        name = name.strip()
        # A name is a token: nats-py skips one with non-ASCII bytes or whitespace inside.
        if not name.isascii() or len(name.split()) > 1:
            continue
        out[name] = value.strip()
    return out or None


class Client(NatsClient):
    """nats-py's client, parsing plain header blocks with `parse_plain`, whose `flush`
    covers the commands still queued."""

    async def flush(self, timeout: int = DEFAULT_FLUSH_TIMEOUT) -> None:  # noqa: ASYNC109 (nats-py's)
        """nats-py's flush, once what was queued before it is written to the socket: when
        it returns, the server has processed every command made before the call. Raises
        nats-py's errors (`FlushTimeoutError` after ``timeout`` s)."""
        flusher, queue = self._flusher_task, self._flush_queue
        if (self._pending_data_size > 0 and self.is_connected and queue is not None
                and flusher is not None and not flusher.done()):
            written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            await queue.put(written)   # the flusher writes everything queued, then sets it
            try:
                await asyncio.wait_for(written, timeout)
            except TimeoutError:
                raise errors.FlushTimeoutError from None
        await super().flush(timeout)

    async def _process_headers(self, headers: Any) -> dict[str, str] | None:
        if headers and headers.startswith(PLAIN):
            return parse_plain(headers)
        result: dict[str, str] | None = await super()._process_headers(headers)
        return result


async def connect(servers: str | list[str], **options: Any) -> Client:
    """`nats.connect` with this module's `Client`: the same options."""
    nc = Client()
    await nc.connect(servers, **options)
    return nc
