"""Region registry: every region's health, as its gateways announce it over the hub.

Each gateway runs a `Registry`: it publishes its `Heartbeat` (global_/hub.py) on
``registry_subject(region)`` every ``limits.health_interval_s``, listens to every region's on
``REGISTRY_ALL``, and observes its own at once (its view of itself does not wait for the
hub). A region is healthy while one of its gateways has announced itself healthy within
`STALE_AFTER` heartbeat intervals. The bookkeeping (`RegistryState`) is pure.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.client import Client as Nats
from nats.aio.subscription import Subscription

from chorus.drivers import driver_errors
from chorus.metrics import Metrics
from chorus.names import REGISTRY_ALL, registry_subject
from global_.hub import Heartbeat, Rejections, received, subscribed

STALE_AFTER = 3  # heartbeat intervals without news before a region counts as down
MAX_GATEWAYS = 10_000  # (region, gateway) pairs remembered; beyond, the stalest are forgotten


@dataclass(frozen=True)
class RegionHealth:
    name: str
    healthy: bool
    last_seen_s: float | None  # seconds since the last heartbeat; None: never heard of
    gateways_healthy: int


@dataclass
class RegistryState:
    """Last heartbeat per (region, gateway), by the receiver's monotonic clock (seconds)."""

    interval_s: float
    seen: dict[tuple[str, str], tuple[float, bool]] = field(default_factory=dict)
    max_gateways: int = MAX_GATEWAYS

    def observe(self, beat: Heartbeat, now: float) -> None:
        key = (beat.region, beat.gateway)
        if key not in self.seen and len(self.seen) >= self.max_gateways:
            # Gateways that moved (new URLs) leave old keys behind: forget the stalest.
            del self.seen[min(self.seen, key=lambda k: self.seen[k][0])]
        self.seen[key] = (now, beat.healthy)

    def urls(self, region: str, now: float) -> tuple[str, ...]:
        """The URLs the region's gateways announced lately (a deployed region announces its
        load balancer's), sorted; empty when none did."""
        fresh_after = now - STALE_AFTER * self.interval_s
        return tuple(sorted({gateway for (name, gateway), (at, _) in self.seen.items()
                             if name == region and at >= fresh_after}))

    def health(self, region: str, now: float) -> RegionHealth:
        fresh_after = now - STALE_AFTER * self.interval_s
        last: float | None = None
        healthy = 0
        for (name, _gateway), (at, ok) in self.seen.items():
            if name != region:
                continue
            last = at if last is None else max(last, at)
            if ok and at >= fresh_after:
                healthy += 1
        return RegionHealth(name=region, healthy=healthy > 0,
                            last_seen_s=None if last is None else round(now - last, 3),
                            gateways_healthy=healthy)


class Registry:
    """This gateway's heartbeats out, every region's in. ``url()`` is what the gateway calls
    itself (its public URL), ``healthy()`` whether its dependencies answer; ``state`` is the
    registry as this gateway last heard it. Run `run` as an owned task."""

    def __init__(self, nc: Nats, *, region: str, interval_s: float, url: Callable[[], str],
                 healthy: Callable[[], Awaitable[bool]], metrics: Metrics) -> None:
        self.nc = nc
        self.region = region
        self.interval_s = interval_s
        self.url = url
        self.healthy = healthy
        self.state = RegistryState(interval_s=interval_s)
        self.rejections = Rejections(metrics)

    async def run(self) -> None:
        async with subscribed(self.nc, REGISTRY_ALL) as sub, asyncio.TaskGroup() as tg:
            tg.create_task(self._listen(sub), name="registry listen")
            tg.create_task(self._beat(), name="registry beat")

    async def _listen(self, sub: Subscription) -> None:
        async for beat in received(sub, Heartbeat.decode, self.rejections):
            self.state.observe(beat, time.monotonic())

    async def _beat(self) -> None:
        subject = registry_subject(self.region)
        while True:
            beat = Heartbeat(region=self.region, gateway=self.url(),
                             healthy=await self.healthy(), ts_ms=int(time.time() * 1000))
            if self.nc.is_connected:
                # A beat lost to a dropped connection is replaced by the next one.
                with contextlib.suppress(*driver_errors("nats")):
                    await self.nc.publish(subject, beat.encode())
            self.state.observe(beat, time.monotonic())
            await asyncio.sleep(self.interval_s)  # the heartbeat's period, not a sync
