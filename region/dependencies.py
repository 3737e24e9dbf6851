"""Whether the gateway's dependencies answer, watched in the background for health checks.

``/healthz`` is asked by load balancers, DNS health checks, the region registry and every
client choosing a region: during a reconnect storm, thousands of times. It used to ping Redis
with a one-second timeout on each request; on an event loop busy with the storm the pong was
read late, the check answered 503 while the gateway served, and a load balancer that believed
it would have moved the storm onto the next gateway (a cascade). Now one loop per gateway
pings Redis every `INTERVAL_S`, allowing `PING_TIMEOUT_S`, and Redis counts as down only when
no ping succeeded for `DOWN_AFTER_S`: a check reads that verdict without any I/O. NATS is the
client's own connection state, which costs nothing to read.

The period is what the verdict needs, not more: four pings fit in `DOWN_AFTER_S`, so one lost
or late pong never makes Redis "down", and a Redis that is back counts as up within one
period. Every gateway pings, idle or not: it was once a second, a wake-up and a round trip
per second per gateway for a verdict that changes only after ten.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.asyncio as aioredis
from nats.aio.client import Client as Nats

from chorus.drivers import driver_errors

INTERVAL_S = 2.5       # one ping per gateway per 2.5 s, whatever asks /healthz
PING_TIMEOUT_S = 3.0   # a ping may wait this long on a busy loop before it counts as failed
DOWN_AFTER_S = 10.0    # Redis is down when no ping succeeded for this long


@dataclass
class Freshness:
    """When a dependency last answered, and the verdict drawn from it. Pure: times are
    seconds of one monotonic clock."""

    down_after_s: float = DOWN_AFTER_S
    last_ok: float | None = None   # None: it never answered
    answered_once: bool = False    # a first ping has finished (answered or not)

    def observe(self, ok: bool, now: float) -> None:
        self.answered_once = True
        if ok:
            self.last_ok = now

    def up(self, now: float) -> bool | None:
        """True: it answered within ``down_after_s``; False: it did not (or never did).
        None: no ping has finished yet (just started), so the caller asks directly."""
        if not self.answered_once:
            return None
        return self.last_ok is not None and now - self.last_ok <= self.down_after_s


class DependencyWatch:
    """Run `run` as an owned background task; `state` is the health verdict, without I/O."""

    def __init__(self, nc: Nats, redis: aioredis.Redis, *, interval_s: float = INTERVAL_S,
                 timeout_s: float = PING_TIMEOUT_S, down_after_s: float = DOWN_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.nc = nc
        self.redis = redis
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.redis_freshness = Freshness(down_after_s=down_after_s)

    async def run(self) -> None:
        while True:
            self.redis_freshness.observe(await self._ping(), self.clock())
            await asyncio.sleep(self.interval_s)  # the watch's period, not a sync

    async def _ping(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), self.timeout_s))
        except driver_errors("redis"):
            return False

    async def state(self) -> tuple[bool, bool]:
        """(NATS connected, Redis answering). Reads the watch's verdict; only before its
        first ping has finished does it ping Redis itself."""
        redis_up = self.redis_freshness.up(self.clock())
        if redis_up is None:
            redis_up = await self._ping()
        return self.nc.is_connected, redis_up

    async def healthy(self) -> bool:
        return all(await self.state())
