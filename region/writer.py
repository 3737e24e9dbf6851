"""The writer: one connection's bounded send queue, written once per tick, and the cut.

Whatever carries a connection (WebSocket, SSE, long-poll), what goes out to it passes through
one `Writer`. Comments and control frames wait in one queue, in order. The writer's task wakes
when something is queued and writes everything waiting as one batch: each run of comments
becomes one ``comments`` frame, control frames keep their place between them. When a write
carried more than one comment the stream is busy, and the writer waits one tick before the
next write, so a busy stream costs one write per connection per tick while a quiet stream's
comments go out at once.

The queue is bounded (`max_queue` comments; twice that in control frames). A connection
that cannot keep up is cut: the writer closes it with a ``bye`` carrying the cursor of the
last comment actually written, so the client resumes without a gap, and it never slows the
other connections of the gateway. The peer that overflowed its queue has most likely stopped
reading, so the goodbye is given `CUT_GRACE_S` and the connection is aborted if it does not
get through. Unless the gateway itself is behind (the writer has waited for the CPU for
`BEHIND_TICKS` ticks, not for its peer): then a reading viewer is not to blame, and its queue
may grow to `BEHIND_FACTOR` times ``max_queue`` before the cut.

A stream's live comments usually do not pass through the queue at all: the fanout batches
them once per tick for every viewer of the stream (region/broadcast.py), and an idle writer
(nothing queued, no write in progress) whose transport takes prepared frames writes the
batch's one shared frame at once (`write_shared`). The queue is the path of everything else
(control frames, replays, a viewer behind on its socket), and once it holds something, live
comments queue behind it, so order never depends on the path.

Modelled on centrifuge's ``writer.go``. The writer knows nothing of cursors' format or of the
log: the session decides what is accepted and in which order; the writer only sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chorus.model import Comment
from region.broadcast import Prepared, StreamBatch
from region.log import Entry
from region.protocol import Ack, Bye, CloseCode, Comments, Error, Pong, Sample, ServerFrame

MAX_BATCH = 500   # comments taken in one write; a longer queue goes out over several writes
CUT_GRACE_S = 2.0  # how long a slow consumer's goodbye may take before the connection drops
SLOW_CONSUMER = "slow_consumer"  # the close reason of a cut (and of its `bye`)
# The close reason of a cut caused by answers (pong, ack, error) the client asked for faster
# than it read them: a client to fix, not one to resume (close code 4400, not 4408).
UNREAD_ANSWERS = "unread_answers"
GONE = "gone"                    # the close reason when the peer went away under a write
# A full queue cuts its connection at once, unless the gateway is behind: its writer was woken
# more than this many ticks ago and is still waiting for the CPU. Then the queue may grow to
# BEHIND_FACTOR times max_queue (bounded all the same) before the cut.
BEHIND_TICKS = 2
BEHIND_FACTOR = 4


@dataclass(frozen=True)
class Mark:
    """A place in the log the client is brought to without a comment: everything up to
    ``seq`` was delivered or left out on purpose (a sampled stream's comments outside the
    sample). It moves the cursor of the ``comments`` frame it falls in, which may then carry
    no comment at all."""

    seq: int


class Transport(Protocol):
    """What a writer needs of a connection. ``send`` is one write of a few frames."""

    async def send(self, frames: Sequence[ServerFrame]) -> None:
        """Raises `Gone` (or OSError) when the peer is no longer there."""
        ...

    async def close(self, code: CloseCode, bye: Bye | None) -> None: ...

    def abort(self) -> None:
        """Drops the connection at once (a peer that does not read gets no goodbye)."""
        ...


@runtime_checkable
class SharedTransport(Protocol):
    """A transport that can also take a ``comments`` frame encoded once for every viewer
    (region/broadcast.py), written at once without awaiting (the WebSocket's)."""

    def send_prepared(self, frame: Prepared) -> bool:
        """Writes ``frame`` now; False (nothing written) when it cannot: the connection is
        closing or its socket is behind, and the frame must go the ordinary way."""
        ...


class Gone(Exception):
    """The peer went away; a transport raises it from `send`."""


class Writer:
    """Sends one viewer's frames through ``transport``.

    ``viewer`` is the user the frames are for (None: anonymous); a comment hidden from them
    (a shadow-banned author's) is left out of its frame but still moves the frame's cursor.
    ``cursor_of`` turns a log sequence into the cursor a client resumes from. ``max_queue``
    bounds the comments waiting (> 0); ``tick_s`` is the pause after a busy write (seconds);
    ``max_batch`` bounds the comments taken in one write. ``on_written``, when given, hears
    the comments of each write that were queued live (not replayed), once the transport took
    them: the delivery latency is measured there.

    ``hello_first``: the connection's first frame is its ``hello`` (docs/protocol.md), given
    by `open`. Until then nothing is written, whatever is queued: a session is registered
    with the fanout (and greeted with counts, reached by tier, pin and moderation frames, and
    answers the client's frames) before it knows the cursor its hello carries, and any of
    those may come first. They wait, bounded as ever, and follow the hello in their order.
    """

    def __init__(self, transport: Transport, *, viewer: str | None,
                 cursor_of: Callable[[int], str], max_queue: int, tick_s: float,
                 max_batch: int = MAX_BATCH, name: str = "",
                 on_written: Callable[[Sequence[Comment]], None] | None = None,
                 hide: Callable[[Comment], bool] | None = None,
                 hello_first: bool = False) -> None:
        self.transport = transport
        self.viewer = viewer
        self.cursor_of = cursor_of
        self.max_queue = max_queue
        self.tick_s = tick_s
        self.max_batch = max_batch
        self.name = name
        self.sent = 0          # sequence of the last comment written (or known to the client)
        self.close_reason = ""
        self._queue: deque[Entry | Mark | ServerFrame] = deque()
        # While the stream is sampled: what each ``comments`` frame stands for ("showing n of
        # m in the last second"), asked once per frame (region/tiers_feed.py sets it).
        self.describe: Callable[[], Sample | None] | None = None
        self._queued_entries = 0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()    # set after each write: the queue may have shrunk
        self._closed = asyncio.Event()
        self._ended = False   # _closed as a plain attribute: read per viewer per shared batch
        self._closer: asyncio.Task[None] | None = None  # the cut's goodbye; awaited by run()
        self._sending = False                 # a write is in progress (maybe stuck on the peer)
        self._woken_at: float | None = None   # loop time of the wake-up not yet taken
        self.on_written = on_written
        # Moderation: a comment retracted (or held) by the time it is written is left out
        # like a shadow-banned one; asked at write time, so a queued comment is caught too.
        self.hide = hide
        self._replayed: set[int] = set()  # queued sequences that are not live (on_written only)
        self._live: list[Comment] = []    # live comments of the write in progress
        # Where a stream's batch can be written whole (None: this transport cannot).
        self._shared = transport if isinstance(transport, SharedTransport) else None
        self._opened = not hello_first   # False: written nothing yet, waiting for `open`

    # -- state -------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    @property
    def queued_entries(self) -> int:
        """Comments waiting to be written."""
        return self._queued_entries

    async def wait_room(self, at_most: int) -> None:
        """Returns once at most ``at_most`` comments wait, or the writer is closed. Lets a
        producer that has many comments at hand (a resume) feed them at the writer's pace
        instead of overflowing the queue."""
        while self._queued_entries > at_most and not self._closed.is_set():
            self._room.clear()
            await self._room.wait()

    # -- input -------------------------------------------------------------------------------

    def enqueue(self, entry: Entry, *, live: bool = True) -> None:
        """Queues a comment. Never blocks: past ``max_queue`` waiting comments the connection
        is cut instead. Ignored once the writer is closed. ``live`` False: read back from the
        log (a resume, a repaired gap), so its age is not a delivery latency. An entry of a
        hot partition (``part`` > 0) is written in its place but moves no cursor."""
        if self._closed.is_set():
            return
        if not live and self.on_written is not None and not entry.part:
            self._replayed.add(entry.seq)
        self._queue.append(entry)
        self._queued_entries += 1
        if self._queued_entries > self.max_queue and not self._gateway_is_behind():
            self._cut()
            return
        self._wake_up()

    def _wake_up(self) -> None:
        if not self._wake.is_set():
            self._woken_at = asyncio.get_running_loop().time()
            self._wake.set()

    def _gateway_is_behind(self) -> bool:
        """Past ``max_queue``, whether the gateway rather than the peer is to blame: the
        writer was woken more than `BEHIND_TICKS` ticks ago and has not run since (it waits
        for the CPU, not for its peer; a write stuck on the peer is never this). Then the
        queue may hold up to `BEHIND_FACTOR` times ``max_queue`` before the cut: cutting a
        viewer that reads would only make it come back, costing the gateway more."""
        if self._sending or self._queued_entries > BEHIND_FACTOR * self.max_queue:
            return False
        woken = self._woken_at
        return woken is not None and (asyncio.get_running_loop().time() - woken
                                      > BEHIND_TICKS * self.tick_s)

    def write_shared(self, batch: StreamBatch, log: object) -> bool:
        """Writes a stream's batch as its one shared frame, now, when nothing else is in the
        way: the writer is idle (nothing queued, no write in progress, so order holds), the
        transport takes prepared frames and its socket is not behind. False: nothing was
        written, and the caller queues the batch's entries instead. The caller has checked
        that the viewer may see every comment of it (`StreamBatch.plain`), and counts the
        delivery (``on_written`` is not called: one observation per batch, not per viewer).
        ``log`` is where ``cursor_of`` places its cursors (`StreamBatch.prepared`)."""
        shared = self._shared
        if (shared is None or not self._opened or self._queue or self._sending
                or self._ended or self.describe is not None):
            return False
        if not shared.send_prepared(batch.prepared(self.cursor_of, log)):
            return False
        self.sent = batch.last
        return True

    def push(self, frame: ServerFrame) -> None:
        """Queues a control frame (hello, ack, error, ...), written in order with the
        comments. Bounded too: a peer flooding requests it does not read answers to is cut."""
        if self._closed.is_set():
            return
        self._queue.append(frame)
        if self._queued_others() > 2 * self.max_queue:
            if isinstance(frame, Pong | Ack | Error):
                self._cut(UNREAD_ANSWERS, CloseCode.BAD_FRAMES)
            else:
                self._cut()
            return
        self._wake_up()

    def open(self, first: Sequence[ServerFrame]) -> None:
        """Writes ``first`` (the ``hello``, and what must follow it at once) before anything
        queued so far, and lets the writer write from then on. Once; later calls push."""
        if self._closed.is_set():
            return
        if self._opened:
            for frame in first:
                self.push(frame)
            return
        self._queue.extendleft(reversed(first))
        self._opened = True
        self._wake_up()

    def _queued_others(self) -> int:
        """Queued items that are not comments (control frames, marks): bounded on their own,
        so that comments a busy gateway let wait (`_gateway_is_behind`) do not cut a viewer
        when a control frame comes."""
        return len(self._queue) - self._queued_entries

    def rewind(self, sent: int) -> None:
        """Forgets the comments waiting (control frames stay): the client says it has
        everything up to ``sent`` and wants what follows from there."""
        self._queue = deque(x for x in self._queue if not isinstance(x, Entry | Mark))
        self._queued_entries = 0
        self._replayed.clear()
        self.sent = sent

    def mark(self, seq: int) -> None:
        """Queues a `Mark`: the client's cursor moves to ``seq`` with the next ``comments``
        frame. Bounded like control frames."""
        if self._closed.is_set():
            return
        self._queue.append(Mark(seq))
        if self._queued_others() > 2 * self.max_queue:
            self._cut()
            return
        self._wake_up()

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Writes until the writer is closed or the peer is gone; the caller owns this
        coroutine. Returns after a cut's goodbye is through (at most `CUT_GRACE_S`)."""
        try:
            await self._write_loop()
        finally:
            if self._closer is not None:
                await self._closer

    async def close(self, reason: str, code: CloseCode = CloseCode.NORMAL,
                    regions: tuple[str, ...] = ()) -> None:
        """Closes with a ``bye`` that tells the client where to resume (the last comment
        written) and, in ``regions``, where else it may go. What is still queued is not sent:
        the client gets it on resume."""
        if not self._mark_closed(reason):
            return
        bye = Bye(reason=reason, cursor=self.cursor_of(self.sent), regions=regions)
        with contextlib.suppress(Gone, OSError):
            await self.transport.close(code, bye)

    def _mark_closed(self, reason: str) -> bool:
        """Whether this call closed the writer (False: it was already closed)."""
        if self._closed.is_set():
            return False
        self.close_reason = reason
        self._ended = True
        self._closed.set()
        self._wake.set()
        self._room.set()
        return True

    def _cut(self, reason: str = SLOW_CONSUMER,
             code: CloseCode = CloseCode.SLOW_CONSUMER) -> None:
        # The write loop is most likely stuck on a peer that does not read. Saying goodbye may
        # wait on that peer too, so it runs in a task of its own (awaited by run()), bounded,
        # and the connection is dropped if the goodbye does not get through.
        if not self._mark_closed(reason):
            return
        self._queue.clear()
        self._queued_entries = 0
        self._replayed.clear()
        self._closer = asyncio.create_task(self._say_goodbye(reason, code),
                                           name=f"cut {self.name}")

    async def _say_goodbye(self, reason: str, code: CloseCode) -> None:
        bye = Bye(reason=reason, cursor=self.cursor_of(self.sent))
        try:
            await asyncio.wait_for(self.transport.close(code, bye), CUT_GRACE_S)
        except (TimeoutError, Gone, OSError):
            self.transport.abort()

    # -- output ------------------------------------------------------------------------------

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._woken_at = None
            if self._closed.is_set():
                return
            busy = False
            while self._queue and self._opened and not self._closed.is_set():
                busy = busy or self._queued_entries > 1
                frames, last = self._take_batch()
                self._sending = True
                try:
                    await self.transport.send(frames)
                except (Gone, OSError):
                    self._mark_closed(GONE)  # keeps the reason of a close already begun
                    return
                finally:
                    self._sending = False
                if last is not None:
                    self.sent = last
                if self._live and self.on_written is not None:
                    written, self._live = self._live, []
                    self.on_written(written)
                self._room.set()
            if busy:
                # Pacing, not synchronisation: a busy stream's next comments wait for the next
                # tick and go out together; a quiet one's go out at once.
                await asyncio.sleep(self.tick_s)

    def _take_batch(self) -> tuple[list[ServerFrame], int | None]:
        """What is queued (up to ``max_batch`` comments) as frames, in order: each run of
        comments becomes one ``comments`` frame. Returns the frames and the last sequence
        taken (None: no comment)."""
        frames: list[ServerFrame] = []
        items: list[Comment] = []
        run_last: int | None = None
        last: int | None = None
        taken = 0

        def flush() -> None:
            nonlocal run_last
            if run_last is not None:
                frames.append(Comments(items=tuple(items), cursor=self.cursor_of(run_last),
                                       sample=self.describe() if self.describe else None))
                items.clear()
                run_last = None

        # The cursor never moves back: a viewer's own comment written out of the stream's
        # chain (region/session.py `offer_own`) comes behind it. A hot partition's entry
        # (``part`` > 0) is out of the chain too, and its sequence is the partition's, not a
        # place in the log the client could resume from: it moves no cursor at all.
        high = self.sent
        while self._queue and taken < self.max_batch:
            item = self._queue.popleft()
            if isinstance(item, Entry):
                self._queued_entries -= 1
                taken += 1
                chained = not item.part
                if chained and item.seq > high:
                    high = item.seq
                run_last = last = high
                replayed = chained and bool(self._replayed) and item.seq in self._replayed
                if replayed:
                    self._replayed.discard(item.seq)
                if item.comment.visible_to(self.viewer) and not (
                        self.hide is not None and self.hide(item.comment)):
                    items.append(item.comment)
                    if not replayed and self.on_written is not None:
                        self._live.append(item.comment)
            elif isinstance(item, Mark):
                if item.seq > high:
                    high = item.seq
                run_last = last = high
            else:
                flush()
                frames.append(item)
        flush()
        return frames, last
