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
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp.web_response
import redis.asyncio as aioredis
from aiohttp import web
from nats.aio.client import Client as Nats

from chorus import natsclient
from chorus.config import Config, load_config
from chorus.errors import ChorusError
from region import compose, gcwatch
from region.app import CRASHED, make_app
from region.deployment import GatewaySettings, local_settings, settings_from_env
from region.gcwatch import GcWatch
from region.operator import make_operator_app
from region.serverlog import ServerLog

log = logging.getLogger(__name__)

SERVER_NAME = "chorus"   # the Server header: no versions for a scanner to match
LOOPS = ("uvloop", "asyncio")   # the event loops a gateway runs on; the first is the default


class GatewayCrashed(ChorusError):
    """A background loop of the gateway ended by itself; the gateway stopped."""


async def serve(config: Config, settings: GatewaySettings, *, nc: Nats,
                redis: aioredis.Redis, stop: asyncio.Event,
                ready: Callable[[], None] | None = None) -> None:
    """Serves one gateway of ``settings.region`` until ``stop`` is set. Raises
    GatewayCrashed, after a graceful shutdown, when one of its loops ended by itself.
    ``ready``, when given, is called once the client port listens."""
    cell, background = await compose.build(config, settings, nc=nc, redis=redis)
    # Every collection's pause, on /metrics (region/gcwatch.py).
    gc_watch = GcWatch(cell.metrics.gc_pause)
    gc_watch.start()
    application = make_app(cell, background=background, stop=stop)
    runner = web.AppRunner(application, access_log=None, shutdown_timeout=5.0,
                           **client_server_settings(config))
    await runner.setup()
    # The operator listener (/metrics, health details) comes up first: once the client port
    # answers, a scraper finds the gateway too. It stops last, after the goodbyes.
    operator: web.AppRunner | None = None
    try:
        if settings.operator_port is not None:
            operator = web.AppRunner(make_operator_app(application), access_log=None,
                                     shutdown_timeout=1.0)
            await operator.setup()
            await web.TCPSite(operator, settings.listen_host, settings.operator_port).start()
        with _tls(settings) as ssl_context:
            site = web.TCPSite(runner, settings.listen_host, settings.listen_port,
                               ssl_context=ssl_context)
            await site.start()
        if ready is not None:
            ready()
        await stop.wait()
    finally:
        await runner.cleanup()
        if operator is not None:
            await operator.cleanup()
        gc_watch.stop()
    crashed: list[str] = application[CRASHED]
    if crashed:
        raise GatewayCrashed(f"gateway loop(s) ended: {', '.join(crashed)}")


def client_server_settings(config: Config) -> dict[str, Any]:
    """aiohttp server settings of the client port (docs/security.md).

    ``keepalive_timeout`` is aiohttp's only bound on reading a request head: it closes a
    connection that has not sent a whole request within that long of opening, or of its last
    response (its default, an hour, lets a slow sender hold a connection that long). The
    ``logger`` rate-limits what malformed requests make aiohttp log. And no ``Server`` header
    names aiohttp's and Python's versions: aiohttp offers no setting for it, every response
    it writes (its own 400s included) takes it from this module constant."""
    aiohttp.web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
    return {"keepalive_timeout": config.limits.request_head_timeout_s,
            # After a 413 or 408 a client may still be sending its body: read and drop it
            # this long, so it sees the answer rather than a reset, then hang up.
            "lingering_time": 2.0,
            "logger": ServerLog(logging.getLogger("aiohttp.server"))}


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
    # fails at once and "503" means "not stored". chorus/natsclient.py: nats-py's client with
    # a cheaper parser of the live feed's headers.
    return await natsclient.connect(list(urls), name=name, max_reconnect_attempts=-1,
                                    reconnect_time_wait=0.5, connect_timeout=2,
                                    pending_size=0)


async def _main(config: Config, settings: GatewaySettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    nc = await connect_nats(settings.nats_urls, f"gateway-{settings.region}-{settings.node}")
    redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        # The collector tuned once the gateway is up: what start-up built stays out of every
        # later collection (region/gcwatch.py).
        await serve(config, settings, nc=nc, redis=redis, stop=stop, ready=gcwatch.tune)
    finally:
        await nc.drain()
        await redis.aclose()


def run_on(loop: str, main: Coroutine[Any, Any, None]) -> None:
    """Runs ``main`` to its end on ``loop``: ``uvloop`` (libuv's loop, written in C), or
    ``asyncio`` (the standard library's). uvloop is the default because a gateway is mostly
    event-loop work: socket reads and writes, futures and callbacks of many small requests,
    and the pure-Python selector loop spent a sizeable share of every post's CPU on that
    (docs/benchmarks.md, the ingest section). The standard loop stays one flag away, for a
    comparison or a platform uvloop does not build on."""
    if loop == "uvloop":
        import uvloop
        uvloop.run(main)
    else:
        asyncio.run(main)


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
    parser.add_argument("--loop", choices=LOOPS, default=LOOPS[0],
                        help="the event loop (default: %(default)s)")
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
    try:
        run_on(args.loop, _main(config, settings))
    except GatewayCrashed as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
