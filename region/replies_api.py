"""Reply threads over HTTP (docs/protocol.md, "Replies"): a thread's pages, and the reply
count that history adds to each comment that has replies (region/replies.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from chorus.ids import is_id
from region.cell import CELL, Cell
from region.cursor import Cursor
from region.errors import ApiError, ErrorCode
from region.live import cursor_param
from region.replies import PAGE_MAX, RepliesUnavailable
from region.validation import check_stream, whole_number


async def thread(request: web.Request) -> web.Response:
    """GET /v1/streams/{stream}/comments/{id}/replies[?after=][&limit=]: the comment (with
    its reply count) and its replies, oldest first; ``next`` pages on (``after``), null when
    there is nothing more now. A cursor is of the region that gave it."""
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    claims = cell.authenticate(request)
    parent_id = request.match_info["id"]
    if not is_id(parent_id):
        raise ApiError(ErrorCode.MALFORMED, f"not a comment id: {parent_id[:80]!r}")
    limit = whole_number(request.query.get("limit", "50"), "limit", 1, PAGE_MAX)
    after = cursor_param(request.query.get("after"))
    if after is not None and not after.same_log(cell.region.name, cell.log.epoch):
        raise ApiError(ErrorCode.INVALID, "'after' is a cursor of another region or an older "
                                          "log; page the thread from its start here")
    if cell.replies is None:
        raise ApiError(ErrorCode.UNAVAILABLE, "threads are not served by this gateway")
    try:
        page = await cell.replies.thread(stream, parent_id, after_seq=after.seq if after else 0,
                                         limit=limit, reader=claims.user,
                                         moderator=claims.is_moderator)
    except RepliesUnavailable as exc:
        raise ApiError(ErrorCode.UNAVAILABLE, "the region's thread index is not answering",
                       retry_after_s=1) from exc
    if page is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"no comment {parent_id} in stream {stream} here")
    nxt = (Cursor(cell.region.name, cell.log.epoch, page.next).encode()
           if page.next is not None else None)
    return web.json_response({"parent": {**page.parent.to_json(), "replies": page.count},
                              "items": [e.comment.to_json() for e in page.replies],
                              "next": nxt})


async def with_counts(cell: Cell, stream: str, items: list[dict[str, Any]]
                      ) -> list[dict[str, Any]]:
    """History's items, each comment that has replies with its count (``replies``)."""
    if cell.replies is None or not items:
        return items
    counts = await cell.replies.counts(stream, [str(item["id"]) for item in items])
    for item in items:
        n = counts.get(str(item["id"]))
        if n:
            item["replies"] = n
    return items
