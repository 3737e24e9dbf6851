"""The shared test vectors (tests/vectors/*.json) on the Python side.

The browser SDK's tests (web/sdk/test/vectors.test.ts) run the same files, so the two clients
cannot drift apart on what an id, a cursor, a frame or a timeline is. Here they hold the
Python code that defines each: chorus/ids.py, region/cursor.py, chorus/timeline.py, the Python
SDK's frame decoder (chorus/sdk/frames.py: it reads every frame of the vectors as the
TypeScript SDK does), the server's frame encoder (region/protocol.py: what it writes for a
frame, the SDK reads back the same) and the SDK's reconnect waits (chorus/sdk/reconnect.py).
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

import pytest

from chorus.backoff import Backoff
from chorus.ids import id_time_ms, is_id
from chorus.model import Comment
from chorus.sdk import frames as sdk_frames
from chorus.sdk.client import Client
from chorus.sdk.reconnect import Attempt, retry_after, wait_after
from chorus.sdk.regions import RegionInfo
from chorus.timeline import Gap, Timeline
from region import protocol
from region.cursor import Cursor
from region.snapshot import Rendered, SnapshotDoc

VECTORS = Path(__file__).resolve().parent.parent / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))


IDS = load("ids")
CURSORS = load("cursors")
FRAMES = load("frames")
TIMELINE = load("timeline")
VIEW = load("view")
RECONNECT = load("reconnect")


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


# The fields that hold counts by name: tuples of (name, count) in the Python SDK, objects on
# the wire and in the TypeScript SDK.
_COUNTS = {(sdk_frames.Viewers, "regions"), (sdk_frames.Reactions, "counts"),
           (sdk_frames.Reactions, "totals")}


def _plain(value: Any) -> Any:
    """A Python SDK frame as plain JSON values, shaped as the TypeScript SDK holds it: fields
    under their wire names, comments as their JSON, counts as objects."""
    if isinstance(value, Comment):
        return value.to_json()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: dict(getattr(value, f.name)) if (type(value), f.name) in _COUNTS
                else _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _server_frame(frame: sdk_frames.ServerFrame) -> protocol.ServerFrame:
    """The server's frame (region/protocol.py) for what the SDK decoded."""
    match frame:
        case sdk_frames.Comments(items=items, cursor=cursor, sample=sample):
            return protocol.Comments(items=items, cursor=cursor, sample=None if sample is None
                                     else protocol.Sample(sample.shown, sample.posted))
        case sdk_frames.Pin(stream=stream, comment=comment):
            return protocol.Pinned(stream=stream, comment=comment)
        case sdk_frames.Snapshot():
            doc = SnapshotDoc(**{f.name: getattr(frame, f.name)
                                 for f in dataclasses.fields(SnapshotDoc)})
            return protocol.Snapshot(Rendered.of(doc))
    cls = {"hello": protocol.Hello, "recovered": protocol.Recovered,
           "viewers": protocol.Viewers, "reactions": protocol.Reactions, "ack": protocol.Ack,
           "pong": protocol.Pong, "error": protocol.Error, "bye": protocol.Bye,
           "retract": protocol.Retract, "restore": protocol.Restore,
           "tier": protocol.Tier}[frame.type]
    fields = {f.name: getattr(frame, f.name) for f in dataclasses.fields(frame)}
    server: protocol.ServerFrame = cls(**fields)
    return server


@pytest.mark.parametrize("case", FRAMES["cases"], ids=lambda c: c["name"])
def test_frames(case: dict[str, Any]) -> None:
    expect = case["expect"]
    if "frame" in expect:
        frame = sdk_frames.decode(case["json"])
        assert frame is not None
        # The Python SDK reads what the TypeScript SDK reads (web/sdk/test/vectors.test.ts).
        assert _plain(frame) == expect["frame"]
        # And the server's encoder writes the frame so that the SDK reads it back the same
        # (a snapshot's ETag is the server's own hash of the document).
        echoed = sdk_frames.decode(protocol.encode(_server_frame(frame)))
        if isinstance(frame, sdk_frames.Snapshot) and isinstance(echoed, sdk_frames.Snapshot):
            echoed = dataclasses.replace(echoed, etag=frame.etag)
        assert echoed == frame
    elif "other" in expect:
        assert json.loads(case["json"])["type"] == expect["other"]
        assert sdk_frames.decode(case["json"]) is None  # skipped: a type it does not know
    else:
        assert expect["malformed"] is True
        with pytest.raises(sdk_frames.MalformedFrame):
            sdk_frames.decode(case["json"])
        if expect.get("comment"):
            doc = json.loads(case["json"])
            items = [c for key in ("items", "comments", "priority") for c in doc.get(key, [])]
            with pytest.raises(ValueError):
                for item in items:
                    Comment.from_json(item)


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


@pytest.mark.parametrize("case", VIEW["cases"], ids=lambda c: c["name"])
async def test_view(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The Python SDK's client, fed the frames one by one as its watch loop feeds them; the
    TypeScript SDK's StreamView runs the same steps (web/sdk/test/vectors.test.ts)."""
    client = Client(["http://gateway"], token="t", stream="match-42")
    fills = 0

    async def fill(url: str) -> None:  # history is not what these cases are about
        nonlocal fills
        fills += 1

    monkeypatch.setattr(client, "_fill_from_history", fill)
    region = RegionInfo(name="", urls=("http://gateway",), healthy=True, link_latency_ms=0)
    for step in case["steps"]:
        if "frame" in step:
            frame = sdk_frames.from_json(step["frame"])
            assert frame is not None
            if isinstance(frame, sdk_frames.Hello):
                region = dataclasses.replace(region, name=frame.region)
            await client._on_frame(region, region.urls[0], frame)
            continue
        got = {"ids": client.timeline.ids(), "duplicates": client.timeline.duplicates,
               "gaps": [[g.after_id, g.before_id] for g in client.timeline.gaps],
               "cursor": client.cursor, "tier": client.tier_name,
               "sample": None if client.sample is None else dataclasses.asdict(client.sample),
               "snapshot": None if client.snapshot is None else client.snapshot.etag,
               "pin": None if client.pin is None else client.pin.id, "fills": fills}
        for key, want in step["check"].items():
            assert got[key] == want, key


class _Ceiling(random.Random):
    """A random source that always answers 1: each backoff wait is its ceiling, exactly."""

    def random(self) -> float:
        return 1.0


@pytest.mark.parametrize("case", RECONNECT["waits"], ids=lambda c: c["name"])
def test_reconnect_waits(case: dict[str, Any]) -> None:
    backoff = Backoff(first_s=case["first_s"], max_s=case["max_s"], rng=_Ceiling())
    for step in case["attempts"]:
        attempt = Attempt(hello=step["hello"], close_code=step["close_code"],
                          retry_after_s=step["retry_after_s"])
        assert wait_after(attempt, backoff) == pytest.approx(step["wait_s"]), step


@pytest.mark.parametrize("case", RECONNECT["retry_after"], ids=lambda c: repr(c["header"]))
def test_retry_after(case: dict[str, Any]) -> None:
    assert retry_after(case["header"]) == case["seconds"]
