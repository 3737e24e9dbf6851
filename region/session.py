"""One viewer's connection to one stream, whatever carries it (WebSocket, SSE, long-poll).

Ordering and exactly-once delivery come from one rule: the session holds a cursor (the log
sequence of the last comment it accepted) and accepts a live entry only when the entry's
``prev`` is that cursor. An entry at or below the cursor is a duplicate and dropped; an entry
whose ``prev`` is beyond it reveals a gap, and the session catches up from the log (through
the replay cache) before it accepts anything newer. Resume after a disconnect is the same
catch-up, starting from the client's cursor. While a catch-up runs, live entries wait in a
bounded list, so the race between replay and live neither loses nor duplicates.

Sending is paced: the writer wakes when something is queued and sends everything queued as
one ``comments`` frame (plus any control frames in order); when that write carried more than
one comment the stream is busy, and the writer waits one tick before the next, so that a busy
stream costs one write per connection per tick while a quiet one's comments go out at once.
The queue is bounded: a connection that cannot keep up is closed with a ``bye`` carrying its
resume cursor, and it never slows others.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chorus.config import Limits
from chorus.model import Comment
from region.cursor import Cursor
from region.log import CommentLog, Entry, LogUnavailable
from region.protocol import Bye, CloseCode, Comments, Hello, Recovered, ServerFrame
from region.replay import Replayer

MAX_BATCH = 500  # comments in one frame; a longer queue goes out over several writes


class Transport(Protocol):
    """What a session needs of a connection. ``send`` is one write of a few frames."""

    async def send(self, frames: Sequence[ServerFrame]) -> None: ...

    async def close(self, code: CloseCode, bye: Bye | None) -> None: ...

    def abort(self) -> None:
        """Drops the connection at once (a peer that does not read gets no goodbye)."""
        ...


class Gone(Exception):
    """The peer went away; a transport raises it from `send`."""


class State(enum.Enum):
    STARTING = "starting"
    CATCHING_UP = "catching_up"
    LIVE = "live"
    CLOSED = "closed"


@dataclass(frozen=True)
class Position:
    """Where a log is: its region, epoch, and the reader's sequence in it."""

    region: str
    epoch: str


class Session:
    def __init__(self, *, stream: str, user: str | None, transport: Transport,
                 log: CommentLog, replayer: Replayer, position: Position, limits: Limits,
                 gateway: str, send_hello: bool = True) -> None:
        self.stream = stream
        self.user = user
        self.transport = transport
        self.log = log
        self.replayer = replayer
        self.position = position
        self.limits = limits
        self.gateway = gateway
        self.send_hello = send_hello
        self.state = State.STARTING
        self.cursor = 0          # last accepted (queued) sequence
        self.sent = 0            # last sequence the client was sent
        self.close_reason = ""
        self._queue: deque[Entry | ServerFrame] = deque()
        self._queued_entries = 0
        self._pending: list[Entry] = []
        self._pending_overflow = False
        self._wake = asyncio.Event()
        self._room = asyncio.Event()  # set by the writer when the queue is at most half full
        self._closed = asyncio.Event()
        self._catch_up_task: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._resuming = False

    # -- lifecycle ---------------------------------------------------------------------------

    def encode_cursor(self, seq: int) -> str:
        return Cursor(self.position.region, self.position.epoch, seq).encode()

    async def start(self, resume: Cursor | None) -> None:
        """Positions the session; call after it is registered with the fanout (so that no live
        entry published from now on is missed: they wait in the pending list)."""
        self.state = State.CATCHING_UP
        try:
            if resume is not None and resume.same_log(self.position.region,
                                                      self.position.epoch):
                self.cursor = self.sent = resume.seq
                if self.send_hello:
                    self._push(self._hello())
                self._resuming = True
                self._spawn_catch_up(first=True)
                return
            self.cursor = self.sent = await self.log.head(self.stream)
        except LogUnavailable:
            await self.close("unavailable", CloseCode.GOING_AWAY)
            return
        if self.send_hello:
            self._push(self._hello())
        if resume is not None:
            self._push(Recovered(recovered=False, cursor=self.encode_cursor(self.cursor),
                                 reason="the cursor is from another region or an older log; "
                                        "page history to fill the gap"))
        self._finish_catch_up()

    def _hello(self) -> Hello:
        return Hello(region=self.position.region, stream=self.stream,
                     epoch=self.position.epoch, cursor=self.encode_cursor(self.cursor),
                     gateway=self.gateway)

    async def run(self) -> None:
        """Writes until the session is closed; the caller owns this coroutine."""
        try:
            await self._write_loop()
        finally:
            if self._catch_up_task is not None:
                self._catch_up_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._catch_up_task
            if self._closer is not None:
                await self._closer

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self, reason: str, code: CloseCode = CloseCode.NORMAL,
                    regions: tuple[str, ...] = ()) -> None:
        """Closes with a ``bye`` that tells the client where to resume."""
        if self._closed.is_set():
            return
        self.state = State.CLOSED
        self.close_reason = reason
        self._closed.set()
        self._wake.set()
        self._room.set()
        bye = Bye(reason=reason, cursor=self.encode_cursor(self.sent), regions=regions)
        with contextlib.suppress(Gone, OSError):
            await self.transport.close(code, bye)

    # -- input: entries from the fanout, frames from the connection ------------------------

    def offer(self, entry: Entry) -> None:
        """A live entry of this session's stream. Never blocks and never awaits."""
        if self.state is State.CLOSED:
            return
        if self.state in (State.STARTING, State.CATCHING_UP):
            if len(self._pending) >= self.limits.send_queue_max:
                # Too much arrived during the catch-up: drop it and read it from the log.
                self._pending.clear()
                self._pending_overflow = True
            self._pending.append(entry)
            return
        if entry.seq <= self.cursor:
            return  # already have it
        if entry.prev == self.cursor:
            self._accept(entry)
            return
        # A hole between our cursor and this entry: read it from the log first.
        self._pending.append(entry)
        self._spawn_catch_up(first=False)

    def resume(self, cursor: Cursor) -> None:
        """The client asks to continue from ``cursor`` (a ``resume`` frame)."""
        if self.state is State.CLOSED:
            return
        self._queue = deque(x for x in self._queue if not isinstance(x, Entry))
        self._queued_entries = 0
        if not cursor.same_log(self.position.region, self.position.epoch):
            self._push(Recovered(recovered=False, cursor=self.encode_cursor(self.cursor),
                                 reason="the cursor is from another region or an older log"))
            return
        self.cursor = self.sent = cursor.seq
        self._resuming = True
        self._spawn_catch_up(first=True)

    def push(self, frame: ServerFrame) -> None:
        """A control frame (ack, error, viewers, pong), sent in order with the comments."""
        if self.state is not State.CLOSED:
            self._push(frame)

    # -- catch-up ----------------------------------------------------------------------------

    def _spawn_catch_up(self, *, first: bool) -> None:
        self.state = State.CATCHING_UP
        if self._catch_up_task is not None and not self._catch_up_task.done():
            self._catch_up_task.cancel()
        self._catch_up_task = asyncio.create_task(self._catch_up(first),
                                                  name=f"catch-up {self.stream}")

    async def _catch_up(self, first: bool) -> None:
        # Replay in slices of half a queue, waiting for the writer between slices: a resume
        # of the whole replay window must not look like a slow consumer.
        batch = max(1, self.limits.send_queue_max // 2)
        try:
            while True:
                result = await self.replayer.catch_up(self.stream, self.cursor, first=first,
                                                      batch=batch)
                first = False
                if not result.recovered:
                    self.cursor = await self.log.head(self.stream)
                    self._push(Recovered(
                        recovered=False, cursor=self.encode_cursor(self.cursor),
                        reason=f"more than {self.limits.replay_window} comments were missed; "
                               "page history to fill the gap"))
                    self._resuming = False
                    self._pending = [e for e in self._pending if e.seq > self.cursor]
                    break
                for entry in result.entries:
                    if entry.seq > self.cursor:
                        self._accept(entry)
                if not result.more or self.state is State.CLOSED:
                    break
                while self._queued_entries > batch and not self._closed.is_set():
                    self._room.clear()
                    await self._room.wait()
            if self._resuming:
                self._resuming = False
                self._push(Recovered(recovered=True, cursor=self.encode_cursor(self.cursor)))
        except LogUnavailable:
            await self.close("unavailable", CloseCode.GOING_AWAY)
            return
        self._finish_catch_up()

    def _finish_catch_up(self) -> None:
        if self.state is State.CLOSED:
            return
        self.state = State.LIVE
        pending, self._pending = self._pending, []
        if self._pending_overflow:
            self._pending_overflow = False
            self._spawn_catch_up(first=False)
            self._pending = pending
            return
        for entry in pending:
            self.offer(entry)

    # -- output ------------------------------------------------------------------------------

    def _accept(self, entry: Entry) -> None:
        self.cursor = entry.seq
        self._queue.append(entry)
        self._queued_entries += 1
        if self._queued_entries > self.limits.send_queue_max:
            self._overflowed()
            return
        self._wake.set()

    def _push(self, frame: ServerFrame) -> None:
        self._queue.append(frame)
        if len(self._queue) > 2 * self.limits.send_queue_max:
            self._overflowed()
            return
        self._wake.set()

    def _overflowed(self) -> None:
        # The writer is most likely stuck on a peer that does not read. Saying goodbye may
        # wait on that peer too, so it runs in a task of its own (awaited by run()), bounded,
        # and the connection is dropped if the goodbye does not get through.
        if self.state is State.CLOSED:
            return
        self.state = State.CLOSED
        self.close_reason = "slow_consumer"
        self._queue.clear()
        self._queued_entries = 0
        self._closed.set()
        self._wake.set()
        self._room.set()
        self._closer = asyncio.create_task(self._close_slow(), name=f"cut {self.stream}")

    async def _close_slow(self) -> None:
        bye = Bye(reason="slow_consumer", cursor=self.encode_cursor(self.sent))
        try:
            await asyncio.wait_for(self.transport.close(CloseCode.SLOW_CONSUMER, bye), 2.0)
        except (TimeoutError, Gone, OSError):
            self.transport.abort()

    async def _write_loop(self) -> None:
        tick_s = self.limits.tick_ms / 1000
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closed.is_set():
                return
            busy = False
            while self._queue and not self._closed.is_set():
                busy = busy or self._queued_entries > 1
                frames, last = self._take_batch()
                try:
                    await self.transport.send(frames)
                except (Gone, OSError):
                    if not self._closed.is_set():  # keep the reason of a close we started
                        self.state = State.CLOSED
                        self.close_reason = "gone"
                        self._closed.set()
                    return
                if last is not None:
                    self.sent = last
                if self._queued_entries <= self.limits.send_queue_max // 2:
                    self._room.set()
            if busy:
                # Pacing, not synchronisation: a busy stream's next comments wait for the next
                # tick and go out together; a quiet one's go out at once.
                await asyncio.sleep(tick_s)

    def _take_batch(self) -> tuple[list[ServerFrame], int | None]:
        """Everything queued (up to MAX_BATCH comments) as frames, in order: runs of comments
        become one ``comments`` frame each. Returns the frames and the last sequence taken.
        Comments hidden from this viewer (shadow) still move the cursor."""
        frames: list[ServerFrame] = []
        items: list[Comment] = []
        run_last: int | None = None
        last: int | None = None
        taken = 0

        def flush() -> None:
            nonlocal run_last
            if run_last is not None:
                frames.append(Comments(items=tuple(items),
                                       cursor=self.encode_cursor(run_last)))
                items.clear()
                run_last = None

        while self._queue and taken < MAX_BATCH:
            item = self._queue.popleft()
            if isinstance(item, Entry):
                self._queued_entries -= 1
                taken += 1
                run_last = last = item.seq
                if item.comment.visible_to(self.user):
                    items.append(item.comment)
            else:
                flush()
                frames.append(item)
        flush()
        return frames, last
