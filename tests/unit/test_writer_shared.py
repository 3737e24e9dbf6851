"""A stream's batch encoded once for all its viewers (region/broadcast.py): the frame bytes, the
batch's chain and visibility, when a writer and a session take it whole and when they fall back
to the one-by-one path, and the fanout's flush per tick."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from typing import Any, cast

from chorus.config import Limits
from chorus.model import Comment
from region.broadcast import Prepared, StreamBatch, flush_at, websocket_text_frame
from region.fanout import Fanout
from region.log import Entry
from region.protocol import Comments, Pong, encode
from region.replay import Replayer
from region.session import Position, Session, State
from region.writer import SharedTransport, Writer
from tests.unit.fake_transport import WAIT_S, FakeTransport
from tests.unit.memory_log import MemoryLog, MemoryReplayCache, comment


def chain(first: int, last: int, *, shadow: bool = False) -> list[Entry]:
    return [Entry(seq=n, prev=n - 1, comment=comment("s", n, shadow=shadow))
            for n in range(first, last + 1)]


def batch_of(entries: Sequence[Entry], max_size: int = 500) -> StreamBatch:
    b = StreamBatch(max_size)
    for e in entries:
        assert b.add(e)
    return b


def cursor_of(seq: int) -> str:
    return f"us-east:e1:{seq}"


class SharingTransport(FakeTransport):
    """A `FakeTransport` that also takes prepared frames (as the WebSocket's does), unless
    told its socket is behind."""

    def __init__(self) -> None:
        super().__init__()
        self.behind = False
        self.prepared: list[Prepared] = []

    def send_prepared(self, frame: Prepared) -> bool:
        if self.behind or self.closed_with is not None:
            return False
        self.prepared.append(frame)
        self.writes.append([frame.frame])
        self._changed.set()
        return True


class Hiding:
    """Moderation that hides the given comment ids from everyone."""

    def __init__(self, *ids: str) -> None:
        self.ids = set(ids)

    def hidden(self, c: Comment, viewer: str | None = None) -> bool:
        return c.id in self.ids

    def pin(self, stream: str) -> Comment | None:
        return None

    def recent_retractions(self, stream: str) -> tuple[str, ...]:
        return ()


# -- the frame and the batch (pure) -----------------------------------------------------------


def read_frames(data: bytes) -> list[str]:
    """Text frames' payloads, read by RFC 6455 section 5.2 (unmasked: from a server)."""
    out, at = [], 0
    while at < len(data):
        first, second = data[at], data[at + 1]
        assert first == 0x81 and not second & 0x80    # FIN, text; no mask
        n, at = second & 0x7F, at + 2
        if n == 126:
            n, at = struct.unpack("!H", data[at:at + 2])[0], at + 2
        elif n == 127:
            n, at = struct.unpack("!Q", data[at:at + 8])[0], at + 8
        out.append(data[at:at + n].decode())
        at += n
    return out


def test_the_websocket_frame_is_what_a_websocket_reader_reads() -> None:
    texts = ["x" * n for n in (0, 5, 125, 126, 200, 65535, 65536, 70000)]
    data = b"".join(websocket_text_frame(t.encode()) for t in texts)
    assert read_frames(data) == texts
    assert websocket_text_frame(b"hi") == b"\x81\x02hi"   # unmasked: a server's frame


def test_a_batch_holds_entries_that_follow_each_other_up_to_its_size() -> None:
    a, b, c, d = chain(1, 4)
    batch = StreamBatch(max_size=3)
    assert batch.add(a) and batch.add(b)
    assert not batch.add(d)            # 3 is missing: flush first
    assert batch.add(c)
    assert not batch.add(d)            # full
    assert (batch.prev, batch.last, len(batch)) == (0, 3, 3)
    assert batch.comments == [a.comment, b.comment, c.comment]


def test_a_batch_is_encoded_once_as_the_writer_would_encode_it() -> None:
    batch = batch_of(chain(5, 7))
    p = batch.prepared(cursor_of, "log")
    assert p is batch.prepared(cursor_of, "log")
    assert batch.prepared(lambda seq: f"eu-west:e2:{seq}", "another log").frame.cursor == (
        "eu-west:e2:7")
    frame = Comments(items=tuple(batch.comments), cursor=cursor_of(7))
    assert p.frame == frame and p.text == encode(frame)
    assert p.websocket == websocket_text_frame(encode(frame).encode())


def test_a_batch_is_plain_unless_a_comment_is_shadowed_or_hidden() -> None:
    assert batch_of(chain(1, 3)).plain(None)
    assert not batch_of(chain(1, 2) + chain(3, 3, shadow=True)).plain(None)
    entries = chain(1, 3)
    hiding = Hiding(entries[1].comment.id)
    batch = batch_of(entries)
    assert batch.plain(Hiding()) and not batch.plain(hiding)


def test_a_quiet_stream_flushes_at_once_a_busy_one_a_tick_after_its_last_flush() -> None:
    assert flush_at(10.0, None, 0.025) == 10.0
    assert flush_at(10.0, 9.9, 0.025) == 10.0
    assert flush_at(10.0, 9.99, 0.025) == 9.99 + 0.025


# -- the writer and the session ---------------------------------------------------------------


def test_the_websocket_transport_is_a_shared_one() -> None:
    from region.live import WebSocketTransport
    request = cast(Any, type("Request", (), {"transport": None})())
    assert isinstance(WebSocketTransport(cast(Any, None), request), SharedTransport)
    assert not isinstance(FakeTransport(), SharedTransport)


async def test_an_idle_writer_writes_a_batch_whole_and_moves_its_cursor() -> None:
    t = SharingTransport()
    w = Writer(t, viewer="bob", cursor_of=cursor_of, max_queue=10, tick_s=0.01)
    batch = batch_of(chain(1, 3))
    assert w.write_shared(batch, "log")
    assert w.sent == 3 and t.comment_ids == [e.comment.id for e in batch.entries]


async def test_a_writer_with_something_queued_or_a_socket_behind_refuses_a_batch() -> None:
    t = SharingTransport()
    w = Writer(t, viewer="bob", cursor_of=cursor_of, max_queue=10, tick_s=0.01)
    w.push(Pong(ref="1"))                 # a control frame waits: it must go first
    assert not w.write_shared(batch_of(chain(1, 1)), "log")
    t2 = SharingTransport()
    t2.behind = True
    w2 = Writer(t2, viewer="bob", cursor_of=cursor_of, max_queue=10, tick_s=0.01)
    assert not w2.write_shared(batch_of(chain(1, 1)), "log")
    w3 = Writer(FakeTransport(), viewer="bob", cursor_of=cursor_of, max_queue=10, tick_s=0.01)
    assert not w3.write_shared(batch_of(chain(1, 1)), "log")
    assert w.sent == w2.sent == w3.sent == 0


LIMITS = Limits(send_queue_max=16, tick_ms=1, replay_window=50)


class Setup:
    def __init__(self, *, user: str = "bob", moderation: Hiding | None = None) -> None:
        self.log = MemoryLog()
        self.transport = SharingTransport()
        self.session = Session(
            stream="s", user=user, transport=self.transport, log=self.log,
            replayer=Replayer(self.log, MemoryReplayCache(50), 50),
            position=Position("us-east", self.log.epoch), limits=LIMITS,
            gateway="us-east.0", moderation=moderation)

    def post(self, n: int, *, user: str = "alice", shadow: bool = False) -> list[Entry]:
        return [self.log.publish("s", user=user, shadow=shadow) for _ in range(n)]


async def run_session(s: Setup) -> asyncio.Task[None]:
    task = asyncio.create_task(s.session.run())
    await s.session.start(None)
    assert s.session.state is State.LIVE
    # Its hello goes first: until it is written the writer is not idle.
    await s.transport.wait_for(lambda: bool(s.transport.writes), "hello written")
    return task


async def stop(s: Setup, task: asyncio.Task[None]) -> None:
    await s.session.close("test over")
    await asyncio.wait_for(task, WAIT_S)


async def test_a_live_session_at_the_batch_start_takes_it_as_one_shared_frame() -> None:
    s = Setup()
    task = await run_session(s)
    posted = s.post(3)
    assert s.session.offer_batch(batch_of(posted))
    assert s.session.cursor == s.session.sent == posted[-1].seq
    assert len(s.transport.prepared) == 1
    assert s.transport.comment_ids == [e.comment.id for e in posted]
    await stop(s, task)


async def test_a_session_behind_the_batch_reads_the_gap_then_gets_every_comment_once() -> None:
    s = Setup()
    task = await run_session(s)
    posted = s.post(5)
    assert not s.session.offer_batch(batch_of(posted[2:]))   # 1 and 2 never came live
    await s.transport.wait_for(lambda: s.session.sent >= posted[-1].seq, "all written")
    assert s.transport.comment_ids == [e.comment.id for e in posted]
    assert s.session.offer_batch(batch_of(s.post(1)))         # in step again: shared
    await stop(s, task)


async def test_a_batch_with_a_shadowed_comment_goes_one_by_one_and_hides_it() -> None:
    s = Setup()
    task = await run_session(s)
    posted = s.post(1) + s.post(1, user="troll", shadow=True) + s.post(1)
    assert not s.session.offer_batch(batch_of(posted))
    await s.transport.wait_for(lambda: s.session.sent >= posted[-1].seq, "all written")
    assert s.transport.comment_ids == [posted[0].comment.id, posted[2].comment.id]
    assert not s.transport.prepared
    await stop(s, task)


async def test_a_retracted_comment_in_a_batch_is_left_out() -> None:
    hiding = Hiding()
    s = Setup(moderation=hiding)
    task = await run_session(s)
    posted = s.post(3)
    hiding.ids.add(posted[1].comment.id)
    assert not s.session.offer_batch(batch_of(posted))
    await s.transport.wait_for(lambda: s.session.sent >= posted[-1].seq, "all written")
    assert s.transport.comment_ids == [posted[0].comment.id, posted[2].comment.id]
    await stop(s, task)


# -- the fanout's flush per tick --------------------------------------------------------------


class Recorded:
    """Metrics as the fanout uses them on the live path."""

    def __init__(self) -> None:
        self.written: list[tuple[int, int]] = []   # (comments, viewers) per shared write
        self.entries_delivered = self

    def inc(self) -> None:
        pass

    def comments_written(self, comments: Sequence[Comment], viewers: int = 1) -> None:
        self.written.append((len(comments), viewers))


class Member:
    """A session as the fanout sees it: it records the batches offered."""

    def __init__(self, stream: str = "s", *, in_step: bool = True) -> None:
        self.stream = stream
        self.user = "u"
        self.in_step = in_step
        self.batches: list[list[int]] = []
        self.got = asyncio.Event()

    def offer_batch(self, batch: StreamBatch) -> bool:
        self.batches.append([e.seq for e in batch.entries])
        self.got.set()
        return self.in_step

    async def wait_batches(self, n: int) -> None:
        async def until() -> None:
            while len(self.batches) < n:
                self.got.clear()
                await self.got.wait()
        await asyncio.wait_for(until(), WAIT_S)


def fanout(tick_ms: int) -> tuple[Fanout, Recorded]:
    unused = cast(Any, None)
    metrics = Recorded()
    f = Fanout(unused, region="us-east", gateway="us-east.0", limits=Limits(tick_ms=tick_ms),
               presence=unused, cache=unused, hooks=unused, metrics=cast(Any, metrics))
    return f, metrics


async def next_turn() -> None:
    await asyncio.sleep(0)   # lets the loop run what was scheduled with call_soon


async def test_a_quiet_stream_goes_out_at_the_next_turn_of_the_loop() -> None:
    f, metrics = fanout(tick_ms=60_000)
    members = [Member(), Member(in_step=False)]
    f.sessions["s"] = set(cast(Any, members))
    for e in chain(1, 2):
        f._batch(e)                         # both arrive in the same turn: one batch
    assert not members[0].batches
    await next_turn()
    assert [m.batches for m in members] == [[[1, 2]], [[1, 2]]]
    assert metrics.written == [(2, 1)]      # observed once, for the one shared viewer


async def test_a_busy_stream_waits_for_the_tick_and_a_break_in_the_chain_flushes() -> None:
    f, _ = fanout(tick_ms=60_000)
    member = Member()
    f.sessions["s"] = {cast(Any, member)}
    a, b, c, d = chain(1, 4)
    f._batch(a)
    await next_turn()
    f._batch(b)                             # within a tick of the last flush: it waits
    await next_turn()
    assert member.batches == [[1]]
    f._batch(d)                             # 3 is missing: 2 goes now, 4 waits
    assert member.batches == [[1], [2]]
    f._batch(c)                             # a late 3: 4 goes, 3 waits (the session sorts)
    assert member.batches == [[1], [2], [4]]
    f._drop_batch("s")                      # the last viewer left: nothing more goes out
    assert not f._flushes and not f._batches


async def test_a_busy_stream_flushes_a_tick_after_the_last_flush() -> None:
    f, _ = fanout(tick_ms=20)
    member = Member()
    f.sessions["s"] = {cast(Any, member)}
    a, b = chain(1, 2)
    f._batch(a)
    await next_turn()
    f._batch(b)
    await member.wait_batches(2)
    assert member.batches == [[1], [2]]


def test_a_shared_write_is_observed_once_per_viewer() -> None:
    from chorus.metrics import Metrics
    m = Metrics("us-east", "0")
    m.comments_written(batch_of(chain(1, 2)).comments, viewers=300)
    count = m.registry.get_sample_value("chorus_delivery_seconds_count", {
        "region": "us-east", "gateway": "0", "origin": "us-east"})
    assert count == 600


class Feeds:
    """Hot-stream feeds as the fanout asks them: from `hot` on, the stream is sampled and the
    feed takes its entries."""

    def __init__(self) -> None:
        self.hot = False
        self.taken: list[int] = []

    def tier(self, stream: str) -> str:
        return "sampled" if self.hot else "push"

    def take(self, entry: Entry) -> bool:
        if self.hot:
            self.taken.append(entry.seq)
        return self.hot


def message(entry: Entry) -> Any:
    """A re-published log entry as the live subscription hands it over."""
    return type("Msg", (), {"subject": "live", "data": entry.comment.encode(), "headers": {
        "Nats-Sequence": str(entry.seq), "Nats-Last-Sequence": str(entry.prev)}})()


async def test_a_stream_leaving_push_flushes_its_batch_before_the_feed_takes_over() -> None:
    f, _ = fanout(tick_ms=60_000)
    feeds = Feeds()
    f.feeds = cast(Any, feeds)
    member = Member()
    f.sessions["s"] = {cast(Any, member)}
    a, b, c = chain(1, 3)
    await f._on_live(message(a))
    await next_turn()
    await f._on_live(message(b))            # waits for the tick
    feeds.hot = True
    await f._on_live(message(c))            # the feed's first: 2 must be out before it
    assert member.batches == [[1], [2]] and feeds.taken == [3]


class Socket:
    """An asyncio transport as `send_prepared` sees it."""

    def __init__(self, buffered: int = 0, closing: bool = False) -> None:
        self.buffered = buffered
        self.closing = closing
        self.written: list[bytes] = []

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def write(self, data: bytes) -> None:
        self.written.append(data)


def test_the_websocket_writes_a_prepared_frame_unless_closing_or_behind() -> None:
    from region.live import SHARED_WRITE_MAX, WebSocketTransport

    def transport(socket: Socket, ws_closed: bool = False) -> WebSocketTransport:
        ws = cast(Any, type("Ws", (), {"closed": ws_closed})())
        return WebSocketTransport(ws, cast(Any, type("Request", (), {"transport": socket})()))

    frame = batch_of(chain(1, 2)).prepared(cursor_of, "log")
    ok = Socket(buffered=SHARED_WRITE_MAX - 1)
    assert transport(ok).send_prepared(frame) and ok.written == [frame.websocket]
    for socket, closed in ((Socket(buffered=SHARED_WRITE_MAX), False),
                           (Socket(closing=True), False), (Socket(), True)):
        assert not transport(socket, closed).send_prepared(frame)
        assert not socket.written
