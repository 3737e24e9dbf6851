import json

import pytest

from chorus.model import Comment
from chorus.sdk import frames
from chorus.sdk.frames import (
    Ack,
    Bye,
    Comments,
    Error,
    Hello,
    MalformedFrame,
    Pong,
    Recovered,
    Viewers,
)
from region import protocol

COMMENT = Comment("0000000000010000-us-east.0", "s", "us-east", "u1", "Ann", "hi", 1, badge="host")


def test_every_frame_the_server_encodes_decodes_to_the_same_values() -> None:
    # The two sides are written apart; this is the contract between them.
    sent: list[protocol.ServerFrame] = [
        protocol.Hello(region="us-east", stream="s", epoch="e1", cursor="us-east:e1:0",
                       gateway="us-east.0"),
        protocol.Comments(items=(COMMENT,), cursor="us-east:e1:1"),
        protocol.Recovered(recovered=False, cursor="us-east:e1:1", reason="window"),
        protocol.Viewers(count=3),
        protocol.Ack(comment=COMMENT, ref="r1", duplicate=True),
        protocol.Pong(ref="p"),
        protocol.Error(code="invalid", message="no", retryable=False, ref=None),
        protocol.Bye(reason="shutdown", cursor="us-east:e1:1", regions=("eu-west",),
                     retry_in_ms=250),
    ]
    for frame in sent:
        got = frames.decode(protocol.encode(frame))
        assert got is not None and got.type == frame.type
        assert vars(got) == vars(frame), frame.type


def test_decoded_frames_are_typed() -> None:
    assert frames.decode('{"type":"comments","items":[],"cursor":"c"}') == Comments((), "c")
    assert frames.decode('{"type":"viewers","count":2}') == Viewers(2)
    assert frames.decode('{"type":"pong"}') == Pong(None)
    ack = frames.decode(json.dumps({"type": "ack", "comment": COMMENT.to_json()}))
    assert ack == Ack(COMMENT, ref=None, duplicate=False)


def test_optional_fields_take_their_defaults() -> None:
    assert frames.decode('{"type":"recovered","recovered":true,"cursor":"c"}') == \
        Recovered(True, "c", "")
    assert frames.decode('{"type":"bye","reason":"slow","cursor":"c"}') == Bye("slow", "c")
    assert frames.decode('{"type":"error","code":"x","message":"m"}') == Error("x", "m")


def test_unknown_types_and_fields_are_ignored() -> None:
    # Servers will add frames and fields.
    assert frames.decode('{"type":"confetti","counts":{"heart":3}}') is None
    assert frames.decode('{"type":"poll","question":"who wins?","shown":5}') is None
    hello = frames.decode('{"type":"hello","region":"r","stream":"s","epoch":"e",'
                          '"cursor":"c","gateway":"g","tier":"push"}')
    assert hello == Hello("r", "s", "e", "c", "g")


@pytest.mark.parametrize("text, kind, says", [
    ("not json", "", "not JSON"),
    ("[1, 2]", "", "JSON object"),
    ('{"cursor": "c"}', "", "string 'type'"),
    ('{"type": 7}', "", "string 'type'"),
    ('{"type":"hello","region":"r","stream":"s","epoch":"e","gateway":"g"}', "hello",
     "'cursor' is missing"),
    ('{"type":"comments","items":{},"cursor":"c"}', "comments", "'items' is not a list"),
    ('{"type":"comments","items":[{"id":"x"}],"cursor":"c"}', "comments", "'items'"),
    ('{"type":"comments","items":[],"cursor":5}', "comments", "'cursor' is not a string"),
    ('{"type":"recovered","recovered":"no","cursor":"c"}', "recovered",
     "'recovered' is not true or false"),
    ('{"type":"viewers","count":"3"}', "viewers", "'count' is not an integer"),
    ('{"type":"viewers","count":true}', "viewers", "'count' is not an integer"),
    ('{"type":"ack","comment":"x"}', "ack", "'comment'"),
    ('{"type":"ack"}', "ack", "'comment' is missing"),
    ('{"type":"pong","ref":7}', "pong", "'ref' is not a string or null"),
    ('{"type":"error","code":"x"}', "error", "'message' is missing"),
    ('{"type":"bye","reason":"r","cursor":"c","regions":"eu-west"}', "bye",
     "'regions' is not a list of strings"),
    ('{"type":"bye","reason":"r","cursor":"c","retry_in_ms":1.5}', "bye",
     "'retry_in_ms' is not an integer"),
])
def test_malformed_frames_say_what_is_wrong(text: str, kind: str, says: str) -> None:
    with pytest.raises(MalformedFrame, match=says) as caught:
        frames.decode(text)
    assert caught.value.kind == kind
    assert isinstance(caught.value, ValueError)
