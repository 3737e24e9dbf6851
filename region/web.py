"""The browser's side of a gateway: the viewer page, its static assets, and CORS on the API.

Every gateway serves the viewer page (``GET /`` and ``GET /watch/{stream}``): one static HTML
file, web/pages/viewer.html, whose script (web/dist/viewer.js, built from web/pages/src by
``npm run build`` in web/, which scripts/setup.sh runs) talks to the gateway like any other
client, through the TypeScript SDK. The page holds no data of the server's: what it shows
comes over the public API, so serving it is a file read.

The page fails over to other regions' gateways, which are other origins, so the API answers
browsers of the allowed origins (``auth.allowed_origins``) with CORS headers and preflights.
Tokens travel in the ``Authorization`` header or ``?access_token=``, never in cookies, so CORS
lets no other site act with a viewer's credentials.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from region.auth import origin_allowed
from region.cell import CELL
from region.errors import ApiError, ErrorCode
from region.validation import check_stream

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
PAGES = WEB_ROOT / "pages"
DIST = WEB_ROOT / "dist"

# The files a page may load, by name: nothing else under web/ is reachable.
ASSETS = {
    "viewer.js": "text/javascript",
    "viewer.js.map": "application/json",
    "viewer.css": "text/css",
    "dashboard.js": "text/javascript",
    "dashboard.js.map": "application/json",
    "dashboard.css": "text/css",
}

# The page's scripts and styles are its own files; comments are rendered as text, and this
# policy stops any markup that got through anyway from running script. It connects to other
# regions' gateways (failover), so connect-src is open to http(s) and ws(s).
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src http: https: ws: wss:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    # A token given as ?token= must not leave in a Referer header.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

CORS_PATHS = ("/v1/", "/healthz")
CORS_MAX_AGE_S = 600


def page(name: str, pages: Path = PAGES) -> web.FileResponse:
    """One of web/pages/*.html with the page headers."""
    path = pages / name
    if not path.is_file():
        raise ApiError(ErrorCode.NOT_FOUND, f"the page {name} is missing from {pages}")
    return web.FileResponse(path, headers={**PAGE_HEADERS,
                                           "Content-Type": "text/html; charset=utf-8"})


def asset(name: str, dist: Path = DIST) -> web.FileResponse:
    """A built asset of web/dist by its name in `ASSETS`."""
    content_type = ASSETS.get(name)
    if content_type is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"no such asset: {name[:64]}")
    path = dist / name
    if not path.is_file():
        raise ApiError(ErrorCode.NOT_FOUND, f"{name} is not built: run scripts/setup.sh (or "
                                            "`npm ci && npm run build` in web/)")
    return web.FileResponse(path, headers={**PAGE_HEADERS, "Content-Type": content_type})


async def index(request: web.Request) -> web.FileResponse:
    """The viewer page; its script takes the stream from ``?stream=`` (default ``demo``)."""
    return page("viewer.html")


async def watch(request: web.Request) -> web.FileResponse:
    """The viewer page of one stream."""
    check_stream(request.match_info["stream"])
    return page("viewer.html")


async def static(request: web.Request) -> web.FileResponse:
    return asset(request.match_info["asset"])


def _cors_origin(request: web.Request) -> str | None:
    """The request's Origin when it is a browser of an allowed origin on the API."""
    origin = request.headers.get("Origin")
    if origin is None or not request.path.startswith(CORS_PATHS):
        return None
    allowed = request.app[CELL].config.auth.allowed_origins
    return origin if origin_allowed(origin, allowed) else None


async def preflight(request: web.Request) -> web.Response:
    """``OPTIONS`` before a browser's cross-origin POST or DELETE (JSON body, Authorization
    header): allowed for the allowed origins, refused (403) for any other."""
    origin = _cors_origin(request)
    if origin is None:
        raise ApiError(ErrorCode.FORBIDDEN, f"origin {request.headers.get('Origin')} may not "
                                            f"call {request.path[:80]}; add it to "
                                            "auth.allowed_origins")
    return web.Response(status=204, headers={
        "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, Last-Event-ID",
        "Access-Control-Max-Age": str(CORS_MAX_AGE_S),
    })


async def cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Lets a page of an allowed origin read the API's answers (on_response_prepare)."""
    origin = _cors_origin(request)
    if origin is None:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = "Retry-After, Idempotent-Replayed"
    response.headers.add("Vary", "Origin")
