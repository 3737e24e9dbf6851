"""The collector's pauses are timed per generation, and a long full collection is logged once
per interval, by the loop."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest

from region.gcwatch import LONG_PAUSE_S, GcWatch


def test_every_collection_is_timed_by_generation() -> None:
    heard: list[tuple[int, float]] = []
    watch = GcWatch(lambda g, s: heard.append((g, s)))
    watch.start()
    watch.start()                       # once, however often started
    try:
        gc.collect(1)
        gc.collect(2)
    finally:
        watch.stop()
        watch.stop()
    assert [g for g, _ in heard][-2:] == [1, 2]
    assert all(s >= 0 for _, s in heard)
    count = len(heard)
    gc.collect()
    assert len(heard) == count          # stopped: it hears no more


async def test_a_long_full_collection_is_logged_once_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    watch = GcWatch(lambda g, s: None, clock=lambda: now[0])
    info: dict[str, Any] = {"generation": 2}
    for _ in range(3):                  # three long pauses within one interval
        watch._callback("start", info)
        now[0] += LONG_PAUSE_S * 2
        watch._callback("stop", info)
    watch._callback("start", {"generation": 0})
    now[0] += 1.0                       # a long young collection is not the heap's
    watch._callback("stop", {"generation": 0})
    with caplog.at_level(logging.WARNING, logger="region.gcwatch"):
        await asyncio.sleep(0)          # the line is written by the loop
    lines = [r.getMessage() for r in caplog.records if r.name == "region.gcwatch"]
    assert len(lines) == 1 and "paused this gateway 100 ms" in lines[0]


def test_pauses_are_exported_per_generation() -> None:
    from chorus.metrics import Metrics
    m = Metrics("us-east", "0")
    m.gc_pause(2, 0.07)
    m.gc_pause(0, 0.001)
    labels = {"region": "us-east", "gateway": "0"}
    get = m.registry.get_sample_value
    assert get("chorus_gc_pause_seconds_count", {**labels, "generation": "2"}) == 1
    assert get("chorus_gc_pause_seconds_bucket", {**labels, "generation": "2", "le": "0.05"}) == 0
    assert get("chorus_gc_pause_seconds_count", {**labels, "generation": "0"}) == 1
