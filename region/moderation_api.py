"""The moderation API (docs/protocol.md, "Moderation"): bans, timeouts, blocked terms, slow
mode, pins, classifier policy, retraction and the audit trail.

Every decision goes through `Moderation.decide` (region/moderation_service.py): it is stored
in this region's moderation log, replicated to every region, and the answer says which
regions have applied it (``applied``) and which have not yet (``pending``). Moderators and
hosts decide; a comment's author may retract their own comment.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from chorus.ids import is_id
from chorus.model import Comment
from region import replies
from region.archive import ArchiveUnavailable
from region.auth import Claims
from region.cell import CELL, Cell
from region.errors import ApiError, ErrorCode
from region.moderation import (
    GLOBAL,
    REASON_MAX_CHARS,
    SLOW_MODE_MAX_S,
    TERM_MAX_CHARS,
    TERMS_PER_DECISION,
    TIMEOUT_MAX_S,
    TIMEOUT_MIN_S,
    Action,
    ClassifierAction,
    Outcome,
    Pin,
    Policy,
    Restrict,
    SlowMode,
    Terms,
    Verdict,
)
from region.moderation_service import Moderation
from region.validation import check_stream, check_user_id, parse_json_body

AUDIT_MAX_LIMIT = 500


def _moderation(cell: Cell) -> Moderation:
    if cell.moderation is None:
        raise ApiError(ErrorCode.UNAVAILABLE, "moderation is not running on this gateway")
    return cell.moderation


def _moderator(cell: Cell, request: web.Request, what: str) -> Claims:
    claims = cell.authenticate(request)
    if not claims.is_moderator:
        raise ApiError(ErrorCode.FORBIDDEN, f"only moderators and hosts can {what}")
    return claims


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw.strip():
        return {}
    doc = parse_json_body(raw)
    if not isinstance(doc, dict):
        raise ApiError(ErrorCode.MALFORMED, "the body is a JSON object")
    return doc


def _reason(doc: dict[str, Any]) -> str:
    reason = doc.get("reason", "")
    if not isinstance(reason, str) or len(reason) > REASON_MAX_CHARS:
        raise ApiError(ErrorCode.INVALID, f"'reason' is a string of at most {REASON_MAX_CHARS} "
                                          "characters")
    return reason


def _whole(doc: dict[str, Any], key: str, low: int, high: int) -> int:
    value = doc.get(key)
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ApiError(ErrorCode.INVALID, f"'{key}' is a whole number from {low} to {high}")
    return value


def _answer(outcome: Outcome, **fields: Any) -> web.Response:
    return web.json_response({**fields, "decision": outcome.decision.to_json(),
                              "applied": list(outcome.applied),
                              "pending": list(outcome.pending)})


async def _decide(cell: Cell, claims: Claims, action: Action, reason: str) -> Outcome:
    return await _moderation(cell).decide(action, by=claims.user, reason=reason)


# -- users -------------------------------------------------------------------------------------


async def set_ban(request: web.Request) -> web.Response:
    """PUT (ban) or DELETE (lift) /v1/moderation/bans/{user}?kind=ban|shadow, optionally
    ``duration_s`` (query or body: a timeout, 10 s to 24 h); moderators and hosts."""
    cell = request.app[CELL]
    claims = _moderator(cell, request, "ban")
    kind = request.query.get("kind", "ban")
    if kind not in ("ban", "shadow"):
        raise ApiError(ErrorCode.INVALID, "kind is 'ban' or 'shadow'")
    user = check_user_id(request.match_info["user"])
    on = request.method == "PUT"
    doc = await _body(request)
    duration = request.query.get("duration_s", doc.get("duration_s"))
    until_ms = None
    if on and duration is not None:
        seconds = _whole({"duration_s": duration}, "duration_s", TIMEOUT_MIN_S, TIMEOUT_MAX_S)
        until_ms = _moderation(cell).clock_ms() + seconds * 1000
    action = Restrict(user=user, kind="ban" if kind == "ban" else "shadow", active=on,
                      until_ms=until_ms)
    outcome = await _decide(cell, claims, action, _reason(doc))
    return _answer(outcome, user=user, kind=kind, active=on, until_ms=until_ms)


async def set_timeout(request: web.Request) -> web.Response:
    """PUT /v1/moderation/timeouts/{user} ``{"duration_s": 10..86400, "reason"}``: a ban
    that ends by itself. DELETE lifts it early."""
    cell = request.app[CELL]
    claims = _moderator(cell, request, "time users out")
    user = check_user_id(request.match_info["user"])
    doc = await _body(request)
    until_ms = None
    if request.method == "PUT":
        seconds = _whole(doc, "duration_s", TIMEOUT_MIN_S, TIMEOUT_MAX_S)
        until_ms = _moderation(cell).clock_ms() + seconds * 1000
    action = Restrict(user=user, kind="ban", active=until_ms is not None, until_ms=until_ms)
    outcome = await _decide(cell, claims, action, _reason(doc))
    return _answer(outcome, user=user, kind="timeout", active=until_ms is not None,
                   until_ms=until_ms)


async def user_standing(request: web.Request) -> web.Response:
    """GET /v1/moderation/users/{user}: banned, shadow-banned, timed out until when."""
    cell = request.app[CELL]
    _moderator(cell, request, "read a user's standing")
    moderation = _moderation(cell)
    user = check_user_id(request.match_info["user"])
    standing = moderation.state.standing(user, moderation.clock_ms())
    return web.json_response({"user": user, "banned": standing.banned,
                              "shadow": standing.shadow, "until_ms": standing.until_ms})


# -- blocked terms -----------------------------------------------------------------------------


def _scope(raw: Any) -> str:
    if raw is None or raw == GLOBAL:
        return GLOBAL
    if not isinstance(raw, str):
        raise ApiError(ErrorCode.INVALID, "'stream' is a stream id (or absent: every stream)")
    return check_stream(raw)


def _terms(doc: dict[str, Any], key: str) -> tuple[str, ...]:
    raw = doc.get(key, [])
    if not isinstance(raw, list) or not all(
            isinstance(t, str) and 0 < len(t.strip()) <= TERM_MAX_CHARS for t in raw):
        raise ApiError(ErrorCode.INVALID, f"'{key}' is a list of terms, each 1 to "
                                          f"{TERM_MAX_CHARS} characters")
    return tuple(dict.fromkeys(t.strip() for t in raw))


async def change_terms(request: web.Request) -> web.Response:
    """POST /v1/moderation/terms ``{"stream"?, "add": [...], "remove": [...], "reason"}``:
    ``stream`` absent blocks in every stream. At most `TERMS_PER_DECISION` terms a request."""
    cell = request.app[CELL]
    claims = _moderator(cell, request, "block terms")
    doc = await _body(request)
    add, remove = _terms(doc, "add"), _terms(doc, "remove")
    if not add and not remove:
        raise ApiError(ErrorCode.INVALID, "give terms to 'add' or 'remove'")
    if len(add) + len(remove) > TERMS_PER_DECISION:
        raise ApiError(ErrorCode.INVALID, f"at most {TERMS_PER_DECISION} terms per request")
    scope = _scope(doc.get("stream"))
    outcome = await _decide(cell, claims, Terms(scope=scope, add=add, remove=remove),
                            _reason(doc))
    return _answer(outcome, stream=None if scope == GLOBAL else scope, added=len(add),
                   removed=len(remove))


async def list_terms(request: web.Request) -> web.Response:
    """GET /v1/moderation/terms[?stream=]: the blocked terms of one scope."""
    cell = request.app[CELL]
    _moderator(cell, request, "read blocked terms")
    scope = _scope(request.query.get("stream"))
    return web.json_response({"stream": None if scope == GLOBAL else scope,
                              "terms": _moderation(cell).state.terms(scope)})


# -- streams -----------------------------------------------------------------------------------


async def set_slow_mode(request: web.Request) -> web.Response:
    """PUT /v1/streams/{stream}/slow_mode ``{"interval_s": 0..3600}`` (0 turns it off)."""
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    claims = _moderator(cell, request, "set slow mode")
    doc = await _body(request)
    interval = _whole(doc, "interval_s", 0, SLOW_MODE_MAX_S)
    outcome = await _decide(cell, claims, SlowMode(stream=stream, interval_s=interval),
                            _reason(doc))
    return _answer(outcome, stream=stream, interval_s=interval)


async def set_policy(request: web.Request) -> web.Response:
    """PUT /v1/streams/{stream}/moderation ``{"classifier": "retract"|"hold"|"off"}``."""
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    claims = _moderator(cell, request, "set the stream's moderation policy")
    doc = await _body(request)
    action = doc.get("classifier")
    if action not in ("retract", "hold", "off"):
        raise ApiError(ErrorCode.INVALID, "'classifier' is 'retract', 'hold' or 'off'")
    classifier: ClassifierAction = action
    outcome = await _decide(cell, claims, Policy(stream=stream, classifier=classifier),
                            _reason(doc))
    return _answer(outcome, stream=stream, classifier=classifier)


async def stream_moderation(request: web.Request) -> web.Response:
    """GET /v1/streams/{stream}/moderation: the stream's settings, for any viewer."""
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    cell.authenticate(request)
    state = _moderation(cell).state
    pin = state.pin(stream)
    return web.json_response({"stream": stream, "slow_mode_s": state.slow_mode_s(stream),
                              "classifier": state.policy(stream),
                              "pin": pin.to_json() if pin else None})


def pin_of(cell: Cell, stream: str) -> dict[str, Any]:
    """What a history page adds for the stream's pin: ``{"pin": comment}`` (empty: none)."""
    pin = cell.moderation.state.pin(stream) if cell.moderation is not None else None
    return {"pin": pin.to_json()} if pin is not None else {}


async def set_pin(request: web.Request) -> web.Response:
    """PUT /v1/streams/{stream}/pin ``{"comment_id"}`` pins; DELETE unpins."""
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    claims = _moderator(cell, request, "pin comments")
    doc = await _body(request)
    comment: Comment | None = None
    if request.method == "PUT":
        comment_id = doc.get("comment_id")
        if not isinstance(comment_id, str) or not is_id(comment_id):
            raise ApiError(ErrorCode.INVALID, "'comment_id' is a comment id")
        comment = await find_comment(cell, stream, comment_id)
        if comment is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no comment {comment_id} in stream {stream} "
                                                "here")
        if _moderation(cell).hidden(comment) or comment.shadow:
            raise ApiError(ErrorCode.INVALID, "a retracted, held or shadowed comment cannot "
                                              "be pinned")
    outcome = await _decide(cell, claims, Pin(stream=stream, comment=comment), _reason(doc))
    return _answer(outcome, stream=stream, pin=comment.to_json() if comment else None)


# -- comments ----------------------------------------------------------------------------------


async def find_comment(cell: Cell, stream: str, comment_id: str) -> Comment | None:
    """The comment ``comment_id`` of ``stream`` as this region holds it (region/replies.py)."""
    return await replies.find_comment(cell.log, cell.archive, stream, comment_id)


async def retract_comment(request: web.Request) -> web.Response:
    """DELETE /v1/streams/{stream}/comments/{id}: its author, a moderator or a host takes it
    down in every region: viewers get a ``retract`` frame, late joiners and resumes never get
    it, history hides it. Idempotent."""
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    claims = cell.authenticate(request)
    comment_id = request.match_info["id"]
    if not is_id(comment_id):
        raise ApiError(ErrorCode.MALFORMED, f"not a comment id: {comment_id[:80]!r}")
    doc = await _body(request)
    comment = await find_comment(cell, stream, comment_id)
    if not claims.is_moderator:
        if comment is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no comment {comment_id} in stream {stream} "
                                                "here")
        if comment.user != claims.user:
            raise ApiError(ErrorCode.FORBIDDEN, "only the author, a moderator or a host can "
                                                "delete a comment")
    author = comment.user if comment is not None else ""
    outcome = await _decide(cell, claims, Verdict(stream=stream, comment_id=comment_id,
                                                  author=author, state="retracted"),
                            _reason(doc))
    await _mark_archive(cell, stream, comment_id)
    return _answer(outcome, id=comment_id, stream=stream, deleted=True)


async def approve_comment(request: web.Request) -> web.Response:
    """POST /v1/streams/{stream}/comments/{id}/approve: a held (or retracted) comment is
    shown again: in history, to new viewers, and to live viewers in every region (a
    ``restore`` frame carrying it)."""
    cell = request.app[CELL]
    stream = check_stream(request.match_info["stream"])
    claims = _moderator(cell, request, "approve comments")
    comment_id = request.match_info["id"]
    if not is_id(comment_id):
        raise ApiError(ErrorCode.MALFORMED, f"not a comment id: {comment_id[:80]!r}")
    doc = await _body(request)
    comment = await find_comment(cell, stream, comment_id)
    outcome = await _decide(cell, claims, Verdict(
        stream=stream, comment_id=comment_id, author=comment.user if comment else "",
        state="approved", comment=comment), _reason(doc))
    return _answer(outcome, id=comment_id, stream=stream, state="approved")


async def _mark_archive(cell: Cell, stream: str, comment_id: str) -> None:
    """The archive's own mark, which outlives the moderation state's bounded memory; best
    effort: a comment not archived yet is hidden by the state, and the archive is asked again
    by nobody (history filters through the state too)."""
    if cell.archive is None:
        return
    try:
        stored = await cell.archive.get(stream, comment_id)
        if stored is not None and stored.comment.user and not stored.deleted:
            await cell.archive.mark_deleted(stored)
    except ArchiveUnavailable:
        return


# -- the audit trail ---------------------------------------------------------------------------


async def audit(request: web.Request) -> web.Response:
    """GET /v1/moderation/audit[?user=][&stream=][&limit=]: decisions, newest first."""
    cell = request.app[CELL]
    _moderator(cell, request, "read the audit trail")
    limit = _whole({"limit": request.query.get("limit", "100")}, "limit", 1, AUDIT_MAX_LIMIT)
    stream = request.query.get("stream")
    if stream is not None:
        check_stream(stream)
    records = _moderation(cell).state.audit_records(user=request.query.get("user"),
                                                    stream=stream, limit=limit)
    return web.json_response({"items": [r.to_json() for r in records]})
