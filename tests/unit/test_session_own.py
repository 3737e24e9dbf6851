"""A viewer's own comments off a hot stream's shared chain (region/session.py `offer_own`):
written even once the shared item after one has moved the cursor past it (on a follower of
the region's stage the two come on different subscriptions, in either order), never twice,
and never below where the client started; the cursor the client is given never moves back."""

from __future__ import annotations

from region.cursor import Cursor
from region.log import Entry
from region.protocol import Comments
from tests.unit.test_session import Setup


def shared(entry: Entry, prev: Entry) -> Entry:
    """``entry`` as the sample chains it: after ``prev``, what lies between left out."""
    return Entry(seq=entry.seq, prev=prev.seq, comment=entry.comment)


def around_mine(s: Setup) -> tuple[Entry, Entry, Entry]:
    """Another user's comment, bob's own, then another's: (a, mine, b)."""
    [a] = s.post()
    [mine] = s.post(user="bob")
    [b] = s.post()
    return a, mine, b


def cursors(s: Setup) -> list[int]:
    return [Cursor.parse(f.cursor).seq for f in s.transport.of_type(Comments)]


async def test_an_own_comment_after_the_shared_item_behind_it_is_written_once() -> None:
    s = Setup(user="bob")
    async with s.running() as session:
        a, mine, b = around_mine(s)
        s.offer([a])
        session.offer(shared(b, a))                # handled first: the cursor passes mine
        session.offer_own(shared(mine, a))
        session.offer_own(shared(mine, a))         # heard twice: written once
        [c] = s.post()
        session.offer(c)
        await s.received([c])
        assert session.cursor == c.seq
    assert s.transport.comment_ids == s.ids([a, b, mine, c])
    seen = cursors(s)
    assert seen == sorted(seen) and seen[-1] == c.seq   # the client's cursor never goes back


async def test_an_own_comment_ahead_of_the_cursor_is_taken_in_the_chain() -> None:
    s = Setup(user="bob")
    async with s.running() as session:
        a, mine, b = around_mine(s)
        s.offer([a])
        session.offer_own(shared(mine, a))
        session.offer(shared(b, a))
        await s.received([b])
        assert session.cursor == b.seq
    assert s.transport.comment_ids == s.ids([a, mine, b])


async def test_an_own_comment_a_catch_up_read_is_not_written_again() -> None:
    s = Setup(user="bob")
    a, mine, b = around_mine(s)
    s.log.hold()
    async with s.running(resume=s.cursor(a.seq)) as session:
        session.offer(shared(b, a))                # while the log is read: they wait
        session.offer_own(shared(mine, a))
        s.log.release()
        await s.received([b])
        session.offer_own(shared(mine, a))         # and once more, live
        [c] = s.post()
        session.offer(c)
        await s.received([c])
    assert s.transport.comment_ids == s.ids([mine, b, c])


async def test_an_own_comment_the_client_had_when_it_resumed_is_not_written() -> None:
    s = Setup(user="bob")
    a, mine, b = around_mine(s)
    async with s.running(resume=s.cursor(b.seq)) as session:
        await s.transport.wait_for(lambda: session.cursor == b.seq and s.transport.writes != [],
                                   "the resume")
        session.offer_own(shared(mine, a))
        [c] = s.post()
        session.offer(c)
        await s.received([c])
    assert s.transport.comment_ids == s.ids([c])
