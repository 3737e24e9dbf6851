"""The comment as it travels: one frozen dataclass, JSON only at the edges.

A `Comment` is what the posting region stores and every region delivers. ``ts`` is the
origin's wall clock in ms; ``region`` the origin region; ``shadow`` marks a comment of a
shadow-banned user, delivered to its author alone; ``badge`` the author's highest role
(host, moderator, verified), which later puts it in the priority lane of a hot stream.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, fields
from typing import Any, Literal

# Identifiers that reach NATS subjects, Redis keys and other viewers' screens. Anchored with
# \A and \Z, not ^ and $: "$" also matches before a final newline, so "x\n" would pass a
# `.match`. With \Z, `.match` and `.fullmatch` both take the whole string.
STREAM_ID = re.compile(r"\A[A-Za-z0-9_-]{1,64}\Z")
# A user id (a token's ``sub``). No ':', so that keys built as ``<stream>:<user>:<key>`` (the
# idempotency key of a post) cannot be read two ways; '.', '@', '|' and '+' are in, as ids of
# common identity providers use them ("auth0|5f7c...", "ana+tv@example.com"). An id with other
# characters must be mapped by the token issuer (hex or base64url).
USER_ID = re.compile(r"\A[A-Za-z0-9_.@|+-]{1,64}\Z")


def is_stream_id(value: str) -> bool:
    return STREAM_ID.match(value) is not None


def is_user_id(value: str) -> bool:
    return USER_ID.match(value) is not None


Badge = Literal["host", "moderator", "verified", ""]
BADGES: tuple[Badge, ...] = ("host", "moderator", "verified")


@dataclass(frozen=True)
class Comment:
    id: str
    stream: str
    region: str
    user: str
    name: str
    text: str
    ts: int
    reply_to: str | None = None
    badge: Badge = ""
    shadow: bool = False

    def to_json(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every field, a tenth of a post's CPU in a
        # gateway; the fields are immutable values already. Same keys, same order.
        return {name: getattr(self, name) for name in _COMMENT_FIELDS}

    @functools.cached_property
    def json_text(self) -> str:
        """The comment as compact JSON, computed once: a gateway hands the same comment to
        every viewer of the stream, and each frame embeds this text instead of re-encoding."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":"))

    def encode(self) -> bytes:
        return self.json_text.encode()

    @classmethod
    def from_json(cls, doc: Any) -> Comment:
        """Raises ValueError when ``doc`` is not a stored comment (a bug or a stray message)."""
        if not isinstance(doc, dict):
            raise ValueError("a comment is a JSON object")
        try:
            badge = doc.get("badge", "")
            if badge not in ("", *BADGES):
                raise ValueError(f"unknown badge {badge!r}")
            return cls(id=str(doc["id"]), stream=str(doc["stream"]), region=str(doc["region"]),
                       user=str(doc["user"]), name=str(doc["name"]), text=str(doc["text"]),
                       ts=int(doc["ts"]), reply_to=doc.get("reply_to"), badge=badge,
                       shadow=bool(doc.get("shadow", False)))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a comment: {exc}") from None

    @classmethod
    def decode(cls, data: bytes) -> Comment:
        return cls.from_json(json.loads(data))

    def visible_to(self, user: str | None) -> bool:
        """A shadow-banned author's comments reach only the author."""
        return not self.shadow or user == self.user


_COMMENT_FIELDS = tuple(f.name for f in fields(Comment))
