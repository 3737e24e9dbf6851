"""A gateway's HTTP application: routes, the error middleware, health, the region
directory, and the ownership of the gateway's background tasks. ``/metrics`` and health
details are on the operator listener (region/operator.py), not here.

`make_app` takes the built `Cell` and the background loops the composition root
(region/compose.py) chose; it knows neither how they were built nor the global plane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from nats.aio.client import Client as Nats

from chorus.drivers import driver_errors
from region import api, live, moderation_api, reactions_api, replies_api, snapshot_api
from region import web as pages
from region.cell import CELL, Cell
from region.edge import request_guard
from region.errors import ApiError, ErrorCode
from region.protocol import CloseCode
from region.serverlog import ServerLog

log = logging.getLogger(__name__)
# Unhandled errors keep their tracebacks, but a bug that any request can trigger must not
# let anyone fill the log: at most a few per minute, with a count of the rest.
_unhandled = ServerLog(log)


@dataclass(frozen=True)
class Background:
    """A loop the gateway runs for its whole life; it must never return by itself."""

    name: str
    run: Callable[[], Coroutine[Any, Any, None]]


STOP = web.AppKey("stop", asyncio.Event)
BACKGROUND = web.AppKey("background", tuple[Background, ...])
CRASHED = web.AppKey("crashed", list[str])


def json_error(err: ApiError, request: web.Request | None = None) -> web.Response:
    """The documented JSON error; with ``request``, counted by code (``chorus_errors``)."""
    if request is not None and CELL in request.app:
        request.app[CELL].metrics.error(err.code.code)
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
        return json_error(err, request)
    except web.HTTPNotFound:
        return json_error(ApiError(ErrorCode.NOT_FOUND, f"no such endpoint: {request.path}"),
                          request)
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[CELL].config.limits.frame_max_bytes
        return json_error(ApiError(ErrorCode.TOO_LARGE,
                                   f"request body is larger than {limit} bytes"), request)
    except web.HTTPMethodNotAllowed as exc:
        return json_error(ApiError(
            ErrorCode.METHOD_NOT_ALLOWED,
            f"{request.method} is not allowed on {request.path} (allowed: "
            f"{', '.join(sorted(exc.allowed_methods))})"), request)
    except web.HTTPException as exc:
        # aiohttp's own refusals (a WebSocket request without its upgrade headers is a 400)
        # in the documented form too.
        code = ErrorCode.of_status(exc.status) if exc.status >= 400 else None
        if code is None:
            raise
        return json_error(ApiError(code, exc.text or exc.reason), request)
    except Exception as exc:
        if request.writer.output_size > 0:
            raise  # a response (a WebSocket, an SSE stream) is under way: aiohttp ends it
        _unhandled.exception("unhandled error on %s %s", request.method, request.path[:200],
                             exc_info=exc)
        return json_error(ApiError(ErrorCode.INTERNAL, "the gateway failed on this request; "
                                                       "retrying may help"), request)


async def dependencies_ok(nc: Nats, redis: aioredis.Redis) -> tuple[bool, bool]:
    """Whether NATS is connected and Redis answers a ping within a second."""
    try:
        redis_up = bool(await asyncio.wait_for(redis.ping(), 1.0))
    except driver_errors("redis"):
        redis_up = False
    return nc.is_connected, redis_up


async def dependency_state(cell: Cell) -> tuple[bool, bool]:
    """(NATS, Redis) as the cell's background watch last saw them: no I/O on the request
    path, so a busy event loop cannot fail the check (region/dependencies.py)."""
    if cell.dependencies is not None:
        return await cell.dependencies.state()
    return await dependencies_ok(cell.nc, cell.redis)


async def healthz(request: web.Request) -> web.Response:
    cell = request.app[CELL]
    nats_up, redis_up = await dependency_state(cell)
    ok = nats_up and redis_up
    return web.json_response(
        {"status": "ok" if ok else "degraded", "region": cell.region.name,
         "gateway": cell.index, "nats": nats_up, "redis": redis_up,
         "connections": len(cell.sessions)},
        status=200 if ok else 503)


async def regions(request: web.Request) -> web.Response:
    """Every region with its public URLs and its health as the registry last heard it."""
    cell = request.app[CELL]
    out = [{"name": r.name, "urls": list(r.urls), "healthy": r.healthy,
            "gateways_healthy": r.gateways_healthy, "last_seen_s": r.last_seen_s,
            "link_latency_ms": r.link_latency_ms} for r in cell.directory.regions()]
    return web.json_response({"region": cell.region.name, "regions": out})


def _crashed(app: web.Application, task: asyncio.Task[None]) -> None:
    """A background loop that ends by itself is a bug: log it and stop the gateway
    gracefully (viewers get their resume hints) through the stop event `serve` waits on, so
    that its supervisor sees the exit and restarts it rather than a gateway serving on
    without presence, forwarding or archiving."""
    if task.cancelled():
        return
    exc = task.exception()
    log.critical("gateway task %s ended (%s); shutting down", task.get_name(),
                 "crashed" if exc else "returned", exc_info=exc)
    app[CRASHED].append(task.get_name())
    app[STOP].set()


async def _background(app: web.Application) -> AsyncIterator[None]:
    """Runs the gateway's loops for the app's life; cancels and awaits them on shutdown."""
    cell = app[CELL]
    tasks = [asyncio.create_task(b.run(), name=b.name) for b in app[BACKGROUND]]
    callbacks = []
    for task in tasks:
        def done(t: asyncio.Task[None]) -> None:
            _crashed(app, t)
        task.add_done_callback(done)
        callbacks.append(done)
    yield
    for task, done in zip(tasks, callbacks, strict=True):
        task.remove_done_callback(done)
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


def _moderation_routes(app: web.Application) -> None:
    """The moderation API (region/moderation_api.py; docs/protocol.md, "Moderation")."""
    mod = moderation_api
    app.router.add_put("/v1/moderation/bans/{user}", mod.set_ban)
    app.router.add_delete("/v1/moderation/bans/{user}", mod.set_ban)
    app.router.add_put("/v1/moderation/timeouts/{user}", mod.set_timeout)
    app.router.add_delete("/v1/moderation/timeouts/{user}", mod.set_timeout)
    app.router.add_get("/v1/moderation/users/{user}", mod.user_standing)
    app.router.add_get("/v1/moderation/terms", mod.list_terms)
    app.router.add_post("/v1/moderation/terms", mod.change_terms)
    app.router.add_get("/v1/moderation/audit", mod.audit)
    app.router.add_put("/v1/streams/{stream}/slow_mode", mod.set_slow_mode)
    app.router.add_get("/v1/streams/{stream}/moderation", mod.stream_moderation)
    app.router.add_put("/v1/streams/{stream}/moderation", mod.set_policy)
    app.router.add_put("/v1/streams/{stream}/pin", mod.set_pin)
    app.router.add_delete("/v1/streams/{stream}/pin", mod.set_pin)
    app.router.add_delete("/v1/streams/{stream}/comments/{id}", mod.retract_comment)
    app.router.add_post("/v1/streams/{stream}/comments/{id}/approve", mod.approve_comment)


def _reaction_routes(app: web.Application) -> None:
    """Reactions and a stream's state (region/reactions_api.py; docs/protocol.md)."""
    app.router.add_post("/v1/streams/{stream}/reactions", reactions_api.post_reaction)
    app.router.add_get("/v1/streams/{stream}/reactions", reactions_api.reaction_timeline)
    app.router.add_get("/v1/streams/{stream}", reactions_api.stream_state)
    app.router.add_route("OPTIONS", "/v1/streams/{stream}/reactions", pages.preflight)


def make_app(cell: Cell, *, background: Sequence[Background], stop: asyncio.Event
             ) -> web.Application:
    """The gateway's application. ``stop`` is set when a background loop ends."""
    limits = cell.config.limits
    app = web.Application(middlewares=[error_middleware, request_guard(cell.config)],
                          client_max_size=limits.frame_max_bytes)
    app[CELL] = cell
    app[STOP] = stop
    app[BACKGROUND] = tuple(background)
    app[CRASHED] = []
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/v1/regions", regions)
    app.router.add_post("/v1/streams/{stream}/comments", api.post_comment)
    app.router.add_get("/v1/streams/{stream}/comments", api.history)
    app.router.add_get("/v1/streams/{stream}/comments/{id}/replies", replies_api.thread)
    app.router.add_get("/v1/streams/{stream}/live", live.websocket)
    app.router.add_get("/v1/streams/{stream}/events", live.sse)
    app.router.add_get("/v1/streams/{stream}/poll", live.poll)
    app.router.add_get("/v1/streams/{stream}/snapshot", snapshot_api.snapshot)
    _moderation_routes(app)
    _reaction_routes(app)
    app.router.add_get("/", pages.index)
    app.router.add_get("/watch/{stream}", pages.watch)
    app.router.add_get("/web/{asset}", pages.static)
    for path in ("/v1/streams/{stream}/comments", "/v1/streams/{stream}/comments/{id}",
                 "/v1/moderation/bans/{user}"):
        app.router.add_route("OPTIONS", path, pages.preflight)
    app.on_response_prepare.append(pages.cors_headers)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_say_goodbye)
    return app
