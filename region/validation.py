"""What a posted comment must look like. Pure: shared by HTTP posts and WebSocket frames."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from chorus.config import Limits
from chorus.ids import is_id
from chorus.model import STREAM_ID
from region.errors import ApiError, ErrorCode

CLIENT_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
POST_FIELDS = frozenset({"text", "client_key", "reply_to"})
# Line breaks and tabs are text; every other control character (C0, C1, DEL) is refused,
# and so are Unicode format controls that reorder or hide text (bidi overrides).
_ALLOWED_CONTROLS = {"\n", "\t"}
_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068",
         "\u2069"}


@dataclass(frozen=True)
class PostInput:
    text: str
    client_key: str | None
    reply_to: str | None


def check_stream(stream: str) -> str:
    if not STREAM_ID.match(stream):
        raise ApiError(ErrorCode.MALFORMED, "a stream id is 1-64 letters, digits, '_' or '-'")
    return stream


def parse_json_body(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(ErrorCode.INVALID, f"body is not valid UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ApiError(ErrorCode.MALFORMED, f"body is not JSON: {exc.msg} at line "
                                            f"{exc.lineno} column {exc.colno}") from None


def check_post(doc: Any, limits: Limits, *, extra_fields: frozenset[str] = frozenset()
               ) -> PostInput:
    """Validates a post body (already parsed JSON); ApiError says what to fix."""
    if not isinstance(doc, dict):
        raise ApiError(ErrorCode.MALFORMED, "body must be a JSON object with a 'text' field")
    unknown = sorted(set(doc) - POST_FIELDS - extra_fields)
    if unknown:
        raise ApiError(ErrorCode.INVALID, f"unknown field(s): {', '.join(unknown)} (allowed: "
                                          f"{', '.join(sorted(POST_FIELDS))})")
    text = doc.get("text")
    if not isinstance(text, str):
        raise ApiError(ErrorCode.INVALID, "'text' is required and must be a string")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise ApiError(ErrorCode.INVALID, "'text' is not valid UTF-8 (lone surrogate)") from None
    if size > limits.comment_max_bytes:
        raise ApiError(ErrorCode.TOO_LARGE, f"'text' is {size} bytes; the limit is "
                                            f"{limits.comment_max_bytes}")
    if not text.strip():
        raise ApiError(ErrorCode.INVALID, "'text' is empty")
    for ch in text:
        if ch in _ALLOWED_CONTROLS:
            continue
        if unicodedata.category(ch) == "Cc" or ch in _BIDI:
            raise ApiError(ErrorCode.INVALID, f"'text' contains control character "
                                              f"U+{ord(ch):04X}")
    client_key = doc.get("client_key")
    if client_key is not None and (not isinstance(client_key, str)
                                   or not CLIENT_KEY.match(client_key)):
        raise ApiError(ErrorCode.INVALID, "'client_key' is 1-64 of A-Z a-z 0-9 _ . : -")
    reply_to = doc.get("reply_to")
    if reply_to is not None and (not isinstance(reply_to, str) or not is_id(reply_to)):
        raise ApiError(ErrorCode.INVALID, "'reply_to' must be a comment id")
    return PostInput(text=text, client_key=client_key, reply_to=reply_to)
