"""A region's part in the global plane, run inside each of its gateway processes.

`GlobalPlane` puts together, for one gateway:

- the presence directory, which asks other regions for their viewers and listens to every
  region's presence changes, and this region's presence responder (global_/presence.py);
- this region's answers to other regions' requests for recent comments, and the late-join
  bootstrap when this region gets its first viewer of a stream (global_/bootstrap.py);
- one outbox per other region and log partition (global_/outbox.py);
- reactions (global_/reactions.py): one reaction outbox per other region, this region's
  answers about its reactions, and the questions to the others (`remote_reactions`); and the
  other regions' viewer counts (global_/counts.py, `counts`).

It is the fanout's `ViewerHooks` (region/fanout.py): the fanout tells it when this gateway
gets its first viewer of a stream and loses its last. It sees the region only through its
interfaces (region/log.py, region/presence.py); region/compose.py builds it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from nats.aio.client import Client as Nats

from chorus.config import Config, Region
from chorus.metrics import Metrics
from global_.bootstrap import Bootstrap, RecentResponder
from global_.counts import GlobalCounts
from global_.hub import Rejections
from global_.outbox import Outbox, outboxes
from global_.outbox_share import Share
from global_.presence import PresenceDirectory, PresenceResponder
from global_.reactions import ReactionOutbox, ReactionResponder, RegionReactions
from global_.tasks import OwnedTasks
from region.log import CommentLog
from region.presence import Presence
from region.reactions import ReactionLog

log = logging.getLogger(__name__)

# Late-join bootstraps running at once. Each lasts a few seconds, or up to
# bootstrap_max_age_s while a region does not answer; beyond the limit a first viewer's
# stream is not bootstrapped (logged): its viewers get what is posted from then on.
MAX_BOOTSTRAPS = 1000


class GlobalPlane:
    def __init__(self, nc: Nats, *, config: Config, region: Region, log: CommentLog,
                 presence: Presence, metrics: Metrics,
                 reactions: ReactionLog | None = None,
                 gateways: Callable[[], int] | None = None) -> None:
        self.region = region
        self.metrics = metrics
        self.others = tuple(r.name for r in config.regions if r.name != region.name)
        limits = config.limits
        rejections = Rejections(metrics)
        self.directory = PresenceDirectory(nc, regions=self.others,
                                           cache_ms=limits.presence_cache_ms,
                                           timeout_ms=limits.presence_query_timeout_ms,
                                           metrics=metrics, rejections=rejections)
        self.responder = PresenceResponder(nc, region=region.name, presence=presence,
                                           rejections=rejections)
        self.bootstrap = Bootstrap(nc, region=region.name, others=self.others, log=log,
                                   limits=limits, metrics=metrics, rejections=rejections)
        self.recent = RecentResponder(nc, region=region.name, log=log, rejections=rejections)
        # Per destination, the chained log's outbox and one per hot partition; their leases
        # spread over the region's gateways (``gateways``: how many there are; None: not
        # spread, a gateway keeps every lease it takes).
        share = Share(gateways) if gateways is not None else None
        self.outboxes: tuple[Outbox, ...] = tuple(
            outbox for dest in self.others
            for outbox in outboxes(nc, region=region.name, dest=dest,
                                   partitions=config.tiers.hot_log_partitions,
                                   directory=self.directory, metrics=metrics, share=share))
        self._bootstraps = OwnedTasks(MAX_BOOTSTRAPS)
        # Reactions and counts (``reactions``: the region's reaction log; None: not run).
        self.counts = GlobalCounts(self.directory, self.others)
        self.remote_reactions = RegionReactions(nc, regions=self.others, rejections=rejections)
        self.reaction_outboxes: tuple[ReactionOutbox, ...] = ()
        self.reaction_responder: ReactionResponder | None = None
        if reactions is not None:
            self.reaction_outboxes = tuple(
                ReactionOutbox(nc, region=region.name, dest=dest, directory=self.directory,
                               metrics=metrics) for dest in self.others)
            self.reaction_responder = ReactionResponder(nc, region=region.name, log=reactions,
                                                        rejections=rejections)

    async def run(self) -> None:
        """Runs every part until cancelled; the first that fails ends it (and its gateway)."""
        self.metrics.declare_destinations(self.others)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.directory.run(), name="presence directory")
                tg.create_task(self.responder.run(), name="presence responder")
                tg.create_task(self.recent.run(), name="recent responder")
                for outbox in self.outboxes:
                    tg.create_task(outbox.run(), name=outbox.name)
                tg.create_task(self._bootstraps.watch(), name="bootstraps")
                for rx_outbox in self.reaction_outboxes:
                    tg.create_task(rx_outbox.run(), name=rx_outbox.name)
                if self.reaction_responder is not None:
                    tg.create_task(self.reaction_responder.run(), name="reaction responder")
        finally:
            await self._bootstraps.close()

    # -- this gateway's viewers come and go (region/fanout.py's ViewerHooks) ------------------

    async def first_local_viewer(self, stream: str, region_had_viewers: bool) -> None:
        """This gateway got its first viewer of ``stream``, after its presence was reported.
        Announces it; bootstraps the stream if the region had no viewers of it."""
        await self.responder.announce(stream, 1)
        if region_had_viewers:
            return
        if not self._bootstraps.spawn(self.bootstrap.late_join(stream),
                                      name=f"bootstrap {stream}"):
            log.warning("bootstrap of %s not started: %d bootstraps are running (the limit) "
                        "or the plane has stopped", stream, len(self._bootstraps))

    async def last_local_viewer(self, stream: str) -> None:
        await self.responder.announce(stream, 0)
