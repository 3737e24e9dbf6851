"""The frames a client receives (docs/protocol.md, "Server to client"): typed values, decoded
from JSON here and nowhere else. Pure.

These values are the protocol's one definition of the server's frames: the server builds and
sends these very classes (region/protocol.py imports them and holds the encoder; only the
snapshot frame, which it sends as a document rendered once, is its own). This module imports
nothing of the region, so an application takes the SDK without the server's code.

Decoding is forward compatible, in both directions a server may grow: a frame type this
client does not know (one a later server adds) decodes to None and is skipped, and a field it
does not know is ignored. A frame of a known type whose fields are missing or of the wrong
kind raises `MalformedFrame`: it is a server bug, which the client counts and logs, never
reads as something it is not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from chorus.model import Comment


class MalformedFrame(ValueError):
    """A server frame that is not JSON, not an object with a string ``type``, or of a known
    type with a missing or mistyped field. ``kind`` is its type ("" when it has none)."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"malformed {kind or 'server'} frame: {reason}")
        self.kind = kind


@dataclass(frozen=True)
class Hello:
    """The first frame of a connection; ``cursor`` is where it starts."""

    region: str
    stream: str
    epoch: str
    cursor: str
    gateway: str
    pin: Comment | None = None    # the stream's pinned comment when the connection opened
    type: Literal["hello"] = "hello"


@dataclass(frozen=True)
class Sample:
    """What a batch of a sampled stream stands for: in the last second ``shown`` comments went
    to every viewer, of ``posted`` ("showing n of m")."""

    shown: int
    posted: int


@dataclass(frozen=True)
class Comments:
    """A batch of comments in the region's order, oldest first; keep ``cursor``. ``sample``:
    set while the stream is sampled (or in snapshot)."""

    items: tuple[Comment, ...]
    cursor: str
    sample: Sample | None = None
    type: Literal["comments"] = "comments"


@dataclass(frozen=True)
class Recovered:
    """The answer to a resume: ``recovered`` False means comments after the resumed cursor
    could not be replayed and must be paged from history."""

    recovered: bool
    cursor: str
    reason: str = ""
    type: Literal["recovered"] = "recovered"


@dataclass(frozen=True)
class Viewers:
    """Viewers of the stream: ``count`` in the connection's region, ``total`` in every region
    and ``regions`` per region (a region the server did not hear from is left out). A server
    that tells only its region's count sends no ``regions`` (``total`` is then 0)."""

    count: int
    total: int = 0
    regions: tuple[tuple[str, int], ...] = ()
    type: Literal["viewers"] = "viewers"


@dataclass(frozen=True)
class Reactions:
    """About once a second while the stream has reactions: ``counts`` per kind that arrived
    since the previous frame (``second``: the newest second among them, seconds since the
    epoch) and the stream's ``totals`` over every region."""

    second: int
    counts: tuple[tuple[str, int], ...]
    totals: tuple[tuple[str, int], ...]
    type: Literal["reactions"] = "reactions"


@dataclass(frozen=True)
class Ack:
    """A ``comment`` frame (with ``ref``) was stored as ``comment``."""

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
    """A client frame (with ``ref``) was refused; ``code`` as in HTTP error bodies."""

    code: str
    message: str
    retryable: bool = False
    ref: str | None = None
    type: Literal["error"] = "error"


@dataclass(frozen=True)
class Bye:
    """The server is closing the connection: resume from the last cursor (or ``cursor``),
    at another of ``regions`` if given, after ``retry_in_ms``."""

    reason: str
    cursor: str
    regions: tuple[str, ...] = ()
    retry_in_ms: int = 0
    type: Literal["bye"] = "bye"


@dataclass(frozen=True)
class Retract:
    """Comments of the stream taken down (by their author, a moderator or the classifier):
    remove them from what is shown. Also sent after a resume for the stream's latest ones."""

    stream: str
    ids: tuple[str, ...]
    type: Literal["retract"] = "retract"


@dataclass(frozen=True)
class Restore:
    """A comment taken down (held for review, or retracted) that a moderator approved: show
    it again, in its place by id."""

    stream: str
    comment: Comment
    type: Literal["restore"] = "restore"


@dataclass(frozen=True)
class Pin:
    """The stream's pinned comment changed; ``comment`` None: unpinned."""

    stream: str
    comment: Comment | None
    type: Literal["pin"] = "pin"


@dataclass(frozen=True)
class Tier:
    """How the server delivers the stream from here: ``push`` (every comment), ``sampled`` (at
    most ``per_viewer_per_s`` a second, the priority lane and one's own on top) or
    ``snapshot`` (the document at ``snapshot_url``, rewritten every ``interval_s``, also sent
    as `Snapshot` frames). ``cursor`` is the cursor from here: a tier change is no gap."""

    tier: str
    cursor: str
    per_viewer_per_s: int | None = None
    snapshot_url: str | None = None
    interval_s: float | None = None
    type: Literal["tier"] = "tier"


@dataclass(frozen=True)
class Snapshot:
    """A stream in the snapshot tier, as its region rendered it: a sample of its recent
    ``comments`` and its recent ``priority`` lane (oldest first), ``viewers`` in every region,
    comments a second in every region (``rate_per_s``) and ``posted`` in the region in the
    last ``interval_s``; ``etag`` identifies the document."""

    stream: str
    region: str
    at_ms: int
    interval_s: float
    viewers: int
    rate_per_s: int
    posted: int
    comments: tuple[Comment, ...]
    priority: tuple[Comment, ...]
    etag: str = ""
    type: Literal["snapshot"] = "snapshot"


ServerFrame = (Hello | Comments | Recovered | Viewers | Ack | Pong | Error | Bye | Retract
               | Restore | Pin | Reactions | Tier | Snapshot)


def decode(text: str) -> ServerFrame | None:
    """One frame's JSON text. None for a frame type this client does not know;
    `MalformedFrame` when the text is not a frame or a known frame is wrong."""
    try:
        doc = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and UnicodeDecodeError from bytes
        raise MalformedFrame("", f"not JSON ({exc})") from None
    return from_json(doc)


def from_json(doc: Any) -> ServerFrame | None:
    """A decoded JSON value as a frame; see `decode`."""
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        raise MalformedFrame("", "a frame is a JSON object with a string 'type'")
    fields = _Fields(doc)
    match doc["type"]:
        case "hello":
            return Hello(region=fields.text("region"), stream=fields.text("stream"),
                         epoch=fields.text("epoch"), cursor=fields.text("cursor"),
                         gateway=fields.text("gateway"), pin=fields.optional_comment("pin"))
        case "comments":
            return Comments(items=fields.comments("items"), cursor=fields.text("cursor"),
                            sample=fields.sample("sample"))
        case "tier":
            return Tier(tier=fields.text("tier"), cursor=fields.text("cursor"),
                        per_viewer_per_s=fields.optional_number("per_viewer_per_s"),
                        snapshot_url=fields.optional_text("snapshot_url"),
                        interval_s=fields.optional_seconds("interval_s"))
        case "snapshot":
            return Snapshot(stream=fields.text("stream"), region=fields.text("region"),
                            at_ms=fields.number("at_ms"),
                            interval_s=fields.optional_seconds("interval_s") or 0.0,
                            viewers=fields.number("viewers"),
                            rate_per_s=fields.number("rate_per_s"),
                            posted=fields.number("posted"),
                            comments=fields.comments("comments"),
                            priority=fields.comments("priority"),
                            etag=fields.text("etag", ""))
        case "recovered":
            return Recovered(recovered=fields.flag("recovered"), cursor=fields.text("cursor"),
                             reason=fields.text("reason", ""))
        case "viewers":
            regions = fields.counts("regions")
            return Viewers(count=fields.number("count"),
                           total=fields.number("total", 0) if regions else 0, regions=regions)
        case "reactions":
            return Reactions(second=fields.number("second"), counts=fields.counts("counts"),
                             totals=fields.counts("totals"))
        case "ack":
            return Ack(comment=fields.comment("comment"), ref=fields.ref(),
                       duplicate=fields.flag("duplicate", False))
        case "pong":
            return Pong(ref=fields.ref())
        case "error":
            return Error(code=fields.text("code"), message=fields.text("message"),
                         retryable=fields.flag("retryable", False), ref=fields.ref())
        case "bye":
            return Bye(reason=fields.text("reason"), cursor=fields.text("cursor"),
                       regions=fields.texts("regions"),
                       retry_in_ms=fields.number("retry_in_ms", 0))
        case "retract":
            return Retract(stream=fields.text("stream"), ids=fields.texts("ids"))
        case "restore":
            return Restore(stream=fields.text("stream"), comment=fields.comment("comment"))
        case "pin":
            return Pin(stream=fields.text("stream"), comment=fields.optional_comment("comment"))
        case _:
            return None


_REQUIRED: Any = object()


class _Fields:
    """Typed reads of one frame's fields; every failure names the frame and the field."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.kind: str = doc["type"]

    def _get(self, key: str, default: Any) -> Any:
        if key in self.doc:
            return self.doc[key]
        if default is _REQUIRED:
            raise MalformedFrame(self.kind, f"'{key}' is missing")
        return default

    def _wrong(self, key: str, what: str) -> MalformedFrame:
        return MalformedFrame(self.kind, f"'{key}' is not {what}: {self.doc[key]!r:.80}")

    def text(self, key: str, default: Any = _REQUIRED) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise self._wrong(key, "a string")
        return value

    def flag(self, key: str, default: Any = _REQUIRED) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false")
        return value

    def number(self, key: str, default: Any = _REQUIRED) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "an integer")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._wrong(key, "a list of strings")
        return tuple(value)

    def counts(self, key: str) -> tuple[tuple[str, int], ...]:
        """An object of non-negative counts by name, sorted by name (absent: empty)."""
        value = self._get(key, {})
        if not isinstance(value, dict) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 0
                for n in value.values()):
            raise self._wrong(key, "an object of counts")
        return tuple(sorted(value.items()))

    def ref(self) -> str | None:
        value = self._get("ref", None)
        if value is not None and not isinstance(value, str):
            raise self._wrong("ref", "a string or null")
        return value

    def comment(self, key: str) -> Comment:
        value = self._get(key, _REQUIRED)
        try:
            return Comment.from_json(value)
        except ValueError as exc:
            raise MalformedFrame(self.kind, f"'{key}': {exc}") from None

    def optional_number(self, key: str) -> int | None:
        return None if self._get(key, None) is None else self.number(key)

    def optional_text(self, key: str) -> str | None:
        return None if self._get(key, None) is None else self.text(key)

    def optional_seconds(self, key: str) -> float | None:
        value = self._get(key, None)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self._wrong(key, "a number of seconds")
        return float(value)

    def sample(self, key: str) -> Sample | None:
        value = self._get(key, None)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._wrong(key, "an object with 'shown' and 'posted'")
        inner = _Fields({**value, "type": self.kind})
        shown, posted = inner.number("shown"), inner.number("posted")
        if shown < 0 or posted < 0:
            raise self._wrong(key, "an object of two counts")
        return Sample(shown=shown, posted=posted)

    def optional_comment(self, key: str) -> Comment | None:
        if self._get(key, None) is None:
            return None
        return self.comment(key)

    def comments(self, key: str) -> tuple[Comment, ...]:
        value = self._get(key, _REQUIRED)
        if not isinstance(value, list):
            raise self._wrong(key, "a list of comments")
        try:
            return tuple(Comment.from_json(item) for item in value)
        except ValueError as exc:
            raise MalformedFrame(self.kind, f"'{key}': {exc}") from None
