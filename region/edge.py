"""What every HTTP request passes before a handler sees it (an aiohttp middleware).

- **Origin** on the API (``/v1/``): a browser page of another site gets 403, whatever the
  method, as docs/protocol.md promises; an Origin that is not a URL is refused too. Pages and
  their assets, and ``OPTIONS`` preflights (region/web.py answers them), are not API calls.
- **Bodies**: a declared ``Content-Length`` over the limit is refused with 413 before a byte of
  it is read; a body must be ``application/json`` (415 otherwise: browsers send text/plain and
  form bodies cross-site without a preflight); the whole body must arrive within
  ``limits.request_body_timeout_s`` (408). The body is read here, once: handlers'
  ``request.read()`` returns it from memory.

A 413 or 408 closes the connection: the rest of the body is not worth reading.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from chorus.config import Config
from region.auth import origin_allowed
from region.errors import ApiError, ErrorCode

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_PREFIX = "/v1/"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = "application/json"


def check_origin(request: web.Request, allowed: tuple[str, ...]) -> None:
    """403 for a browser Origin that is neither the gateway's own nor an allowed one."""
    origin = request.headers.get("Origin")
    own = f"{request.scheme}://{request.host}"
    if not origin_allowed(origin, allowed, own=own):
        raise ApiError(ErrorCode.FORBIDDEN, f"origin {origin!r:.80} is not allowed; add it to "
                                            "auth.allowed_origins")


def _closing(err: ApiError) -> web.Response:
    response = web.json_response(err.body(), status=err.code.status)
    response.force_close()
    return response


def request_guard(config: Config) -> Middleware:
    """The middleware, for a gateway of ``config`` (its limits and allowed origins)."""
    limit = config.limits.frame_max_bytes
    body_timeout_s = config.limits.request_body_timeout_s
    allowed = config.auth.allowed_origins

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(API_PREFIX) and request.method != "OPTIONS":
            check_origin(request, allowed)
        if request.method in BODY_METHODS and request.body_exists:
            declared = request.content_length
            if declared is not None and declared > limit:
                return _closing(ApiError(ErrorCode.TOO_LARGE, f"request body is {declared} "
                                                              f"bytes; the limit is {limit}"))
            if request.content_type != JSON:
                raise ApiError(ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                               f"a request body is {JSON}, not "
                               f"{request.content_type[:60] or 'untyped'}")
            try:
                if request.content.is_eof():
                    await request.read()  # the whole body is here: no timer to arm
                else:
                    async with asyncio.timeout(body_timeout_s):
                        await request.read()
            except TimeoutError:
                return _closing(ApiError(ErrorCode.REQUEST_TIMEOUT,
                                         f"the request body did not arrive within "
                                         f"{body_timeout_s:g} s"))
        return await handler(request)

    return guard
