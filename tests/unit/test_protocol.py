"""Client frames parsed and server frames encoded (region/protocol.py), on plain values."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chorus.config import Limits
from chorus.model import Comment
from region.cursor import Cursor
from region.errors import ApiError, ErrorCode
from region.protocol import (
    Ack,
    Bye,
    Comments,
    Hello,
    Ping,
    Pong,
    PostComment,
    React,
    Recovered,
    Resume,
    ServerFrame,
    Viewers,
    encode,
    error_of,
    parse_client_frame,
    to_json,
)
from region.validation import PostInput

LIMITS = Limits(comment_max_bytes=20)
REPLY_TO = "0190a1b2c3d40001-us-east.0"


def parse(doc: Any) -> object:
    return parse_client_frame(doc if isinstance(doc, str) else json.dumps(doc), LIMITS)


def refused(doc: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse(doc)
    return caught.value


# -- client frames ------------------------------------------------------------------------------


def test_resume() -> None:
    assert parse({"type": "resume", "cursor": "us-east:e1:42"}) == Resume(
        Cursor("us-east", "e1", 42))


def test_comment() -> None:
    assert parse({"type": "comment", "text": "hi"}) == PostComment(PostInput("hi", None, None))
    assert parse({"type": "comment", "text": "héllo ✓", "client_key": "k-1.a:b",
                  "reply_to": REPLY_TO, "ref": "r1"}) == PostComment(
        PostInput("héllo ✓", "k-1.a:b", REPLY_TO), ref="r1")


def test_a_numeric_ref_comes_back_as_text() -> None:
    assert parse({"type": "comment", "text": "hi", "ref": 7}) == PostComment(
        PostInput("hi", None, None), ref="7")
    assert parse({"type": "ping", "ref": 12}) == Ping(ref="12")


def test_react() -> None:
    assert parse({"type": "react", "kind": "heart"}) == React(kind="heart")


def test_ping() -> None:
    assert parse({"type": "ping"}) == Ping()
    assert parse({"type": "ping", "ref": "p"}) == Ping(ref="p")


@pytest.mark.parametrize("text", [
    "",
    "{",
    "not json",
    '{"type": "ping",}',
    "[" * 5000 + "]" * 5000,                       # deeper than the parser goes
    '{"type": "ping", "ref": ' + "1" * 5000 + "}",  # more digits than Python converts
])
def test_what_is_not_json_is_malformed(text: str) -> None:
    err = refused(text)
    assert err.code is ErrorCode.MALFORMED and "not JSON" in err.message


@pytest.mark.parametrize("doc", [
    [], ["ping"], '"ping"', 3, None, {}, {"type": 1}, {"type": None}, {"kind": "ping"},
])
def test_a_frame_is_an_object_with_a_string_type(doc: Any) -> None:
    assert refused(doc).code is ErrorCode.MALFORMED


def test_an_unknown_type_is_invalid_and_the_error_lists_the_known_ones() -> None:
    err = refused({"type": "subscribe"})
    assert err.code is ErrorCode.INVALID
    assert "'subscribe'" in err.message and "resume, comment, react or ping" in err.message
    assert len(refused({"type": "x" * 1000}).message) < 200


@pytest.mark.parametrize("doc", [
    {"type": "resume"},
    {"type": "resume", "cursor": 42},
    {"type": "resume", "cursor": None},
    {"type": "resume", "cursor": ""},
    {"type": "resume", "cursor": "us-east:e1"},
    {"type": "resume", "cursor": "us-east:e1:-1"},
    {"type": "resume", "cursor": "US-EAST:e1:1"},
    {"type": "resume", "cursor": "us-east:e1:12345678901234567890"},
])
def test_a_resume_needs_a_cursor(doc: dict[str, Any]) -> None:
    assert refused(doc).code is ErrorCode.INVALID


@pytest.mark.parametrize(("doc", "field"), [
    ({"type": "resume", "cursor": "us-east:e1:1", "from": 0}, "from"),
    ({"type": "react", "kind": "heart", "count": 2}, "count"),
    ({"type": "ping", "payload": "x"}, "payload"),
    ({"type": "comment", "text": "hi", "stream": "other"}, "stream"),
])
def test_unknown_fields_are_invalid_and_named(doc: dict[str, Any], field: str) -> None:
    err = refused(doc)
    assert err.code is ErrorCode.INVALID and field in err.message


@pytest.mark.parametrize("ref", ["x" * 65, 10 ** 65, ["r"], {"r": 1}, 1.5])
def test_a_ref_is_a_short_string_or_number(ref: object) -> None:
    for kind in ({"type": "ping"}, {"type": "comment", "text": "hi"}):
        err = refused({**kind, "ref": ref})
        assert err.code is ErrorCode.INVALID and "'ref'" in err.message


@pytest.mark.parametrize(("body", "code"), [
    ({}, ErrorCode.INVALID),
    ({"text": 5}, ErrorCode.INVALID),
    ({"text": "   "}, ErrorCode.INVALID),
    ({"text": "x" * 21}, ErrorCode.TOO_LARGE),
    ({"text": "é" * 11}, ErrorCode.TOO_LARGE),          # 22 bytes: the limit is in bytes
    ({"text": "bell \x07"}, ErrorCode.INVALID),
    ({"text": "\u202eevil"}, ErrorCode.INVALID),
    ({"text": "\ud800"}, ErrorCode.INVALID),
    ({"text": "hi", "client_key": "has space"}, ErrorCode.INVALID),
    ({"text": "hi", "client_key": 5}, ErrorCode.INVALID),
    ({"text": "hi", "reply_to": "not-an-id"}, ErrorCode.INVALID),
])
def test_a_comment_follows_the_rules_of_a_post(body: dict[str, Any], code: ErrorCode) -> None:
    assert refused({"type": "comment", **body}).code is code


# -- server frames ------------------------------------------------------------------------------

COMMENT = Comment(id=REPLY_TO, stream="s", region="us-east", user="u1", name="Zoë",
                  text="ça marche ✓ \"quoted\"", ts=1700000000000, badge="verified")
CURSOR = "us-east:e1:9"

EXPECTED: list[tuple[ServerFrame, dict[str, Any]]] = [
    (Hello(region="us-east", stream="s", epoch="e1", cursor=CURSOR, gateway="us-east.0"),
     {"type": "hello", "region": "us-east", "stream": "s", "epoch": "e1", "cursor": CURSOR,
      "gateway": "us-east.0"}),
    (Comments(items=(COMMENT, COMMENT), cursor=CURSOR),
     {"type": "comments", "items": [COMMENT.to_json(), COMMENT.to_json()], "cursor": CURSOR}),
    (Comments(items=(), cursor=CURSOR), {"type": "comments", "items": [], "cursor": CURSOR}),
    (Recovered(recovered=False, cursor=CURSOR, reason="why"),
     {"type": "recovered", "recovered": False, "cursor": CURSOR, "reason": "why"}),
    (Viewers(count=3), {"type": "viewers", "count": 3}),
    (Ack(comment=COMMENT, ref="r", duplicate=True),
     {"type": "ack", "comment": COMMENT.to_json(), "ref": "r", "duplicate": True}),
    (Pong(), {"type": "pong", "ref": None}),
    (error_of(ApiError(ErrorCode.RATE_LIMITED, "slow down"), "r"),
     {"type": "error", "code": "rate_limited", "message": "slow down", "retryable": True,
      "ref": "r"}),
    (Bye(reason="slow_consumer", cursor=CURSOR, regions=("eu-west", "ap-south")),
     {"type": "bye", "reason": "slow_consumer", "cursor": CURSOR,
      "regions": ["eu-west", "ap-south"], "retry_in_ms": 0}),
]


@pytest.mark.parametrize(("frame", "expected"), EXPECTED,
                         ids=[f.type + str(i) for i, (f, _) in enumerate(EXPECTED)])
def test_encode(frame: ServerFrame, expected: dict[str, Any]) -> None:
    assert json.loads(encode(frame)) == expected
    assert to_json(frame) == expected


def test_encoding_is_compact_and_keeps_text_as_written() -> None:
    for frame in (Comments(items=(COMMENT,), cursor=CURSOR), Ack(comment=COMMENT)):
        text = encode(frame)
        assert "ça marche ✓" in text and "Zoë" in text and ": " not in text


def test_a_batch_embeds_each_comments_own_json() -> None:
    # The batch is assembled from each comment's cached text rather than re-encoded.
    assert encode(Comments(items=(COMMENT,), cursor=CURSOR)) == (
        f'{{"type":"comments","items":[{COMMENT.json_text}],"cursor":"{CURSOR}"}}')
