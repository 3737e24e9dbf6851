"""History served from the archive (when ``cassandra.enabled``). Retraction is moderation's
(region/moderation_api.py), which marks the archive too.

``GET /v1/streams/{stream}/comments`` takes at most one of ``before`` (newest first) and
``after`` (oldest first: post-stream replay). Each accepts:

- ``next`` of a previous page (an opaque history cursor),
- a comment id: the page starts just beyond that comment,
- a time in ms since the epoch: ``after=0`` replays a stream from its first comment,
  ``before=T`` pages what was posted before T,
- a live cursor of this region's log (from a ``hello``/``comments``/``recovered`` frame),
  which is resolved to the comment it names, as history without the archive does.

Reads go to the region's own Cassandra datacenter; while it is unreachable, 503.
"""

from __future__ import annotations

from aiohttp import web

from chorus.ids import is_id
from region import moderation_api, replies_api
from region.archive import (
    Archive,
    ArchiveUnavailable,
    Direction,
    HistoryCursor,
    Stored,
    time_position,
    visible,
)
from region.cell import Cell
from region.cursor import Cursor
from region.errors import ApiError, ErrorCode
from region.log import LogUnavailable

_TIME = 15  # digits of a time in ms: up to 2**48 - 1 fits


def _unavailable(exc: Exception) -> ApiError:
    return ApiError(ErrorCode.UNAVAILABLE, f"the archive is not answering ({exc})",
                    retry_after_s=1)


def archive_of(cell: Cell) -> Archive:
    if cell.archive is None:
        raise ApiError(ErrorCode.NOT_FOUND, "this cluster runs without the archive "
                                            "(cassandra.enabled is false)")
    return cell.archive


async def _position(cell: Cell, stream: str, direction: Direction, raw: str) -> str:
    """The archive position a ``before``/``after`` value names. 400 when it is none of
    the accepted forms, 422 when it is one but does not apply here."""
    if raw.isascii() and raw.isdigit() and len(raw) <= _TIME:  # int() takes "²" too
        try:
            return time_position(int(raw))
        except ValueError as exc:
            raise ApiError(ErrorCode.INVALID, f"{direction}: {exc}") from None
    if is_id(raw):
        return raw
    try:
        log_cursor = Cursor.parse(raw)
    except ValueError:
        log_cursor = None
    if log_cursor is not None:
        return await _log_position(cell, stream, direction, log_cursor)
    try:
        cursor = HistoryCursor.decode(raw)
    except ValueError as exc:
        raise ApiError(ErrorCode.MALFORMED, f"{direction}: {exc}; or give a comment id or "
                                            "a time in ms") from None
    if cursor.stream != stream:
        raise ApiError(ErrorCode.INVALID, f"{direction}: the cursor belongs to another "
                                          "stream")
    if cursor.direction != direction:
        raise ApiError(ErrorCode.INVALID, f"the cursor continues a '{cursor.direction}' "
                                          f"page: pass it as {cursor.direction}=")
    return cursor.position


async def _log_position(cell: Cell, stream: str, direction: Direction, cursor: Cursor
                        ) -> str:
    if not cursor.same_log(cell.region.name, cell.log.epoch):
        raise ApiError(ErrorCode.INVALID, f"{direction}: a live cursor of another region or "
                                          "an older log; give a comment id instead")
    try:
        entries = await cell.log.read_before(stream, cursor.seq + 1, 1)
    except LogUnavailable as exc:
        raise ApiError(ErrorCode.UNAVAILABLE, "the region's log is not answering",
                       retry_after_s=1) from exc
    if not entries:
        # Nothing up to the cursor: before it lies nothing, after it everything.
        return time_position(0)
    return entries[0].comment.id


async def history(request: web.Request, cell: Cell, stream: str, *, user: str,
                  moderator: bool, limit: int) -> web.Response:
    """Called by `region.api.history` once the stream, token and limit are checked."""
    archive = archive_of(cell)
    before, after = request.query.get("before", ""), request.query.get("after", "")
    if before and after:
        raise ApiError(ErrorCode.INVALID, "give 'before' or 'after', not both")
    direction: Direction = "after" if after else "before"
    position = await _position(cell, stream, direction, after or before) if (
        after or before) else None

    moderation = cell.moderation

    def show(stored: Stored) -> bool:
        # The archive's own mark, and the moderation state's: a comment retracted seconds
        # ago may not be marked (or even archived) yet.
        return visible(stored, user, moderator=moderator) and not (
            moderation is not None and moderation.hidden(stored.comment, user,
                                                         moderator=moderator))

    try:
        page = await archive.page(stream, direction, position, limit, show)
    except ArchiveUnavailable as exc:
        raise _unavailable(exc) from exc
    items = await replies_api.with_counts(cell, stream, [s.to_json() for s in page.items])
    return web.json_response({"items": items,
                              "next": page.next.encode() if page.next else None,
                              **moderation_api.pin_of(cell, stream)})
