"""History and retraction served from the archive (when ``cassandra.enabled``).

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
from region.archive import (
    Archive,
    ArchiveUnavailable,
    Direction,
    HistoryCursor,
    Stored,
    time_position,
    visible,
)
from region.cell import CELL, Cell
from region.cursor import Cursor
from region.errors import ApiError, ErrorCode
from region.log import LogUnavailable
from region.validation import check_stream

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
    if raw.isdigit() and len(raw) <= _TIME:
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

    def show(stored: Stored) -> bool:
        return visible(stored, user, moderator=moderator)

    try:
        page = await archive.page(stream, direction, position, limit, show)
    except ArchiveUnavailable as exc:
        raise _unavailable(exc) from exc
    return web.json_response({"items": [s.to_json() for s in page.items],
                              "next": page.next.encode() if page.next else None})


async def retract_comment(request: web.Request) -> web.Response:
    """DELETE /v1/streams/{stream}/comments/{id}: its author, a moderator or a host marks
    it deleted in the archive (idempotent). Viewers connected now are not told: their
    copy stays on screen; history hides it from then on."""
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    claims = cell.authenticate(request)
    archive = archive_of(cell)
    comment_id = request.match_info["id"]
    if not is_id(comment_id):
        raise ApiError(ErrorCode.MALFORMED, f"not a comment id: {comment_id[:80]!r}")
    try:
        stored = await archive.get(stream, comment_id)
        if stored is None or stored.comment.user == "":
            raise ApiError(ErrorCode.NOT_FOUND,
                           f"no comment {comment_id} in stream {stream}'s archive (a comment "
                           "is archived within seconds of its post)")
        if stored.comment.user != claims.user and not claims.is_moderator:
            raise ApiError(ErrorCode.FORBIDDEN, "only the author, a moderator or a host can "
                                                "delete a comment")
        if not stored.deleted:
            await archive.mark_deleted(stored)
    except ArchiveUnavailable as exc:
        raise _unavailable(exc) from exc
    return web.json_response({"id": comment_id, "stream": stream, "deleted": True})
