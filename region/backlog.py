"""Backlog gauges: how far behind the region's durable consumers are, sampled for /metrics.

The outbox towards each other region and the archive persister are durable consumers of the
region's log (each with a twin on every hot partition of it: a probe sums them, see
`global_.outbox.outbox_depth` and `region.persister.lag`); how many comments each still
holds is a question to JetStream, which a scrape cannot wait on. `BacklogGauges` asks every
`INTERVAL_S` and sets ``chorus_outbox_depth{dest}`` and ``chorus_archive_lag``; an unknown
depth (JetStream not answering, a consumer not created yet) is NaN, so an alert compares
nothing rather than a stale number. Every gateway of a
region samples the same consumers: dashboards and alerts take the maximum over gateways.

The probes are handed in by the composition root (region/compose.py), so that this module
knows neither the global plane nor the consumers' names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from chorus.metrics import Metrics

INTERVAL_S = 5.0   # between samples; each probe is bounded by it too

Probe = Callable[[], Awaitable[int | None]]


class BacklogGauges:
    """``outbox_depth(dest)`` probes one outbox; ``archive_lag`` the persister's backlog
    (None: this gateway runs no archive, the gauge stays NaN)."""

    def __init__(self, metrics: Metrics, *, dests: Sequence[str],
                 outbox_depth: Callable[[str], Awaitable[int | None]],
                 archive_lag: Probe | None, interval_s: float = INTERVAL_S) -> None:
        self.metrics = metrics
        self.dests = tuple(dests)
        self.outbox_depth = outbox_depth
        self.archive_lag = archive_lag
        self.interval_s = interval_s

    async def _bounded(self, probe: Awaitable[int | None]) -> int | None:
        try:
            return await asyncio.wait_for(probe, self.interval_s)
        except TimeoutError:
            return None

    async def sample(self) -> None:
        """One round of probes, all at once; sets every gauge."""
        depths = await asyncio.gather(*(self._bounded(self.outbox_depth(d))
                                        for d in self.dests))
        for dest, depth in zip(self.dests, depths, strict=True):
            self.metrics.outbox_depth(dest, depth)
        lag = await self._bounded(self.archive_lag()) if self.archive_lag else None
        self.metrics.archive_lag(lag)

    async def run(self) -> None:
        """Samples until cancelled (a background loop of the gateway)."""
        while True:
            await self.sample()
            await asyncio.sleep(self.interval_s)
