"""The live protocol's frames (docs/protocol.md): typed values, JSON only at the edge.

Client -> server: ``resume``, ``comment``, ``react``, ``ping``.
Server -> client: ``hello``, ``comments``, ``recovered``, ``viewers``, ``ack``, ``pong``,
``error``, ``bye``, ``retract``, ``pin``, ``reactions``, ``tier``, ``snapshot``.
"""

from __future__ import annotations

import enum
import functools
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from chorus.config import Limits

# The server's frames, defined once in chorus/sdk/frames.py ("server frames" below says
# why); re-exported, as the server's modules take every frame from here.
from chorus.sdk.frames import Ack as Ack
from chorus.sdk.frames import Bye as Bye
from chorus.sdk.frames import Comments as Comments
from chorus.sdk.frames import Error as Error
from chorus.sdk.frames import Hello as Hello
from chorus.sdk.frames import Pin
from chorus.sdk.frames import Pong as Pong
from chorus.sdk.frames import Reactions as Reactions
from chorus.sdk.frames import Recovered as Recovered
from chorus.sdk.frames import Restore as Restore
from chorus.sdk.frames import Retract as Retract
from chorus.sdk.frames import Sample as Sample
from chorus.sdk.frames import Tier as Tier
from chorus.sdk.frames import Viewers as Viewers
from region.cursor import Cursor
from region.errors import ApiError, ErrorCode
from region.snapshot import Rendered
from region.validation import PostInput, check_post, loads_bounded

REACTION_KIND = re.compile(r"^[a-z0-9_]{1,32}$")


class CloseCode(enum.IntEnum):
    """WebSocket close codes Chorus uses (4000-4999 is the application range)."""

    NORMAL = 1000
    GOING_AWAY = 1001           # the gateway is shutting down: resume elsewhere
    PROTOCOL_ERROR = 1002       # not WebSocket as RFC 6455 has it (an unmasked client frame)
    MESSAGE_TOO_BIG = 1009      # a frame above limits.frame_max_bytes
    INTERNAL_ERROR = 1011       # the gateway failed serving this connection: resume
    BAD_FRAMES = 4400           # too many malformed or invalid frames in a row, or more
    #                             answers left unread than limits.send_queue_max allows
    UNAUTHENTICATED = 4401      # token missing, bad or expired
    FORBIDDEN = 4403            # the user is banned
    SLOW_CONSUMER = 4408        # the send queue overflowed: resume with the cursor in `bye`
    TOO_MANY_CONNECTIONS = 4429  # the user's or address's connection cap on this gateway
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
    """One reaction; ``kind`` has the form of one, whether this server takes it is checked
    against ``reactions.kinds`` when it is counted (region/reactions_ingest.py)."""

    kind: str
    ref: str | None = None
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
    # bool is an int to Python; a ref of true would come back as "True".
    if isinstance(ref, bool) or not isinstance(ref, str | int) or len(str(ref)) > 64:
        raise ApiError(ErrorCode.INVALID, "'ref' is a string or number of at most 64 chars")
    return str(ref)


def parse_client_frame(text: str, limits: Limits) -> ClientFrame:
    """One text frame from a client. ApiError (with the frame's code) when it is wrong."""
    # JSON nested a thousand deep or holding an integer of thousands of digits fits in a
    # frame: it is a bad frame (bounded before parsing), not a reason to drop the link.
    doc = loads_bounded(text, "frame")
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
            _only(doc, {"type", "kind", "ref"})
            return React(kind=_reaction_kind(doc), ref=_ref(doc))
        case "ping":
            _only(doc, {"type", "ref"})
            return Ping(ref=_ref(doc))
        case _:
            raise ApiError(ErrorCode.INVALID, f"unknown frame type {kind[:32]!r} (expected "
                                              "resume, comment, react or ping)")


def _reaction_kind(doc: dict[str, Any]) -> str:
    kind = doc.get("kind")
    if not isinstance(kind, str) or not REACTION_KIND.fullmatch(kind):
        raise ApiError(ErrorCode.INVALID, "'kind' is required: 1-32 of a-z 0-9 _ (one of the "
                                          "server's reaction kinds)")
    return kind


def _only(doc: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(doc) - allowed)
    if extra:
        raise ApiError(ErrorCode.INVALID, f"unknown field(s) in {doc['type']} frame: "
                                          f"{', '.join(extra)}")


# -- server frames ------------------------------------------------------------------------------
# The frames a client receives are defined once, in chorus/sdk/frames.py (which imports nothing
# of the region, so an application takes the SDK without the server); the server writes those
# very values, with its encoder below. Only the snapshot is the server's own: it goes out as
# the document its region rendered once for every viewer (region/snapshot.py), where the SDK
# holds the document decoded.

Pinned = Pin  # the pin frame's name here: region/ names the moderation decision `Pin`


def error_of(err: ApiError, ref: str | None = None) -> Error:
    """The ``error`` frame that refuses a client frame (with its ``ref``) for ``err``."""
    return Error(code=err.code.code, message=err.message, retryable=err.code.retryable,
                 ref=ref)


@functools.lru_cache(maxsize=4096)
def _shared_json(frame: Viewers | Reactions) -> str:
    """The JSON of a frame pushed to every viewer of a stream (``viewers``, ``reactions``),
    encoded once however many viewers get it (frames are frozen values: equal frames share
    their text)."""
    doc: dict[str, Any]
    if isinstance(frame, Viewers):
        doc = {"type": "viewers", "count": frame.count}
        if frame.regions:
            doc.update(total=frame.total, regions=dict(frame.regions))
    else:
        doc = {"type": "reactions", "second": frame.second, "counts": dict(frame.counts),
               "totals": dict(frame.totals)}
    return json.dumps(doc, separators=(",", ":"))


# -- hot streams (region/tiers.py, region/tiers_feed.py) ---------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """The stream's snapshot document (region/snapshot.py) with its ETag: the same bytes the
    snapshot URL serves, encoded once per gateway for all its viewers. (A client decodes it
    as chorus/sdk/frames.py's `Snapshot`.)"""

    rendered: Rendered
    type: Literal["snapshot"] = "snapshot"

    @functools.cached_property
    def json_text(self) -> str:
        body = self.rendered.body.decode()
        return f'{{"type":"snapshot","etag":{json.dumps(self.rendered.etag)},{body[1:]}'


ServerFrame = (Hello | Comments | Recovered | Viewers | Ack | Pong | Error | Bye | Retract
               | Restore | Pinned | Reactions | Tier | Snapshot)


def to_json(frame: ServerFrame) -> dict[str, Any]:
    match frame:
        case Comments(items=items, cursor=cursor, sample=sample):
            batch: dict[str, Any] = {"type": "comments", "items": [c.to_json() for c in items],
                                     "cursor": cursor}
            if sample is not None:
                batch["sample"] = {"shown": sample.shown, "posted": sample.posted}
            return batch
        case Snapshot():
            parsed_snapshot: dict[str, Any] = json.loads(frame.json_text)
            return parsed_snapshot
        case Ack(comment=comment, ref=ref, duplicate=duplicate):
            return {"type": "ack", "comment": comment.to_json(), "ref": ref,
                    "duplicate": duplicate}
        case Viewers() | Reactions():
            parsed: dict[str, Any] = json.loads(_shared_json(frame))
            return parsed
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
        case Restore(stream=stream, comment=restored):
            return {"type": "restore", "stream": stream, "comment": restored.to_json()}
        case _:
            return {k: v for k, v in vars(frame).items()}


def encode(frame: ServerFrame) -> str:
    if isinstance(frame, Comments):
        # The hot path: the items' JSON is each comment's own, encoded once per gateway.
        items = ",".join(c.json_text for c in frame.items)
        if frame.sample is not None:
            sample = frame.sample
            return (f'{{"type":"comments","items":[{items}],"cursor":'
                    f'{json.dumps(frame.cursor)},"sample":{{"shown":{sample.shown},'
                    f'"posted":{sample.posted}}}}}')
        return f'{{"type":"comments","items":[{items}],"cursor":{json.dumps(frame.cursor)}}}'
    if isinstance(frame, Viewers | Reactions):
        return _shared_json(frame)  # the same frame goes to every viewer of the stream
    if isinstance(frame, Snapshot):
        return frame.json_text
    return json.dumps(to_json(frame), ensure_ascii=False, separators=(",", ":"))
