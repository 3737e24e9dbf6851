"""One viewer's connection to one stream, whatever carries it (WebSocket, SSE, long-poll).

Ordering and exactly-once delivery come from one rule: the session holds a cursor (the log
sequence of the last comment it accepted) and accepts a live entry only when the entry's
``prev`` is that cursor. An entry at or below the cursor is a duplicate and dropped; an entry
whose ``prev`` is beyond it reveals a gap, and the session catches up from the log (through
the replay cache) before it accepts anything newer. Resume after a disconnect is the same
catch-up, starting from the client's cursor. While a catch-up runs, live entries wait in a
bounded list, so the race between replay and live neither loses nor duplicates.

A viewer's own comments in a hot stream's sample are the one exception (`offer_own`): they
are off the chain every viewer shares, and on a gateway that follows the region's sampling
stage they come on a subscription of their own, so the shared item or tick behind one may be
handled first and move the cursor past it. An own comment behind the cursor is then written
out of the chain (the cursor stays), unless the session already has it: it remembers the own
comments it accepted.

A hot stream's partitions (region/log.py `Entry.part` > 0) are the other: their entries'
sequences are a partition's, not places in the log a viewer resumes from, so such an entry
is never chained. `offer_loose` writes it out of the chain wherever it comes from (the live
feed in the push tier, a sampled stream's feed or stage, an author's own), the cursor stays,
and the session writes one comment once: it remembers the ids of the last `LOOSE_KEEP` it
wrote. A resume does not replay them (the sample is lossy by nature).

What the session accepts goes out through its `Writer` (region/writer.py): the bounded queue,
the batching per tick and the slow-consumer cut live there.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chorus.config import Limits
from chorus.model import Comment
from region.broadcast import StreamBatch
from region.cursor import Cursor
from region.log import CommentLog, Entry, LogUnavailable
from region.protocol import CloseCode, Hello, Recovered, Retract, Sample, ServerFrame
from region.replay import Replayer
from region.writer import Gone, Transport, Writer

# Transport and Gone belong to the writer; they stay importable from here for the modules
# that build sessions.
__all__ = ["Gone", "Loose", "Own", "Position", "Session", "Skip", "State", "Transport",
           "View"]

OWN_KEEP = 256   # own comments a session remembers having accepted (`Session.offer_own`)
# Comment ids of partition entries a session remembers having written (`Session.offer_loose`):
# a copy comes within a second (the stage's shared and own items of one comment, a follower
# switching between the stage and its live feed), and a sampled viewer gets a few a second.
LOOSE_KEEP = 256


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


class Moderated(Protocol):
    """What a session needs of the moderation state (region/moderation.py): which comments
    a viewer must not get, the stream's pin for ``hello``, and its latest retractions for a
    viewer who resumes (it may have missed their live ``retract`` frames)."""

    def hidden(self, comment: Comment, viewer: str | None = None) -> bool: ...

    def pin(self, stream: str) -> Comment | None: ...

    def recent_retractions(self, stream: str) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class Skip:
    """A live item without a comment: everything of the stream after ``prev`` up to ``seq``
    was left out for this viewer on purpose (outside a sampled stream's sample). Accepted by
    the same rule as an entry; it moves the cursor."""

    prev: int
    seq: int


@dataclass(frozen=True)
class Own:
    """A viewer's own comment offered off the shared chain (`Session.offer_own`), waiting
    with the live items while a catch-up runs."""

    entry: Entry

    @property
    def seq(self) -> int:
        return self.entry.seq


@dataclass(frozen=True)
class Loose:
    """A hot partition's entry offered out of the chain (`Session.offer_loose`), waiting
    with the live items while a catch-up runs. No ``seq``: it has no place in the chain."""

    entry: Entry


class RecentIds:
    """The last ``keep`` ids added (oldest forgotten first), each asked in constant time."""

    __slots__ = ("_ids", "keep")

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, key: str) -> bool:
        """Remembers ``key``; False when it was remembered already."""
        if key in self._ids:
            return False
        self._ids[key] = None
        if len(self._ids) > self.keep:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


class View(Protocol):
    """How the viewer sees a stream above the push tier (region/tiers_feed.py)."""

    def replay_filter(self, viewer: str | None) -> Callable[[Comment], bool]:
        """Which comments read back from the log (a resume, a repaired gap) ``viewer`` is
        shown; the others move the cursor only. A new filter per catch-up."""
        ...

    def describe(self) -> Sample | None:
        """What a ``comments`` frame stands for now."""
        ...

    def announce(self, cursor: str) -> ServerFrame:
        """The ``tier`` frame that tells the client, at ``cursor``."""
        ...


# One `Position` object per place in a log, shared by every session there: a stream's batch
# frame is cached per position (region/broadcast.py `StreamBatch.prepared`), and a cache
# found by identity costs no dataclass comparison per viewer per batch. Bounded: a log's
# epoch changes rarely, and a full table starts over.
_POSITIONS: dict[Position, Position] = {}
_POSITIONS_MAX = 64


def _shared_position(position: Position) -> Position:
    same = _POSITIONS.get(position)
    if same is None:
        if len(_POSITIONS) >= _POSITIONS_MAX:
            _POSITIONS.clear()
        same = _POSITIONS[position] = position
    return same


class Session:
    def __init__(self, *, stream: str, user: str | None, transport: Transport,
                 log: CommentLog, replayer: Replayer, position: Position, limits: Limits,
                 gateway: str, send_hello: bool = True,
                 on_written: Callable[[Sequence[Comment]], None] | None = None,
                 moderation: Moderated | None = None) -> None:
        self.stream = stream
        self.moderation = moderation
        self.user = user
        self.transport = transport
        self.log = log
        self.replayer = replayer
        self.position = _shared_position(position)
        self.limits = limits
        self.gateway = gateway
        self.send_hello = send_hello
        self.writer = Writer(transport, viewer=user, cursor_of=self.encode_cursor,
                             max_queue=limits.send_queue_max, tick_s=limits.tick_ms / 1000,
                             name=stream, on_written=on_written,
                             hide=(None if moderation is None
                                   else lambda c: moderation.hidden(c, user)),
                             hello_first=send_hello)
        self.cursor = 0          # last accepted (queued) sequence
        self.view: View | None = None   # None: the push tier (every comment)
        self._phase = State.STARTING
        self._pending: list[Entry | Skip | Own | Loose] = []
        # What the client had when the session started or resumed (an own comment at or
        # below it is not written again), and the own comments accepted since.
        self._floor = 0
        self._own_seqs: deque[int] = deque(maxlen=OWN_KEEP)
        # The partition entries written (`offer_loose`); made at the first: a session of a
        # stream that never has any pays nothing.
        self._loose: RecentIds | None = None
        self._pending_overflow = False
        self._catch_up_task: asyncio.Task[None] | None = None
        self._resuming = False
        # Whether the session is positioned and has said hello (or would have: a long-poll
        # says none). Frames pushed before then wait in the writer, behind the hello.
        self._greeted = False

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return State.CLOSED if self.writer.closed else self._phase

    @property
    def sent(self) -> int:
        """The last sequence the client was sent (its resume point if the connection ends)."""
        return self.writer.sent

    @property
    def close_reason(self) -> str:
        """Why the session closed ("" while open): "slow_consumer", "gone", "unavailable",
        or the reason given to `close`."""
        return self.writer.close_reason

    def encode_cursor(self, seq: int) -> str:
        return Cursor(self.position.region, self.position.epoch, seq).encode()

    async def start(self, resume: Cursor | None) -> None:
        """Positions the session; call after it is registered with the fanout (so that no live
        entry published from now on is missed: they wait in the pending list)."""
        self._phase = State.CATCHING_UP
        try:
            if resume is not None and resume.same_log(self.position.region,
                                                      self.position.epoch):
                self._rewind(resume.seq)
                self._greet()
                self._retractions_for_resume()
                self._resuming = True
                self._spawn_catch_up(first=True)
                return
            self._rewind(await self.log.head(self.stream))
        except LogUnavailable:
            await self.close("unavailable", CloseCode.GOING_AWAY)
            return
        self._greet()
        if resume is not None:
            self._retractions_for_resume()
            self.writer.push(Recovered(
                recovered=False, cursor=self.encode_cursor(self.cursor),
                reason="the cursor is from another region or an older log; "
                       "page history to fill the gap"))
        self._finish_catch_up()

    def _greet(self) -> None:
        """Opens the writer with the ``hello`` (and the view's ``tier`` frame): whatever
        was pushed to the session since it was registered is written after them."""
        self._greeted = True
        if self.send_hello:
            self.writer.open([self._hello(), *self._view_announcement()])

    def _hello(self) -> Hello:
        return Hello(region=self.position.region, stream=self.stream,
                     epoch=self.position.epoch, cursor=self.encode_cursor(self.cursor),
                     gateway=self.gateway,
                     pin=self.moderation.pin(self.stream) if self.moderation else None)

    def _retractions_for_resume(self) -> None:
        """A resuming viewer may have missed live ``retract`` frames while away. (A long-poll,
        which gets no ``hello``, gets them in every response instead: region/live.py.)"""
        if self.moderation is None or not self.send_hello:
            return
        ids = self.moderation.recent_retractions(self.stream)
        if ids:
            self.writer.push(Retract(stream=self.stream, ids=ids))

    async def run(self) -> None:
        """Writes until the session is closed; the caller owns this coroutine."""
        try:
            await self.writer.run()
        finally:
            if self._catch_up_task is not None:
                self._catch_up_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._catch_up_task

    @property
    def closed(self) -> bool:
        return self.writer.closed

    async def wait_closed(self) -> None:
        await self.writer.wait_closed()

    async def close(self, reason: str, code: CloseCode = CloseCode.NORMAL,
                    regions: tuple[str, ...] = ()) -> None:
        """Closes with a ``bye`` that tells the client where to resume."""
        await self.writer.close(reason, code, regions)

    # -- input: entries from the fanout, frames from the connection ------------------------

    def offer(self, entry: Entry | Skip) -> None:
        """A live entry of this session's stream (or a `Skip`). Never blocks and never awaits.

        The rule: an item is accepted when everything before it is here, i.e. its ``prev``
        is at or below the cursor (the push tier's feed chains each entry to the stream's
        previous one, so ``prev`` is the cursor exactly; a sampled stream's feed chains it to
        the previous item every viewer got, and a viewer's own comments may have moved its
        cursor past that). A hot partition's entry is never chained: it goes as
        `offer_loose`."""
        if isinstance(entry, Entry) and entry.part:
            self.offer_loose(entry)
            return
        match self.state:
            case State.CLOSED:
                return
            case State.STARTING | State.CATCHING_UP:
                self._hold(entry)
                return
        if entry.seq <= self.cursor:
            return  # already have it
        if entry.prev <= self.cursor:
            self._accept(entry)
            return
        # A hole between our cursor and this entry: read it from the log first.
        self._pending.append(entry)
        self._spawn_catch_up(first=False)

    def offer_own(self, entry: Entry) -> None:
        """The viewer's own comment from a hot stream's feed (region/tiers_feed.py), off the
        chain every viewer shares. Ahead of the cursor it is taken by the rule of `offer`.
        Behind it (the shared item or tick after it was handled first: on a follower of the
        region's stage they come on another subscription), it is written out of the chain
        and the cursor stays, unless the session has it already (accepted before, or at or
        below where the client started). Never blocks and never awaits. A hot partition's
        entry goes as `offer_loose` (known by its comment id, not its sequence)."""
        if entry.part:
            self.offer_loose(entry)
            return
        match self.state:
            case State.CLOSED:
                return
            case State.STARTING | State.CATCHING_UP:
                self._hold(Own(entry))
                return
        if entry.seq in self._own_seqs or entry.seq <= self._floor:
            return
        if entry.seq > self.cursor:
            self.offer(entry)
            return
        self._own_seqs.append(entry.seq)
        self.writer.enqueue(entry)

    def offer_loose(self, entry: Entry) -> None:
        """An entry of a hot stream's partition (``entry.part`` > 0), for every viewer (the
        push tier, a sampled stream's sample) or for its author alone: written out of the
        chain, so neither the session's cursor nor the client's moves, unless the session
        wrote this comment already (it remembers the last `LOOSE_KEEP` ids). During a
        catch-up it waits in its place with the live items; once closed it is dropped. Who
        may see it is the writer's to ask, as for every comment (shadow, moderation). Never
        blocks and never awaits."""
        match self.state:
            case State.CLOSED:
                return
            case State.STARTING | State.CATCHING_UP:
                self._hold(Loose(entry))
                return
        written = self._loose
        if written is None:
            written = self._loose = RecentIds(LOOSE_KEEP)
        if written.add(entry.comment.id):
            self.writer.enqueue(entry)

    def _hold(self, item: Entry | Skip | Own | Loose) -> None:
        """A live item that came during a catch-up waits for its end."""
        if len(self._pending) >= self.limits.send_queue_max:
            # Too much arrived during the catch-up: drop it and read it from the log.
            self._pending.clear()
            self._pending_overflow = True
        self._pending.append(item)

    def offer_batch(self, batch: StreamBatch) -> bool:
        """Live entries of this session's stream that follow each other (a flush of the
        fanout's, region/broadcast.py). Taken whole, as one frame encoded once for every
        viewer, when the session is live in the push tier, its cursor is the batch's start and
        its writer writes it at once; True then. Otherwise each entry is offered by the rule
        of `offer` (False). Never blocks and never awaits."""
        if (self._phase is State.LIVE and self.view is None and self.cursor == batch.prev
                and batch.plain(self.moderation)
                and self.writer.write_shared(batch, self.position)):
            self.cursor = batch.last
            return True
        for entry in batch.entries:
            self.offer(entry)
        return False

    def resume(self, cursor: Cursor) -> None:
        """The client asks to continue from ``cursor`` (a ``resume`` frame)."""
        if self.state is State.CLOSED:
            return
        if not cursor.same_log(self.position.region, self.position.epoch):
            # The queued comments are dropped: the client pages history up to the cursor
            # it is given here, and they are before it.
            self.writer.rewind(self.writer.sent)
            self.writer.push(Recovered(
                recovered=False, cursor=self.encode_cursor(self.cursor),
                reason="the cursor is from another region or an older log"))
            return
        self._rewind(cursor.seq)
        self._retractions_for_resume()
        self._resuming = True
        self._spawn_catch_up(first=True)

    def set_view(self, view: View | None, announcement: ServerFrame | None = None) -> None:
        """The stream's tier changed on this gateway: ``view`` from now on (None: push), and
        ``announcement`` (a ``tier`` frame) in order with the comments. A session that has
        not said hello yet announces its view right after it."""
        self.view = view
        self.writer.describe = view.describe if view is not None else None
        if announcement is not None and self._greeted:
            self.writer.push(announcement)

    def _view_announcement(self) -> list[ServerFrame]:
        if self.view is None:
            return []
        return [self.view.announce(self.encode_cursor(self.cursor))]

    def push(self, frame: ServerFrame) -> None:
        """A control frame (ack, error, viewers, pong), sent in order with the comments."""
        self.writer.push(frame)

    # -- catch-up ----------------------------------------------------------------------------

    def _rewind(self, seq: int) -> None:
        """The client has everything up to ``seq``: continue from there."""
        self.cursor = self._floor = seq
        self.writer.rewind(seq)

    def _spawn_catch_up(self, *, first: bool) -> None:
        self._phase = State.CATCHING_UP
        running = self._catch_up_task
        # A catch-up that ends by starting the next one is not cancelled: it is finishing.
        if (running is not None and not running.done()
                and running is not asyncio.current_task()):
            running.cancel()
        self._catch_up_task = asyncio.create_task(self._catch_up(first),
                                                  name=f"catch-up {self.stream}")

    async def _catch_up(self, first: bool) -> None:
        # Replay in slices of half a queue, waiting for the writer between slices: a resume
        # of the whole replay window must not look like a slow consumer.
        batch = max(1, self.limits.send_queue_max // 2)
        shows = self.view.replay_filter(self.user) if self.view is not None else None
        try:
            while True:
                result = await self.replayer.catch_up(self.stream, self.cursor, first=first,
                                                      batch=batch)
                first = False
                if not result.recovered:
                    self.cursor = self._floor = await self.log.head(self.stream)
                    self.writer.push(Recovered(
                        recovered=False, cursor=self.encode_cursor(self.cursor),
                        reason=f"more than {self.limits.replay_window} comments were missed; "
                               "page history to fill the gap"))
                    self._resuming = False
                    self._pending = [e for e in self._pending
                                     if isinstance(e, Loose) or e.seq > self.cursor]
                    break
                skipped = False
                for entry in result.entries:
                    if entry.seq > self.cursor:
                        skipped = shows is not None and not shows(entry.comment)
                        if skipped:
                            self.cursor = entry.seq  # outside the sample: moved past
                        else:
                            self._accept(entry, live=False)
                if skipped:
                    self.writer.mark(self.cursor)
                if not result.more or self.closed:
                    break
                await self.writer.wait_room(batch)
            if self._resuming:
                self._resuming = False
                self.writer.push(Recovered(recovered=True,
                                           cursor=self.encode_cursor(self.cursor)))
        except LogUnavailable:
            await self.close("unavailable", CloseCode.GOING_AWAY)
            return
        self._finish_catch_up()

    def _finish_catch_up(self) -> None:
        if self.closed:
            return
        self._phase = State.LIVE
        pending, self._pending = self._pending, []
        if self._pending_overflow:
            self._pending_overflow = False
            self._spawn_catch_up(first=False)
            self._pending = pending
            return
        for item in pending:
            if isinstance(item, Own):
                self.offer_own(item.entry)
            elif isinstance(item, Loose):
                self.offer_loose(item.entry)
            else:
                self.offer(item)

    def _accept(self, entry: Entry | Skip, *, live: bool = True) -> None:
        self.cursor = entry.seq
        if isinstance(entry, Skip):
            self.writer.mark(entry.seq)
            return
        if self.user is not None and entry.comment.user == self.user:
            self._own_seqs.append(entry.seq)
        self.writer.enqueue(entry, live=live)
