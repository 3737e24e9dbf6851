"""The writer on a fake transport: batching per tick, order, the bound, the cut, the goodbye."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

import region.writer
from region.log import Entry
from region.protocol import Bye, CloseCode, Comments, Hello, Pong, Viewers
from region.writer import SLOW_CONSUMER, UNREAD_ANSWERS, Writer
from tests.unit.fake_transport import WAIT_S, FakeTransport
from tests.unit.memory_log import comment


def entries(first: int, last: int, *, shadow_user: str | None = None) -> list[Entry]:
    """Entries first..last of stream "s", each following the one before."""
    return [Entry(seq=n, prev=n - 1,
                  comment=comment("s", n, user=shadow_user or "alice",
                                  shadow=shadow_user is not None))
            for n in range(first, last + 1)]


def cursor_of(seq: int) -> str:
    return f"us-east:e1:{seq}"


def writer(transport: FakeTransport, *, max_queue: int = 100, tick_s: float = 0.01,
           max_batch: int = 500, viewer: str | None = "bob") -> Writer:
    return Writer(transport, viewer=viewer, cursor_of=cursor_of, max_queue=max_queue,
                  tick_s=tick_s, max_batch=max_batch, name="test")


@asynccontextmanager
async def running(w: Writer) -> AsyncIterator[asyncio.Task[None]]:
    """Runs the writer's loop for the block; closes it and awaits the loop after."""
    task = asyncio.create_task(w.run())
    try:
        yield task
    finally:
        await w.close("test over")
        await asyncio.wait_for(task, WAIT_S)


async def written_up_to(t: FakeTransport, w: Writer, seq: int) -> None:
    await t.wait_for(lambda: w.sent >= seq, f"comment {seq} written")


def comments_frames(t: FakeTransport) -> list[Comments]:
    return t.of_type(Comments)


async def test_a_comment_goes_out_in_one_frame_with_its_cursor() -> None:
    t = FakeTransport()
    w = writer(t)
    async with running(w):
        (e,) = entries(1, 1)
        w.enqueue(e)
        await t.wait_for(lambda: len(t.writes) == 1, "the write")
        assert t.writes == [[Comments(items=(e.comment,), cursor=cursor_of(1))]]
        assert w.sent == 1 and w.queued_entries == 0


async def test_a_quiet_streams_comments_go_out_at_once() -> None:
    # A tick of a minute: had the writer paused after a write of one comment, this would
    # time out.
    t = FakeTransport()
    w = writer(t, tick_s=60)
    async with running(w):
        for e in entries(1, 3):
            w.enqueue(e)
            await written_up_to(t, w, e.seq)
    assert len(t.writes) == 3
    assert t.comment_ids == [comment("s", n).id for n in (1, 2, 3)]


async def test_a_busy_stream_costs_one_write_per_tick() -> None:
    t = FakeTransport()
    w = writer(t, tick_s=0.05, max_queue=1000)
    async with running(w):
        batch = entries(1, 300)
        for e in batch[:2]:
            w.enqueue(e)
        await t.wait_for(lambda: len(t.writes) == 1, "the first write")
        # That write carried two comments: the writer now waits a tick, so everything
        # queued meanwhile goes out in the next single write.
        for e in batch[2:]:
            w.enqueue(e)
        await written_up_to(t, w, 300)
        assert len(t.writes) == 2
        assert [len(f.items) for f in comments_frames(t)] == [2, 298]
        assert t.comment_ids == [e.comment.id for e in batch]


async def test_a_long_queue_goes_out_in_writes_of_max_batch() -> None:
    t = FakeTransport()
    w = writer(t, max_batch=10, tick_s=0.001)
    for e in entries(1, 25):
        w.enqueue(e)
    async with running(w):
        await written_up_to(t, w, 25)
    assert [len(f.items) for f in comments_frames(t)] == [10, 10, 5]
    assert [f.cursor for f in comments_frames(t)] == [cursor_of(10), cursor_of(20),
                                                      cursor_of(25)]


async def test_control_frames_keep_their_place_among_the_comments() -> None:
    t = FakeTransport()
    w = writer(t)
    e1, e2, e3 = entries(1, 3)
    w.enqueue(e1)
    w.push(Pong(ref="p"))
    w.enqueue(e2)
    w.enqueue(e3)
    w.push(Viewers(count=4))
    async with running(w):
        await t.wait_for(lambda: len(t.frames) == 4, "the frames")
    assert t.writes == [[Comments((e1.comment,), cursor_of(1)), Pong(ref="p"),
                         Comments((e2.comment, e3.comment), cursor_of(3)), Viewers(count=4)]]


async def test_a_hidden_comment_moves_the_cursor_without_being_shown() -> None:
    shadow = entries(1, 2, shadow_user="mallory")
    others, author = FakeTransport(), FakeTransport()
    for t, viewer in ((others, "bob"), (author, "mallory")):
        w = writer(t, viewer=viewer)
        for e in shadow:
            w.enqueue(e)
        async with running(w):
            await written_up_to(t, w, 2)
    assert others.frames == [Comments(items=(), cursor=cursor_of(2))]
    assert author.frames == [Comments(tuple(e.comment for e in shadow), cursor_of(2))]


async def test_a_peer_that_stops_reading_is_cut_with_the_cursor_it_last_got() -> None:
    t = FakeTransport()
    w = writer(t, max_queue=5)
    async with running(w) as task:
        first, *rest = entries(1, 8)
        w.enqueue(first)
        await written_up_to(t, w, 1)
        t.stop_reading()
        w.enqueue(rest[0])
        await t.wait_for(lambda: t.blocked_sends == 1, "a write stuck on the peer")
        for e in rest[1:]:   # six more queued behind the stuck write: one over the bound
            w.enqueue(e)
        assert w.closed and w.close_reason == SLOW_CONSUMER
        await asyncio.wait_for(task, WAIT_S)
    assert t.closed_with == (CloseCode.SLOW_CONSUMER,
                             Bye(reason=SLOW_CONSUMER, cursor=cursor_of(1)))
    assert not t.aborted
    assert t.comment_ids == [first.comment.id]


async def test_a_goodbye_that_does_not_get_through_drops_the_connection(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(region.writer, "CUT_GRACE_S", 0.05)
    t = FakeTransport()
    t.close_hangs = True
    t.stop_reading()
    w = writer(t, max_queue=2)
    async with running(w) as task:
        for e in entries(1, 4):
            w.enqueue(e)
        await asyncio.wait_for(task, WAIT_S)
    assert t.aborted and w.close_reason == SLOW_CONSUMER
    assert t.writes == []


async def test_control_frames_nobody_reads_are_bounded_too() -> None:
    t = FakeTransport()
    t.stop_reading()
    w = writer(t, max_queue=3)
    async with running(w) as task:
        for n in range(7):   # twice the bound, plus one
            w.push(Pong(ref=str(n)))
        # Answers the client asked for and does not read: a client to fix (4400), not a
        # slow consumer to resume.
        assert w.close_reason == UNREAD_ANSWERS
        await asyncio.wait_for(task, WAIT_S)
    assert t.closed_with is None or t.closed_with[0] is CloseCode.BAD_FRAMES


async def test_server_frames_nobody_reads_cut_a_slow_consumer() -> None:
    t = FakeTransport()
    t.stop_reading()
    w = writer(t, max_queue=3)
    async with running(w) as task:
        for n in range(7):
            w.push(Viewers(count=n))
        assert w.close_reason == SLOW_CONSUMER
        await asyncio.wait_for(task, WAIT_S)


async def test_a_peer_that_is_gone_ends_the_writer() -> None:
    t = FakeTransport()
    w = writer(t)
    task = asyncio.create_task(w.run())
    t.go_away()
    w.enqueue(entries(1, 1)[0])
    await asyncio.wait_for(task, WAIT_S)
    assert w.closed and w.close_reason == "gone"
    await w.close("later")   # already closed: no goodbye, the reason stays
    assert w.close_reason == "gone" and t.closed_with is None


async def test_close_says_where_to_resume_and_drops_what_is_queued() -> None:
    t = FakeTransport()
    w = writer(t)
    task = asyncio.create_task(w.run())
    first, second = entries(1, 2)
    w.enqueue(first)
    await written_up_to(t, w, 1)
    t.stop_reading()
    w.enqueue(second)
    await w.close("gateway shutting down", CloseCode.GOING_AWAY, ("eu-west",))
    await asyncio.wait_for(task, WAIT_S)
    assert t.closed_with == (CloseCode.GOING_AWAY, Bye("gateway shutting down",
                                                       cursor_of(1), ("eu-west",)))
    w.enqueue(entries(3, 3)[0])
    w.push(Pong())
    assert t.comment_ids == [first.comment.id]


async def test_wait_room_returns_when_the_writer_has_caught_up() -> None:
    t = FakeTransport()
    t.stop_reading()
    w = writer(t, max_queue=10)
    async with running(w):
        for e in entries(1, 6):
            w.enqueue(e)
        await t.wait_for(lambda: t.blocked_sends == 1, "a write stuck on the peer")
        room = asyncio.create_task(w.wait_room(2))
        more = entries(7, 9)
        for e in more:
            w.enqueue(e)
        assert not room.done()
        t.resume_reading()
        await asyncio.wait_for(room, WAIT_S)
        assert w.queued_entries <= 2


async def test_wait_room_returns_when_the_writer_closes() -> None:
    t = FakeTransport()
    t.stop_reading()
    w = writer(t, max_queue=10)
    async with running(w):
        for e in entries(1, 5):
            w.enqueue(e)
        room = asyncio.create_task(w.wait_room(0))
        await t.wait_for(lambda: t.blocked_sends == 1, "a write stuck on the peer")
        await w.close("bye")
        await asyncio.wait_for(room, WAIT_S)


async def test_rewind_forgets_queued_comments_but_not_control_frames() -> None:
    t = FakeTransport()
    w = writer(t)
    e1, e2 = entries(1, 2)
    w.enqueue(e1)
    w.push(Pong(ref="kept"))
    w.enqueue(e2)
    w.rewind(7)
    assert w.sent == 7 and w.queued_entries == 0
    async with running(w):
        await t.wait_for(lambda: len(t.frames) == 1, "the frame")
    assert t.frames == [Pong(ref="kept")]


async def test_only_live_comments_are_reported_written_and_only_once_written() -> None:
    t = FakeTransport()
    heard: list[str] = []
    w = Writer(t, viewer="bob", cursor_of=cursor_of, max_queue=100, tick_s=0.01,
               name="test", on_written=lambda cs: heard.extend(c.id for c in cs))
    replayed, live = entries(1, 2), entries(3, 4)
    hidden = entries(5, 5, shadow_user="mallory")
    t.stop_reading()
    async with running(w):
        for e in replayed:
            w.enqueue(e, live=False)
        for e in (*live, *hidden):
            w.enqueue(e)
        assert heard == []  # queued, not yet on the socket
        t.resume_reading()
        await written_up_to(t, w, 5)
    # Replayed comments measure the client's absence, a hidden one was never written.
    assert heard == [e.comment.id for e in live]


async def test_with_hello_first_nothing_is_written_before_the_hello() -> None:
    # A session is registered with the fanout before it knows its hello's cursor: a viewer
    # count, a pong or a comment may be queued first, and must follow the hello.
    t = FakeTransport()
    w = Writer(t, viewer="bob", cursor_of=cursor_of, max_queue=100, tick_s=0.01,
               hello_first=True)
    hello = Hello(region="us-east", stream="s", epoch="e1", cursor=cursor_of(0),
                  gateway="us-east.0")
    async with running(w):
        w.push(Viewers(count=4))
        (e,) = entries(1, 1)
        w.enqueue(e)
        w.push(Pong(ref="p"))
        w.open([hello])
        await t.wait_for(lambda: len(t.frames) >= 4, "four frames written")
        w.open([Viewers(count=5)])   # opened already: queued like any frame
        await t.wait_for(lambda: len(t.frames) >= 5, "five frames written")
    assert t.frames == [hello, Viewers(count=4), Comments((e.comment,), cursor_of(1)),
                        Pong(ref="p"), Viewers(count=5)]
