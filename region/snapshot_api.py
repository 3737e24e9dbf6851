"""``GET /v1/streams/{stream}/snapshot``: a stream's snapshot document, as a CDN caches it.

The document is the region's (region/snapshot.py): the same bytes and ETag from every gateway
of the region, rewritten every ``tiers.snapshot_interval_s``. No token: a shared cache serves
the same document to everyone, and it holds only what any viewer of the stream may see.

Right after a stream enters the snapshot tier the region may not have rendered it yet. The
gateway a ``tier`` frame's ``snapshot_url`` names delivers the stream itself, and renders the
first document on demand (region/tiers_feed.py `TierFeeds.document`); any other gateway of the
region answers 503 with ``Retry-After`` until the first render is stored. 404 while the
stream is not in the snapshot tier in this region.
"""

from __future__ import annotations

import math
import time

from aiohttp import web

from region.cell import CELL
from region.errors import ApiError, ErrorCode
from region.snapshot import SnapshotUnavailable, cache_control, not_modified
from region.tiers import Reading
from region.validation import check_stream


async def snapshot(request: web.Request) -> web.Response:
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    if cell.snapshots is None:
        raise ApiError(ErrorCode.NOT_FOUND, "this gateway serves no snapshots")
    interval_s = cell.config.tiers.snapshot_interval_s
    notice = cell.tiers.notice(stream, time.monotonic()) if cell.tiers is not None else None
    feeds = cell.fanout.feeds
    try:
        if feeds is not None:
            reading = (Reading(viewers=notice.viewers, rate_per_s=notice.rate_per_s)
                       if notice is not None else None)
            rendered = await feeds.document(stream, reading)
        else:
            rendered = await cell.snapshots.get(stream)
    except SnapshotUnavailable as exc:
        raise ApiError(ErrorCode.UNAVAILABLE, "the region's snapshot store is not answering",
                       retry_after_s=1) from exc
    if rendered is None:
        if notice is not None and notice.tier == "snapshot":
            # Entering the tier: the keeper's first render is at most an interval away.
            raise ApiError(ErrorCode.UNAVAILABLE,
                           f"stream {stream} has just entered the snapshot tier; its first "
                           f"document is not rendered yet",
                           retry_after_s=max(1, math.ceil(interval_s)))
        raise ApiError(ErrorCode.NOT_FOUND, f"stream {stream} is not in the snapshot tier in "
                                            f"region {cell.region.name}")
    headers = {"ETag": rendered.etag, "Cache-Control": cache_control(interval_s)}
    if not_modified(request.headers.get("If-None-Match"), rendered.etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=rendered.body, content_type="application/json", charset="utf-8",
                        headers=headers)
