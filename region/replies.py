"""Reply threads: a reply names a comment of its own stream, a thread pages a comment's
replies, and a comment carries its reply count.

What a region's threads hold is what its log holds: every reply posted in the region, and
every reply forwarded to it (a region has the stream's comments from the moment it has
viewers of it). `ThreadIndex` (region/replies_redis.py) keeps each thread's replies in the
region's order, fed once per region by the log's live feed (region/replies_feed.py); like the
rest of Redis it is rebuilt from the log: a thread the index knows nothing of (Redis lost,
or replies older than this feature) is read from the log, at most `PARENT_SCAN` of the
stream's comments after the parent, and put back in the index.

A reply is checked against what a client of the region can see: the parent is looked up in
the archive when there is one, else in the region's log; a parent that is not there, is in
another stream, is shadowed, retracted or held is refused with 422 (``invalid``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chorus.errors import Unavailable
from chorus.ids import id_time_ms, is_id
from chorus.model import Comment
from region.archive import Archive, ArchiveUnavailable
from region.errors import ApiError, ErrorCode
from region.log import CommentLog, Entry, LogUnavailable

THREAD_MAX = 10_000    # replies a thread keeps (the oldest go first; its count goes on)
PAGE_MAX = 200         # replies per page
PARENT_SCAN = 500      # the stream's log entries read from a comment's time to find it


class RepliesUnavailable(Unavailable):
    """The thread index (the region's Redis) did not answer."""


class ThreadIndex(Protocol):
    """Each thread's replies in the region's log order, and each parent's reply count."""

    async def add(self, entries: Sequence[Entry]) -> None:
        """Indexes replies (entries whose comment has ``reply_to``); an entry indexed before
        is not counted again. Raises RepliesUnavailable."""
        ...

    async def page(self, stream: str, parent: str, after_seq: int, limit: int
                   ) -> list[Entry]:
        """Up to ``limit`` replies to ``parent`` after log sequence ``after_seq``, oldest
        first. Raises RepliesUnavailable."""
        ...

    async def counts(self, stream: str, parents: Sequence[str]) -> dict[str, int]:
        """Reply counts of those of ``parents`` that have replies. Raises
        RepliesUnavailable."""
        ...


def indexable(comment: Comment) -> bool:
    """A reply the index keeps: a shadowed one stays out, or its count would tell others
    that its author is shadow-banned."""
    return comment.reply_to is not None and not comment.shadow


@dataclass(frozen=True)
class Thread:
    """A page of a thread as its reader may see it: ``next`` is the sequence to page on
    from (None: nothing more now)."""

    parent: Comment
    count: int
    replies: tuple[Entry, ...]
    next: int | None


Hidden = Callable[[Comment, str | None, bool], bool]
"""Whether moderation hides a comment from a reader: (comment, reader, reader is a
moderator)."""


async def find_comment(log: CommentLog, archive: Archive | None, stream: str,
                       comment_id: str) -> Comment | None:
    """``comment_id`` of ``stream``: from the archive when there is one, else from this
    region's log (which holds it when it was posted here or forwarded here)."""
    if not is_id(comment_id):
        return None
    if archive is not None:
        try:
            stored = await archive.get(stream, comment_id)
        except ArchiveUnavailable:
            stored = None
        if stored is not None and stored.comment.user:
            return stored.comment
    try:
        entries = await log.read_since(stream, id_time_ms(comment_id), PARENT_SCAN)
    except (ValueError, LogUnavailable):
        return None
    for entry in entries:
        if entry.comment.id == comment_id:
            return entry.comment
    return None


class Replies:
    """The region's threads: `check_parent` is ingest's `ReplyCheck`."""

    def __init__(self, log: CommentLog, index: ThreadIndex, *, archive: Archive | None,
                 hidden: Hidden) -> None:
        self.log = log
        self.index = index
        self.archive = archive
        self.hidden = hidden

    async def check_parent(self, stream: str, parent_id: str) -> None:
        parent = await find_comment(self.log, self.archive, stream, parent_id)
        if parent is None or parent.stream != stream:
            raise ApiError(ErrorCode.INVALID, f"'reply_to' names no comment of stream "
                                              f"{stream} (here)")
        if parent.shadow or self.hidden(parent, None, False):
            raise ApiError(ErrorCode.INVALID, "'reply_to' names a comment that was taken "
                                              "down")

    async def thread(self, stream: str, parent_id: str, *, after_seq: int, limit: int,
                     reader: str, moderator: bool) -> Thread | None:
        """A page of the thread (None: no such comment for this reader). Raises
        RepliesUnavailable."""
        parent = await find_comment(self.log, self.archive, stream, parent_id)
        if parent is None or not parent.visible_to(reader) or self.hidden(
                parent, reader, moderator):
            return None
        counts = await self.index.counts(stream, [parent_id])
        if parent_id not in counts and after_seq == 0:
            counts = await self._rebuild(stream, parent)
        entries = await self.index.page(stream, parent_id, after_seq, limit)
        shown = tuple(e for e in entries if e.comment.visible_to(reader)
                      and not self.hidden(e.comment, reader, moderator))
        more = len(entries) == limit
        return Thread(parent=parent, count=counts.get(parent_id, 0), replies=shown,
                      next=entries[-1].seq if more else None)

    async def _rebuild(self, stream: str, parent: Comment) -> dict[str, int]:
        """The index knows no reply to ``parent``: read them from the log (bounded) and
        index what is found."""
        try:
            entries = await self.log.read_since(stream, id_time_ms(parent.id), PARENT_SCAN)
        except LogUnavailable:
            return {}
        replies = [e for e in entries if e.comment.reply_to == parent.id
                   and indexable(e.comment)]
        if not replies:
            return {}
        await self.index.add(replies)
        return await self.index.counts(stream, [parent.id])

    async def counts(self, stream: str, ids: Sequence[str]) -> dict[str, int]:
        """Reply counts for a page of comments; empty when the index does not answer (a page
        of history is worth more than its counts)."""
        if not ids:
            return {}
        try:
            return await self.index.counts(stream, ids)
        except RepliesUnavailable:
            return {}
