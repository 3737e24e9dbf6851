"""What a gateway's handlers need, built once per process by the composition root
(region/compose.py) and handed to the HTTP app (region/app.py).

Nothing here knows the global plane: the cell sees other regions only through
`RegionDirectory`, which the composition root implements on top of the registry.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis
from aiohttp import web
from nats.aio.client import Client as Nats

from chorus.config import Config, Region
from chorus.metrics import Metrics
from region.admission import Admission
from region.archive import Archive
from region.auth import Claims, VerifiedTokens, bearer, verify_token
from region.connections import Connections
from region.dependencies import DependencyWatch
from region.edge import check_origin
from region.fanout import Fanout
from region.ingest import Ingest
from region.log import CommentLog
from region.moderation_service import Moderation
from region.reactions_gateway import GatewayReactions
from region.replay import Replayer
from region.replies import Replies
from region.session import Position, Session, Transport
from region.snapshot import SnapshotStore
from region.tiers import TierBoard


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
    # Reactions (region/reactions_gateway.py): taps, totals, timelines. None: not served.
    reactions: GatewayReactions | None = None
    # Whether NATS and Redis answer, watched in the background (region/dependencies.py) so
    # that a health check does no I/O. None: the check asks them itself.
    dependencies: DependencyWatch | None = None
    # This gateway's copy of the one moderation state, and its way to decide (None: a cell
    # built without moderation, as some unit tests do).
    moderation: Moderation | None = None
    # Reply threads (region/replies.py): the parent check of a reply, thread pages, reply
    # counts. None: replies are stored unchecked and no thread is served.
    replies: Replies | None = None
    # Hot streams: every warm stream's tier as the regions agreed it (region/tiers.py), and
    # the region's snapshot documents (region/snapshot.py). None: every stream is pushed.
    tiers: TierBoard | None = None
    snapshots: SnapshotStore | None = None
    # Live connections by user and address, against limits.max_connections_* (built from the
    # config: it is this gateway's own bookkeeping, not a dependency).
    connections: Connections = field(init=False)

    def __post_init__(self) -> None:
        self.connections = Connections(self.config.limits)

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
        return self.tokens.verify(token)

    @functools.cached_property
    def tokens(self) -> VerifiedTokens:
        """Tokens this gateway verified (region/auth.py): one check per token, not per post."""
        return VerifiedTokens(lambda token: verify_token(self.config.auth, token))

    def check_origin(self, request: web.Request) -> None:
        """403 for a foreign browser Origin (region/edge.py checks every API request)."""
        check_origin(request, self.config.auth.allowed_origins)

    def new_session(self, stream: str, user: str, transport: Transport, *,
                    send_hello: bool = True) -> Session:
        return Session(stream=stream, user=user, transport=transport,
                       log=self.log, replayer=self.replayer, position=self.position,
                       limits=self.config.limits, gateway=self.gateway,
                       send_hello=send_hello, on_written=self.metrics.comments_written,
                       moderation=self.moderation.state if self.moderation else None)


CELL = web.AppKey("cell", Cell)
