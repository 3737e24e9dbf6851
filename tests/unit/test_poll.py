"""Which frames end a long poll (region/live.py): the poll answers when the poller has
something to act on, and otherwise waits its timeout."""

from __future__ import annotations

import pytest

from chorus.model import Comment
from region.live import PollTransport, ends_poll
from region.protocol import (
    Comments,
    Pinned,
    Reactions,
    Recovered,
    Retract,
    ServerFrame,
    Tier,
    Viewers,
)

COMMENT = Comment(id="01J0000000000000000000000A", stream="s", region="us-east", user="ana",
                  name="Ana", text="hi", ts=1)


@pytest.mark.parametrize(("frame", "ends"), [
    (Comments(items=(COMMENT,), cursor="c"), True),
    (Comments(items=(), cursor="c"), False),
    # Every poll with a cursor gets this after its catch-up: it is no news.
    (Recovered(recovered=True, cursor="c"), False),
    (Recovered(recovered=False, cursor="c", reason="page history"), True),
    (Retract(stream="s", ids=("x",)), True),
    (Pinned(stream="s", comment=None), True),
    (Tier(tier="sampled", cursor="c", per_viewer_per_s=10), True),
    # Counts ride along in the answer that comments or the timeout end.
    (Viewers(count=3, total=9), False),
    (Reactions(second=1, counts=(("like", 2),), totals=(("like", 2),)), False),
])
def test_frames_that_end_a_poll(frame: ServerFrame, ends: bool) -> None:
    assert ends_poll(frame) is ends


async def test_a_recovered_resume_keeps_the_poll_waiting_until_comments() -> None:
    transport = PollTransport()
    await transport.send([Recovered(recovered=True, cursor="c")])
    assert not transport.done.is_set()
    await transport.send([Comments(items=(COMMENT,), cursor="d")])
    assert transport.done.is_set()
    assert len(transport.frames) == 2  # the recovered notice still reaches the answer
