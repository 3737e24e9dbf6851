"""The ops dashboard of the local cluster: a small HTTP server that `chorus up` runs beside
the cluster (default http://127.0.0.1:8100, ``--dashboard-port``), on loopback only.

It serves web/pages/dashboard.html and a JSON document refreshed every second: every
region's health (NATS, leaf link, Redis, Cassandra, gateways), each leaf link's state, its
configured latency and the round trip NATS measures over it, connections per gateway, outbox
depths, archive lag, and the busiest streams (comments a second in the regions' logs, viewers
per region). The figures are those of `chorus status`, gathered by the same probes
(chorus/cluster/health.py), once for however many dashboards are open.

Controls (cut, slow or restore a link, run a drill) change the local cluster only, so they
live here and not on the gateways; they need a moderator's or host's token, signed with the
cluster's ``auth.dev_secret`` (``chorus token --user ops --role host``), sent as
``Authorization: Bearer``. The status is readable without one: it binds to loopback.

    GET  /                    the dashboard page
    GET  /api/status          the latest status document
    POST /api/links/{region}  {"action": "cut" | "restore" | "slow", "latency_ms": N}
    POST /api/drills          {"drill": NAME, "region": R, "seconds": S}

A drill is any of chaos/catalogue.py's catalogue or the reconnect storm (cassandra-down only
on a cluster with Cassandra), run in full as `chorus drill NAME` runs it, its faults going
through `chorus up`'s control socket; its progress lines show while it runs, its summary
when it is done. One drill at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from chorus import names
from chorus.cluster import health
from chorus.config import Config, Region
from region import web as pages
from region.auth import bearer, verify_token
from region.errors import ApiError, ErrorCode
from region.presence import PresenceUnavailable
from region.presence_redis import RedisPresence

log = logging.getLogger(__name__)

REFRESH_S = 1.0
BUSIEST = 10                 # streams shown
STREAMS_READ_MAX = 1000      # per-stream counts read from one region's log per refresh
LINK_DRILLS = ("link-cut", "link-slow")
DRILL_MAX_S = 120.0
SLOW_MAX_MS = 5000


# -- pure pieces ----------------------------------------------------------------------------


_GO_UNITS_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1000.0,
                "m": 60_000.0, "h": 3_600_000.0}
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?)(ns|us|µs|μs|ms|s|m|h)")


def go_duration_ms(text: str) -> float | None:
    """A Go duration as NATS's monitor writes it (``"21.4ms"``, ``"1m2.5s"``) in ms; None
    when it is not one."""
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _GO_UNITS_MS[u] for n, u in parts)


@dataclass
class StreamRates:
    """Comments a second per stream, from successive counts of each region's log.

    ``observe`` takes one region's per-stream message counts at monotonic time ``now`` (s)
    and returns each stream's rate over the last ``window_s`` (one-second samples of a
    batched log are too jumpy to read); a first reading gives no rate, and a count that went
    down (a log that was wiped) none for that stream."""

    window_s: float = 5.0
    history: dict[str, list[tuple[float, dict[str, int]]]] = field(default_factory=dict)

    def observe(self, region: str, counts: Mapping[str, int], now: float) -> dict[str, float]:
        readings = self.history.setdefault(region, [])
        readings.append((now, dict(counts)))
        while len(readings) > 2 and readings[1][0] <= now - self.window_s:
            readings.pop(0)
        then, before = readings[0]
        if now <= then:
            return {}
        return {stream: (n - before[stream]) / (now - then) for stream, n in counts.items()
                if stream in before and n >= before[stream]}


def busiest(rates: Mapping[str, Mapping[str, float]], counts: Mapping[str, Mapping[str, int]],
            limit: int = BUSIEST) -> list[str]:
    """The ``limit`` busiest streams over every region: by the highest comment rate in any
    region's log, then by the most comments (a stream watched everywhere is in every log, so
    the maximum, not the sum, is the stream's own rate)."""
    streams = {s for region in counts.values() for s in region}

    def key(stream: str) -> tuple[float, int, str]:
        rate = max((r.get(stream, 0.0) for r in rates.values()), default=0.0)
        total = max((c.get(stream, 0) for c in counts.values()), default=0)
        return (-rate, -total, stream)

    return sorted(streams, key=key)[:limit]


# -- the cluster it controls ------------------------------------------------------------------


class Controlled(Protocol):
    """What the dashboard needs of the cluster: `LocalCluster` is one."""

    config: Config
    with_cassandra: bool

    def set_link(self, region_name: str, *, enabled: bool | None = None,
                 latency_ms: int | None = None, jitter_ms: int = 0) -> None: ...


DrillRunner = Callable[..., Awaitable[Any]]


def drill_names(*, with_cassandra: bool = True) -> tuple[str, ...]:
    """The drills the dashboard offers: every drill of chaos/catalogue.py's catalogue and the
    reconnect storm, where chaos/ is (the link drills are all there is without it);
    cassandra-down only ``with_cassandra`` (it needs the Cassandra nodes to kill)."""
    try:
        from chaos.catalogue import CATALOGUE, STORM
    except ImportError:
        return LINK_DRILLS
    return (*(name for name, spec in CATALOGUE.items()
              if with_cassandra or not spec.needs_cassandra), STORM)


def needs_cassandra(drill: str) -> bool:
    try:
        from chaos.catalogue import CATALOGUE
    except ImportError:
        return False
    spec = CATALOGUE.get(drill)
    return spec is not None and spec.needs_cassandra


async def _run_drill(config: Config, **kwargs: Any) -> Any:
    from chaos.drill import run_drill  # imported late: it pulls in the SDK

    return await run_drill(config, **kwargs)


PROGRESS_LINES = 12          # a running drill's latest progress lines, shown on the page


@dataclass
class DrillRun:
    drill: str
    region: str
    seconds: float
    started_at: float
    state: str = "running"          # running, passed, failed, error
    report: str = ""
    progress: list[str] = field(default_factory=list)   # the latest lines, oldest first

    def note(self, line: str) -> None:
        """A progress line of the running drill (the drill's ``progress``); the last
        `PROGRESS_LINES` are kept."""
        self.progress.append(line)
        del self.progress[:-PROGRESS_LINES]


class OpsDashboard:
    """The dashboard's state and its aiohttp application (`app`); `serve` runs it."""

    def __init__(self, cluster: Controlled, *, refresh_s: float = REFRESH_S,
                 drill_runner: DrillRunner = _run_drill) -> None:
        self.cluster = cluster
        self.config = cluster.config
        self.refresh_s = refresh_s
        self.status: dict[str, Any] = {"regions": [], "streams": [], "at_ms": None}
        self.drill: DrillRun | None = None
        self._drill_task: asyncio.Task[None] | None = None
        self._drill_runner = drill_runner
        self.drills = drill_names(with_cassandra=cluster.with_cassandra)
        self._rates = StreamRates()
        self._redis: dict[str, aioredis.Redis] = {}
        self._http: aiohttp.ClientSession | None = None
        self.refreshed = asyncio.Event()

    # -- status ----------------------------------------------------------------------------

    async def refresh(self) -> dict[str, Any]:
        """Probes everything once and keeps the document."""
        assert self._http is not None
        cfg = self.config
        probe, gateways, rtts, logs = await asyncio.gather(
            health.probe(cfg, with_cassandra=self.cluster.with_cassandra),
            asyncio.gather(*(asyncio.gather(*(health.http_json(self._http, f"{u}/healthz")
                                              for u in _detail_urls(r))) for r in cfg.regions)),
            asyncio.gather(*(self._leaf_rtt_ms(r) for r in cfg.regions)),
            asyncio.gather(*(log_counts(r, cfg.tiers.hot_log_partitions)
                             for r in cfg.regions)),
        )
        now = time.monotonic()
        counts = {r.name: c for r, c in zip(cfg.regions, logs, strict=True) if c is not None}
        rates = {name: self._rates.observe(name, c, now) for name, c in counts.items()}
        top = busiest(rates, counts)
        viewers = await asyncio.gather(*(self._viewers(r, top) for r in cfg.regions))
        regions = []
        for r, status, gws, rtt in zip(cfg.regions, probe.regions, gateways, rtts, strict=True):
            gateway_docs = [{"url": g.url, "healthy": g.healthy,
                             "connections": doc.get("connections") if doc else None}
                            for g, doc in zip(status.gateways, gws, strict=True)]
            regions.append({
                "name": r.name, "healthy": status.healthy, "nats": status.nats,
                "leaf_link": status.leaf_link, "redis": status.redis,
                "cassandra": status.cassandra,
                "link": {"enabled": status.link_enabled, "latency_ms": status.link_latency_ms,
                         "configured_ms": r.link.latency_ms,
                         "rtt_ms": None if rtt is None else round(rtt, 1)},
                "gateways": gateway_docs,
                "connections": sum(g["connections"] or 0 for g in gateway_docs),
                "outbox": status.extra.get("outbox", {}),
                "archive_lag": status.extra.get("archive_lag"),
                "url": r.gateway_urls[0],
            })
        streams = []
        for stream in top:
            per_region = {r.name: v.get(stream) for r, v in zip(cfg.regions, viewers,
                                                                 strict=True)}
            streams.append({
                "stream": stream,
                "comments_per_s": round(max((x.get(stream, 0.0) for x in rates.values()),
                                            default=0.0), 1),
                "comments": max((c.get(stream, 0) for c in counts.values()), default=0),
                "viewers": per_region,
                "total_viewers": sum(v or 0 for v in per_region.values()),
            })
        self.status = {
            "at_ms": int(time.time() * 1000), "refresh_s": self.refresh_s,
            "healthy": probe.healthy, "hub": probe.hub, "toxiproxy": probe.toxiproxy,
            "regions": regions, "streams": streams,
            "outbox_alert": cfg.limits.outbox_alert_pending,
            "drills": list(self.drills), "drill": asdict(self.drill) if self.drill else None,
        }
        self.refreshed.set()
        return self.status

    async def _leaf_rtt_ms(self, region: Region) -> float | None:
        """The round trip NATS measures on the region's leaf link (its own pings)."""
        assert self._http is not None
        leafz = await health.http_json(
            self._http, f"http://{region.host}:{region.nats.monitor_port}/leafz")
        leafs = leafz.get("leafs") if isinstance(leafz, dict) else None
        if not leafs:
            return None
        rtt = leafs[0].get("rtt")
        return go_duration_ms(rtt) if isinstance(rtt, str) else None

    async def _viewers(self, region: Region, streams: list[str]) -> dict[str, int]:
        client = self._redis.get(region.name)
        if client is None or not streams:
            return {}
        presence = RedisPresence(client, self.config.limits.presence_ttl_s)
        out: dict[str, int] = {}
        for stream in streams:
            try:
                out[stream] = await asyncio.wait_for(presence.count(stream),
                                                     health.PROBE_TIMEOUT_S)
            except (PresenceUnavailable, TimeoutError):
                break  # the region's Redis is down: its viewers are unknown
        return out

    async def _refresh_forever(self) -> None:
        while True:
            began = time.monotonic()
            try:
                await self.refresh()
            except (aiohttp.ClientError, OSError, TimeoutError, aioredis.RedisError) as exc:
                log.warning("dashboard refresh failed: %s", exc)
            await asyncio.sleep(max(0.05, self.refresh_s - (time.monotonic() - began)))

    # -- controls --------------------------------------------------------------------------

    def _authorize(self, request: web.Request) -> str:
        token = bearer(request.headers.get("Authorization"), None)
        claims = verify_token(self.config.auth.dev_secret, token)
        if not claims.is_moderator:
            raise ApiError(ErrorCode.FORBIDDEN, "controls need a moderator's or host's token "
                                                "(chorus token --user NAME --role host)")
        return claims.user

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            doc = json.loads(await request.text())
        except ValueError:
            raise ApiError(ErrorCode.MALFORMED, "the body is a JSON object") from None
        if not isinstance(doc, dict):
            raise ApiError(ErrorCode.MALFORMED, "the body is a JSON object")
        return doc

    def _region(self, name: object) -> Region:
        if not isinstance(name, str) or name not in self.config.region_names:
            raise ApiError(ErrorCode.INVALID, f"no region {str(name)[:40]!r} (regions: "
                                              f"{', '.join(self.config.region_names)})")
        return self.config.region(name)

    async def set_link(self, request: web.Request) -> web.Response:
        user = self._authorize(request)
        region = self._region(request.match_info["region"])
        doc = await self._body(request)
        action = doc.get("action")
        if action == "cut":
            change: dict[str, Any] = {"enabled": False}
        elif action == "restore":
            change = {"enabled": True, "latency_ms": region.link.latency_ms,
                      "jitter_ms": region.link.jitter_ms}
        elif action == "slow":
            latency = doc.get("latency_ms")
            if (not isinstance(latency, int) or isinstance(latency, bool)
                    or not 0 <= latency <= SLOW_MAX_MS):
                raise ApiError(ErrorCode.INVALID, f"latency_ms is 0 to {SLOW_MAX_MS}")
            change = {"latency_ms": latency, "jitter_ms": region.link.jitter_ms}
        else:
            raise ApiError(ErrorCode.INVALID, "action is cut, restore or slow")
        await asyncio.to_thread(lambda: self.cluster.set_link(region.name, **change))
        log.info("dashboard: %s set %s's link: %s", user, region.name, change)
        return web.json_response({"region": region.name, "action": action, **change})

    async def start_drill(self, request: web.Request) -> web.Response:
        user = self._authorize(request)
        doc = await self._body(request)
        drill = doc.get("drill")
        if drill not in self.drills:
            raise ApiError(ErrorCode.INVALID, f"drill is one of {', '.join(self.drills)}")
        region = self._region(doc.get("region"))
        seconds = doc.get("seconds", 10)
        if not isinstance(seconds, int | float) or not 1 <= seconds <= DRILL_MAX_S:
            raise ApiError(ErrorCode.INVALID, f"seconds is 1 to {DRILL_MAX_S:.0f}")
        if self._drill_task is not None and not self._drill_task.done():
            raise ApiError(ErrorCode.UNAVAILABLE, "a drill is running; wait for its report",
                           retry_after_s=5)
        self.drill = DrillRun(drill=str(drill), region=region.name, seconds=float(seconds),
                              started_at=time.time())
        self._drill_task = asyncio.create_task(self._drill(self.drill), name=f"drill {drill}")
        log.info("dashboard: %s started drill %s on %s", user, drill, region.name)
        return web.json_response(asdict(self.drill), status=202)

    async def _drill(self, run: DrillRun) -> None:
        extra: dict[str, Any] = {"has_cassandra": True} if needs_cassandra(run.drill) else {}
        try:
            report = await self._drill_runner(self.config, drill=run.drill, region=run.region,
                                              seconds=run.seconds, progress=run.note, **extra)
        except asyncio.CancelledError:
            run.state, run.report = "error", "stopped with the dashboard"
            raise
        except Exception as exc:  # any failure to run is the drill's report, logged
            log.exception("drill %s failed to run", run.drill)
            run.state, run.report = "error", f"the drill could not run: {exc}"
            return
        run.state = "passed" if report.passed else "failed"
        run.report = report.text()

    # -- the application -------------------------------------------------------------------

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """Owns the clients and the refresher for the app's life."""
        self._http = aiohttp.ClientSession()
        self._redis = {r.name: aioredis.Redis(host=r.host, port=r.redis.port,
                                              socket_timeout=health.PROBE_TIMEOUT_S,
                                              socket_connect_timeout=health.PROBE_TIMEOUT_S)
                       for r in self.config.regions}
        refresher = asyncio.create_task(self._refresh_forever(), name="dashboard refresh")
        yield
        for task in (refresher, self._drill_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for client in self._redis.values():
            await client.aclose()
        await self._http.close()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_errors], client_max_size=16 * 1024)
        app.router.add_get("/", self._page)
        app.router.add_get("/web/{asset}", pages.static)
        app.router.add_get("/api/status", self._status)
        app.router.add_post("/api/links/{region}", self.set_link)
        app.router.add_post("/api/drills", self.start_drill)
        app.cleanup_ctx.append(self._lifecycle)
        return app

    async def _page(self, request: web.Request) -> web.FileResponse:
        return pages.page("dashboard.html")

    async def _status(self, request: web.Request) -> web.Response:
        return web.json_response(self.status, headers={"Cache-Control": "no-store"})


@web.middleware
async def _errors(request: web.Request,
                  handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> web.StreamResponse:
    """Refusals as the gateways' JSON errors (docs/protocol.md)."""
    try:
        return await handler(request)
    except ApiError as err:
        headers = {"Retry-After": str(round(err.retry_after_s))} if err.retry_after_s else {}
        return web.json_response(err.body(), status=err.code.status, headers=headers)


def _detail_urls(region: Region) -> tuple[str, ...]:
    """Where each gateway tells its connections: its operator listener where the config has
    one (a gateway's details are not on its client port), else its client port."""
    operator: tuple[str, ...] = getattr(region, "operator_urls", ())
    return operator if len(operator) == len(region.gateway_urls) else region.gateway_urls


async def log_counts(region: Region, partitions: int = 0) -> dict[str, int] | None:
    """Comments per stream in ``region``'s log, its ``partitions`` hot partitions included
    (a hot stream's comments are mostly there); None: its NATS does not answer."""
    import nats
    from nats.errors import Error as NatsError
    from nats.js.errors import Error as JsError

    try:
        nc = await nats.connect(region.nats_url, connect_timeout=health.PROBE_TIMEOUT_S,
                                max_reconnect_attempts=0, allow_reconnect=False,
                                error_cb=_quiet)
    except (NatsError, OSError, TimeoutError):
        return None
    parts = range(partitions + 1)
    try:
        js = nc.jetstream()
        infos = await asyncio.wait_for(asyncio.gather(*(
            js.stream_info(names.log_stream(part),
                           subjects_filter=names.log_subjects(region.name, part))
            for part in parts)), health.PROBE_TIMEOUT_S)
    except (NatsError, JsError, TimeoutError):
        return None
    finally:
        await nc.close()
    counts = per_stream((names.log_subject(region.name, part, ""), info.state.subjects or {})
                        for part, info in zip(parts, infos, strict=True))
    if len(counts) > STREAMS_READ_MAX:
        counts = dict(sorted(counts.items(), key=lambda kv: -kv[1])[:STREAMS_READ_MAX])
    return counts


def per_stream(logs: Iterable[tuple[str, Mapping[str, int]]]) -> dict[str, int]:
    """Comments per stream over the parts of a region's log: each part's per-subject counts
    with the subject prefix of its comments (the stream's name follows it), summed."""
    counts: dict[str, int] = {}
    for prefix, subjects in logs:
        for subject, n in subjects.items():
            if subject.startswith(prefix):
                stream = subject[len(prefix):]
                counts[stream] = counts.get(stream, 0) + n
    return counts


async def _quiet(exc: Exception) -> None:
    """nats-py prints every connection error by default; the dashboard shows it instead."""


@contextlib.asynccontextmanager
async def serve(cluster: Controlled, *, port: int, host: str = "127.0.0.1",
                refresh_s: float = REFRESH_S, drill_runner: DrillRunner = _run_drill
                ) -> AsyncIterator[tuple[OpsDashboard, str]]:
    """Runs the dashboard until the block ends; yields it and its URL (port 0: any)."""
    dashboard = OpsDashboard(cluster, refresh_s=refresh_s, drill_runner=drill_runner)
    runner = web.AppRunner(dashboard.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
        bound = runner.addresses[0][1]
        yield dashboard, f"http://{host}:{bound}"
    finally:
        await runner.cleanup()
