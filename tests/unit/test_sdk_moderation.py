"""The Python SDK and moderation's frames: a retracted comment leaves the timeline and stays
out when a copy comes later, an approved one comes back, and the pin is the client's."""

from __future__ import annotations

from chorus.model import Comment
from chorus.sdk import Client
from chorus.sdk import frames as f
from chorus.sdk.regions import RegionInfo

STREAM = "s"
REGION = RegionInfo(name="r", urls=("http://r.invalid",), healthy=True, link_latency_ms=0)


def comment(n: int) -> Comment:
    return Comment(f"{n:012x}0000-r.0", STREAM, "r", "u", "U", f"c{n}", n)


async def test_retract_restore_and_pin() -> None:
    client = Client(["http://r.invalid"], token="t", stream=STREAM)
    shown: list[str] = []
    client.on_comment = lambda c: shown.append(c.id)

    async def frame(text: str) -> None:
        decoded = f.decode(text)
        assert decoded is not None
        await client._on_frame(REGION, REGION.urls[0], decoded)

    items = ",".join(comment(n).json_text for n in (1, 2, 3))
    await frame(f'{{"type":"comments","items":[{items}],"cursor":"r:e:3"}}')
    await frame(f'{{"type":"pin","stream":"{STREAM}","comment":{comment(2).json_text}}}')
    assert client.pin == comment(2)
    await frame(f'{{"type":"retract","stream":"{STREAM}","ids":["{comment(2).id}"]}}')
    assert client.timeline.ids() == [comment(1).id, comment(3).id]
    assert client.pin is None   # a retracted comment is no longer pinned
    # A copy arriving later (history, another region) stays out...
    await frame(f'{{"type":"comments","items":[{comment(2).json_text}],"cursor":"r:e:4"}}')
    assert comment(2).id not in client.timeline
    # ...until a moderator approves it: it comes back in its place.
    await frame(f'{{"type":"restore","stream":"{STREAM}","comment":{comment(2).json_text}}}')
    assert client.timeline.ids() == [comment(n).id for n in (1, 2, 3)]
    assert shown == [comment(n).id for n in (1, 2, 3, 2)]
    await frame(f'{{"type":"pin","stream":"{STREAM}","comment":null}}')
    assert client.pin is None
