"""What a gateway's handlers need, built once per process by the composition root
(region/compose.py) and handed to the HTTP app (region/app.py).

Nothing here knows the global plane: the cell sees other regions only through
`RegionDirectory`, which the composition root implements on top of the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis
from aiohttp import web
from nats.aio.client import Client as Nats

from chorus.config import Config, Region
from chorus.metrics import Metrics
from region.admission import Admission
from region.archive import Archive
from region.auth import Claims, bearer, origin_allowed, verify_token
from region.errors import ApiError, ErrorCode
from region.fanout import Fanout
from region.ingest import Ingest
from region.log import CommentLog
from region.moderation_service import Moderation
from region.replay import Replayer
from region.session import Position, Session, Transport


@dataclass(frozen=True)
class DirectoryEntry:
    """One region as ``GET /v1/regions`` shows it."""

    name: str
    urls: tuple[str, ...]
    healthy: bool
    gateways_healthy: int
    last_seen_s: float | None    # seconds since its last heartbeat; None: never heard of
    link_latency_ms: int


class RegionDirectory(Protocol):
    """Every region's public URLs and health, as this gateway last heard them."""

    def regions(self) -> list[DirectoryEntry]: ...


@dataclass
class Cell:
    config: Config
    region: Region
    index: int
    nc: Nats
    redis: aioredis.Redis
    log: CommentLog
    ingest: Ingest
    fanout: Fanout
    replayer: Replayer
    admission: Admission
    metrics: Metrics
    directory: RegionDirectory
    sessions: set[Session] = field(default_factory=set)
    # What this gateway calls itself (registry, metrics) and where its viewers go when it
    # stops; see region/deployment.py.
    public_url: str = ""
    peers: tuple[str, ...] = ()
    # The archive (Cassandra), when cassandra.enabled: history, retraction, the persister.
    archive: Archive | None = None
    # This gateway's copy of the one moderation state, and its way to decide (None: a cell
    # built without moderation, as some unit tests do).
    moderation: Moderation | None = None

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
                       send_hello=send_hello, on_written=self.metrics.comments_written,
                       moderation=self.moderation.state if self.moderation else None)


CELL = web.AppKey("cell", Cell)
