"""Late-join bootstrap's pure parts, its copy into an in-memory log, and the ownership of
the tasks the global plane starts on demand."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from chorus.config import Limits
from chorus.model import Comment
from global_.bootstrap import own_recent, reply_of, second_copy_after_s, store
from global_.tasks import OwnedTasks
from region.log import Appended, Entry, LogUnavailable, Page


def comment(i: int, region: str = "us-east") -> Comment:
    return Comment(id=f"0000000000{i:03d}-{region}-1", stream="s", region=region, user="u",
                   name="U", text=f"t{i}", ts=i)


class MemoryLog:
    """A `CommentLog` in memory: appends deduplicated by msg_id, optionally failing."""

    epoch = "e"

    def __init__(self, fail_after: int | None = None) -> None:
        self.entries: list[Entry] = []
        self.ids: dict[str, int] = {}
        self.fail_after = fail_after

    async def append(self, comment: Comment, *, msg_id: str, hot: bool = False) -> Appended:
        if self.fail_after is not None and len(self.entries) >= self.fail_after:
            raise LogUnavailable("storing a comment: gone")
        if msg_id in self.ids:
            seq = self.ids[msg_id]
            return Appended(seq=seq, comment=self.entries[seq - 1].comment, duplicate=True)
        seq = len(self.entries) + 1
        self.entries.append(Entry(seq=seq, prev=0, comment=comment, part=int(hot)))
        self.ids[msg_id] = seq
        return Appended(seq=seq, comment=comment, duplicate=False, part=int(hot))

    async def read_after(self, stream: str, after_seq: int, limit: int) -> Page:
        raise NotImplementedError

    async def read_since(self, stream: str, since_ms: int, limit: int) -> list[Entry]:
        raise NotImplementedError

    async def read_before(self, stream: str, before_seq: int | None, limit: int
                          ) -> list[Entry]:
        raise NotImplementedError

    async def count_after(self, stream: str, after_seq: int) -> int:
        raise NotImplementedError

    async def head(self, stream: str) -> int:
        raise NotImplementedError


def test_the_second_copy_waits_out_every_answer_cached_before_the_announcement() -> None:
    limits = dataclasses.replace(Limits(), presence_cache_ms=2000,
                                 presence_query_timeout_ms=500)
    assert second_copy_after_s(limits) == pytest.approx(3.0)


def test_a_region_answers_with_its_own_newest_comments_oldest_first() -> None:
    entries = [Entry(seq=i, prev=0, comment=comment(i, "us-east" if i % 2 else "eu-west"))
               for i in range(1, 11)]
    own = own_recent(entries, "us-east", limit=3)
    assert [e.comment.id for e in own] == [comment(i).id for i in (5, 7, 9)]
    assert own_recent(entries, "us-east", limit=0) == ()
    assert own_recent([], "us-east", limit=3) == ()


async def test_a_copy_is_stored_in_id_order_and_counts_only_what_was_new() -> None:
    log = MemoryLog()
    await log.append(comment(2), msg_id=comment(2).id)
    added = await store(log, [comment(3), comment(1), comment(2)])
    assert added == 2
    assert [e.comment.id for e in log.entries] == [comment(i).id for i in (2, 1, 3)]
    assert await store(log, [comment(1), comment(3)]) == 0  # a second copy adds nothing


async def test_a_copy_goes_where_its_origin_keeps_it_chained_or_in_a_hot_partition() -> None:
    entries = [Entry(seq=i, prev=0, comment=comment(i), part=i % 2) for i in range(1, 5)]
    reply = reply_of("us-east", entries)
    assert reply.hot == {comment(1).id, comment(3).id}
    log = MemoryLog()
    assert await store(log, reply.comments, reply.hot) == 4
    assert [(e.comment.id, e.part) for e in log.entries] == [
        (comment(i).id, i % 2) for i in range(1, 5)]


async def test_a_copy_stops_when_the_log_is_unavailable() -> None:
    log = MemoryLog(fail_after=1)
    assert await store(log, [comment(2), comment(1), comment(3)]) == 1
    assert [e.comment.id for e in log.entries] == [comment(1).id]


async def test_owned_tasks_are_bounded_cancelled_on_close_and_refused_after() -> None:
    tasks = OwnedTasks(limit=2)
    release = asyncio.Event()
    assert tasks.spawn(release.wait(), name="a")
    assert tasks.spawn(release.wait(), name="b")
    assert not tasks.spawn(release.wait(), name="c")  # full: refused, not queued
    assert len(tasks) == 2
    await tasks.close()
    assert len(tasks) == 0
    assert not tasks.spawn(release.wait(), name="d")


async def test_the_first_failure_of_an_owned_task_surfaces_in_watch() -> None:
    tasks = OwnedTasks(limit=10)

    async def fails() -> None:
        raise RuntimeError("a bug")

    async def finishes() -> int:
        return 1

    tasks.spawn(finishes(), name="fine")
    tasks.spawn(fails(), name="broken")
    with pytest.raises(RuntimeError, match="a bug"):
        await asyncio.wait_for(tasks.watch(), timeout=5)
    await tasks.close()
