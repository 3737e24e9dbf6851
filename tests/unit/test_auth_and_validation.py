from __future__ import annotations

import base64
import dataclasses
import time

import jwt
import pytest

from chorus.config import AuthConfig, Limits
from chorus.ids import is_id
from region.auth import bearer, issue_token, origin_allowed, verify_token
from region.cursor import Cursor
from region.errors import ApiError, ErrorCode
from region.validation import (
    JSON_MAX_DEPTH,
    check_post,
    check_stream,
    check_user_id,
    loads_bounded,
    parse_json_body,
    whole_number,
)

SECRET = "s" * 40


AUTH = AuthConfig(dev_secret=SECRET, issuer="https://id.example.com", audience="chorus-tv",
                  max_token_lifetime_s=7200, token_ttl_s=600)


def test_token_round_trip_and_badge() -> None:
    token = issue_token(SECRET, "ana", name="Ana", roles=("viewer", "moderator"))
    claims = verify_token(SECRET, token)
    assert (claims.user, claims.name, claims.badge, claims.is_moderator) == (
        "ana", "Ana", "moderator", True)


def test_tokens_carry_the_configured_issuer_audience_and_lifetime() -> None:
    token = issue_token(AUTH, "ana", now=1_800_000_000)
    doc = jwt.decode(token, options={"verify_signature": False})
    assert (doc["iss"], doc["aud"], doc["exp"] - doc["iat"]) == (
        "https://id.example.com", "chorus-tv", 600)
    assert verify_token(AUTH, issue_token(AUTH, "ana")).user == "ana"
    # Signed with the same key for another service: refused.
    with pytest.raises(ApiError, match="audience"):
        verify_token(AUTH, issue_token(dataclasses.replace(AUTH, audience="other"), "ana"))
    with pytest.raises(ApiError, match="issuer"):
        verify_token(AUTH, issue_token(dataclasses.replace(AUTH, issuer="other"), "ana"))
    with pytest.raises(ValueError, match="max_token_lifetime_s"):
        issue_token(AUTH, "ana", ttl_s=7201)


def _signed(claims: dict[str, object]) -> str:
    """A token with ``claims`` over sound ones; a `Later` claim is that many seconds from
    now, taken when the token is signed (cases are made at collection, and a long run
    reaches them minutes later)."""
    now = int(time.time())
    base: dict[str, object] = {"sub": "ana", "iss": AUTH.issuer, "aud": AUTH.audience,
                               "iat": now, "exp": now + 60}
    doc = {k: now + v.s if isinstance(v, Later) else v for k, v in {**base, **claims}.items()}
    return jwt.encode({k: v for k, v in doc.items() if v is not None}, SECRET,
                      algorithm="HS256")


@dataclasses.dataclass(frozen=True)
class Later:
    s: int


@pytest.mark.parametrize(("claims", "why"), [
    ({"iss": None}, "iss"),
    ({"aud": None}, "aud"),
    ({"iat": None}, "iat"),
    ({"exp": str(int(time.time()) + 60)}, "exp"),       # a string is not a NumericDate
    ({"iat": True}, "iat"),
    ({"exp": Later(7300)}, "limit is 7200"),            # lives longer than the cap
    ({"iat": Later(600), "exp": Later(900)}, "iat"),    # issued in the future
    ({"sub": "ana\n"}, "subject"),
    ({"sub": "a:b"}, "subject"),
    ({"sub": "x" * 65}, "subject"),
    ({"name": "Ana\x00"}, "name"),
    ({"name": "Ana\r\nX-Admin: 1"}, "name"),
    ({"name": "\x1b[2JAna"}, "name"),
    ({"name": "Ana\u202emoc.evil"}, "name"),
    ({"name": "\u200b\u2060\ufeff"}, "name"),
    ({"name": 5}, "name"),
    ({"roles": ["admin"]}, "roles"),
])
def test_bad_claims_are_401(claims: dict[str, object], why: str) -> None:
    with pytest.raises(ApiError) as info:
        verify_token(AUTH, _signed(claims))
    assert info.value.code is ErrorCode.UNAUTHENTICATED
    assert why in info.value.message, info.value.message


@pytest.mark.parametrize("token", [
    "a.b",                                          # not three parts
    "e30.e30.sig!",                                 # not base64url
    "x" * 5000,                                     # too long
    # A header nested a thousand deep, or holding Infinity: read before the signature.
    base64.urlsafe_b64encode(b"[" * 1000 + b"]" * 1000).decode().rstrip("=") + ".e30.x",
    base64.urlsafe_b64encode(b'{"alg":"HS256","x":Infinity}').decode().rstrip("=") + ".e30.x",
])
def test_malformed_tokens_are_401(token: str) -> None:
    with pytest.raises(ApiError) as info:
        verify_token(AUTH, token)
    assert info.value.code is ErrorCode.UNAUTHENTICATED


def test_display_names_are_shown_as_given_but_cut() -> None:
    claims = verify_token(AUTH, _signed({"name": "Zoë 🎉 " + "x" * 80}))
    assert claims.name.startswith("Zoë 🎉 ") and len(claims.name) == 64
    assert verify_token(AUTH, _signed({"name": ""})).name == "ana"


@pytest.mark.parametrize("token", [None, "", "garbage", issue_token("x" * 40, "ana"),
                                   issue_token(SECRET, "ana", ttl_s=-60)])
def test_bad_tokens_are_401(token: str | None) -> None:
    with pytest.raises(ApiError) as info:
        verify_token(SECRET, token)
    assert info.value.code is ErrorCode.UNAUTHENTICATED


def test_bearer_header_or_query() -> None:
    assert bearer("Bearer abc", None) == "abc"
    assert bearer(None, "q") == "q"
    with pytest.raises(ApiError):
        bearer("Basic abc", None)


def test_origins() -> None:
    allowed = ("http://localhost", "https://app.example.com")
    assert origin_allowed(None, allowed)
    assert origin_allowed("http://localhost:5173", allowed)
    assert origin_allowed("https://app.example.com", allowed)
    assert not origin_allowed("https://evil.example.com", allowed)
    assert not origin_allowed("https://localhost", allowed)
    # Not URLs at all: refused, never an error.
    for bad in ("http://[::1", "http://localhost:99999", "null", "", "localhost"):
        assert not origin_allowed(bad, allowed), bad
    # The gateway's own origin (its page calling its API).
    assert origin_allowed("https://gw.example.net", allowed, own="https://gw.example.net")
    assert not origin_allowed("https://gw.example.net", allowed, own="http://gw.example.net")


LIMITS = Limits(comment_max_bytes=20)


@pytest.mark.parametrize(("doc", "code"), [
    ([], ErrorCode.MALFORMED),
    ({}, ErrorCode.INVALID),
    ({"text": 5}, ErrorCode.INVALID),
    ({"text": "   "}, ErrorCode.INVALID),
    ({"text": "x" * 21}, ErrorCode.TOO_LARGE),
    ({"text": "é" * 11}, ErrorCode.TOO_LARGE),       # 22 bytes
    ({"text": "bell\x07"}, ErrorCode.INVALID),
    ({"text": "esc\x1b[2J"}, ErrorCode.INVALID),
    ({"text": "rtl\u202e"}, ErrorCode.INVALID),
    ({"text": "\ud800"}, ErrorCode.INVALID),
    ({"text": "hi", "colour": "red"}, ErrorCode.INVALID),
    ({"text": "hi", "client_key": "has space"}, ErrorCode.INVALID),
    ({"text": "hi", "reply_to": "nope"}, ErrorCode.INVALID),
    # A final newline used to pass every pattern ("$" matches before it).
    ({"text": "hi", "client_key": "k-1\n"}, ErrorCode.INVALID),
    ({"text": "hi", "reply_to": "018f2a3b4c5d0000-us-east.0\n"}, ErrorCode.INVALID),
    # Made only of characters that render as nothing.
    ({"text": "\u200b\u2060\ufeff"}, ErrorCode.INVALID),
    ({"text": "\u3164 \u2800\ufe0f"}, ErrorCode.INVALID),
    ({"text": "\u2066hi"}, ErrorCode.INVALID),
])
def test_bad_posts(doc: object, code: ErrorCode) -> None:
    with pytest.raises(ApiError) as info:
        check_post(doc, LIMITS)
    assert info.value.code is code, info.value.message


def test_good_post() -> None:
    post = check_post({"text": "hi\nthere\t!", "client_key": "k-1"}, LIMITS)
    assert post.text == "hi\nthere\t!" and post.client_key == "k-1" and post.reply_to is None


def test_body_bytes() -> None:
    with pytest.raises(ApiError) as info:
        parse_json_body(b'{"text": "\xff"}')
    assert info.value.code is ErrorCode.INVALID
    with pytest.raises(ApiError) as info:
        parse_json_body(b"{nope")
    assert info.value.code is ErrorCode.MALFORMED


def test_stream_ids() -> None:
    assert check_stream("match_42-final") == "match_42-final"
    for bad in ("", "a.b", "a b", "x" * 65, "a>"):
        with pytest.raises(ApiError):
            check_stream(bad)


def test_cursor_round_trip_and_rejects() -> None:
    cursor = Cursor("us-east", "lx3k2", 42)
    assert Cursor.parse(cursor.encode()) == cursor
    for bad in ("", "us-east:1", "us-east:e:-1", "US:e:1", "us-east:e:1:2"):
        with pytest.raises(ValueError):
            Cursor.parse(bad)


def test_comments_frames_embed_each_comments_own_json() -> None:
    import json

    from chorus.model import Comment
    from region.protocol import Comments, encode, to_json

    items = (Comment("01", "s", "us-east", "u", "Ünï \"q\"", "hé\nllo", 5),
             Comment("02", "s", "us-east", "v", "V", "x", 6, reply_to="01", shadow=True))
    frame = Comments(items=items, cursor="us-east:e:9")
    assert json.loads(encode(frame)) == to_json(frame)
    assert json.loads(encode(Comments(items=(), cursor="c"))) == {
        "type": "comments", "items": [], "cursor": "c"}


def test_no_pattern_takes_a_final_newline() -> None:
    for bad in ("x\n", "x\r", "x\n\n"):
        with pytest.raises(ApiError):
            check_stream(bad)
        with pytest.raises(ApiError):
            check_user_id(bad)
    assert not is_id("018f2a3b4c5d0000-us-east.0\n")
    assert is_id("018f2a3b4c5d0000-us-east.0")
    with pytest.raises(ValueError):
        Cursor.parse("us-east:e1:5\n")


def test_json_is_bounded_before_parsing() -> None:
    nested = "[" * (JSON_MAX_DEPTH + 1) + "]" * (JSON_MAX_DEPTH + 1)
    for text in (nested, "[" * 100_000, '{"a": ' + "1" * 5000 + "}", '{"a": NaN}',
                 '{"a": -Infinity}', '{"a": 1e' + "9" * 200 + "}"):
        with pytest.raises(ApiError) as info:
            loads_bounded(text)
        assert info.value.code is ErrorCode.MALFORMED
    # Brackets inside strings are text, not nesting.
    assert loads_bounded('{"text": "' + "[" * 100 + '"}') == {"text": "[" * 100}
    ok = "[" * JSON_MAX_DEPTH + "]" * JSON_MAX_DEPTH
    assert loads_bounded(ok) is not None


def test_whole_numbers_are_ascii_digits() -> None:
    assert whole_number("50", "limit", 1, 200) == 50
    for bad in (" 5", "5_0", "+5", "\u0665", "\u00b2", "1e2", ""):
        with pytest.raises(ApiError) as info:
            whole_number(bad, "limit", 1, 200)
        assert info.value.code is ErrorCode.MALFORMED, bad
    with pytest.raises(ApiError) as info:
        whole_number("201", "limit", 1, 200)
    assert info.value.code is ErrorCode.INVALID
