"""Everything a gateway's handlers need, built once per process from what `serve` is given."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiohttp import web
from nats.aio.client import Client as Nats

from chorus.config import Config, Region
from chorus.ids import IdGenerator
from global_.plane import GlobalPlane
from region.admission import Admission
from region.archive import Archive
from region.auth import Claims, bearer, origin_allowed, verify_token
from region.errors import ApiError, ErrorCode
from region.fanout import Fanout
from region.ingest import Ingest
from region.log_jetstream import JetStreamLog
from region.presence_redis import RedisPresence
from region.replay import Replayer
from region.replay_redis import RedisReplayCache
from region.session import Position, Session, Transport


@dataclass
class Cell:
    config: Config
    region: Region
    index: int
    nc: Nats
    redis: aioredis.Redis
    log: JetStreamLog
    ingest: Ingest
    fanout: Fanout
    replayer: Replayer
    admission: Admission
    plane: GlobalPlane
    sessions: set[Session] = field(default_factory=set)
    slow_consumers: int = 0   # connections cut because their queue overflowed
    # What this gateway calls itself (registry, metrics) and where its viewers go when it
    # stops; see region/deployment.py.
    public_url: str = ""
    peers: tuple[str, ...] = ()
    # The archive (Cassandra), when cassandra.enabled: history, retraction, the persister.
    archive: Archive | None = None

    @property
    def gateway(self) -> str:
        return f"{self.region.name}.{self.index}"

    @property
    def url(self) -> str:
        return self.public_url or self.region.gateway_urls[self.index]

    @property
    def position(self) -> Position:
        return Position(region=self.region.name, epoch=self.log.epoch)

    def authenticate(self, request: web.Request) -> Claims:
        token = bearer(request.headers.get("Authorization"),
                       request.query.get("access_token"))
        return verify_token(self.config.auth.dev_secret, token)

    def check_origin(self, request: web.Request) -> None:
        origin = request.headers.get("Origin")
        if not origin_allowed(origin, self.config.auth.allowed_origins):
            raise ApiError(ErrorCode.FORBIDDEN, f"origin {origin} is not allowed; add it to "
                                                "auth.allowed_origins")

    def check_capacity(self) -> None:
        if len(self.sessions) >= self.config.limits.max_connections_per_gateway:
            raise ApiError(ErrorCode.UNAVAILABLE, "this gateway is full; try another of the "
                           "region's gateways", retry_after_s=1)

    def new_session(self, stream: str, user: str, transport: Transport, *,
                    send_hello: bool = True) -> Session:
        return Session(stream=stream, user=user, transport=transport,
                       log=self.log, replayer=self.replayer, position=self.position,
                       limits=self.config.limits, gateway=self.gateway,
                       send_hello=send_hello)


CELL = web.AppKey("cell", Cell)


def _archive(config: Config, region: Region) -> Archive | None:
    if not config.cassandra.enabled:
        return None
    # Imported here: a cluster without Cassandra never loads the driver.
    from region.archive_cassandra import CassandraArchive

    return CassandraArchive(config, region)  # connects on first use, not now


async def build_cell(config: Config, region: Region, index: int, *, nc: Nats,
                     redis: aioredis.Redis) -> Cell:
    limits = config.limits
    log = JetStreamLog(nc, region.name)
    await log.ensure()
    cache = RedisReplayCache(redis, limits.replay_window)
    admission = Admission(redis, limits)
    gateway = f"{region.name}.{index}"
    presence = RedisPresence(redis, limits.presence_ttl_s)
    fanout = Fanout(nc, region=region.name, gateway=gateway, limits=limits,
                    presence=presence, cache=cache)
    plane = GlobalPlane(nc, config=config, region=region, log_=log, presence=presence)
    fanout.hooks = plane
    return Cell(config=config, region=region, index=index, nc=nc, redis=redis, log=log,
                archive=_archive(config, region),
                ingest=Ingest(region.name, log, admission, IdGenerator(gateway)),
                fanout=fanout, replayer=Replayer(log, cache, limits.replay_window),
                admission=admission, plane=plane)
