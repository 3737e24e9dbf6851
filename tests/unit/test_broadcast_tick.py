"""A busy stream's tick grows with its viewers on a gateway (region/broadcast.py
`stream_tick`), so that its shared writes per second stay bounded; a quiet stream still goes
out at once. And what a shared write costs per viewer besides the write: sessions at one
place in a log find the batch's frame by identity."""

from __future__ import annotations

from typing import Any, cast

import pytest

from region.broadcast import SHARED_WRITES_PER_S, flush_at, stream_tick
from region.session import Position, _shared_position
from tests.unit.test_writer_shared import Member, batch_of, chain, fanout, next_turn


def test_the_tick_is_the_configured_one_until_the_writes_would_pass_the_bound() -> None:
    assert stream_tick(0.025, 1) == 0.025
    assert stream_tick(0.025, 200, writes_per_s=20_000) == 0.025
    assert stream_tick(0.025, 500, writes_per_s=20_000) == 0.025
    assert stream_tick(0.025, 1000, writes_per_s=20_000) == pytest.approx(0.05)
    assert stream_tick(0.025, 4000, writes_per_s=20_000) == pytest.approx(0.2)
    # Whatever the viewers: at most the bound's writes a second, one per viewer per tick.
    for viewers in (1, 10, 999, 5000, 50_000):
        assert viewers / stream_tick(0.025, viewers) <= max(SHARED_WRITES_PER_S,
                                                            viewers / 0.025)


def test_a_quiet_stream_with_many_viewers_still_goes_out_at_once() -> None:
    tick = stream_tick(0.025, 1000, writes_per_s=20_000)
    assert flush_at(10.0, 9.9, tick) == 10.0
    assert flush_at(10.0, 9.98, tick) == pytest.approx(9.98 + 0.05)


async def test_the_fanout_waits_the_longer_tick_of_a_stream_with_many_viewers() -> None:
    f, _ = fanout(tick_ms=10)
    viewers = 2 * SHARED_WRITES_PER_S // 100   # twice what a 10 ms tick may write to
    members = [Member() for _ in range(viewers)]
    f.sessions["s"] = set(cast(Any, members))
    a, b = chain(1, 2)
    f._batch(a)
    await next_turn()
    f._batch(b)
    # The next flush is scheduled one stream tick (20 ms, not 10) after the last one.
    assert f._flushes["s"].when() == pytest.approx(f._flushed_at["s"] + 0.02)
    await members[0].wait_batches(2)
    assert all(m.batches == [[1], [2]] for m in members)


def test_sessions_at_one_place_in_a_log_share_one_position_and_so_one_cached_frame() -> None:
    a = _shared_position(Position("us-east", "e1"))
    b = _shared_position(Position("us-east", "e1"))
    assert a is b                          # found by identity: no comparison per viewer
    other = _shared_position(Position("us-east", "e2"))
    assert other is not a and other == Position("us-east", "e2")
    batch = batch_of(chain(1, 2))
    assert batch.prepared(str, a) is batch.prepared(str, b)
