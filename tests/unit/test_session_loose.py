"""A hot stream's partition entries at a session (region/session.py `offer_loose`): written out
of the chain whatever their sequence, so that neither the session's cursor nor the client's
moves by a partition's numbers; one comment once, however often it is offered; held in place
during a catch-up; dropped once closed; shown by the rules every comment is shown by."""

from __future__ import annotations

from chorus.model import Comment
from region.cursor import Cursor
from region.log import Entry
from region.protocol import Comments, Recovered
from region.replay import Replayer
from region.session import LOOSE_KEEP, Position, RecentIds, Session
from tests.unit.memory_log import comment
from tests.unit.test_session import LIMITS, REGION, Setup


def loose(n: int, *, user: str = "carol", part: int = 2, seq: int = 90_000,
          shadow: bool = False) -> Entry:
    """A partition entry of stream "s": its sequence is the partition's, far above the log's."""
    return Entry(seq=seq + n, prev=seq + n - 1,
                 comment=comment("s", 50_000 + n, user=user, shadow=shadow), part=part)


def cursors(s: Setup) -> list[int]:
    return [Cursor.parse(f.cursor).seq for f in s.transport.of_type(Comments)]


async def test_a_partition_entry_is_written_and_moves_no_cursor() -> None:
    s = Setup()
    async with s.running() as session:
        reads = s.log.reads          # the head, at the start
        [a] = s.post()
        session.offer(a)
        await s.received([a])
        far = loose(1)
        session.offer_loose(far)
        await s.transport.wait_for(lambda: far.comment.id in s.transport.comment_ids,
                                   "the partition entry")
        assert session.cursor == a.seq and session.sent == a.seq
        [b] = s.post()
        session.offer(b)             # the chain goes on from a: no gap was made
        await s.received([b])
        assert session.cursor == b.seq
    assert s.transport.comment_ids == s.ids([a, far, b])
    assert cursors(s) == [a.seq, a.seq, b.seq]   # the loose frame carries the cursor it had
    assert s.log.reads == reads                  # no catch-up


async def test_offer_hands_a_partition_entry_out_of_the_chain() -> None:
    """Whatever path offers it (a push-tier fanout, a sampled feed's `offer`)."""
    s = Setup()
    async with s.running() as session:
        reads = s.log.reads
        [a] = s.post()
        session.offer(a)
        far = loose(1, seq=5)        # a partition sequence below the cursor: no duplicate
        session.offer(far)
        higher = loose(2)            # and one far above it: no gap
        session.offer(higher)
        [b] = s.post()
        session.offer(b)
        await s.received([b])
    assert s.transport.comment_ids == s.ids([a, far, higher, b])
    assert s.log.reads == reads


async def test_the_same_comment_offered_twice_is_written_once() -> None:
    """The stage's shared item and the author's own item of one comment, in either order."""
    s = Setup(user="carol")
    async with s.running() as session:
        mine = loose(1, user="carol")
        session.offer_own(mine)
        session.offer(mine)
        session.offer_loose(mine)
        other = loose(2)
        session.offer_loose(other)
        await s.transport.wait_for(lambda: other.comment.id in s.transport.comment_ids,
                                   "the second comment")
        session.offer_own(mine)
    assert s.transport.comment_ids == s.ids([mine, other])


async def test_an_own_partition_entry_is_known_by_its_id_not_its_sequence() -> None:
    """A resume's floor is a log sequence: a partition entry below it is still new."""
    s = Setup(user="carol")
    [a, b] = s.post(2)
    async with s.running(resume=s.cursor(b.seq)) as session:
        await s.transport.wait_for(lambda: session.cursor == b.seq and s.transport.writes != [],
                                   "the resume")
        mine = loose(1, user="carol", seq=0)     # seq 1, at or below the floor
        session.offer_own(mine)
        await s.transport.wait_for(lambda: mine.comment.id in s.transport.comment_ids,
                                   "the own comment")
        assert session.cursor == b.seq
    assert a.comment.id not in s.transport.comment_ids


async def test_a_partition_entry_waits_in_its_place_during_a_catch_up() -> None:
    s = Setup()
    a, b, c = s.post(3)
    s.log.hold()
    async with s.running(resume=s.cursor(a.seq)) as session:
        session.offer(c)
        first, second = loose(1), loose(2)
        session.offer_loose(first)
        session.offer_loose(first)               # held twice: written once
        session.offer_loose(second)
        s.log.release()
        await s.transport.wait_for(lambda: second.comment.id in s.transport.comment_ids,
                                   "the held partition entries")
        assert session.cursor == c.seq
    assert s.transport.comment_ids == s.ids([b, c, first, second])
    assert cursors(s)[-1] == c.seq


async def test_a_catch_up_past_the_replay_window_keeps_the_held_partition_entries() -> None:
    s = Setup()
    [a] = s.post()
    s.post(LIMITS.replay_window + 5)
    s.log.hold()
    async with s.running(resume=s.cursor(a.seq)) as session:
        held = loose(1)
        session.offer_loose(held)
        s.log.release()
        await s.transport.wait_for(lambda: held.comment.id in s.transport.comment_ids,
                                   "the held partition entry")
    [gap] = s.transport.of_type(Recovered)
    assert not gap.recovered


async def test_a_closed_session_drops_partition_entries() -> None:
    s = Setup()
    async with s.running() as session:
        pass
    session.offer_loose(loose(1))
    assert s.transport.comment_ids == []
    assert session.writer.queued_entries == 0


async def test_partition_entries_are_shown_by_the_rules_every_comment_is_shown_by() -> None:
    s = Setup(user="carol")
    hidden = loose(3)

    class Hiding:
        def hidden(self, c: Comment, viewer: str | None = None) -> bool:
            return c.id == hidden.comment.id

        def pin(self, stream: str) -> Comment | None:
            return None

        def recent_retractions(self, stream: str) -> tuple[str, ...]:
            return ()

    s.session = Session(
        stream="s", user="carol", transport=s.transport, log=s.log,
        replayer=Replayer(s.log, s.cache, LIMITS.replay_window),
        position=Position(REGION, s.log.epoch), limits=LIMITS, gateway=f"{REGION}.0",
        moderation=Hiding())
    async with s.running() as session:
        banned = loose(1, user="dave", shadow=True)      # someone else's shadow-banned
        mine = loose(2, user="carol", shadow=True)       # the viewer's own, shadow-banned
        last = loose(4)
        for entry in (banned, mine, hidden, last):
            session.offer_loose(entry)
        await s.transport.wait_for(lambda: last.comment.id in s.transport.comment_ids,
                                   "the last comment")
    assert s.transport.comment_ids == s.ids([mine, last])


def test_the_ids_remembered_are_bounded() -> None:
    ids = RecentIds(3)
    assert ids.add("a") and ids.add("b") and ids.add("c")
    assert not ids.add("a")
    assert ids.add("d") and len(ids) == 3
    assert ids.add("a")            # forgotten, the oldest first
    assert not ids.add("d")
    assert LOOSE_KEEP > 0
