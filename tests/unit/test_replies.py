"""Reply threads (region/replies.py): the parent check, thread pages, counts and the rebuild
from the log, over the in-memory log and an in-memory index."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chorus.model import Comment
from region.errors import ApiError
from region.log import Entry
from region.replies import Replies, RepliesUnavailable, indexable
from tests.unit.memory_log import MemoryLog


class MemoryThreadIndex:
    """The Redis index's behaviour: replies by log sequence, counted once each."""

    def __init__(self) -> None:
        self.threads: dict[tuple[str, str], dict[int, Entry]] = {}
        self.down = False

    async def add(self, entries: Sequence[Entry]) -> None:
        if self.down:
            raise RepliesUnavailable("the memory index is down")
        for e in entries:
            assert e.comment.reply_to is not None
            self.threads.setdefault((e.comment.stream, e.comment.reply_to), {})[e.seq] = e

    async def page(self, stream: str, parent: str, after_seq: int, limit: int
                   ) -> list[Entry]:
        if self.down:
            raise RepliesUnavailable("the memory index is down")
        kept = self.threads.get((stream, parent), {})
        return [kept[s] for s in sorted(kept) if s > after_seq][:limit]

    async def counts(self, stream: str, parents: Sequence[str]) -> dict[str, int]:
        if self.down:
            raise RepliesUnavailable("the memory index is down")
        return {p: len(self.threads[(stream, p)]) for p in parents
                if (stream, p) in self.threads}


def comment(n: int, *, stream: str = "s", user: str = "ana", reply_to: str | None = None,
            shadow: bool = False) -> Comment:
    return Comment(id=f"{n:012x}0000-us-east.0", stream=stream, region="us-east", user=user,
                   name=user, text=f"comment {n}", ts=n, reply_to=reply_to, shadow=shadow)


class World:
    def __init__(self) -> None:
        self.log = MemoryLog()
        self.index = MemoryThreadIndex()
        self.taken_down: set[str] = set()
        self.replies = Replies(self.log, self.index, archive=None,
                               hidden=lambda c, reader, mod: c.id in self.taken_down)

    async def store(self, c: Comment, *, index: bool = True) -> Entry:
        appended = await self.log.append(c, msg_id=c.id)
        entry = Entry(appended.seq, 0, c)
        if index and indexable(c):
            await self.index.add([entry])
        return entry


async def test_a_reply_must_name_a_visible_comment_of_its_stream() -> None:
    w = World()
    await w.store(comment(1))
    await w.store(comment(2, stream="other"))
    await w.store(comment(3, user="shade", shadow=True))
    await w.store(comment(4))
    w.taken_down.add(comment(4).id)
    await w.replies.check_parent("s", comment(1).id)
    for parent, why in [(comment(2).id, "no comment"), (comment(9).id, "no comment"),
                        (comment(3).id, "taken down"), (comment(4).id, "taken down")]:
        with pytest.raises(ApiError) as caught:
            await w.replies.check_parent("s", parent)
        assert caught.value.code.status == 422 and why in str(caught.value), parent


async def test_a_thread_pages_in_order_with_its_count_and_hides_what_its_reader_may_not_see(
        ) -> None:
    w = World()
    parent = comment(1)
    await w.store(parent)
    await w.store(comment(2))   # not a reply
    for n in range(3, 10):
        await w.store(comment(n, user=f"u{n}", reply_to=parent.id))
    await w.store(comment(10, user="shade", reply_to=parent.id, shadow=True))
    w.taken_down.add(comment(5).id)
    first = await w.replies.thread("s", parent.id, after_seq=0, limit=4, reader="ana",
                                   moderator=False)
    assert first is not None and first.parent == parent and first.count == 7
    assert [e.comment.id for e in first.replies] == [comment(n).id for n in (3, 4, 6)]
    assert first.next is not None
    rest = await w.replies.thread("s", parent.id, after_seq=first.next, limit=4, reader="ana",
                                  moderator=False)
    assert rest is not None and rest.next is None
    assert [e.comment.id for e in rest.replies] == [comment(n).id for n in (7, 8, 9)]
    assert await w.replies.counts("s", [parent.id, comment(2).id]) == {parent.id: 7}
    # Taken down or another stream's: no thread.
    w.taken_down.add(parent.id)
    assert await w.replies.thread("s", parent.id, after_seq=0, limit=4, reader="ana",
                                  moderator=False) is None
    assert await w.replies.thread("other", comment(1).id, after_seq=0, limit=4, reader="ana",
                                  moderator=False) is None


async def test_a_thread_the_index_lost_is_read_back_from_the_log() -> None:
    w = World()
    parent = comment(1)
    await w.store(parent)
    for n in range(2, 5):
        await w.store(comment(n, reply_to=parent.id), index=False)   # Redis was flushed
    thread = await w.replies.thread("s", parent.id, after_seq=0, limit=10, reader="bo",
                                    moderator=False)
    assert thread is not None and thread.count == 3 and len(thread.replies) == 3
    assert await w.replies.counts("s", [parent.id]) == {parent.id: 3}


async def test_counts_are_left_out_when_the_index_does_not_answer() -> None:
    w = World()
    w.index.down = True
    assert await w.replies.counts("s", [comment(1).id]) == {}
