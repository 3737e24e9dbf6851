"""REST endpoints of a gateway: post a comment, page history, moderate."""

from __future__ import annotations

import time

from aiohttp import web

from chorus.model import Comment
from region import api_archive, moderation_api, replies_api
from region.cell import CELL, Cell
from region.cursor import Cursor, HistoryMark, history_before
from region.errors import ApiError, ErrorCode
from region.live import cursor_param
from region.log import LogUnavailable
from region.log_merge import Position
from region.validation import (
    check_post,
    check_stream,
    parse_json_body,
    whole_number,
)

HISTORY_MAX_LIMIT = 200


def _cell(request: web.Request) -> Cell:
    return request.app[CELL]


async def post_comment(request: web.Request) -> web.Response:
    cell = _cell(request)
    stream = check_stream(request.match_info["stream"])
    claims = cell.authenticate(request)
    raw = await request.read()
    post = check_post(parse_json_body(raw), cell.config.limits)
    appended = await cell.ingest.post(claims, stream, post)
    # The comment's JSON was encoded once, for the log: the answer is that text with "seq"
    # added, not a second encoding of the same fields.
    body = f'{appended.comment.json_text[:-1]},"seq":{appended.seq}}}'
    # A retried post returns the first one's comment: 200 instead of 201 tells it apart.
    return web.Response(text=body, content_type="application/json",
                        status=200 if appended.duplicate else 201,
                        headers={"Idempotent-Replayed": "true"} if appended.duplicate else None)


def _limit(request: web.Request) -> int:
    return whole_number(request.query.get("limit", "50"), "limit", 1, HISTORY_MAX_LIMIT)


async def history(request: web.Request) -> web.Response:
    """Newest first. ``before`` is this endpoint's ``next`` or a cursor from a frame; with
    hot log partitions a ``next`` is a `HistoryMark` (region/cursor.py), else a cursor."""
    began = time.perf_counter()
    cell = _cell(request)
    stream = check_stream(request.match_info["stream"])
    claims = cell.authenticate(request)
    limit = _limit(request)
    if cell.archive is not None:
        page = await api_archive.history(request, cell, stream, user=claims.user,
                                         moderator=claims.is_moderator, limit=limit)
        cell.metrics.history_page("archive", time.perf_counter() - began)
        return page
    _log_history_params(request)
    try:
        if cell.config.tiers.hot_log_partitions:
            comments, nxt = await _merged_page(cell, stream, request.query.get("before"),
                                               limit)
        else:
            comments, nxt = await _chained_page(cell, stream, request.query.get("before"),
                                                limit)
    except LogUnavailable as exc:
        raise ApiError(ErrorCode.UNAVAILABLE, "the region's log is not answering",
                       retry_after_s=1) from exc
    moderation = cell.moderation
    items = [c.to_json() for c in comments if c.visible_to(claims.user)
             and not (moderation is not None and moderation.hidden(
                 c, claims.user, moderator=claims.is_moderator))]
    items = await replies_api.with_counts(cell, stream, items)
    cell.metrics.history_page("log", time.perf_counter() - began)
    return web.json_response({"items": items, "next": nxt,
                              **moderation_api.pin_of(cell, stream)})


async def _chained_page(cell: Cell, stream: str, before_text: str | None, limit: int
                        ) -> tuple[list[Comment], str | None]:
    """A page of a log without hot partitions: the chained log backwards from a cursor, and
    the page's ``next`` a cursor too. Raises LogUnavailable."""
    before = cursor_param(before_text)
    if before is not None and not before.same_log(cell.region.name, cell.log.epoch):
        raise ApiError(ErrorCode.INVALID, "'before' is a cursor of another region or an older "
                                          "log; page this region from its newest comments")
    entries = await cell.log.read_before(stream, before.seq if before else None, limit)
    nxt = (Cursor(cell.region.name, cell.log.epoch, entries[-1].seq).encode()
           if len(entries) == limit else None)
    return [e.comment for e in entries], nxt


async def _merged_page(cell: Cell, stream: str, before_text: str | None, limit: int
                       ) -> tuple[list[Comment], str | None]:
    """A page over the chained log and the hot partitions (region/log_merge.py's order),
    whose ``next`` is a `HistoryMark`; ``before`` is a mark or a cursor (placed by its
    comment's stored time). Raises LogUnavailable."""
    position: Position | None = None
    if before_text:
        try:
            before = history_before(before_text)
        except ValueError as exc:
            raise ApiError(ErrorCode.MALFORMED, str(exc)) from None
        if not before.same_log(cell.region.name, cell.log.epoch):
            raise ApiError(ErrorCode.INVALID, "'before' is from another region or an older "
                                              "log; page this region from its newest comments")
        position = (before.at if isinstance(before, HistoryMark)
                    else await cell.log.position_of(stream, before.seq))
    placed = await cell.log.page_before(stream, position, limit)
    nxt = (HistoryMark(cell.region.name, cell.log.epoch, placed[-1].at).encode()
           if len(placed) == limit else None)
    return [p.entry.comment for p in placed], nxt


def _log_history_params(request: web.Request) -> None:
    """Without the archive, history pages the log backwards only: ``after`` is refused, not
    ignored (a client would take newest-first pages for a replay)."""
    if "after" in request.query:
        raise ApiError(ErrorCode.INVALID, "'after' pages the archive, and this cluster runs "
                                          "without it (cassandra.enabled is false); page "
                                          "backwards with 'before'")
