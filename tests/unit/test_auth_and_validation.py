from __future__ import annotations

import pytest

from chorus.config import Limits
from region.auth import bearer, issue_token, origin_allowed, verify_token
from region.cursor import Cursor
from region.errors import ApiError, ErrorCode
from region.validation import check_post, check_stream, parse_json_body

SECRET = "s" * 40


def test_token_round_trip_and_badge() -> None:
    token = issue_token(SECRET, "ana", name="Ana", roles=("viewer", "moderator"))
    claims = verify_token(SECRET, token)
    assert (claims.user, claims.name, claims.badge, claims.is_moderator) == (
        "ana", "Ana", "moderator", True)


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
