"""A stream's live comments as one batch per tick for all its viewers on a gateway, encoded once.

At 1,000 viewers of a stream, a gateway used to handle each comment 1,000 times: queue it per
viewer, wake each viewer's writer, build and encode a ``comments`` frame per viewer, and hand
it to aiohttp. The fanout now gathers a stream's live entries into a `StreamBatch` and flushes
it at most once per tick (`flush_at`: at once when the stream is quiet, so a quiet stream's
comments lose no time; a longer tick for a stream with many viewers here, `stream_tick`, so
that its writes per second stay bounded). A viewer that is exactly at the batch's start and
has nothing else waiting gets the batch's frame, encoded once (`Prepared`: the JSON text and
the WebSocket frame's bytes, which are the same for every connection as a server does not
mask), written straight onto its socket. Any other viewer (catching up, with control frames
queued, behind on its socket, a comment it must not see in the batch) gets the entries one by
one through its session and writer, as before: the shared path is an optimisation, never a
second rule.

Pure: no I/O, no clock (callers pass the loop's time).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chorus.model import Comment
from region.log import Entry
from region.protocol import Comments, encode

_TEXT = 0x81   # FIN + opcode 1 (text): every frame a gateway sends is one text frame


def websocket_text_frame(payload: bytes) -> bytes:
    """``payload`` as one unmasked WebSocket text frame (RFC 6455 section 5.2: a server never
    masks, so the same bytes go to every connection)."""
    n = len(payload)
    if n < 126:
        return struct.pack("!BB", _TEXT, n) + payload
    if n < 65536:
        return struct.pack("!BBH", _TEXT, 126, n) + payload
    return struct.pack("!BBQ", _TEXT, 127, n) + payload


@dataclass(frozen=True)
class Prepared:
    """A ``comments`` frame encoded once for every viewer who gets it whole: ``text`` is its
    JSON, ``websocket`` the WebSocket frame that carries it."""

    frame: Comments
    text: str
    websocket: bytes

    @classmethod
    def of(cls, frame: Comments) -> Prepared:
        text = encode(frame)
        return cls(frame=frame, text=text, websocket=websocket_text_frame(text.encode()))


class Moderated(Protocol):
    """Whether a comment is hidden from someone (region/moderation.py's state)."""

    def hidden(self, comment: Comment, viewer: str | None = None) -> bool: ...


class StreamBatch:
    """Live entries of one stream that follow each other (each one's ``prev`` is the
    sequence of the one before), waiting for the stream's next flush. At most ``max_size``:
    `add` refuses the one after, as it refuses one that does not follow. Entries of the
    chained log only: a hot partition's are out of the chain, and their sequences would be
    the frame's cursor (the fanout hands them to each session, region/fanout.py)."""

    __slots__ = ("_plain", "_prepared", "comments", "entries", "last", "max_size", "prev")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.entries: list[Entry] = []
        self.comments: list[Comment] = []
        # The stream's sequence before the batch (a viewer whose cursor is here may take the
        # batch whole), and its last entry's. Plain attributes: read once per viewer.
        self.prev = 0
        self.last = 0
        self._plain: tuple[object, bool] | None = None
        self._prepared: tuple[object, Prepared] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, entry: Entry) -> bool:
        """Appends ``entry``; False (and nothing added) when the batch is full or ``entry``
        does not follow its last one: flush the batch first, then start another."""
        if self.entries:
            if entry.prev != self.last or len(self.entries) >= self.max_size:
                return False
        else:
            self.prev = entry.prev
        self.entries.append(entry)
        self.comments.append(entry.comment)
        self.last = entry.seq
        return True

    def plain(self, moderation: Moderated | None) -> bool:
        """Whether every viewer sees every comment of the batch: no shadow-banned author (seen
        by its author alone), nothing held or retracted. Asked once per batch and moderation
        state, at flush time, as a writer asks when it writes."""
        cached = self._plain
        if cached is not None and cached[0] is moderation:
            return cached[1]
        plain = all(not c.shadow for c in self.comments) and (
            moderation is None or not any(moderation.hidden(c) for c in self.comments))
        self._plain = (moderation, plain)
        return plain

    def prepared(self, cursor_of: Callable[[int], str], log: object) -> Prepared:
        """The batch's ``comments`` frame, encoded once per ``log`` (the readers' position in
        the log, whose cursor ``cursor_of`` writes: every session of a gateway shares it, so in
        practice once)."""
        cached = self._prepared
        if cached is None or not (cached[0] is log or cached[0] == log):
            cached = self._prepared = (log, Prepared.of(
                Comments(items=tuple(self.comments), cursor=cursor_of(self.last))))
        return cached[1]


# A busy stream's shared writes per second on one gateway, at most: its tick (`stream_tick`)
# grows past ``limits.tick_ms`` once its viewers here are more than this many per second of
# ticks. A write to a socket (the kernel's loopback send, most of a flush's CPU) is paid per
# viewer per flush whatever the flush carries, so at 1,000 viewers a 25 ms tick is 40,000
# writes a second; fewer, fuller writes cost the gateway (and each reader) less.
SHARED_WRITES_PER_S = 20_000


def stream_tick(tick_s: float, viewers: int, writes_per_s: int = SHARED_WRITES_PER_S) -> float:
    """The tick of a busy stream with ``viewers`` on this gateway (seconds): ``tick_s``, or
    longer when that would write more than ``writes_per_s`` times a second (1,000 viewers:
    50 ms). A quiet stream is not slowed by it: its first comment after a tick of silence
    goes out at once (`flush_at`)."""
    return max(tick_s, viewers / writes_per_s)


def flush_at(now: float, last_flush: float | None, tick_s: float) -> float:
    """When a stream's batch that just got its first entry goes out (loop time, seconds): at
    once when the stream's last flush is a tick or more ago (a quiet stream), else a tick
    after that flush (a busy stream: one write per viewer per tick)."""
    if last_flush is None or now - last_flush >= tick_s:
        return now
    return last_flush + tick_s
