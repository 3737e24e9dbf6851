"""The tier agreement, run in every gateway: every region delivers a warm stream in the tier
one region (the leader) chose. The rule is region/tiers.py's; this module is its I/O.

Every `NOTICE_PERIOD_S` a gateway looks at the streams it has viewers of (the fanout, as
region/tiers.py's `TierHost`). For each warm one it asks the region's `TierStore` for the
stream's lease; where it keeps the stream it takes a reading, read globally as a comment's
forward reads presence: the region's own viewers from its presence index, every other
region's from the presence directory (global_/presence.py: cached, refreshed ahead, dropped
on a presence change), and the comment rate from its own live feed, which carries every
region's comments (they are forwarded to where the stream is watched). It decides the tier
(`region.tiers.decide`: the leader applies the hysteresis, the others repeat the leader) and
publishes a `TierNotice` over the hub. Every gateway of every region listens to the notices,
keeps them in its `TierBoard`, and delivers each stream it follows in its leader's tier as
soon as a notice changes it: a decision reaches every region within a link's latency, and at
the latest with the next round (half a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client as Nats
from nats.aio.subscription import Subscription

from chorus.config import Tiers
from chorus.drivers import driver_errors
from chorus.metrics import Metrics
from chorus.names import TIER_NOTICES
from global_.hub import Rejections, TierNotice, received, subscribed
from global_.presence import PresenceDirectory
from region.presence import Presence, PresenceUnavailable
from region.tiers import (
    NOTICE_PERIOD_S,
    Notice,
    Reading,
    TierBoard,
    TierHost,
    TierStore,
    TierStoreUnavailable,
    decide,
    warm,
)

log = logging.getLogger(__name__)

READINGS_AT_ONCE = 50   # kept streams whose readings are taken at once in a round


class TierAgreement:
    """This gateway's part in the agreement. ``board`` is shared with the handlers (the tier
    ``GET /v1/streams/{stream}`` shows) and the ingest (the per-stream bucket per tier).
    Run `run` as an owned task."""

    def __init__(self, nc: Nats, *, region: str, gateway: str, tiers: Tiers,
                 board: TierBoard, store: TierStore, presence: Presence,
                 directory: PresenceDirectory, host: TierHost, metrics: Metrics,
                 rejections: Rejections, clock: Callable[[], float] = time.monotonic) -> None:
        self.nc = nc
        self.region = region
        self.gateway = gateway
        self.tiers = tiers
        self.board = board
        self.store = store
        self.presence = presence
        self.directory = directory
        self.host = host
        self.metrics = metrics
        self.rejections = rejections
        self.clock = clock
        self.kept: set[str] = set()
        self._own_viewers: dict[str, int] = {}   # the region's last count, when Redis fails
        # Each other region's last answer per stream, for a round in which it does not answer.
        self._heard: dict[str, dict[str, int]] = {}

    async def run(self) -> None:
        async with subscribed(self.nc, TIER_NOTICES) as sub, asyncio.TaskGroup() as tg:
            tg.create_task(self._listen(sub), name="tier notices")
            tg.create_task(self._rounds(), name="tier rounds")

    async def _listen(self, sub: Subscription) -> None:
        async for notice in received(sub, lambda data: TierNotice.decode(data).notice(),
                                     self.rejections):
            self.metrics.tier_notice("received")
            if notice.region == self.region and notice.stream in self.kept:
                continue  # our own, observed when it was sent
            now = self.clock()
            self.board.observe(notice, now)
            # At once, not at the next round: the leader's decision reaches every viewer here
            # within the link's latency. (Nothing happens for a stream not followed here.)
            self.host.apply_tier(notice.stream, self.board.tier(notice.stream, now),
                                 keeper=notice.stream in self.kept, reading=None)

    async def _rounds(self) -> None:
        while True:
            await self.round()
            await asyncio.sleep(NOTICE_PERIOD_S)  # the agreement's period, not a sync

    async def round(self) -> None:
        """One round: leases, readings, decisions and notices for the kept streams; every
        followed stream delivered in its leader's tier."""
        followed = self.host.followed()
        now = self.clock()
        warm_streams = [s for s, rate in followed.items()
                        if warm(rate, self.board.tier(s, now), self.tiers)]
        try:
            self.kept = await self.store.keep(self.gateway, warm_streams)
        except TierStoreUnavailable as exc:
            log.warning("tier leases not renewed (this gateway keeps no stream): %s", exc)
            self.kept = set()
        readings: dict[str, Reading] = {}
        kept = sorted(self.kept)
        for i in range(0, len(kept), READINGS_AT_ONCE):
            chunk = kept[i:i + READINGS_AT_ONCE]
            got = await asyncio.gather(*(self._reading(s, followed.get(s, 0.0)) for s in chunk))
            readings.update(zip(chunk, got, strict=True))
        now = self.clock()
        for stream, reading in readings.items():
            tier = decide(self.board, stream, reading, self.tiers, now)
            notice = Notice(region=self.region, stream=stream, tier=tier,
                            viewers=reading.viewers, rate_per_s=round(reading.rate_per_s))
            self.board.observe(notice, now)
            await self._publish(notice)
        for stream in followed:
            self.host.apply_tier(stream, self.board.tier(stream, now),
                                 keeper=stream in self.kept, reading=readings.get(stream))

    async def _reading(self, stream: str, rate_per_s: float) -> Reading:
        """The stream's viewers in every region (read globally) and its comment rate."""
        try:
            own = await self.presence.count(stream)
            self._own_viewers[stream] = own
        except PresenceUnavailable:
            own = self._own_viewers.get(stream, 0)
        regions = self.directory.regions
        answers = await asyncio.gather(*(self.directory.viewers(stream, r) for r in regions))
        # A region that does not answer (a slow or cut link; an unanswered question is cached
        # as such for a while) counts what it answered last: a forward counts it as watching,
        # which fails safe there; here the safe side is the tier the stream is in, and
        # counting it as none would take a stream out of its tier whenever a link is slow.
        heard = self._heard.setdefault(stream, {})
        others = 0
        for region, answer in zip(regions, answers, strict=True):
            if answer.viewers is not None:
                heard[region] = answer.viewers
            others += heard.get(region, 0)
        if len(self._own_viewers) > 4 * len(self.kept) + 100:
            self._own_viewers = {s: n for s, n in self._own_viewers.items() if s in self.kept}
        if len(self._heard) > 4 * len(self.kept) + 100:
            self._heard = {s: n for s, n in self._heard.items() if s in self.kept}
        return Reading(viewers=own + others, rate_per_s=rate_per_s)

    async def _publish(self, notice: Notice) -> None:
        with contextlib.suppress(*driver_errors("nats")):
            # A notice lost to a dropped connection is replaced by the next round's.
            await self.nc.publish(TIER_NOTICES, TierNotice.of(notice).encode())
            self.metrics.tier_notice("sent")
