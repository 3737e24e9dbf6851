"""What a client may send: JSON documents, posted comments, names, ids. Pure: shared by HTTP
requests, WebSocket frames and tokens.

Every refusal is an `ApiError` whose code says what to fix (docs/protocol.md). Nothing here
may raise anything else on any input: tests/unit/test_fuzz_short.py and tests/fuzz/ hold it to
that.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any, NoReturn

from chorus.config import Limits
from chorus.ids import is_id
from chorus.model import is_stream_id, is_user_id
from region.errors import ApiError, ErrorCode

CLIENT_KEY = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")
POST_FIELDS = frozenset({"text", "client_key", "reply_to"})
NAME_MAX_CHARS = 64

# JSON a client sends is a flat object or close to it. Python's parser recurses once per
# nesting level and converts integers of any length (quadratic past a few thousand digits,
# refused past 4,300), so both are bounded before the parser sees the document.
JSON_MAX_DEPTH = 32
JSON_MAX_NUMBER_CHARS = 100

# Line breaks and tabs are text; every other control character (C0, C1, DEL) is refused,
# and so are the Unicode controls that reorder text (bidi embeddings, overrides, isolates).
_ALLOWED_CONTROLS = frozenset("\n\t")
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Characters that render as nothing: a text made only of them (and spaces) is empty. Format
# characters (Cf: zero-width space and joiners, word joiner, BOM, tags, ...) by category;
# these by name, as their category says "letter" or "mark": Hangul fillers, variation
# selectors, the combining grapheme joiner, Khmer inherent vowels, Mongolian selectors, the
# Braille blank.
_INVISIBLE = frozenset(
    "\u115f\u1160\u3164\uffa0\u034f\u17b4\u17b5\u180b\u180c\u180d\u180e\u180f\u2800"
    + "".join(chr(c) for c in range(0xFE00, 0xFE10))
    + "".join(chr(c) for c in range(0xE0100, 0xE01F0)))
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


@dataclass(frozen=True)
class PostInput:
    text: str
    client_key: str | None
    reply_to: str | None


# -- JSON ------------------------------------------------------------------------------------


def _too_long_number(literal: str) -> NoReturn:
    raise ApiError(ErrorCode.MALFORMED, f"not JSON this server accepts: a number of "
                                        f"{len(literal)} characters (the limit is "
                                        f"{JSON_MAX_NUMBER_CHARS})")


def _int(literal: str) -> int:
    if len(literal) > JSON_MAX_NUMBER_CHARS:
        _too_long_number(literal)
    return int(literal)


def _float(literal: str) -> float:
    if len(literal) > JSON_MAX_NUMBER_CHARS:
        _too_long_number(literal)
    return float(literal)


def _constant(name: str) -> NoReturn:
    raise ApiError(ErrorCode.MALFORMED, f"{name} is not JSON")


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text`` (brackets inside strings do not count).
    Meaningful for well-formed JSON; for anything else, an upper bound of what a parser
    would recurse into before failing."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads_bounded(text: str, what: str = "body") -> Any:
    """JSON text as Python values, refusing (400 ``malformed``) what is not JSON, nests deeper
    than `JSON_MAX_DEPTH`, holds a number longer than `JSON_MAX_NUMBER_CHARS` or NaN and
    Infinity (which Python's parser accepts but JSON has not)."""
    # Counting brackets is done in C; the scan in Python runs only for documents that could
    # be too deep at all.
    if text.count("[") + text.count("{") > JSON_MAX_DEPTH and json_depth(text) > JSON_MAX_DEPTH:
        raise ApiError(ErrorCode.MALFORMED, f"{what} is not JSON this server accepts: it nests "
                                            f"deeper than {JSON_MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(ErrorCode.MALFORMED, f"{what} is not JSON: {exc.msg} at line "
                                            f"{exc.lineno} column {exc.colno}") from None
    except (ValueError, RecursionError):
        # Nothing past the checks above should get here; a parser's refusal is still the
        # client's malformed input, never a server error.
        raise ApiError(ErrorCode.MALFORMED, f"{what} is not JSON this server accepts") from None


def parse_json_body(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(ErrorCode.INVALID, f"body is not valid UTF-8 (byte {exc.start})") from None
    return loads_bounded(text)


# -- text shown to other viewers -------------------------------------------------------------


def check_text(value: object, field: str, *, multiline: bool = True) -> str:
    """A string that is shown to other people: valid UTF-8, no control character but (when
    ``multiline``) line feed and tab, no bidi control, and something visible. 422 otherwise.
    Sizes are the caller's to check."""
    if not isinstance(value, str):
        raise ApiError(ErrorCode.INVALID, f"'{field}' must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(ErrorCode.INVALID, f"'{field}' is not valid UTF-8 (lone surrogate)"
                       ) from None
    visible = False
    for ch in value:
        category = unicodedata.category(ch)
        if (category == "Cc" and not (multiline and ch in _ALLOWED_CONTROLS)) or ch in _BIDI:
            raise ApiError(ErrorCode.INVALID, f"'{field}' contains control character "
                                              f"U+{ord(ch):04X}")
        if not visible and category not in _BLANK_CATEGORIES and ch not in _INVISIBLE:
            visible = True
    if not visible:
        raise ApiError(ErrorCode.INVALID, f"'{field}' is empty (only spaces or invisible "
                                          "characters)")
    return value


def check_display_name(value: object) -> str:
    """A display name: one line of text (`check_text`), cut to `NAME_MAX_CHARS`."""
    return check_text(value, "name", multiline=False)[:NAME_MAX_CHARS]


# -- identifiers -----------------------------------------------------------------------------


def check_stream(stream: str) -> str:
    if not is_stream_id(stream):
        raise ApiError(ErrorCode.MALFORMED, "a stream id is 1-64 letters, digits, '_' or '-'")
    return stream


def check_user_id(user: object, *, code: ErrorCode = ErrorCode.MALFORMED) -> str:
    if not isinstance(user, str) or not is_user_id(user):
        raise ApiError(code, "a user id is 1-64 of A-Z a-z 0-9 _ - . @ | +")
    return user


def whole_number(raw: str, name: str, low: int, high: int) -> int:
    """A query parameter that is a whole number in [low, high]: 400 when it is not ASCII
    digits (Python's int() would take ' 5', '5_0' or Arabic-Indic digits), 422 out of range."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise ApiError(ErrorCode.MALFORMED, f"{name} must be a whole number, not {raw[:20]!r}")
    value = int(raw)
    if not low <= value <= high:
        raise ApiError(ErrorCode.INVALID, f"{name} is {low} to {high}")
    return value


# -- posts -----------------------------------------------------------------------------------


def check_post(doc: Any, limits: Limits, *, extra_fields: frozenset[str] = frozenset()
               ) -> PostInput:
    """Validates a post body (already parsed JSON); ApiError says what to fix."""
    if not isinstance(doc, dict):
        raise ApiError(ErrorCode.MALFORMED, "body must be a JSON object with a 'text' field")
    unknown = sorted(str(k)[:32] for k in set(doc) - POST_FIELDS - extra_fields)
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
    check_text(text, "text")
    client_key = doc.get("client_key")
    if client_key is not None and (not isinstance(client_key, str)
                                   or not CLIENT_KEY.match(client_key)):
        raise ApiError(ErrorCode.INVALID, "'client_key' is 1-64 of A-Z a-z 0-9 _ . : -")
    reply_to = doc.get("reply_to")
    if reply_to is not None and (not isinstance(reply_to, str) or not is_id(reply_to)):
        raise ApiError(ErrorCode.INVALID, "'reply_to' must be a comment id")
    return PostInput(text=text, client_key=client_key, reply_to=reply_to)
