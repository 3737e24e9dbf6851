"""The live protocol's frames (docs/protocol.md): typed values, JSON only at the edge.

Client -> server: ``resume``, ``comment``, ``react``, ``ping``.
Server -> client: ``hello``, ``comments``, ``recovered``, ``viewers``, ``ack``, ``pong``,
``error``, ``bye``, ``retract``, ``pin``.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from chorus.config import Limits
from chorus.model import Comment
from region.cursor import Cursor
from region.errors import ApiError, ErrorCode
from region.validation import PostInput, check_post


class CloseCode(enum.IntEnum):
    """WebSocket close codes Chorus uses (4000-4999 is the application range)."""

    NORMAL = 1000
    GOING_AWAY = 1001           # the gateway is shutting down: resume elsewhere
    MESSAGE_TOO_BIG = 1009      # a frame above limits.frame_max_bytes
    BAD_FRAMES = 4400           # too many malformed or invalid frames in a row
    UNAUTHENTICATED = 4401      # token missing, bad or expired
    FORBIDDEN = 4403            # the user is banned
    SLOW_CONSUMER = 4408        # the send queue overflowed: resume with the cursor in `bye`
    OVERLOADED = 4503           # the gateway is at its connection limit: try another


# -- client frames ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resume:
    cursor: Cursor
    type: Literal["resume"] = "resume"


@dataclass(frozen=True)
class PostComment:
    post: PostInput
    ref: str | None = None
    type: Literal["comment"] = "comment"


@dataclass(frozen=True)
class React:
    kind: str
    type: Literal["react"] = "react"


@dataclass(frozen=True)
class Ping:
    ref: str | None = None
    type: Literal["ping"] = "ping"


ClientFrame = Resume | PostComment | React | Ping


def _ref(doc: dict[str, Any]) -> str | None:
    ref = doc.get("ref")
    if ref is None:
        return None
    if not isinstance(ref, str | int) or len(str(ref)) > 64:
        raise ApiError(ErrorCode.INVALID, "'ref' is a string or number of at most 64 chars")
    return str(ref)


def parse_client_frame(text: str, limits: Limits) -> ClientFrame:
    """One text frame from a client. ApiError (with the frame's code) when it is wrong."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(ErrorCode.MALFORMED, f"frame is not JSON: {exc.msg}") from None
    except (ValueError, RecursionError):
        # JSON the parser refuses to hold (an integer of thousands of digits, arrays nested a
        # thousand deep) fits in a frame; it is a bad frame, not a reason to drop the link.
        raise ApiError(ErrorCode.MALFORMED, "frame is not JSON this server accepts (a number "
                                            "too long or nesting too deep)") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        raise ApiError(ErrorCode.MALFORMED, "a frame is a JSON object with a string 'type'")
    kind = doc["type"]
    match kind:
        case "resume":
            _only(doc, {"type", "cursor"})
            cursor = doc.get("cursor")
            if not isinstance(cursor, str):
                raise ApiError(ErrorCode.INVALID, "'cursor' is required (a string)")
            try:
                return Resume(Cursor.parse(cursor))
            except ValueError as exc:
                raise ApiError(ErrorCode.INVALID, str(exc)) from None
        case "comment":
            body = {k: v for k, v in doc.items() if k not in ("type", "ref")}
            return PostComment(check_post(body, limits), ref=_ref(doc))
        case "react":
            _only(doc, {"type", "kind"})
            return React(kind=str(doc.get("kind", "")))
        case "ping":
            _only(doc, {"type", "ref"})
            return Ping(ref=_ref(doc))
        case _:
            raise ApiError(ErrorCode.INVALID, f"unknown frame type {kind[:32]!r} (expected "
                                              "resume, comment, react or ping)")


def _only(doc: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(doc) - allowed)
    if extra:
        raise ApiError(ErrorCode.INVALID, f"unknown field(s) in {doc['type']} frame: "
                                          f"{', '.join(extra)}")


# -- server frames ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hello:
    region: str
    stream: str
    epoch: str
    cursor: str
    gateway: str
    pin: Comment | None = None      # the stream's pinned comment, for a late joiner
    type: Literal["hello"] = "hello"


@dataclass(frozen=True)
class Comments:
    items: tuple[Comment, ...]
    cursor: str
    type: Literal["comments"] = "comments"


@dataclass(frozen=True)
class Recovered:
    recovered: bool
    cursor: str
    reason: str = ""
    type: Literal["recovered"] = "recovered"


@dataclass(frozen=True)
class Viewers:
    count: int
    type: Literal["viewers"] = "viewers"


@dataclass(frozen=True)
class Ack:
    comment: Comment
    ref: str | None = None
    duplicate: bool = False
    type: Literal["ack"] = "ack"


@dataclass(frozen=True)
class Pong:
    ref: str | None = None
    type: Literal["pong"] = "pong"


@dataclass(frozen=True)
class Error:
    code: str
    message: str
    retryable: bool = False
    ref: str | None = None
    type: Literal["error"] = "error"

    @classmethod
    def of(cls, err: ApiError, ref: str | None = None) -> Error:
        return cls(code=err.code.code, message=err.message, retryable=err.code.retryable,
                   ref=ref)


@dataclass(frozen=True)
class Bye:
    reason: str
    cursor: str
    regions: tuple[str, ...] = field(default_factory=tuple)
    retry_in_ms: int = 0
    type: Literal["bye"] = "bye"


@dataclass(frozen=True)
class Retract:
    """Comments of the stream that a moderator, their author or the classifier took down:
    a client removes them from what it shows. Sent live to every viewer, and on a resume for
    the stream's latest ones (the viewer may have missed the live frame)."""

    stream: str
    ids: tuple[str, ...]
    type: Literal["retract"] = "retract"


@dataclass(frozen=True)
class Pinned:
    """The stream's pinned comment changed; ``comment`` None: unpinned."""

    stream: str
    comment: Comment | None
    type: Literal["pin"] = "pin"


ServerFrame = (Hello | Comments | Recovered | Viewers | Ack | Pong | Error | Bye | Retract
               | Pinned)


def to_json(frame: ServerFrame) -> dict[str, Any]:
    match frame:
        case Comments(items=items, cursor=cursor):
            return {"type": "comments", "items": [c.to_json() for c in items], "cursor": cursor}
        case Ack(comment=comment, ref=ref, duplicate=duplicate):
            return {"type": "ack", "comment": comment.to_json(), "ref": ref,
                    "duplicate": duplicate}
        case Bye(reason=reason, cursor=cursor, regions=regions, retry_in_ms=retry):
            return {"type": "bye", "reason": reason, "cursor": cursor,
                    "regions": list(regions), "retry_in_ms": retry}
        case Hello(pin=pin):
            doc = {k: v for k, v in vars(frame).items() if k != "pin"}
            if pin is not None:
                doc["pin"] = pin.to_json()  # absent when nothing is pinned, as before pins
            return doc
        case Retract(stream=stream, ids=ids):
            return {"type": "retract", "stream": stream, "ids": list(ids)}
        case Pinned(stream=stream, comment=comment):
            return {"type": "pin", "stream": stream,
                    "comment": comment.to_json() if comment else None}
        case _:
            return {k: v for k, v in vars(frame).items()}


def encode(frame: ServerFrame) -> str:
    if isinstance(frame, Comments):
        # The hot path: the items' JSON is each comment's own, encoded once per gateway.
        items = ",".join(c.json_text for c in frame.items)
        return f'{{"type":"comments","items":[{items}],"cursor":{json.dumps(frame.cursor)}}}'
    return json.dumps(to_json(frame), ensure_ascii=False, separators=(",", ":"))
