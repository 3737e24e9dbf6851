"""The session's cursor rule on an in-memory log and cache and a fake transport: order,
duplicates, gaps repaired from the log, resume inside and beyond the replay window, the race
between a catch-up and live entries, and what reaches the writer."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from chorus.config import Limits
from region.cursor import Cursor
from region.log import Entry
from region.protocol import Bye, CloseCode, Comments, Hello, Pong, Recovered, Viewers
from region.replay import Replayer
from region.session import Position, Session, State
from region.writer import SLOW_CONSUMER
from tests.unit.fake_transport import WAIT_S, FakeTransport
from tests.unit.memory_log import MemoryLog, MemoryReplayCache

REGION = "us-east"
LIMITS = Limits(send_queue_max=16, tick_ms=1, replay_window=50)


class Setup:
    """A stream "s" in a log shared with another stream "t", so that the stream's sequences
    have holes and ``prev`` is not ``seq - 1``."""

    def __init__(self, limits: Limits = LIMITS, *, user: str = "bob") -> None:
        self.limits = limits
        self.log = MemoryLog()
        self.cache = MemoryReplayCache(limits.replay_window)
        self.transport = FakeTransport()
        self.session = Session(
            stream="s", user=user, transport=self.transport, log=self.log,
            replayer=Replayer(self.log, self.cache, limits.replay_window),
            position=Position(REGION, self.log.epoch), limits=limits, gateway=f"{REGION}.0")

    def post(self, n: int = 1, *, user: str = "alice", shadow: bool = False) -> list[Entry]:
        """``n`` comments to "s", each after one to "t"."""
        out = []
        for _ in range(n):
            self.log.publish("t")
            out.append(self.log.publish("s", user=user, shadow=shadow))
        return out

    def offer(self, entries: Iterable[Entry]) -> None:
        for e in entries:
            self.session.offer(e)

    def cursor(self, seq: int, epoch: str | None = None) -> Cursor:
        return Cursor(REGION, epoch or self.log.epoch, seq)

    def ids(self, entries: Iterable[Entry]) -> list[str]:
        return [e.comment.id for e in entries]

    async def received(self, entries: list[Entry]) -> None:
        """Waits until the client has ``entries`` (and the cursor of the last)."""
        last = entries[-1].seq
        await self.transport.wait_for(lambda: self.session.sent >= last,
                                      f"comment {last} written")

    @asynccontextmanager
    async def running(self, resume: Cursor | None = None) -> AsyncIterator[Session]:
        task = asyncio.create_task(self.session.run())
        try:
            await self.session.start(resume)
            yield self.session
        finally:
            await self.session.close("test over")
            await asyncio.wait_for(task, WAIT_S)


def recovered(t: FakeTransport) -> list[Recovered]:
    return t.of_type(Recovered)


async def test_live_entries_in_order_reach_the_client_once_each() -> None:
    s = Setup()
    async with s.running() as session:
        posted = s.post(5)
        s.offer(posted)
        await s.received(posted)
        assert session.state is State.LIVE
    assert s.transport.comment_ids == s.ids(posted)
    hello = s.transport.frames[0]
    assert hello == Hello(region=REGION, stream="s", epoch=s.log.epoch,
                          cursor=s.cursor(0).encode(), gateway=f"{REGION}.0")
    assert s.transport.of_type(Comments)[-1].cursor == s.cursor(posted[-1].seq).encode()
    assert s.log.reads == 1   # the head, once: nothing was read back from the log


async def test_a_new_viewer_starts_at_the_head_of_the_log() -> None:
    s = Setup()
    old = s.post(3)
    async with s.running() as session:
        assert session.cursor == old[-1].seq
        new = s.post(2)
        s.offer(old + new)   # the fanout may still hand it entries from before it joined
        await s.received(new)
    assert s.transport.comment_ids == s.ids(new)


async def test_duplicates_are_dropped() -> None:
    s = Setup()
    async with s.running():
        a, b, c = s.post(3)
        s.offer([a, a, b, a, b, c, c])
        await s.received([c])
    assert s.transport.comment_ids == s.ids([a, b, c])


async def test_a_gap_in_the_live_path_is_repaired_from_the_log() -> None:
    s = Setup()
    async with s.running():
        posted = s.post(6)
        s.offer([posted[0], posted[3]])   # 1, 2 and 4 were lost on the way
        await s.received(posted[:4])
        s.offer(posted[1:])               # late copies of the lost ones, and what follows
        await s.received(posted)
    assert s.transport.comment_ids == s.ids(posted)


async def test_a_gap_is_read_from_the_cache_when_it_holds_the_run() -> None:
    s = Setup()
    async with s.running():
        posted = s.post(4)
        await s.cache.add(posted)
        reads = s.log.reads
        s.offer([posted[0], posted[3]])
        await s.received(posted)
        # The cache run ends where the log does: only the head is asked of the log.
        assert s.log.reads == reads + 1
    assert s.transport.comment_ids == s.ids(posted)


async def test_resume_within_the_window_replays_what_was_missed() -> None:
    s = Setup()
    posted = s.post(10)
    async with s.running(resume=s.cursor(posted[3].seq)):
        await s.transport.wait_for(lambda: bool(recovered(s.transport)), "recovered")
        live = s.post(2)
        s.offer(live)
        await s.received(live)
    t = s.transport
    assert t.comment_ids == s.ids(posted[4:] + live)
    assert isinstance(t.frames[0], Hello) and t.frames[0].cursor == s.cursor(posted[3].seq
                                                                             ).encode()
    assert recovered(t) == [Recovered(recovered=True, cursor=s.cursor(posted[-1].seq).encode())]


async def test_resume_beyond_the_window_says_not_recovered() -> None:
    s = Setup(dataclasses.replace(LIMITS, replay_window=5))
    posted = s.post(20)
    async with s.running(resume=s.cursor(posted[2].seq)):
        await s.transport.wait_for(lambda: bool(recovered(s.transport)), "recovered")
        live = s.post(1)
        s.offer(live)
        await s.received(live)
    (notice,) = recovered(s.transport)
    assert not notice.recovered and notice.cursor == s.cursor(posted[-1].seq).encode()
    assert "page history" in notice.reason
    assert s.transport.comment_ids == s.ids(live)


async def test_a_cursor_of_another_log_is_not_recovered() -> None:
    s = Setup()
    posted = s.post(3)
    async with s.running(resume=s.cursor(1, epoch="older")):
        await s.transport.wait_for(lambda: bool(recovered(s.transport)), "recovered")
        (notice,) = recovered(s.transport)
        live = s.post(1)
        s.offer(live)
        await s.received(live)
    assert isinstance(s.transport.frames[0], Hello)
    assert not notice.recovered and notice.cursor == s.cursor(posted[-1].seq).encode()
    assert s.transport.comment_ids == s.ids(live)


async def test_a_resume_frame_replays_from_the_clients_cursor() -> None:
    s = Setup()
    async with s.running() as session:
        posted = s.post(4)
        s.offer(posted)
        await s.received(posted)
        # The client lost the last two (its own buffer, a reload) and asks again.
        session.resume(s.cursor(posted[1].seq))
        await s.transport.wait_for(lambda: bool(recovered(s.transport)), "recovered")
        session.resume(Cursor("eu-west", s.log.epoch, 3))
        await s.transport.wait_for(lambda: len(recovered(s.transport)) == 2, "refusal")
    assert s.transport.comment_ids == s.ids(posted + posted[2:])
    ok, refused = recovered(s.transport)
    assert ok.recovered and not refused.recovered


async def test_a_resume_of_the_whole_window_is_fed_at_the_writers_pace() -> None:
    # 50 missed comments and a queue of 16: the catch-up waits for the writer instead of
    # overflowing its queue and being cut as a slow consumer.
    s = Setup()
    posted = s.post(50)
    async with s.running(resume=s.cursor(0)) as session:
        await s.received(posted)
        assert not session.closed
    assert s.transport.comment_ids == s.ids(posted)
    assert recovered(s.transport)[0].recovered


async def test_live_entries_during_a_catch_up_wait_and_are_not_duplicated() -> None:
    s = Setup()
    missed = s.post(5)
    s.log.hold()
    async with s.running(resume=s.cursor(missed[0].seq)) as session:
        live = s.post(3)
        s.offer(missed[3:] + live)   # the live path races the replay
        assert session.state is State.CATCHING_UP
        s.log.release()
        await s.received(live)
    assert s.transport.comment_ids == s.ids(missed[1:] + live)


async def test_too_much_live_traffic_during_a_catch_up_is_read_from_the_log() -> None:
    s = Setup()
    missed = s.post(3)
    s.log.hold()
    async with s.running(resume=s.cursor(missed[0].seq)) as session:
        # Twice the pending bound arrives while the replay is stuck: the pending list is
        # dropped and the session reads it all from the log once the replay is done.
        live = s.post(2 * LIMITS.send_queue_max)
        s.offer(live)
        assert session.state is State.CATCHING_UP
        s.log.release()
        await s.received(live)
        after = s.post(1)
        s.offer(after)
        await s.received(after)
    assert s.transport.comment_ids == s.ids(missed[1:] + live + after)


async def test_many_entries_at_once_cost_few_writes() -> None:
    s = Setup(dataclasses.replace(LIMITS, send_queue_max=1000, tick_ms=20))
    async with s.running():
        posted = s.post(300)
        s.offer(posted)
        await s.received(posted)
    # hello and the 300 comments: one write, or two if the hello went out first.
    assert len(s.transport.writes) <= 2
    assert s.transport.comment_ids == s.ids(posted)


async def test_a_viewer_that_stops_reading_is_cut_with_its_resume_cursor() -> None:
    s = Setup()
    async with s.running() as session:
        first = s.post(1)
        s.offer(first)
        await s.received(first)
        s.transport.stop_reading()
        s.offer(s.post(LIMITS.send_queue_max + 2))
        await asyncio.wait_for(session.wait_closed(), WAIT_S)
        assert session.close_reason == SLOW_CONSUMER and session.state is State.CLOSED
        await s.transport.wait_for(lambda: s.transport.closed_with is not None, "the bye")
        s.offer(s.post(1))   # after the cut, nothing more is taken
    assert s.transport.closed_with == (
        CloseCode.SLOW_CONSUMER, Bye(SLOW_CONSUMER, s.cursor(first[0].seq).encode()))
    assert s.transport.comment_ids == s.ids(first)


async def test_a_shadow_comment_is_hidden_from_others_but_moves_their_cursor() -> None:
    for viewer, sees_it in (("bob", False), ("mallory", True)):
        s = Setup(user=viewer)
        async with s.running():
            (hidden,) = s.post(1, user="mallory", shadow=True)
            (shown,) = s.post(1)
            s.offer([hidden])
            await s.received([hidden])
            s.offer([shown])
            await s.received([shown])
        batches = s.transport.of_type(Comments)
        assert [b.cursor for b in batches] == [s.cursor(hidden.seq).encode(),
                                               s.cursor(shown.seq).encode()]
        expected = [hidden, shown] if sees_it else [shown]
        assert s.transport.comment_ids == s.ids(expected)


async def test_a_log_that_does_not_answer_closes_the_session_with_going_away() -> None:
    s = Setup()
    s.log.down = True
    async with s.running() as session:
        assert session.closed and session.close_reason == "unavailable"
    assert s.transport.closed_with == (CloseCode.GOING_AWAY,
                                       Bye("unavailable", s.cursor(0).encode()))


async def test_close_tells_the_client_where_to_resume_and_where_else_to_go() -> None:
    s = Setup()
    async with s.running() as session:
        posted = s.post(2)
        s.offer(posted)
        await s.received(posted)
        await session.close("gateway shutting down", CloseCode.GOING_AWAY, ("eu-west",))
        s.offer(s.post(1))
    assert s.transport.closed_with == (
        CloseCode.GOING_AWAY,
        Bye("gateway shutting down", s.cursor(posted[-1].seq).encode(), ("eu-west",)))
    assert session.close_reason == "gateway shutting down"


async def test_frames_pushed_before_the_hello_are_written_after_it() -> None:
    # The fanout registers a session before it has read the log's head for its hello: a
    # viewer count (or a pong, a tier or pin frame) pushed meanwhile used to go out first.
    s = Setup()
    asked = asyncio.Event()
    answer = asyncio.Event()
    head = s.log.head

    async def slow_head(stream: str) -> int:
        asked.set()
        await answer.wait()
        return await head(stream)

    s.session.log.head = slow_head  # type: ignore[method-assign]
    task = asyncio.create_task(s.session.run())
    starting = asyncio.create_task(s.session.start(None))
    try:
        await asyncio.wait_for(asked.wait(), WAIT_S)
        s.session.push(Viewers(count=3))
        s.session.push(Pong(ref="p"))
        answer.set()
        await asyncio.wait_for(starting, WAIT_S)
        await s.transport.wait_for(lambda: len(s.transport.frames) >= 3, "three frames")
    finally:
        await s.session.close("test over")
        await asyncio.wait_for(task, WAIT_S)
    assert [type(f) for f in s.transport.frames] == [Hello, Viewers, Pong]
