"""Backlog gauges: each outbox's depth and the archive's lag, sampled with bounded probes."""

from __future__ import annotations

import asyncio
import math

from chorus.metrics import Metrics
from region.backlog import BacklogGauges


def gauges() -> Metrics:
    m = Metrics("us-east", "0")
    m.declare_regions(("us-east", "eu-west", "ap-south"))
    return m


def value(m: Metrics, name: str, **labels: str) -> float:
    got = m.registry.get_sample_value(name, {"region": "us-east", "gateway": "0", **labels})
    assert got is not None
    return got


async def test_each_destination_and_the_archive_get_their_own_gauge() -> None:
    m = gauges()
    depths = {"eu-west": 7, "ap-south": None}

    async def depth(dest: str) -> int | None:
        return depths[dest]

    async def lag() -> int | None:
        return 42

    await BacklogGauges(m, dests=("eu-west", "ap-south"), outbox_depth=depth,
                        archive_lag=lag).sample()
    assert value(m, "chorus_outbox_depth", dest="eu-west") == 7
    assert math.isnan(value(m, "chorus_outbox_depth", dest="ap-south"))
    assert value(m, "chorus_archive_lag") == 42


async def test_a_probe_that_hangs_is_unknown_after_one_interval() -> None:
    m = gauges()
    never = asyncio.Event()

    async def depth(dest: str) -> int | None:
        await never.wait()
        return 1

    await asyncio.wait_for(BacklogGauges(m, dests=("eu-west",), outbox_depth=depth,
                                         archive_lag=None, interval_s=0.05).sample(), 5)
    assert math.isnan(value(m, "chorus_outbox_depth", dest="eu-west"))
    # Without an archive the lag stays unknown rather than zero.
    assert math.isnan(value(m, "chorus_archive_lag"))
