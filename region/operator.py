"""A gateway's operator listener: ``/metrics`` and health details, on a port of its own.

The client port (region/app.py) serves viewers and posters, whoever they are; what only an
operator should read (every counter and latency of the gateway, the state of its loops, its
version) is served here instead, plain HTTP on ``operator_port + i`` (regions.yaml), for
Prometheus and the operators' network. A deployment keeps the port private (a security
group, not a token): nothing here changes state, and nothing here takes a token.

    GET /metrics    Prometheus text format (chorus/metrics.py)
    GET /healthz    200 or 503 with details: dependencies, loops, connections, uptime
"""

from __future__ import annotations

import time
from importlib import metadata

from aiohttp import web

from chorus.metrics import CONTENT_TYPE
from region.app import BACKGROUND, CRASHED, dependencies_ok, error_middleware
from region.cell import CELL

MAIN = web.AppKey("main", web.Application)
STARTED = web.AppKey("started", float)


def _version() -> str:
    try:
        return metadata.version("chorus")
    except metadata.PackageNotFoundError:
        return "unknown"


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format: this process's metrics."""
    body = request.app[CELL].metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


async def healthz(request: web.Request) -> web.Response:
    """The client port's health, with what an operator wants to know on top: each background
    loop (a crashed one stops the gateway), the sessions, the uptime and the version."""
    cell = request.app[CELL]
    main = request.app[MAIN]
    nats_up, redis_up = await dependencies_ok(cell.nc, cell.redis)
    ended: list[str] = main[CRASHED]
    crashed = set(ended)
    loops = {b.name: "crashed" if b.name in crashed else "running" for b in main[BACKGROUND]}
    ok = nats_up and redis_up and not crashed
    return web.json_response(
        {"status": "ok" if ok else "degraded", "region": cell.region.name,
         "gateway": cell.index, "url": cell.url, "nats": nats_up, "redis": redis_up,
         "archive": cell.archive is not None, "connections": len(cell.sessions),
         "loops": loops, "uptime_s": round(time.monotonic() - request.app[STARTED], 1),
         "version": _version()},
        status=200 if ok else 503)


def make_operator_app(main: web.Application) -> web.Application:
    """The operator listener's application, beside ``main`` (region/app.py's `make_app`),
    whose cell and background loops it reports on."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1024)
    app[CELL] = main[CELL]
    app[MAIN] = main
    app[STARTED] = time.monotonic()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    return app
