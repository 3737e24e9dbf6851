"""``GET /v1/streams/{stream}/snapshot``: a stream's snapshot document, as a CDN caches it.

The document is the region's (region/snapshot.py): the same bytes and ETag from every gateway
of the region, rewritten every ``tiers.snapshot_interval_s``. No token: a shared cache serves
the same document to everyone, and it holds only what any viewer of the stream may see.
404 while the stream is not in the snapshot tier in this region.
"""

from __future__ import annotations

from aiohttp import web

from region.cell import CELL
from region.errors import ApiError, ErrorCode
from region.snapshot import SnapshotUnavailable, cache_control, not_modified
from region.validation import check_stream


async def snapshot(request: web.Request) -> web.Response:
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    if cell.snapshots is None:
        raise ApiError(ErrorCode.NOT_FOUND, "this gateway serves no snapshots")
    try:
        rendered = await cell.snapshots.get(stream)
    except SnapshotUnavailable as exc:
        raise ApiError(ErrorCode.UNAVAILABLE, "the region's snapshot store is not answering",
                       retry_after_s=1) from exc
    if rendered is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"stream {stream} is not in the snapshot tier in "
                                            f"region {cell.region.name}")
    headers = {"ETag": rendered.etag,
               "Cache-Control": cache_control(cell.config.tiers.snapshot_interval_s)}
    if not_modified(request.headers.get("If-None-Match"), rendered.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=rendered.body, content_type="application/json", charset="utf-8",
                        headers=headers)
