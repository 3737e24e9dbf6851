"""The writer when the gateway, not the peer, is behind (region/writer.py
`_gateway_is_behind`): a reading viewer whose writer waits for the CPU is not cut at
``max_queue``, only past `BEHIND_FACTOR` times it, and gets everything in order once the
writer runs; a write stuck on its peer still cuts at ``max_queue``."""

from __future__ import annotations

import asyncio

from region.writer import BEHIND_FACTOR, BEHIND_TICKS, SLOW_CONSUMER, Writer
from tests.unit.fake_transport import FakeTransport
from tests.unit.test_writer import entries, running, writer, written_up_to

TICK_S = 0.001


async def a_writer_waiting_for_the_cpu(t: FakeTransport, max_queue: int) -> Writer:
    """A writer woken by a first comment whose loop has not run for more than
    `BEHIND_TICKS` ticks (it is not started: as if the event loop were busy elsewhere)."""
    w = writer(t, max_queue=max_queue, tick_s=TICK_S)
    w.enqueue(entries(1, 1)[0])
    # The condition itself: time passes while the writer is not scheduled.
    await asyncio.sleep(3 * BEHIND_TICKS * TICK_S)
    return w


async def test_a_reading_viewer_of_a_busy_gateway_is_not_cut_at_max_queue() -> None:
    t = FakeTransport()
    w = await a_writer_waiting_for_the_cpu(t, max_queue=10)
    for e in entries(2, 30):    # three times max_queue
        w.enqueue(e)
    assert not w.closed
    async with running(w):       # the gateway gets to it: everything, in order
        await written_up_to(t, w, 30)
    assert t.comment_ids == [e.comment.id for e in entries(1, 30)]


async def test_a_busy_gateway_still_bounds_the_queue() -> None:
    t = FakeTransport()
    w = await a_writer_waiting_for_the_cpu(t, max_queue=10)
    for e in entries(2, BEHIND_FACTOR * 10):
        w.enqueue(e)
    assert not w.closed
    w.enqueue(entries(BEHIND_FACTOR * 10 + 1, BEHIND_FACTOR * 10 + 1)[0])
    assert w.closed and w.close_reason == SLOW_CONSUMER
    async with running(w):
        pass


async def test_a_write_stuck_on_the_peer_cuts_at_max_queue_however_long_ago_it_woke() -> None:
    t = FakeTransport()
    w = writer(t, max_queue=5, tick_s=TICK_S)
    async with running(w):
        first, *rest = entries(1, 8)
        w.enqueue(first)
        await written_up_to(t, w, 1)
        t.stop_reading()
        w.enqueue(rest[0])
        await t.wait_for(lambda: t.blocked_sends == 1, "a write stuck on the peer")
        w.enqueue(rest[1])
        await asyncio.sleep(3 * BEHIND_TICKS * TICK_S)  # woken long ago, but sending
        for e in rest[2:]:
            w.enqueue(e)
        assert w.closed and w.close_reason == SLOW_CONSUMER
