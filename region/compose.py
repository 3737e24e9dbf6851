"""The composition root: the one place that builds a gateway's parts and wires them.

It is also the one module of region/ that imports global_: the cell's parts know the global
plane only through the interfaces they declare (region/fanout.py's `ViewerHooks`,
region/cell.py's `RegionDirectory`), and global_ sees the region only through its interfaces
(region/log.py, region/presence.py). Dependencies point one way::

    region/gateway.py (process) -> region/compose.py -> region/app.py -> region/* -> chorus/*
                                                     -> global_/*     -> region interfaces
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis.asyncio as aioredis
from nats.aio.client import Client as Nats

from chorus.config import Config, Region
from chorus.ids import IdGenerator
from chorus.metrics import Metrics
from chorus.model import Comment
from global_.hub import Rejections
from global_.moderation import ModerationReplica
from global_.outbox import outbox_depth
from global_.plane import GlobalPlane
from global_.priority import PriorityForwarder
from global_.registry import Registry, RegistryState
from global_.tiers import TierAgreement
from region.admission import Admission
from region.app import Background
from region.archive import Archive
from region.backlog import BacklogGauges
from region.cell import Cell, DirectoryEntry
from region.classifier_worker import ClassifierWorker
from region.dependencies import DependencyWatch
from region.deployment import GatewaySettings
from region.fanout import Fanout, ViewerHookChain
from region.ingest import Ingest
from region.log_jetstream import JetStreamLog
from region.moderation import ModerationState
from region.moderation_legacy import OldBans
from region.moderation_service import Moderation
from region.persister import lag as archive_lag
from region.persister import persisters
from region.presence_redis import RedisPresence
from region.reactions_emit import Emitter
from region.reactions_feed import ReactionFeed
from region.reactions_gateway import GatewayReactions
from region.reactions_ingest import ReactionIngest
from region.reactions_jetstream import JetStreamReactionLog
from region.reactions_redis import RedisReactionCounter
from region.replay import Replayer
from region.replay_redis import RedisReplayCache
from region.replies import Replies
from region.replies_feed import ReplyFeed
from region.replies_redis import RedisThreadIndex
from region.snapshot import SnapshotStore
from region.snapshot_redis import RedisSnapshotStore
from region.snapshot_s3 import S3SnapshotPublisher
from region.stage_nats import StageLink
from region.tiers import StreamBuckets, Tier, TierBoard
from region.tiers_feed import TierFeeds
from region.tiers_redis import RedisTierStore

# The design's target for a comment's delivery (docs/design.md): p99 under 50 ms in its own
# region, and under the link latency + 50 ms across regions.
DELIVERY_OBJECTIVE_MS = 50


class RegistryDirectory:
    """`RegionDirectory` over the registry: what this gateway last heard of every region."""

    def __init__(self, config: Config, state: RegistryState,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.state = state
        self.clock = clock

    def regions(self) -> list[DirectoryEntry]:
        now = self.clock()
        out = []
        for region in self.config.regions:
            health = self.state.health(region.name, now)
            out.append(DirectoryEntry(
                name=region.name,
                urls=tuple(self.state.urls(region.name, now) or region.gateway_urls),
                healthy=health.healthy, gateways_healthy=health.gateways_healthy,
                last_seen_s=health.last_seen_s, link_latency_ms=region.link.latency_ms))
        return out


def _archive(config: Config, region: Region) -> Archive | None:
    if not config.cassandra.enabled:
        return None
    # Imported here: a cluster without Cassandra never loads the driver.
    from region.archive_cassandra import CassandraArchive

    return CassandraArchive(config, region)  # connects on first use, not now


async def build(config: Config, settings: GatewaySettings, *, nc: Nats,
                redis: aioredis.Redis) -> tuple[Cell, list[Background]]:
    """Every part of one gateway of ``settings.region``, and the loops it must run."""
    region = config.region(settings.region)
    index = settings.node
    limits = config.limits
    gateway = f"{region.name}.{index}"
    metrics = Metrics(region.name, str(index))
    metrics.declare_destinations(tuple(r.name for r in config.regions
                                       if r.name != region.name))
    _observe(config, region, metrics)
    log = JetStreamLog(nc, region.name, hot_partitions=config.tiers.hot_log_partitions)
    await log.ensure()
    # A hot stream's cache is spread over as many keys as its bucket (the tiers agreed).
    cache = RedisReplayCache(redis, limits.replay_window,
                             hot=lambda stream: buckets.hot(stream),
                             shards=config.tiers.hot_stream_shards)
    admission = Admission(redis, limits)
    presence = RedisPresence(redis, limits.presence_ttl_s)
    reaction_log = JetStreamReactionLog(nc, region.name,
                                        retention_days=config.reactions.retention_days)
    await reaction_log.ensure()
    plane = GlobalPlane(nc, config=config, region=region, log=log, presence=presence,
                        metrics=metrics, reactions=reaction_log,
                        gateways=lambda: _gateways(registry.state, region.name))
    # The feed pushes through the fanout, and hears of the fanout's first and last viewers.
    feed = ReactionFeed(nc, region=region.name, regions=config.region_names, log=reaction_log,
                        remote=plane.remote_reactions,
                        broadcast=lambda stream, frame: fanout.broadcast(stream, frame),
                        watched=lambda: fanout.streams(), metrics=metrics)
    stage = StageLink(nc, region=region.name, metrics=metrics)
    feeds, snapshots = _tier_feeds(
        config, region, settings, redis, metrics,
        hidden=lambda comment: moderation is not None and moderation.state.hidden(comment),
        agreed=lambda stream, now: board.tier(stream, now), gateway=gateway, stage=stage)
    fanout = Fanout(nc, region=region.name, gateway=gateway, limits=limits,
                    presence=presence, cache=cache, hooks=ViewerHookChain(plane, feed),
                    metrics=metrics, others=plane.counts, feeds=feeds, stage=stage)
    stage.bind(feeds, fanout)
    board, agreement = _tier_agreement(nc, config, region, gateway, redis, presence, plane,
                                       fanout, metrics)
    buckets = StreamBuckets(board, config.tiers)
    priority_lane = PriorityForwarder(nc, region=region.name, others=plane.others,
                                      directory=plane.directory, metrics=metrics)
    reactions = _reactions(config, index, redis, reaction_log, feed, metrics)
    archive = _archive(config, region)
    public_url = settings.public_url or region.gateway_urls[index]
    moderation, replica = await _moderation(nc, config, region, gateway, fanout, metrics)
    classifier = ClassifierWorker(nc, region=region.name, state=moderation.state,
                                  decide=replica.decide, metrics=metrics,
                                  partitions=config.tiers.hot_log_partitions)
    replies, reply_feed = _replies(config, redis, log, archive, moderation)
    fanout.share_live(reply_feed.offer)  # the replay cache's share of the live feed, too

    dependencies = DependencyWatch(nc, redis)
    registry = Registry(nc, region=region.name, interval_s=limits.health_interval_s,
                        url=lambda: public_url, healthy=dependencies.healthy, metrics=metrics)
    cell = Cell(config=config, region=region, index=index, nc=nc, redis=redis, log=log,
                archive=archive, ingest=Ingest(region.name, log, admission,
                                               IdGenerator(gateway), metrics=metrics,
                                               moderation=moderation, replies=replies,
                                               buckets=buckets,
                                               expedite=priority_lane.expedite),
                fanout=fanout, replayer=Replayer(log, cache, limits.replay_window),
                admission=admission, metrics=metrics,
                directory=RegistryDirectory(config, registry.state),
                public_url=settings.public_url, peers=settings.peers,
                dependencies=dependencies, moderation=moderation, replies=replies,
                reactions=reactions,
                tiers=board, snapshots=snapshots)
    metrics.track_connections(lambda: len(cell.sessions))
    metrics.track_regions(config.region_names, lambda peer: _health(registry.state, peer))
    background = [Background("dependency-watch", dependencies.run),
                  Background("registry-heartbeats", registry.run),
                  Background("fanout", fanout.run),
                  Background("global-plane", plane.run),
                  Background("moderation-replica", replica.run),
                  Background("moderation-classifier", classifier.run),
                  Background("reply-index", reply_feed.run),
                  Background("old-bans", OldBans(redis, region=region.name,
                                                 state=moderation.state,
                                                 decide=replica.decide,
                                                 ready=replica.ready).run)]
    background += [Background(name, run) for name, run in reactions.loops()]
    background += [Background("tier-agreement", agreement.run),
                   Background("tier-feeds", feeds.run),
                   Background("sampling-stage", stage.run),
                   Background("priority-lane", priority_lane.run)]
    if archive is not None:
        # The chained log's persister and one per hot partition.
        background += [Background("archive-persister" + (f"-hot-{p.part}" if p.part else ""),
                                  p.run)
                       for p in persisters(nc, region.name, archive, metrics,
                                           partitions=config.tiers.hot_log_partitions)]
    background.append(Background("backlog-gauges", _backlog(nc, config, region, metrics).run))
    return cell, background


# -- hot streams (region/tiers*.py, region/snapshot*.py, global_/tiers.py) ---------------------


def _tier_feeds(config: Config, region: Region, settings: GatewaySettings,
                redis: aioredis.Redis, metrics: Metrics,
                hidden: Callable[[Comment], bool], agreed: Callable[[str, float], Tier],
                gateway: str, stage: StageLink) -> tuple[TierFeeds, SnapshotStore]:
    """The gateway's delivery of hot streams, and the region's snapshot documents: in Redis
    for every gateway to serve, and deployed, in the cell's S3 bucket behind its CDN. The
    keeper of a stream is the region's sampling stage of it (``stage``, region/stage.py)."""
    store = RedisSnapshotStore(redis)
    publisher = S3SnapshotPublisher(settings.snapshots) if settings.snapshots else None
    public_url = settings.public_url or region.gateway_urls[settings.node]

    def snapshot_url(stream: str) -> str:
        if publisher is not None:
            return publisher.url(stream)
        return f"{public_url}/v1/streams/{stream}/snapshot"

    feeds = TierFeeds(region=region.name, tiers=config.tiers, metrics=metrics, store=store,
                      snapshot_url=snapshot_url, publisher=publisher, hidden=hidden,
                      agreed=agreed, gateway=gateway, stage=stage, on_plan=stage.replan)
    metrics.track_tiers(feeds.counts)
    metrics.track_stage(feeds.stage_roles)
    return feeds, store


def _tier_agreement(nc: Nats, config: Config, region: Region, gateway: str,
                    redis: aioredis.Redis, presence: RedisPresence, plane: GlobalPlane,
                    fanout: Fanout, metrics: Metrics) -> tuple[TierBoard, TierAgreement]:
    """Every region delivers a warm stream in the tier its leader chose (global_/tiers.py)."""
    board = TierBoard(region.name)
    agreement = TierAgreement(nc, region=region.name, gateway=gateway, tiers=config.tiers,
                              board=board, store=RedisTierStore(redis), presence=presence,
                              directory=plane.directory, host=fanout, metrics=metrics,
                              rejections=Rejections(metrics))
    return board, agreement


async def _moderation(nc: Nats, config: Config, region: Region, gateway: str, fanout: Fanout,
                      metrics: Metrics) -> tuple[Moderation, ModerationReplica]:
    """The gateway's copy of the one moderation state, fed and extended by the global
    plane's replica; viewers hear of retractions and pins through the fanout's sessions."""
    state = ModerationState()
    moderation = Moderation(state, metrics=metrics,
                            viewers=lambda stream: fanout.sessions.get(stream, ()))
    replica = ModerationReplica(nc, config=config, region=region, gateway=gateway,
                                state=state, metrics=metrics,
                                on_applied=moderation.on_applied)
    await replica.ensure()
    moderation.attach(replica)
    return moderation, replica


def _replies(config: Config, redis: aioredis.Redis, log: JetStreamLog,
             archive: Archive | None, moderation: Moderation) -> tuple[Replies, ReplyFeed]:
    """Reply threads: checked against what the region holds, indexed in its Redis from its
    log's live feed (the fanout's share of it), and shown as moderation allows."""
    index = RedisThreadIndex(redis)
    replies = Replies(log, index, archive=archive,
                      hidden=lambda c, reader, mod: moderation.hidden(c, reader, moderator=mod))
    feed = ReplyFeed(index=index, tick_s=config.limits.tick_ms / 1000)
    return replies, feed


def _reactions(config: Config, index: int, redis: aioredis.Redis, log: JetStreamReactionLog,
               feed: ReactionFeed, metrics: Metrics) -> GatewayReactions:
    """Taps counted in the region's Redis, aggregates emitted into its reaction log."""
    rx = config.reactions
    counter = RedisReactionCounter(redis, rate_per_s=rx.user_rate_per_s, burst=rx.user_burst,
                                   shards=rx.shards)
    # Each gateway starts on its own shard: a region's gateways write different keys.
    ingest = ReactionIngest(counter, kinds=rx.kinds, rate_per_s=rx.user_rate_per_s,
                            burst=rx.user_burst, tick_s=config.limits.tick_ms / 1000,
                            shard=index, metrics=metrics)
    emitter = Emitter(counter, log, region=log.region, metrics=metrics)
    return GatewayReactions(ingest=ingest, emitter=emitter, feed=feed)


def _observe(config: Config, region: Region, metrics: Metrics) -> None:
    """What the metrics need from the config: the regions labels may name, and the
    objectives the alert rules compare with (ops/prometheus/alerts.yml)."""
    metrics.declare_regions(config.region_names)
    metrics.set_objectives(
        {r.name: (DELIVERY_OBJECTIVE_MS + (r.link.latency_ms + region.link.latency_ms
                                           if r.name != region.name else 0)) / 1000
         for r in config.regions},
        outbox_alert_depth=config.limits.outbox_alert_pending)


def _gateways(state: RegistryState, region: str) -> int:
    """How many gateways ``region`` has now, as their heartbeats say (0: none heard yet):
    the outboxes' leases are spread over them (global_/outbox_share.py). The healthy ones:
    counting too few only spreads less."""
    return state.health(region, time.monotonic()).gateways_healthy


def _health(state: RegistryState, peer: str) -> tuple[bool, int]:
    health = state.health(peer, time.monotonic())
    return health.healthy, health.gateways_healthy


def _backlog(nc: Nats, config: Config, region: Region, metrics: Metrics) -> BacklogGauges:
    """Each backlog sums the chained log's consumer and its hot partitions' twins."""
    partitions = config.tiers.hot_log_partitions
    return BacklogGauges(
        metrics, dests=tuple(r.name for r in config.regions if r.name != region.name),
        outbox_depth=lambda dest: outbox_depth(nc, region.name, dest, partitions),
        archive_lag=((lambda: archive_lag(nc, region.name, partitions=partitions))
                     if config.cassandra.enabled else None))


__all__ = ["RegistryDirectory", "build"]
