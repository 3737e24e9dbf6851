"""Health probes of the local cluster's parts, shared by `chorus up` (waiting for start-up)
and `chorus status`. Each probe answers within its timeout and never raises for a part that
is down: it reports it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from chorus.cluster.process import Child
from chorus.config import Config
from chorus.drivers import driver_errors
from chorus.errors import ClusterError
from chorus.toxiproxy import Toxiproxy, leaf_proxy_name

PROBE_TIMEOUT_S = 2.0


async def http_json(session: aiohttp.ClientSession, url: str) -> Any | None:
    """The JSON body of a 2xx answer, or None when the server is down or unhappy."""
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)) as r:
            if r.status >= 300:
                return None
            return await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


async def redis_ok(host: str, port: int) -> bool:
    client = aioredis.Redis(host=host, port=port, socket_timeout=PROBE_TIMEOUT_S,
                            socket_connect_timeout=PROBE_TIMEOUT_S)
    try:
        return bool(await client.ping())
    except driver_errors("redis"):
        return False
    finally:
        await client.aclose()


async def tcp_ok(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT_S)
    except (OSError, TimeoutError):
        return False
    writer.close()
    await writer.wait_closed()
    return True


async def nats_ok(session: aiohttp.ClientSession, host: str, monitor_port: int, *,
                  leafs: int) -> bool:
    """The server answers /healthz (JetStream included) and has at least ``leafs`` leaf
    connections (a region: its link to the hub; the hub: one per region)."""
    base = f"http://{host}:{monitor_port}"
    if await http_json(session, f"{base}/healthz") is None:
        return False
    if leafs == 0:
        return True
    leafz = await http_json(session, f"{base}/leafz")
    if not leafz:
        return False
    return int(leafz.get("leafnodes", 0)) >= leafs


@dataclass
class GatewayStatus:
    url: str
    healthy: bool


@dataclass
class RegionStatus:
    name: str
    nats: bool
    leaf_link: bool
    redis: bool
    gateways: list[GatewayStatus]
    link_enabled: bool | None
    link_latency_ms: int | None
    cassandra: bool | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return (self.nats and self.leaf_link and self.redis and self.cassandra is not False
                and all(g.healthy for g in self.gateways))


@dataclass
class ClusterStatus:
    hub: bool
    toxiproxy: bool
    regions: list[RegionStatus]
    # Streams above the push tier, as their keepers announce them (`hot_streams`).
    hot: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.hub and self.toxiproxy and all(r.healthy for r in self.regions)

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["healthy"] = self.healthy
        for region, status in zip(doc["regions"], self.regions, strict=True):
            region["healthy"] = status.healthy
        return doc


async def probe(config: Config, *, with_cassandra: bool) -> ClusterStatus:
    """Every part's health, probed concurrently."""
    toxi = Toxiproxy("127.0.0.1", config.toxiproxy.api_port, timeout_s=PROBE_TIMEOUT_S)
    async with aiohttp.ClientSession() as session:

        async def link(region_name: str) -> tuple[bool | None, int | None]:
            try:
                state = await asyncio.to_thread(
                    toxi.state, leaf_proxy_name(config.region(region_name).name))
            except ClusterError:
                return None, None
            return state.enabled, state.latency_ms

        async def region_status(i: int) -> RegionStatus:
            r = config.regions[i]
            outbox_task = asyncio.ensure_future(outboxes(config, r.name))
            nats_up, leaf_up, redis_up, gws, (enabled, latency), cass = await asyncio.gather(
                nats_ok(session, r.host, r.nats.monitor_port, leafs=0),
                nats_ok(session, r.host, r.nats.monitor_port, leafs=1),
                redis_ok(r.host, r.redis.port),
                asyncio.gather(*(http_json(session, f"{u}/healthz") for u in r.gateway_urls)),
                link(r.name),
                tcp_ok(r.cassandra.address, config.cassandra.native_port)
                if with_cassandra else _none(),
            )
            outbox = await outbox_task
            return RegionStatus(
                name=r.name, nats=nats_up, leaf_link=leaf_up, redis=redis_up,
                gateways=[GatewayStatus(u, g is not None and g.get("status") == "ok")
                          for u, g in zip(r.gateway_urls, gws, strict=True)],
                link_enabled=enabled, link_latency_ms=latency, cassandra=cass,
                extra={"outbox": outbox},
            )

        hub, toxi_up, regions, hot = await asyncio.gather(
            nats_ok(session, config.hub.host, config.hub.monitor_port, leafs=0),
            _toxi_ok(toxi),
            asyncio.gather(*(region_status(i) for i in range(len(config.regions)))),
            hot_streams(config),
        )
    if with_cassandra:
        lags = await asyncio.gather(*(archive_lag(config, r.name) for r in config.regions))
        for region_status_, lag in zip(regions, lags, strict=True):
            region_status_.extra["archive_lag"] = lag
    return ClusterStatus(hub=hub, toxiproxy=toxi_up, regions=list(regions), hot=hot)


HOT_LISTEN_S = 1.2  # a keeper announces its warm streams every half second (region/tiers.py)


async def hot_streams(config: Config, listen_s: float = HOT_LISTEN_S
                      ) -> dict[str, dict[str, Any]]:
    """Every warm stream the regions' keepers announce over the hub within ``listen_s``: its
    tier (its leader's: the smallest region announcing it), the leader's reading, and each
    region's word. Streams in the push tier are left out; {} when the hub does not answer."""
    import nats
    from nats.errors import Error as NatsError

    from chorus.names import TIER_NOTICES
    from global_.hub import HubMessageError, TierNotice

    try:
        nc = await nats.connect(f"nats://{config.hub.host}:{config.hub.client_port}",
                                connect_timeout=PROBE_TIMEOUT_S, max_reconnect_attempts=0,
                                allow_reconnect=False, error_cb=_quiet)
    except (NatsError, OSError, TimeoutError):
        return {}
    heard: dict[str, dict[str, TierNotice]] = {}
    try:
        sub = await nc.subscribe(TIER_NOTICES)
        deadline = time.monotonic() + listen_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await sub.next_msg(timeout=left)
            except (NatsError, TimeoutError):
                break
            try:
                notice = TierNotice.decode(msg.data)
            except HubMessageError:
                continue
            heard.setdefault(notice.stream, {})[notice.region] = notice
    finally:
        await nc.close()
    out = {}
    for stream, by_region in sorted(heard.items()):
        leader = by_region[min(by_region)]
        if leader.tier == "push":
            continue
        out[stream] = {"tier": leader.tier, "leader": leader.region,
                       "viewers": leader.viewers, "rate_per_s": leader.rate_per_s,
                       "regions": {r: n.tier for r, n in sorted(by_region.items())}}
    return out


async def _none() -> None:
    return None


async def archive_lag(config: Config, region_name: str) -> int | None:
    """Comments of ``region_name``'s log (its hot partitions included) that its persisters
    have not archived yet (None: unknown, or no gateway has started persisting)."""
    import nats
    from nats.errors import Error as NatsError
    from nats.js.errors import Error as JsError

    from region import persister

    region = config.region(region_name)
    try:
        nc = await nats.connect(region.nats_url, connect_timeout=PROBE_TIMEOUT_S,
                                max_reconnect_attempts=0, allow_reconnect=False,
                                error_cb=_quiet)
    except (NatsError, OSError, TimeoutError):
        return None
    try:
        return await asyncio.wait_for(
            persister.lag(nc, region_name, partitions=config.tiers.hot_log_partitions),
            PROBE_TIMEOUT_S)
    except (NatsError, JsError, TimeoutError):
        return None
    finally:
        await nc.close()


async def _quiet(exc: Exception) -> None:
    """nats-py prints every connection error by default; a probe reports it instead."""


async def outboxes(config: Config, region_name: str) -> dict[str, int | None]:
    """Comments of ``region_name`` waiting for each other region, its hot partitions'
    outboxes included (None: unknown)."""
    import nats
    from nats.errors import Error as NatsError

    from global_.outbox import outbox_depth

    region = config.region(region_name)
    others = [r.name for r in config.regions if r.name != region_name]
    try:
        nc = await nats.connect(region.nats_url, connect_timeout=PROBE_TIMEOUT_S,
                                max_reconnect_attempts=0, allow_reconnect=False,
                                error_cb=_quiet)
    except (NatsError, OSError, TimeoutError):
        return dict.fromkeys(others)
    try:
        partitions = config.tiers.hot_log_partitions
        depths = await asyncio.gather(*(outbox_depth(nc, region_name, d, partitions)
                                        for d in others))
    finally:
        await nc.close()
    return dict(zip(others, depths, strict=True))


async def _toxi_ok(toxi: Toxiproxy) -> bool:
    try:
        await asyncio.to_thread(toxi.version)
    except ClusterError:
        return False
    return True


async def wait_until(check: Callable[[], Awaitable[bool]], *, what: str, timeout_s: float,
                     children: Sequence[Child] = (), interval_s: float = 0.1) -> float:
    """Polls ``check`` until it is true; returns the seconds it took.

    Raises `ClusterError` naming ``what`` (and the last log lines of a child that died, or of
    the children when time ran out) instead of hanging.
    """
    start = time.monotonic()
    deadline = start + timeout_s
    while True:
        for child in children:
            if not child.alive:
                raise ClusterError(
                    f"{child.spec.name} exited with code {child.proc.returncode} while waiting "
                    f"for {what}; last lines of {child.spec.log}:\n{child.log_tail()}")
        if await check():
            return time.monotonic() - start
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {c.spec.log}\n{c.log_tail(8)}" for c in children)
            raise ClusterError(f"{what} did not come up within {timeout_s:.0f} s\n{tails}")
        await asyncio.sleep(interval_s)
