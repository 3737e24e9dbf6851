"""REST endpoints of reactions and of a stream's state (docs/protocol.md, docs/openapi.yaml).

- ``POST /v1/streams/{stream}/reactions`` ``{"kind": "heart"}``: 202 once counted;
- ``GET /v1/streams/{stream}/reactions?resolution=1s|1m&after=T&before=T``: the timeline,
  over every region, one page at a time (times in ms since the epoch);
- ``GET /v1/streams/{stream}``: the stream's viewers here and in every region, and its
  reaction totals.
"""

from __future__ import annotations

import time

from aiohttp import web

from region.cell import CELL
from region.errors import ApiError, ErrorCode
from region.presence import PresenceUnavailable
from region.reactions import MAX_BUCKETS, RESOLUTIONS, ReactionsUnavailable, Tap, page_window
from region.reactions_gateway import GatewayReactions
from region.validation import check_stream, parse_json_body

REACTION_FIELDS = frozenset({"kind"})


def _reactions(request: web.Request) -> GatewayReactions:
    reactions = request.app[CELL].reactions
    if reactions is None:
        raise ApiError(ErrorCode.NOT_FOUND, "reactions are not served by this gateway")
    return reactions


async def post_reaction(request: web.Request) -> web.Response:
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    claims = cell.authenticate(request)
    reactions = _reactions(request)
    doc = parse_json_body(await request.read())
    if not isinstance(doc, dict):
        raise ApiError(ErrorCode.MALFORMED, "body must be a JSON object with a 'kind' field")
    unknown = sorted(set(doc) - REACTION_FIELDS)
    if unknown:
        raise ApiError(ErrorCode.INVALID, f"unknown field(s): {', '.join(unknown)} (allowed: "
                                          "kind)")
    kind = doc.get("kind")
    if not isinstance(kind, str):
        raise ApiError(ErrorCode.INVALID, "'kind' is required (a string)")
    second = await reactions.ingest.react(Tap(user=claims.user, stream=stream, kind=kind))
    return web.json_response({"stream": stream, "kind": kind, "second": second}, status=202)


def _ms(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(ErrorCode.MALFORMED, f"'{name}' is a time in ms since the epoch, not "
                                            f"{raw[:20]!r}") from None
    if not 0 <= value < 10 ** 15:
        raise ApiError(ErrorCode.INVALID, f"'{name}' is out of range")
    return value


async def reaction_timeline(request: web.Request) -> web.Response:
    """One page of the stream's reactions over every region, oldest bucket first."""
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    cell.authenticate(request)
    reactions = _reactions(request)
    resolution = request.query.get("resolution", "1s")
    if resolution not in RESOLUTIONS:
        raise ApiError(ErrorCode.INVALID, f"resolution is one of {', '.join(RESOLUTIONS)}")
    resolution_s = RESOLUTIONS[resolution]
    before_ms = _ms(request, "before", int(time.time() * 1000))
    # Without 'after': the last page before 'before' (its buckets end at or after it).
    end_s = -(-before_ms // (resolution_s * 1000)) * resolution_s
    after_ms = _ms(request, "after",
                   max(0, end_s - MAX_BUCKETS[resolution_s] * resolution_s) * 1000)
    try:
        window = page_window(after_ms // 1000, -(-before_ms // 1000), resolution_s)
    except ValueError as exc:
        raise ApiError(ErrorCode.INVALID, str(exc)) from None
    try:
        page = await reactions.feed.timeline(stream, resolution_s, window)
    except ReactionsUnavailable as exc:
        raise ApiError(ErrorCode.UNAVAILABLE, "the region's reaction log is not answering",
                       retry_after_s=1) from exc
    return web.json_response({
        "stream": stream, "resolution": resolution, "after": window.after_s * 1000,
        "before": window.before_s * 1000,
        "items": [{"t": b.start_s * 1000, "counts": dict(b.counts)} for b in page.buckets],
        "next": window.next_s * 1000 if window.next_s is not None else None,
        "partial": list(page.partial)})


async def stream_state(request: web.Request) -> web.Response:
    """The stream's viewers (this region's, every region's) and its reaction totals."""
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    cell.authenticate(request)
    try:
        viewers = await cell.fanout.viewer_counts(stream)
    except PresenceUnavailable as exc:
        raise ApiError(ErrorCode.UNAVAILABLE, "the region's presence is not answering",
                       retry_after_s=1) from exc
    regions = dict(viewers.regions) or {cell.region.name: viewers.count}
    body: dict[str, object] = {
        "stream": stream, "region": cell.region.name,
        "viewers": {"region": viewers.count, "total": sum(regions.values()),
                    "regions": regions}}
    if cell.reactions is not None:
        try:
            totals = await cell.reactions.feed.totals(stream)
        except ReactionsUnavailable as exc:
            raise ApiError(ErrorCode.UNAVAILABLE, "the region's reaction log is not "
                                                  "answering", retry_after_s=1) from exc
        body["reactions"] = {"totals": totals}
    if cell.tiers is not None:  # the hot-stream tier (region/tiers.py)
        body.update(cell.tiers.describe(stream, time.monotonic()))
    return web.json_response(body)
