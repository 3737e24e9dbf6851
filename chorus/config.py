"""regions.yaml as one frozen tree.

`load_config` is the only place that reads the file: it fills every default, checks every key
and value, and raises `ConfigError` naming the file, the dotted key and the reason. Everything
else receives the `Config` (or its slice) as an argument and never reads the environment.

Durations carry their unit in the name (``_ms``, ``_s``); sizes are bytes unless named
otherwise. A region's NATS JetStream domain is the region's name.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chorus.errors import ConfigError

REGION_NAME = re.compile(r"\A[a-z][a-z0-9-]{0,30}[a-z0-9]\Z")  # \Z: "$" lets a final "\n" in
# A region without operator_port: its gateways' operator listeners are at gateway_port + this.
OPERATOR_PORT_OFFSET = 1000


@dataclass(frozen=True)
class HubConfig:
    """The NATS hub of the global plane; every region's NATS is a leaf of it."""

    host: str = "127.0.0.1"
    client_port: int = 4222
    leaf_port: int = 7422
    monitor_port: int = 8222


@dataclass(frozen=True)
class ToxiproxyConfig:
    """The toxiproxy-server that carries every region's leaf link (local cluster only)."""

    api_port: int = 8474


@dataclass(frozen=True)
class CassandraConfig:
    """Cluster-wide Cassandra settings; each region is one datacenter of one node locally."""

    enabled: bool = False
    cluster_name: str = "chorus"
    keyspace: str = "chorus"
    native_port: int = 9042
    storage_port: int = 7000
    heap_mb: int = 768


@dataclass(frozen=True)
class AuthConfig:
    """Token signing and browser origins.

    ``dev_secret`` signs HS256 tokens in the local cluster only; ``allowed_origins`` lists the
    Origin values a browser may open a WebSocket or SSE stream from (scheme://host, any port).
    """

    dev_secret: str = "chorus-dev-secret-change-me-0123456789"
    token_ttl_s: int = 3600
    allowed_origins: tuple[str, ...] = ("http://localhost", "http://127.0.0.1")
    # Every token must name this issuer (``iss``) and this audience (``aud``): a token minted
    # for another service with the same key is refused (RFC 8725 3.8, 3.9). A deployment sets
    # them to its identity service's values.
    issuer: str = "chorus"
    audience: str = "chorus-gateway"
    # A token whose exp is further than this after its iat (or whose iat is in the future) is
    # refused: a leaked token is good for at most this long.
    max_token_lifetime_s: int = 86400


@dataclass(frozen=True)
class NatsConfig:
    client_port: int
    monitor_port: int


@dataclass(frozen=True)
class RedisConfig:
    port: int


@dataclass(frozen=True)
class RegionCassandra:
    """This region's Cassandra node: its own loopback address, so that ports can be shared."""

    address: str


@dataclass(frozen=True)
class Link:
    """A region's leaf link to the hub, through toxiproxy.

    ``latency_ms`` is one-way and applies to both directions, so a round trip between regions
    A and B is ``2 * (A.latency_ms + B.latency_ms)``. ``jitter_ms`` is added at random (+/-).
    """

    latency_ms: int
    proxy_port: int
    jitter_ms: int = 0


@dataclass(frozen=True)
class Region:
    name: str
    gateways: int
    gateway_port: int
    nats: NatsConfig
    redis: RedisConfig
    cassandra: RegionCassandra
    host: str = "127.0.0.1"
    link: Link = field(default_factory=lambda: Link(latency_ms=0, proxy_port=1))
    # The operator listener of gateway i (/metrics, health details) is on operator_port + i,
    # never on the client port. 0 in the dataclass means "not given": the loader fills
    # gateway_port + OPERATOR_PORT_OFFSET.
    operator_port: int = 0
    # Filled by the loader from gateway_port and gateways: one port per gateway process.
    gateway_ports: tuple[int, ...] = ()
    operator_ports: tuple[int, ...] = ()

    @property
    def gateway_urls(self) -> tuple[str, ...]:
        return tuple(f"http://{self.host}:{port}" for port in self.gateway_ports)

    @property
    def operator_urls(self) -> tuple[str, ...]:
        """Each gateway's operator listener (/metrics, /healthz with details)."""
        return tuple(f"http://{self.host}:{port}" for port in self.operator_ports)

    @property
    def nats_url(self) -> str:
        return f"nats://{self.host}:{self.nats.client_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.host}:{self.redis.port}/0"


@dataclass(frozen=True)
class Limits:
    """Bounds of the data path; each has a defined behaviour when hit (docs/config.md)."""

    comment_max_bytes: int = 2000
    frame_max_bytes: int = 16384
    user_rate_per_s: float = 2.0
    user_burst: int = 10
    stream_rate_per_s: float = 500.0
    stream_burst: int = 1000
    send_queue_max: int = 256
    max_connections_per_gateway: int = 20000
    # Live connections (WebSocket, SSE, long-poll) per user and per client address on one
    # gateway; past them a new one is refused (429 / close 4429). An IPv6 address counts by
    # its /64. max_connections_per_ip 0: no per-address cap (behind a proxy that hides clients'
    # addresses).
    max_connections_per_user: int = 10
    max_connections_per_ip: int = 1000
    # A connection must send a whole request head within this long of opening (or of its
    # previous response); an idle keep-alive connection is closed after it too.
    request_head_timeout_s: float = 15.0
    # A request body must arrive within this long (408 otherwise).
    request_body_timeout_s: float = 10.0
    tick_ms: int = 25
    replay_window: int = 2000
    presence_ttl_s: int = 10
    presence_heartbeat_s: int = 3
    presence_cache_ms: int = 2000
    presence_query_timeout_ms: int = 500
    outbox_alert_pending: int = 10000
    bootstrap_max_age_s: int = 300
    health_interval_s: float = 1.0
    # Moderation (global_/moderation.py): how often a gateway announces what it has applied;
    # how long a moderator's request waits for every reachable region to apply a decision;
    # how long a post waits for a gateway that is behind to catch up before it gets 503.
    moderation_head_interval_ms: int = 250
    moderation_apply_timeout_ms: int = 2000
    moderation_catchup_wait_ms: int = 1000


MAX_HOT_LOG_PARTITIONS = 64   # each is a JetStream stream with its own consumers


@dataclass(frozen=True)
class Tiers:
    """Hot-stream tier thresholds; ``*_exit_*`` below ``*_enter_*`` gives hysteresis."""

    sampled_enter_viewers: int = 5000
    sampled_exit_viewers: int = 4000
    sampled_enter_rate_per_s: float = 50.0
    sampled_exit_rate_per_s: float = 30.0
    sampled_per_viewer_per_s: int = 10
    snapshot_enter_viewers: int = 100000
    snapshot_exit_viewers: int = 80000
    snapshot_interval_s: float = 1.0
    # Above push, the per-stream bucket protects the region's ingest, not the screens
    # (sampling does that): per region, split over hot_stream_shards Redis keys
    # (region/tiers.py `stream_bucket`; docs/design.md, "Hot streams", justifies the numbers).
    hot_stream_rate_per_s: float = 100000.0
    hot_stream_burst: int = 100000
    hot_stream_shards: int = 16
    # Above push, a stream's comments outside the priority lane go to one of this many log
    # partitions (JetStream streams, each its own leader loop) by a hash of the post's key,
    # the same number in every region; 0 keeps them in the region's one chained log.
    hot_log_partitions: int = 4


@dataclass(frozen=True)
class ArchiveConfig:
    """Cassandra archive: ``ttl_days`` 0 keeps comments forever. A stream's partitions hold
    ``bucket_minutes`` of its comments spread over ``shards``; ``replication_factor`` is the
    number of replicas in each region's datacenter."""

    ttl_days: int = 90
    bucket_minutes: int = 60
    shards: int = 4
    replication_factor: int = 1


@dataclass(frozen=True)
class PrometheusConfig:
    """The Prometheus that `chorus up --with-prometheus` runs, scraping every gateway's
    operator listener (local cluster only; a deployment brings its own)."""

    port: int = 9090
    scrape_interval_s: int = 5


@dataclass(frozen=True)
class ReactionsConfig:
    """Reactions (region/reactions.py): the ``kinds`` a client may send (anything else is
    refused with 422), each user's token bucket per region (``user_rate_per_s`` refill,
    ``user_burst`` at most; past it 429 with Retry-After), the counters per stream per second
    (``shards``), and how long aggregates are kept for totals and the timeline
    (``retention_days``)."""

    kinds: tuple[str, ...] = ("like", "heart", "laugh", "wow", "sad", "clap")
    user_rate_per_s: float = 10.0
    user_burst: int = 20
    shards: int = 8
    retention_days: int = 30


@dataclass(frozen=True)
class Config:
    """The whole topology. ``source`` is the file it came from, ``run_dir`` where a local
    cluster keeps its logs, data and state (default: ``.chorus`` beside the file)."""

    regions: tuple[Region, ...]
    hub: HubConfig = HubConfig()
    toxiproxy: ToxiproxyConfig = ToxiproxyConfig()
    cassandra: CassandraConfig = CassandraConfig()
    auth: AuthConfig = AuthConfig()
    limits: Limits = Limits()
    tiers: Tiers = Tiers()
    archive: ArchiveConfig = ArchiveConfig()
    prometheus: PrometheusConfig = PrometheusConfig()
    reactions: ReactionsConfig = ReactionsConfig()
    source: str = "<memory>"
    run_dir: Path = Path(".chorus")

    def region(self, name: str) -> Region:
        for region in self.regions:
            if region.name == name:
                return region
        known = ", ".join(r.name for r in self.regions)
        raise ConfigError(self.source, f"regions.{name}", f"no such region (known: {known})")

    @property
    def region_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.regions)


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path) -> Config:
    """Read, check and freeze a regions.yaml. Raises `ConfigError` on any problem."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, "", "file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(name, "", f"not UTF-8 text ({exc.reason})") from None
    return parse_config(text, source=name, base_dir=path.resolve().parent)


def parse_config(text: str, *, source: str = "<memory>", base_dir: Path | None = None) -> Config:
    """Like `load_config` for text already in memory (tests, iac/)."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(source, "", f"not valid YAML: {where}{getattr(exc, 'problem', exc)}"
                          ) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, "", "the top level must be a mapping of sections")
    builder = _Builder(source)
    config = builder.config(raw)
    run_dir = (base_dir or Path.cwd()) / ".chorus"
    config = dataclasses.replace(config, source=source, run_dir=run_dir)
    _check(config)
    return config


class _Builder:
    """Turns plain YAML values into the dataclasses above, with dotted key paths in errors."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, reason: str) -> typing.NoReturn:
        raise ConfigError(self.source, key, reason)

    def config(self, raw: dict[str, Any]) -> Config:
        known = {"hub", "toxiproxy", "cassandra", "auth", "regions", "links", "limits",
                 "tiers", "archive", "prometheus", "reactions"}
        self._unknown(raw, known, "")
        if "regions" not in raw:
            self.fail("regions", "missing: list at least one region")
        if not isinstance(raw["regions"], dict) or not raw["regions"]:
            self.fail("regions", "must be a non-empty mapping of region name to its settings")
        links = self._links(raw.get("links"), raw["regions"])
        regions = self._regions(raw["regions"], links)
        sections: dict[str, Any] = {}
        for key, cls in (("hub", HubConfig), ("toxiproxy", ToxiproxyConfig),
                         ("cassandra", CassandraConfig), ("auth", AuthConfig),
                         ("limits", Limits), ("tiers", Tiers), ("archive", ArchiveConfig),
                         ("prometheus", PrometheusConfig), ("reactions", ReactionsConfig)):
            if key in raw:
                sections[key] = self.build(cls, raw[key], key)
        return Config(regions=regions, **sections)

    def _regions(self, raw: Any, links: Mapping[str, Link]) -> tuple[Region, ...]:
        regions = []
        for name, body in raw.items():
            key = f"regions.{name}"
            if not isinstance(name, str) or not REGION_NAME.match(name):
                self.fail(key, "a region name is 2-32 lowercase letters, digits or '-', "
                               "starting with a letter (it is also the JetStream domain)")
            if not isinstance(body, dict):
                self.fail(key, "must be a mapping")
            if "link" in body:
                self.fail(f"{key}.link", "links are set in the top-level 'links' section")
            region = self.build(Region, {**body, "name": name}, key)
            if region.gateways < 1:
                self.fail(f"{key}.gateways", "must be at least 1")
            ports = tuple(region.gateway_port + i for i in range(region.gateways))
            if ports[-1] > 65535:
                self.fail(f"{key}.gateway_port", "gateway_port + gateways - 1 exceeds 65535")
            if name not in links:
                self.fail(f"links.{name}", f"missing: region {name} needs a link to the hub")
            operator = region.operator_port or region.gateway_port + OPERATOR_PORT_OFFSET
            operator_ports = tuple(operator + i for i in range(region.gateways))
            if operator_ports[-1] > 65535:
                self.fail(f"{key}.operator_port", "operator_port + gateways - 1 exceeds 65535 "
                                                  "(without operator_port: gateway_port + "
                                                  f"{OPERATOR_PORT_OFFSET})")
            regions.append(dataclasses.replace(region, gateway_ports=ports, link=links[name],
                                               operator_port=operator,
                                               operator_ports=operator_ports))
        return tuple(regions)

    def _links(self, raw: Any, regions: Any) -> dict[str, Link]:
        if raw is None:
            self.fail("links", "missing: give each region's link to the hub")
        if not isinstance(raw, dict):
            self.fail("links", "must be a mapping of region name to its link")
        names = set(regions) if isinstance(regions, dict) else set()
        links = {}
        for name, body in raw.items():
            if name not in names:
                known = ", ".join(sorted(str(n) for n in names)) or "none"
                self.fail(f"links.{name}", f"unknown region {name!r} (regions are: {known})")
            links[name] = self.build(Link, body, f"links.{name}")
        return links

    def _unknown(self, raw: Mapping[str, Any], known: set[str], key: str) -> None:
        for name in raw:
            if name not in known:
                where = f"{key}.{name}" if key else str(name)
                self.fail(where, f"unknown key (allowed here: {', '.join(sorted(known))})")

    def build(self, cls: type[Any], raw: Any, key: str) -> Any:
        if not isinstance(raw, dict):
            self.fail(key, "must be a mapping")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        settable = {n for n in fields if n not in ("gateway_ports", "operator_ports", "link",
                                                   "name", "source", "run_dir")}
        if cls is Region:
            settable.add("name")
        self._unknown({k: v for k, v in raw.items()}, settable, key)
        values: dict[str, Any] = {}
        for name, f in fields.items():
            sub = f"{key}.{name}"
            if name in raw:
                values[name] = self.value(hints[name], raw[name], sub)
            elif (f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                  and name in settable):
                self.fail(sub, "missing")
        return cls(**values)

    def value(self, hint: Any, raw: Any, key: str) -> Any:
        if dataclasses.is_dataclass(hint):
            return self.build(typing.cast(type, hint), raw, key)
        if hint is bool:
            if not isinstance(raw, bool):
                self.fail(key, f"must be true or false, not {raw!r}")
            return raw
        if hint is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                self.fail(key, f"must be a whole number, not {raw!r}")
            if raw < 0:
                self.fail(key, f"must not be negative (got {raw})")
            if key.endswith("port") and not 1 <= raw <= 65535:
                self.fail(key, f"a port is between 1 and 65535 (got {raw})")
            return raw
        if hint is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                self.fail(key, f"must be a number, not {raw!r}")
            if raw < 0:
                self.fail(key, f"must not be negative (got {raw})")
            return float(raw)
        if hint is str:
            if not isinstance(raw, str) or not raw:
                self.fail(key, f"must be a non-empty string, not {raw!r}")
            return raw
        origin = typing.get_origin(hint)
        if origin is tuple:
            if not isinstance(raw, list):
                self.fail(key, "must be a list")
            (item,) = [a for a in typing.get_args(hint) if a is not Ellipsis]
            return tuple(self.value(item, v, f"{key}[{i}]") for i, v in enumerate(raw))
        raise TypeError(f"config type {hint} is not supported")  # a bug in this module


# ---------------------------------------------------------------------------------------------
# Whole-file checks: what no single key can tell


def _check(config: Config) -> None:
    src = config.source
    if len(config.regions) < 1:
        raise ConfigError(src, "regions", "list at least one region")
    seen: dict[tuple[str, int], str] = {}
    for host, port, key in bound_ports(config):
        other = seen.get((host, port))
        if other is not None:
            raise ConfigError(src, key, f"duplicate port {port} (also used by {other})")
        seen[(host, port)] = key
    prometheus = ("127.0.0.1", config.prometheus.port)
    if prometheus in seen:
        raise ConfigError(src, "prometheus.port", f"duplicate port {config.prometheus.port} "
                                                  f"(also used by {seen[prometheus]})")
    if config.prometheus.scrape_interval_s == 0:
        raise ConfigError(src, "prometheus.scrape_interval_s", "must be greater than 0")
    addresses: dict[str, str] = {}
    for region in config.regions:
        key = f"regions.{region.name}.cassandra.address"
        try:
            ip = ipaddress.ip_address(region.cassandra.address)
        except ValueError:
            raise ConfigError(src, key, "must be an IP address such as 127.0.0.2") from None
        if region.cassandra.address in addresses:
            raise ConfigError(src, key, f"duplicate address {ip} (also used by "
                                        f"{addresses[region.cassandra.address]}): each region's "
                                        "Cassandra node needs its own address")
        addresses[region.cassandra.address] = key
    lim = config.limits
    for name in ("comment_max_bytes", "frame_max_bytes", "send_queue_max", "tick_ms",
                 "replay_window", "presence_ttl_s", "presence_heartbeat_s",
                 "presence_query_timeout_ms", "max_connections_per_gateway", "user_burst",
                 "max_connections_per_user",
                 "stream_burst", "outbox_alert_pending", "moderation_head_interval_ms",
                 "moderation_apply_timeout_ms", "moderation_catchup_wait_ms"):
        if getattr(lim, name) == 0:
            raise ConfigError(src, f"limits.{name}", "must be greater than 0")
    for name in ("user_rate_per_s", "stream_rate_per_s", "health_interval_s",
                 "request_head_timeout_s", "request_body_timeout_s"):
        if getattr(lim, name) == 0:
            raise ConfigError(src, f"limits.{name}", "must be greater than 0")
    if lim.comment_max_bytes >= lim.frame_max_bytes:
        raise ConfigError(src, "limits.comment_max_bytes",
                          f"must be below limits.frame_max_bytes ({lim.frame_max_bytes}) so "
                          "that a comment fits in a frame")
    if not 0 < lim.bootstrap_max_age_s < 600:
        raise ConfigError(src, "limits.bootstrap_max_age_s",
                          "must be between 1 and 599: a late joiner's copies are deduplicated "
                          "by the log's 600 s duplicate window")
    if lim.presence_heartbeat_s >= lim.presence_ttl_s:
        raise ConfigError(src, "limits.presence_heartbeat_s",
                          f"must be below limits.presence_ttl_s ({lim.presence_ttl_s}), or "
                          "presence expires between heartbeats")
    tiers = config.tiers
    for low, high in (("sampled_exit_viewers", "sampled_enter_viewers"),
                      ("sampled_exit_rate_per_s", "sampled_enter_rate_per_s"),
                      ("snapshot_exit_viewers", "snapshot_enter_viewers")):
        if getattr(tiers, low) > getattr(tiers, high):
            raise ConfigError(src, f"tiers.{low}", f"must not exceed tiers.{high}: the exit "
                                                   "threshold sits below the entry threshold")
    if tiers.snapshot_enter_viewers <= tiers.sampled_enter_viewers:
        raise ConfigError(src, "tiers.snapshot_enter_viewers",
                          "must be above tiers.sampled_enter_viewers")
    _check_hot_tiers(config)
    for name in ("bucket_minutes", "shards", "replication_factor"):
        if getattr(config.archive, name) == 0:
            raise ConfigError(src, f"archive.{name}", "must be greater than 0")
    if len(config.auth.dev_secret) < 32:
        raise ConfigError(src, "auth.dev_secret", "must be at least 32 characters for HS256")
    _check_auth_and_caps(config)
    _check_reactions(config)


def _check_hot_tiers(config: Config) -> None:
    """What the sampled and snapshot tiers need to work at all (region/tiers.py)."""
    src, tiers = config.source, config.tiers
    for name in ("sampled_per_viewer_per_s", "hot_stream_burst", "hot_stream_shards"):
        if getattr(tiers, name) == 0:
            raise ConfigError(src, f"tiers.{name}", "must be greater than 0")
    if tiers.snapshot_interval_s < 0.1:
        raise ConfigError(src, "tiers.snapshot_interval_s", "must be at least 0.1")
    if not 0 <= tiers.hot_log_partitions <= MAX_HOT_LOG_PARTITIONS:
        raise ConfigError(src, "tiers.hot_log_partitions",
                          f"must be 0 (off) to {MAX_HOT_LOG_PARTITIONS}")
    if tiers.hot_stream_rate_per_s < config.limits.stream_rate_per_s:
        raise ConfigError(src, "tiers.hot_stream_rate_per_s",
                          f"must not be below limits.stream_rate_per_s "
                          f"({config.limits.stream_rate_per_s}): a hot stream takes at least "
                          "what it took in the push tier")


def _check_auth_and_caps(config: Config) -> None:
    """Tokens' lifetime and the connection caps (docs/security.md)."""
    src, auth, lim = config.source, config.auth, config.limits
    if auth.max_token_lifetime_s == 0:
        raise ConfigError(src, "auth.max_token_lifetime_s", "must be greater than 0")
    if not 0 < auth.token_ttl_s <= auth.max_token_lifetime_s:
        raise ConfigError(src, "auth.token_ttl_s", "must be between 1 and "
                                                   f"auth.max_token_lifetime_s "
                                                   f"({auth.max_token_lifetime_s})")
    for cap in ("max_connections_per_user", "max_connections_per_ip"):
        if getattr(lim, cap) > lim.max_connections_per_gateway:
            raise ConfigError(src, f"limits.{cap}", "must not exceed "
                                                    "limits.max_connections_per_gateway "
                                                    f"({lim.max_connections_per_gateway})")


REACTION_KIND = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_REACTION_KINDS = 32
MAX_REACTION_SHARDS = 64


def _check_reactions(config: Config) -> None:
    src, rx = config.source, config.reactions
    if not 0 < len(rx.kinds) <= MAX_REACTION_KINDS:
        raise ConfigError(src, "reactions.kinds", f"list 1 to {MAX_REACTION_KINDS} kinds")
    for i, kind in enumerate(rx.kinds):
        if not REACTION_KIND.fullmatch(kind):
            raise ConfigError(src, f"reactions.kinds[{i}]", "a kind is 1-32 of a-z 0-9 _ "
                                                            f"(got {kind!r})")
        if kind in rx.kinds[:i]:
            raise ConfigError(src, f"reactions.kinds[{i}]", f"{kind!r} is listed twice")
    if rx.user_rate_per_s == 0 or rx.user_burst == 0:
        raise ConfigError(src, "reactions.user_rate_per_s" if rx.user_rate_per_s == 0
                          else "reactions.user_burst", "must be greater than 0")
    if not 0 < rx.shards <= MAX_REACTION_SHARDS:
        raise ConfigError(src, "reactions.shards", f"must be 1 to {MAX_REACTION_SHARDS}")
    if rx.retention_days == 0:
        raise ConfigError(src, "reactions.retention_days", "must be greater than 0: totals "
                                                           "are read from what is kept")


def bound_ports(config: Config) -> Iterator[tuple[str, int, str]]:
    """Every (host, port, key) that a local cluster binds; Cassandra uses its own addresses."""
    hub = config.hub
    yield hub.host, hub.client_port, "hub.client_port"
    yield hub.host, hub.leaf_port, "hub.leaf_port"
    yield hub.host, hub.monitor_port, "hub.monitor_port"
    yield "127.0.0.1", config.toxiproxy.api_port, "toxiproxy.api_port"
    for r in config.regions:
        key = f"regions.{r.name}"
        for i, port in enumerate(r.gateway_ports):
            yield r.host, port, f"{key}.gateway_port" + (f" (+{i})" if i else "")
        for i, port in enumerate(r.operator_ports):
            yield r.host, port, f"{key}.operator_port" + (f" (+{i})" if i else "")
        yield r.host, r.nats.client_port, f"{key}.nats.client_port"
        yield r.host, r.nats.monitor_port, f"{key}.nats.monitor_port"
        yield r.host, r.redis.port, f"{key}.redis.port"
        yield "127.0.0.1", r.link.proxy_port, f"links.{r.name}.proxy_port"


# ---------------------------------------------------------------------------------------------
# Writing: the local cluster hands its processes the effective config (ports relocated) as a
# file in the same format, so a gateway loads it with the same loader.


def dump_config(config: Config) -> str:
    """regions.yaml text that `parse_config` turns back into ``config`` (but source/run_dir)."""

    def plain(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if isinstance(obj, tuple):
            return [plain(v) for v in obj]
        return obj

    regions = {}
    links = {}
    for r in config.regions:
        body = plain(r)
        for derived in ("name", "gateway_ports", "operator_ports", "link"):
            body.pop(derived)
        regions[r.name] = body
        links[r.name] = plain(r.link)
    doc = {"hub": plain(config.hub), "toxiproxy": plain(config.toxiproxy),
           "cassandra": plain(config.cassandra), "auth": plain(config.auth),
           "regions": regions, "links": links, "limits": plain(config.limits),
           "tiers": plain(config.tiers), "archive": plain(config.archive),
           "prometheus": plain(config.prometheus), "reactions": plain(config.reactions)}
    return yaml.safe_dump(doc, sort_keys=False)
