"""RFC 6455 section 5.1: a server must close the connection on an unmasked client frame.

aiohttp's WebSocket reader (3.14; the same code serves its client and its server) unmasks a
frame when the mask bit is set and takes it as it is when it is not: a server built on it
accepts unmasked frames. `MaskScanner` is the missing check, pure: it follows the frame
headers in the bytes a connection receives, however they are split, without buffering
payloads. `MaskedWebSocketResponse` puts it in front of aiohttp's reader, so an unmasked frame
closes the connection with 1002 (protocol error) before aiohttp parses it.
"""

from __future__ import annotations

from typing import Any

from aiohttp import WSCloseCode, web
from aiohttp.helpers import set_exception
from aiohttp.http_websocket import WebSocketError

UNMASKED = "client frames must be masked (RFC 6455 section 5.1)"


class MaskScanner:
    """Follows frame boundaries in a client's byte stream; `feed` returns False from the first
    unmasked frame on."""

    def __init__(self) -> None:
        self._header = bytearray()   # the current frame's header, while incomplete
        self._skip = 0               # payload bytes of the current frame still to pass
        self.ok = True

    def feed(self, data: bytes) -> bool:
        pos, end = 0, len(data)
        while self.ok and pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
                continue
            self._header.append(data[pos])
            pos += 1
            self._header_step()
        return self.ok

    def _header_step(self) -> None:
        header = self._header
        if len(header) < 2:
            return
        if not header[1] & 0x80:
            self.ok = False
            return
        flag = header[1] & 0x7F
        extended = 2 if flag == 126 else 8 if flag == 127 else 0
        need = 2 + extended + 4       # header bytes, length extension, masking key
        if len(header) < need:
            return
        length = int.from_bytes(header[2:2 + extended], "big") if extended else flag
        self._header.clear()
        self._skip = length


class _GuardedReader:
    """aiohttp's frame reader behind a `MaskScanner`: what reaches it was checked first."""

    def __init__(self, inner: Any, queue: Any, scanner: MaskScanner) -> None:
        self.inner = inner
        self.queue = queue
        self.scanner = scanner

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        if not self.scanner.feed(data):
            _fail(self.queue)
            return True, b""
        result: tuple[bool, bytes] = self.inner.feed_data(data)
        return result

    def feed_eof(self) -> None:
        self.inner.feed_eof()


def _fail(queue: Any) -> None:
    # As aiohttp's reader does with a frame it cannot take: the response's receive() raises
    # it and closes with its code.
    set_exception(queue, WebSocketError(WSCloseCode.PROTOCOL_ERROR, UNMASKED))


class MaskedWebSocketResponse(web.WebSocketResponse):
    """A WebSocketResponse that refuses unmasked client frames (close 1002).

    It reaches into two attributes of aiohttp's request handler, ``_message_tail`` (bytes that
    came with the upgrade request) and ``_payload_parser`` (what data is fed to); the unit
    tests in tests/unit/test_masking.py fail if an aiohttp upgrade renames them."""

    def _post_start(self, request: web.BaseRequest, protocol: str | None,
                    writer: Any) -> None:
        handler: Any = request.protocol
        scanner = MaskScanner()
        tail = bytes(handler._message_tail)
        if tail and not scanner.feed(tail):
            handler._message_tail = b""   # not for aiohttp's reader: the connection ends
        super()._post_start(request, protocol, writer)
        handler._payload_parser = _GuardedReader(handler._payload_parser, self._reader,
                                                 scanner)
        if not scanner.ok:
            _fail(self._reader)
