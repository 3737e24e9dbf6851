"""The shared test vectors (tests/vectors/*.json) on the Python side.

The browser SDK's tests (web/sdk/test/vectors.test.ts) run the same files, so the two clients
cannot drift apart on what an id, a cursor, a frame or a timeline is. Here they hold the
Python code that defines each: chorus/ids.py, region/cursor.py, chorus/timeline.py, and the
server's frame encoder (region/protocol.py): every decoded frame of the vectors is exactly
what a gateway writes for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chorus.ids import id_time_ms, is_id
from chorus.model import Comment
from chorus.sdk import frames as sdk_frames
from chorus.timeline import Gap, Timeline
from region import protocol
from region.cursor import Cursor

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))


IDS = load("ids")
CURSORS = load("cursors")
FRAMES = load("frames")
TIMELINE = load("timeline")


@pytest.mark.parametrize("case", IDS["valid"], ids=lambda c: c["id"])
def test_valid_ids(case: dict[str, Any]) -> None:
    assert is_id(case["id"])
    assert id_time_ms(case["id"]) == case["time_ms"]
    assert case["id"].split("-", 1)[1] == case["node"]


@pytest.mark.parametrize("text", IDS["invalid"])
def test_not_ids(text: str) -> None:
    assert not is_id(text)
    with pytest.raises(ValueError):
        id_time_ms(text)


def test_id_order() -> None:
    assert sorted(IDS["order"]["shuffled"]) == IDS["order"]["sorted"]


@pytest.mark.parametrize("case", CURSORS["valid"], ids=lambda c: c["text"])
def test_valid_cursors(case: dict[str, Any]) -> None:
    cursor = Cursor.parse(case["text"])
    assert (cursor.region, cursor.epoch, str(cursor.seq)) == (
        case["region"], case["epoch"], case["seq"])
    assert cursor.encode() == case["canonical"]


@pytest.mark.parametrize("text", CURSORS["invalid"])
def test_not_cursors(text: str) -> None:
    with pytest.raises(ValueError):
        Cursor.parse(text)


@pytest.mark.parametrize("case", CURSORS["belongs"], ids=lambda c: f"{c['cursor']}@{c['region']}")
def test_a_cursor_resumes_in_its_region_only(case: dict[str, Any]) -> None:
    try:
        cursor = Cursor.parse(case["cursor"])
    except ValueError:
        resumes = False
    else:
        resumes = cursor.region == case["region"]
    assert resumes is case["resumes"]


def _server_frame(doc: dict[str, Any]) -> protocol.ServerFrame:
    """The server's typed frame for a decoded vector frame."""
    fields = {k: v for k, v in doc.items() if k != "type"}
    match doc["type"]:
        case "comments":
            fields["items"] = tuple(Comment.from_json(c) for c in fields["items"])
        case "ack":
            fields["comment"] = Comment.from_json(fields["comment"])
        case "bye":
            fields["regions"] = tuple(fields["regions"])
    cls = {"hello": protocol.Hello, "comments": protocol.Comments,
           "recovered": protocol.Recovered, "viewers": protocol.Viewers, "ack": protocol.Ack,
           "pong": protocol.Pong, "error": protocol.Error, "bye": protocol.Bye}[doc["type"]]
    frame: protocol.ServerFrame = cls(**fields)
    return frame


@pytest.mark.parametrize("case", FRAMES["cases"], ids=lambda c: c["name"])
def test_frames(case: dict[str, Any]) -> None:
    expect = case["expect"]
    if "frame" in expect:
        # What the client decodes is exactly what the server writes for it.
        assert json.loads(protocol.encode(_server_frame(expect["frame"]))) == expect["frame"]
        assert json.loads(case["json"])["type"] == expect["frame"]["type"]
    elif "other" in expect:
        assert json.loads(case["json"])["type"] == expect["other"]
        assert expect["other"] not in {"hello", "comments", "recovered", "viewers", "ack",
                                       "pong", "error", "bye"}
        moderation = _moderation_frame(json.loads(case["json"]))
        if moderation is not None:
            # Handed on by the browser SDK, but the server's frame as the gateway writes it,
            # and typed by the Python SDK.
            assert json.loads(protocol.encode(moderation)) == json.loads(case["json"])
            assert sdk_frames.decode(case["json"]) is not None
    elif expect.get("comment"):
        items = json.loads(case["json"])["items"]
        with pytest.raises(ValueError):
            for item in items:
                Comment.from_json(item)
    else:
        assert expect == {"malformed": True}


def _moderation_frame(doc: dict[str, Any]) -> protocol.ServerFrame | None:
    """The server's frame for a vector of moderation's frames (None: another frame)."""
    match doc["type"]:
        case "retract":
            return protocol.Retract(stream=doc["stream"], ids=tuple(doc["ids"]))
        case "pin":
            comment = doc["comment"]
            return protocol.Pinned(stream=doc["stream"],
                                   comment=Comment.from_json(comment) if comment else None)
        case "restore":
            return protocol.Restore(stream=doc["stream"],
                                    comment=Comment.from_json(doc["comment"]))
    return None


def _comment(cid: str) -> Comment:
    return Comment(id=cid, stream="s", region="us-east", user="u", name="U", text=cid, ts=0)


@pytest.mark.parametrize("case", TIMELINE["cases"], ids=lambda c: c["name"])
def test_timeline(case: dict[str, Any]) -> None:
    timeline = Timeline(limit=case["limit"])
    for step in case["steps"]:
        match step["op"]:
            case "add":
                assert timeline.add(_comment(step["id"])) is step["expect"]
            case "extend":
                assert timeline.extend([_comment(i) for i in step["ids"]]) == step["expect"]
            case "mark_gap":
                timeline.mark_gap(step["after"], step["before"])
            case "fill_gap":
                timeline.fill_gap(Gap(step["after"], step["before"]))
            case "check":
                assert timeline.ids() == step["ids"]
                assert timeline.duplicates == step["duplicates"]
                assert [[g.after_id, g.before_id] for g in timeline.gaps] == step["gaps"]
                assert timeline.last_id == step["last_id"]
                for cid, present in step["contains"].items():
                    assert (cid in timeline) is present
            case other:
                raise AssertionError(f"unknown step {other!r} in {case['name']!r}")
