"""A region's gateway process: the HTTP/WebSocket edge that viewers and posters talk to.

`serve` takes everything it uses (config, NATS and Redis clients, a stop event), so tests and
the local cluster run the very same code. ``python -m region.gateway`` is the process entry
that `chorus up` starts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import redis.asyncio as aioredis
from aiohttp import web
from nats.aio.client import Client as Nats

from chorus.config import Config, load_config
from chorus.errors import ChorusError
from global_ import registry
from region import api, api_archive, live
from region.cell import CELL, Cell, build_cell
from region.deployment import GatewaySettings, local_settings, settings_from_env
from region.errors import ApiError, ErrorCode
from region.persister import Persister
from region.protocol import CloseCode

log = logging.getLogger(__name__)

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
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CELL].config.limits.frame_max_bytes
        return json_error(ApiError(ErrorCode.TOO_LARGE,
                                   f"request body is larger than {limit} bytes"))
    except web.HTTPMethodNotAllowed as exc:
        return json_error(ApiError(
            ErrorCode.METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed on {request.path} (allowed: "
            f"{', '.join(sorted(exc.allowed_methods))})"))


async def dependencies_ok(cell: Cell) -> tuple[bool, bool]:
    try:
        redis_up = bool(await asyncio.wait_for(cell.redis.ping(), 1.0))
    except (aioredis.RedisError, OSError, TimeoutError):
        redis_up = False
    return cell.nc.is_connected, redis_up


async def healthz(request: web.Request) -> web.Response:
    cell = request.app[CELL]
    nats_up, redis_up = await dependencies_ok(cell)
    ok = nats_up and redis_up
    return web.json_response(
        {"status": "ok" if ok else "degraded", "region": cell.region.name,
         "gateway": cell.index, "nats": nats_up, "redis": redis_up,
         "connections": len(cell.sessions)},
        status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: this process's counters."""
    cell = request.app[CELL]
    plane, fanout = cell.plane, cell.fanout
    labels = f'region="{cell.region.name}",gateway="{cell.index}"'
    lines = [
        "# TYPE chorus_connections gauge",
        f"chorus_connections{{{labels}}} {len(cell.sessions)}",
        "# TYPE chorus_slow_consumers_total counter",
        f"chorus_slow_consumers_total{{{labels}}} {cell.slow_consumers}",
        "# TYPE chorus_entries_delivered_total counter",
        f"chorus_entries_delivered_total{{{labels}}} {fanout.delivered}",
        "# TYPE chorus_presence_queries_total counter",
        f"chorus_presence_queries_total{{{labels}}} {plane.directory.queries}",
        "# TYPE chorus_bootstraps_total counter",
        f"chorus_bootstraps_total{{{labels}}} {plane.bootstraps}",
    ]
    for name, counter in (("forwarded", plane.stats.forwarded),
                          ("forward_skipped_no_viewers", plane.stats.skipped_no_viewers),
                          ("forward_failures", plane.stats.failures)):
        lines.append(f"# TYPE chorus_{name}_total counter")
        for dest in plane.others:
            lines.append(f'chorus_{name}_total{{{labels},dest="{dest}"}} {counter.get(dest, 0)}')
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")


async def regions(request: web.Request) -> web.Response:
    """Every region with its public URLs and its health as the registry last heard it."""
    cell, state = request.app[CELL], request.app[REGISTRY]
    config = cell.config
    now = time.monotonic()
    out = []
    for region in config.regions:
        health = state.health(region.name, now)
        out.append({
            "name": region.name,
            "urls": list(state.urls(region.name, now) or region.gateway_urls),
            "healthy": health.healthy,
            "gateways_healthy": health.gateways_healthy,
            "last_seen_s": health.last_seen_s,
            "link_latency_ms": region.link.latency_ms,
        })
    return web.json_response({"region": cell.region.name, "regions": out})


async def _heartbeats(app: web.Application) -> None:
    """Announces this gateway's health over the hub, and hears every other region's."""
    cell, state = app[CELL], app[REGISTRY]
    nc = cell.nc

    async def on_beat(msg: Any) -> None:
        try:
            beat = registry.Heartbeat.decode(msg.data)
        except ValueError:
            return  # a stray publisher must not break the registry
        state.observe(beat, time.monotonic())

    sub = await nc.subscribe(f"{registry.SUBJECT_PREFIX}.*", cb=on_beat)
    try:
        while True:
            nats_up, redis_up = await dependencies_ok(cell)
            beat = registry.Heartbeat(region=cell.region.name, gateway=cell.url,
                                      healthy=nats_up and redis_up,
                                      ts_ms=int(time.time() * 1000))
            if nc.is_connected:
                await nc.publish(registry.subject(cell.region.name), beat.encode())
            # Our own view of ourselves does not wait for the hub.
            state.observe(beat, time.monotonic())
            await asyncio.sleep(cell.config.limits.health_interval_s)
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()


def _crashed(task: asyncio.Task[None]) -> None:
    """A background loop that ends by itself is a bug: log it and stop the process
    gracefully (viewers get their resume hints), so that its supervisor sees and restarts it
    rather than a gateway serving on without presence, forwarding or archiving."""
    if task.cancelled() or task.exception() is None:
        return
    log.critical("gateway task %s crashed; shutting down", task.get_name(),
                 exc_info=task.exception())
    os.kill(os.getpid(), signal.SIGTERM)


async def _background(app: web.Application) -> AsyncIterator[None]:
    """The gateway's own tasks: registry heartbeats, the fanout's presence and cache loops,
    the global plane, the archive persister. Cancelled and awaited on shutdown; a crash of
    one stops the gateway (see _crashed)."""
    cell = app[CELL]
    tasks = [asyncio.create_task(_heartbeats(app), name="registry-heartbeats"),
             asyncio.create_task(cell.fanout.run(), name="fanout"),
             asyncio.create_task(cell.plane.run(), name="global-plane")]
    if cell.archive is not None:
        persister = Persister(cell.nc, cell.region.name, cell.archive)
        tasks.append(asyncio.create_task(persister.run(), name="archive-persister"))
    for task in tasks:
        task.add_done_callback(_crashed)
    yield
    for task in tasks:
        task.remove_done_callback(_crashed)
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await cell.fanout.withdraw()
    if cell.archive is not None:
        await cell.archive.close()


async def _say_goodbye(app: web.Application) -> None:
    """On shutdown every viewer gets a `bye` with its cursor and where else to go."""
    cell = app[CELL]
    others = cell.peers or tuple(u for u in cell.region.gateway_urls if u != cell.url)
    await asyncio.gather(*(s.close("gateway shutting down", CloseCode.GOING_AWAY, others)
                           for s in tuple(cell.sessions)))


def make_app(cell: Cell) -> web.Application:
    limits = cell.config.limits
    app = web.Application(middlewares=[error_middleware],
                          client_max_size=limits.frame_max_bytes)
    app[CELL] = cell
    app[REGISTRY] = registry.RegistryState(interval_s=limits.health_interval_s)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/regions", regions)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/v1/streams/{stream}/comments", api.post_comment)
    app.router.add_get("/v1/streams/{stream}/comments", api.history)
    app.router.add_get("/v1/streams/{stream}/live", live.websocket)
    app.router.add_get("/v1/streams/{stream}/events", live.sse)
    app.router.add_get("/v1/streams/{stream}/poll", live.poll)
    app.router.add_put("/v1/moderation/bans/{user}", api.set_ban)
    app.router.add_delete("/v1/moderation/bans/{user}", api.set_ban)
    app.router.add_delete("/v1/streams/{stream}/comments/{id}", api_archive.retract_comment)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_say_goodbye)
    return app


async def serve(config: Config, settings: GatewaySettings, *, nc: Nats,
                redis: aioredis.Redis, stop: asyncio.Event) -> None:
    """Serves one gateway of ``settings.region`` until ``stop`` is set."""
    region = config.region(settings.region)
    cell = await build_cell(config, region, settings.node, nc=nc, redis=redis)
    cell.public_url, cell.peers = settings.public_url, settings.peers
    runner = web.AppRunner(make_app(cell), access_log=None, shutdown_timeout=5.0)
    await runner.setup()
    with _tls(settings) as ssl_context:
        site = web.TCPSite(runner, settings.listen_host, settings.listen_port,
                           ssl_context=ssl_context)
        await site.start()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@contextlib.contextmanager
def _tls(settings: GatewaySettings) -> Iterator[ssl.SSLContext | None]:
    """A server TLS context from PEM text (the ssl module loads certificates from files
    only: they live in a private temporary directory just while loading)."""
    if settings.tls_cert_pem is None or settings.tls_key_pem is None:
        yield None
        return
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_text(settings.tls_cert_pem)
        key.write_text(settings.tls_key_pem)
        key.chmod(0o600)
        context.load_cert_chain(cert, key)
    yield context


async def connect_nats(urls: tuple[str, ...], name: str) -> Nats:
    # Reconnect forever: a gateway outlives any NATS restart (nats-py gives up after 60
    # attempts by default). No reconnect buffer: nats-py would otherwise keep a post's publish
    # while disconnected and deliver it after the poster was told 503; with none, the publish
    # fails at once and "503" means "not stored".
    return await nats.connect(list(urls), name=name, max_reconnect_attempts=-1,
                              reconnect_time_wait=0.5, connect_timeout=2, pending_size=0)


async def _main(config: Config, settings: GatewaySettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc = await connect_nats(settings.nats_urls, f"gateway-{settings.region}-{settings.node}")
    redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        await serve(config, settings, nc=nc, redis=redis, stop=stop)
    finally:
        await nc.drain()
        await redis.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m region.gateway", description="Run one gateway process of a region.",
        epilog="--from-env takes the region, addresses and secrets from CHORUS_* variables "
               "(region/deployment.py lists them): the mode of a deployed gateway.")
    parser.add_argument("--config", required=True, help="regions.yaml to load")
    parser.add_argument("--region", help="the region (local cluster)")
    parser.add_argument("--index", type=int, default=0, help="which of the region's gateways")
    parser.add_argument("--from-env", action="store_true",
                        help="a deployed gateway: addresses from CHORUS_* variables")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.from_env:
            config, settings = settings_from_env(os.environ, config)
        else:
            if not args.region:
                parser.error("--region is required (or --from-env)")
            region = config.region(args.region)
            if not 0 <= args.index < region.gateways:
                parser.error(f"--index must be 0..{region.gateways - 1} for region "
                             f"{region.name}")
            settings = local_settings(config, region, args.index)
    except ChorusError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(2)
    asyncio.run(_main(config, settings))


if __name__ == "__main__":
    main()
