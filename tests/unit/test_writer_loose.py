"""The writer and a hot partition's entries (region/log.py `Entry.part` > 0): written in their
place, but their sequences, which are a partition's, are never a cursor the client is given."""

from __future__ import annotations

from collections.abc import Sequence

from chorus.model import Comment
from region.log import Entry
from region.protocol import Comments
from region.writer import Writer
from tests.unit.fake_transport import FakeTransport
from tests.unit.memory_log import comment
from tests.unit.test_writer import cursor_of, entries, running, writer


def loose(n: int, seq: int) -> Entry:
    return Entry(seq=seq, prev=seq - 1, comment=comment("s", 70_000 + n), part=3)


async def test_a_frame_with_partition_entries_carries_the_chains_cursor() -> None:
    t = FakeTransport()
    w = writer(t)
    a, b, c = entries(1, 3)
    for entry in (a, loose(1, 9_999), b, loose(2, 2), c, loose(3, 50_000)):
        w.enqueue(entry)
    async with running(w):
        await t.wait_for(lambda: bool(t.of_type(Comments)), "the frame")
        [frame] = t.of_type(Comments)
        assert len(frame.items) == 6
        assert frame.cursor == cursor_of(3)
        assert w.sent == 3


async def test_a_frame_of_partition_entries_alone_keeps_the_cursor_where_it_was() -> None:
    t = FakeTransport()
    w = writer(t)
    w.rewind(41)                          # the client resumed at 41
    w.enqueue(loose(1, 9_999))
    async with running(w):
        await t.wait_for(lambda: bool(t.of_type(Comments)), "the frame")
        [frame] = t.of_type(Comments)
        assert frame.cursor == cursor_of(41)
        assert w.sent == 41


async def test_a_partition_entry_is_live_even_at_a_replayed_entrys_sequence() -> None:
    written: list[Comment] = []

    def on_written(comments: Sequence[Comment]) -> None:
        written.extend(comments)

    t = FakeTransport()
    w = Writer(t, viewer="bob", cursor_of=cursor_of, max_queue=100, tick_s=0.01,
               on_written=on_written)
    [replayed] = entries(7, 7)
    same_seq = loose(1, 7)
    w.enqueue(same_seq)
    w.enqueue(replayed, live=False)       # read back from the log after it
    async with running(w):
        await t.wait_for(lambda: w.sent == 7, "both comments")
    assert written == [same_seq.comment]
