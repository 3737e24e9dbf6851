"""A region's gateway process: the HTTP/WebSocket edge that viewers and posters talk to.

`serve` takes everything it uses (config, NATS and Redis clients, a stop event), so tests and
the local cluster run the very same code. ``python -m region.gateway`` is the process entry
that `chorus up` starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats
import redis.asyncio as aioredis
from aiohttp import web
from nats.aio.client import Client as Nats

from chorus.config import Config, Region, load_config
from global_ import registry
from region.errors import ApiError, ErrorCode


@dataclass(frozen=True)
class GatewayIdentity:
    region: Region
    index: int

    @property
    def url(self) -> str:
        return self.region.gateway_urls[self.index]


CONFIG = web.AppKey("config", Config)
IDENTITY = web.AppKey("identity", GatewayIdentity)
NATS = web.AppKey("nats", Nats)
REDIS = web.AppKey("redis", aioredis.Redis)
REGISTRY = web.AppKey("registry", registry.RegistryState)


def json_error(err: ApiError) -> web.Response:
    headers = {}
    if err.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after_s)))
    return web.json_response(err.body(), status=err.code.status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    """Every refusal leaves as the documented JSON error, including aiohttp's own 404/405."""
    try:
        return await handler(request)
    except ApiError as err:
        return json_error(err)
    except web.HTTPNotFound:
        return json_error(ApiError(ErrorCode.NOT_FOUND, f"no such endpoint: {request.path}"))
    except web.HTTPMethodNotAllowed as exc:
        return json_error(ApiError(
            ErrorCode.METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed on {request.path} (allowed: "
            f"{', '.join(sorted(exc.allowed_methods))})"))


async def dependencies_ok(app: web.Application) -> tuple[bool, bool]:
    nc = app[NATS]
    try:
        redis_up = bool(await asyncio.wait_for(app[REDIS].ping(), 1.0))
    except (aioredis.RedisError, OSError, TimeoutError):
        redis_up = False
    return nc.is_connected, redis_up


async def healthz(request: web.Request) -> web.Response:
    app = request.app
    ident = app[IDENTITY]
    nats_up, redis_up = await dependencies_ok(app)
    ok = nats_up and redis_up
    return web.json_response(
        {"status": "ok" if ok else "degraded", "region": ident.region.name,
         "gateway": ident.index, "nats": nats_up, "redis": redis_up},
        status=200 if ok else 503)


async def regions(request: web.Request) -> web.Response:
    """Every region with its public URLs and its health as the registry last heard it."""
    app = request.app
    config, ident, state = app[CONFIG], app[IDENTITY], app[REGISTRY]
    now = time.monotonic()
    out = []
    for region in config.regions:
        health = state.health(region.name, now)
        out.append({
            "name": region.name,
            "urls": list(region.gateway_urls),
            "healthy": health.healthy,
            "gateways_healthy": health.gateways_healthy,
            "last_seen_s": health.last_seen_s,
            "link_latency_ms": region.link.latency_ms,
        })
    return web.json_response({"region": ident.region.name, "regions": out})


async def _heartbeats(app: web.Application) -> None:
    """Announces this gateway's health over the hub, and hears every other region's."""
    config, ident, state, nc = app[CONFIG], app[IDENTITY], app[REGISTRY], app[NATS]

    async def on_beat(msg: Any) -> None:
        try:
            beat = registry.Heartbeat.decode(msg.data)
        except ValueError:
            return  # a stray publisher must not break the registry
        state.observe(beat, time.monotonic())

    sub = await nc.subscribe(f"{registry.SUBJECT_PREFIX}.*", cb=on_beat)
    try:
        while True:
            nats_up, redis_up = await dependencies_ok(app)
            beat = registry.Heartbeat(region=ident.region.name, gateway=ident.url,
                                      healthy=nats_up and redis_up,
                                      ts_ms=int(time.time() * 1000))
            if nc.is_connected:
                await nc.publish(registry.subject(ident.region.name), beat.encode())
            # Our own view of ourselves does not wait for the hub.
            state.observe(beat, time.monotonic())
            await asyncio.sleep(config.limits.health_interval_s)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


async def _background(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_heartbeats(app), name="registry-heartbeats")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def make_app(config: Config, ident: GatewayIdentity, *, nc: Nats,
             redis: aioredis.Redis) -> web.Application:
    app = web.Application(middlewares=[error_middleware],
                          client_max_size=config.limits.frame_max_bytes)
    app[CONFIG] = config
    app[IDENTITY] = ident
    app[NATS] = nc
    app[REDIS] = redis
    app[REGISTRY] = registry.RegistryState(interval_s=config.limits.health_interval_s)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/regions", regions)
    app.cleanup_ctx.append(_background)
    return app


async def serve(config: Config, ident: GatewayIdentity, *, nc: Nats, redis: aioredis.Redis,
                stop: asyncio.Event, port: int | None = None) -> None:
    """Serves until ``stop`` is set. ``port`` overrides the configured one (0: any free)."""
    app = make_app(config, ident, nc=nc, redis=redis)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, ident.region.host,
                       ident.region.gateway_ports[ident.index] if port is None else port)
    await site.start()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def connect_nats(region: Region, name: str) -> Nats:
    # Reconnect forever: a gateway outlives any NATS restart (nats-py gives up after 60
    # attempts by default).
    return await nats.connect(region.nats_url, name=name, max_reconnect_attempts=-1,
                              reconnect_time_wait=0.5, connect_timeout=2)


async def _main(config: Config, region_name: str, index: int) -> None:
    region = config.region(region_name)
    ident = GatewayIdentity(region, index)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc = await connect_nats(region, f"gateway-{region.name}-{index}")
    redis = aioredis.Redis.from_url(region.redis_url, socket_timeout=5)
    try:
        await serve(config, ident, nc=nc, redis=redis, stop=stop)
    finally:
        await nc.drain()
        await redis.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m region.gateway",
                                     description="Run one gateway process of a region.")
    parser.add_argument("--config", required=True, help="regions.yaml to load")
    parser.add_argument("--region", required=True)
    parser.add_argument("--index", type=int, default=0, help="which of the region's gateways")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    region = config.region(args.region)
    if not 0 <= args.index < region.gateways:
        parser.error(f"--index must be 0..{region.gateways - 1} for region {region.name}")
    asyncio.run(_main(config, args.region, args.index))


if __name__ == "__main__":
    main()
