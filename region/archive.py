"""The archive: every comment, kept for history pages and post-stream replay.

Each region archives the comments it originated (region/persister.py); the store replicates
them to every region, so any region's history can page any comment. `archive_cassandra.py`
is the implementation; this module is the pure part, tested without servers:

- **Layout.** A stream's comments are partitioned by *time bucket* (``archive.bucket_minutes``
  of comment-id time) and *shard* (``archive.shards``, from a hash of the comment id), so that
  a viral stream's partitions stay bounded: about ``rate x bucket_minutes x 60 / shards``
  rows each. Within a partition comments sort by id, newest first. An index of the buckets
  each stream has lets a page skip empty hours instead of probing them.
- **Positions and cursors.** Paging moves a *position* through the id order: a comment id,
  or a bare 12-hex-digit time prefix (every id of that millisecond sorts after it). A page's
  ``next`` is an opaque `HistoryCursor` that carries the stream, the direction and the
  position of the last comment examined, so pages join with no gap and no repeat, across
  buckets and shards.
- **Reading a page** (`read_page`): walk the stream's buckets in the page's direction; in
  each, read every shard beyond the position and merge the shards' rows by id
  (`merge_shards`), keeping only the prefix that every shard has fully covered.

Hierarchy of errors::

    ChorusError (chorus.errors)
    └── ArchiveError                the archive refused or failed an operation
        └── ArchiveUnavailable      the store did not answer (down, timed out, no schema);
                                    also a chorus.errors.Unavailable, which the persister's
                                    worker retries and the history API answers with 503

The Cassandra adapter raises it from the driver's errors through chorus/drivers.py's table.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import heapq
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from chorus.config import ArchiveConfig
from chorus.errors import ChorusError, Unavailable
from chorus.ids import is_id
from chorus.model import STREAM_ID, Comment

Direction = Literal["before", "after"]

# Bounds of one history page's work, whatever the stream looks like.
MAX_SCAN_ROWS = 1000       # rows examined for one page (hidden ones included); then the page
#                            ends short, with a `next` that continues from there
MAX_BUCKETS_PER_PAGE = 64  # buckets visited for one page, likewise
BUCKETS_PER_QUERY = 16     # bucket index rows read at a time

_PREFIX = re.compile(r"\A[0-9a-f]{12}\Z")  # \Z: "$" lets a final "\n" in
_MAX_TIME_MS = 16**12 - 1   # what the 12 hex digits of an id can hold
_CURSOR_VERSION = 1
_DIGEST_BYTES = 6
_CURSOR_MAX_CHARS = 256


class ArchiveError(ChorusError):
    """The archive refused or failed an operation."""


class ArchiveUnavailable(ArchiveError, Unavailable):
    """The archive's store did not answer, or has no schema yet; retrying later can help."""


@dataclass(frozen=True)
class Stored:
    """A comment as the archive keeps it, with its moderation flags.

    ``deleted`` marks a retracted comment (by its author or a moderator): it stays stored
    as such but history returns it only to moderators. ``pinned`` is kept for hosts' tools.
    """

    comment: Comment
    pinned: bool = False
    deleted: bool = False

    def to_json(self) -> dict[str, Any]:
        return {**self.comment.to_json(), "pinned": self.pinned, "deleted": self.deleted}


def visible(stored: Stored, user: str, *, moderator: bool) -> bool:
    """Who may see an archived comment in history: moderators and hosts see everything
    (flags included, to review it); nobody else sees a deleted one; a shadow-banned
    author's comments are seen by that author alone."""
    if moderator:
        return True
    if stored.deleted:
        return False
    return stored.comment.visible_to(user)


# ---------------------------------------------------------------------------------------------
# Layout: buckets, shards, TTL


@dataclass(frozen=True)
class Layout:
    """Where a comment lives. ``ttl_s`` 0 keeps comments forever.

    ``bucket_ms`` must not change for a keyspace's life: bucket starts are multiples of it,
    and paging steps over bucket edges computed from it. ``shards`` may change: the bucket
    index records every shard count a bucket was written with, and reads cover them all.
    """

    bucket_ms: int
    shards: int
    ttl_s: int

    @classmethod
    def from_config(cls, archive: ArchiveConfig) -> Layout:
        return cls(bucket_ms=archive.bucket_minutes * 60_000, shards=archive.shards,
                   ttl_s=archive.ttl_days * 86_400)

    def bucket_of(self, ms: int) -> int:
        """The start (ms since the epoch) of the bucket holding time ``ms``."""
        return ms - ms % self.bucket_ms

    def shard_of(self, comment_id: str) -> int:
        # crc32, not hash(): every process, in every region, must pick the same shard for
        # a comment, or a redelivered comment would be stored a second time elsewhere.
        return zlib.crc32(comment_id.encode()) % self.shards

    def edge(self, bucket: int, direction: Direction) -> str:
        """The position just past ``bucket`` in ``direction``: every id of the buckets
        beyond it lies beyond this position, and no id of the bucket does."""
        return time_position(bucket if direction == "before" else bucket + self.bucket_ms)

    def ttl_for(self, time_ms: int, now_ms: int) -> int | None:
        """Seconds a row about time ``time_ms`` should live from now: the TTL counts from
        the comment's time, not from when it was (re)written. 0: forever. None: it has
        expired already and should not be written."""
        if self.ttl_s == 0:
            return 0
        age_s = max(0, now_ms - time_ms) // 1000
        remaining = self.ttl_s - age_s
        return remaining if remaining > 0 else None


# ---------------------------------------------------------------------------------------------
# Positions and cursors


def time_position(ms: int) -> str:
    """The position at the start of millisecond ``ms``: ids of ``ms`` and later sort after
    it, earlier ones before it."""
    if not 0 <= ms <= _MAX_TIME_MS:
        raise ValueError(f"a time is 0 to {_MAX_TIME_MS} ms since the epoch")
    return f"{ms:012x}"


def is_position(value: str) -> bool:
    return bool(_PREFIX.match(value)) or is_id(value)


def position_time(position: str) -> int:
    """The millisecond a position lies in."""
    return int(position[:12], 16)


def first_bucket(layout: Layout, position: str | None, direction: Direction) -> int | None:
    """The bucket a page starts in: the one holding the position (None: the newest)."""
    if position is None:
        return None
    ms = position_time(position)
    if direction == "before" and _PREFIX.match(position):
        # A bare time prefix excludes its own millisecond: start in the bucket before it.
        ms -= 1
    return layout.bucket_of(max(ms, 0))


@dataclass(frozen=True)
class HistoryCursor:
    """Where the next page starts: opaque to clients.

    Encoded as base64url of a version byte, a digest and ``d|stream|position``. The
    digest catches corrupted and hand-edited cursors; it is not a secret, because a
    cursor grants nothing: ``before=<comment id>`` names any position just as well.
    """

    stream: str
    direction: Direction
    position: str

    def encode(self) -> str:
        payload = f"{self.direction[0]}|{self.stream}|{self.position}".encode()
        raw = bytes([_CURSOR_VERSION]) + _digest(payload) + payload
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: str) -> HistoryCursor:
        """ValueError with a reason when ``text`` is not a cursor this archive made."""
        if not text or len(text) > _CURSOR_MAX_CHARS or not re.fullmatch(r"[A-Za-z0-9_-]+",
                                                                         text):
            raise ValueError("not a history cursor (pass `next` of a previous page as is)")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except ValueError:
            raise ValueError("not a history cursor: not base64url") from None
        if len(raw) < 1 + _DIGEST_BYTES or raw[0] != _CURSOR_VERSION:
            raise ValueError("not a history cursor: unknown version")
        digest, payload = raw[1:1 + _DIGEST_BYTES], raw[1 + _DIGEST_BYTES:]
        if digest != _digest(payload):
            raise ValueError("not a history cursor: it was altered or truncated")
        try:
            kind, stream, position = payload.decode("ascii").split("|")
        except (UnicodeDecodeError, ValueError):
            raise ValueError("not a history cursor: bad contents") from None
        direction: Direction
        if kind == "b":
            direction = "before"
        elif kind == "a":
            direction = "after"
        else:
            raise ValueError("not a history cursor: bad direction")
        if not STREAM_ID.match(stream) or not is_position(position):
            raise ValueError("not a history cursor: bad contents")
        return cls(stream, direction, position)


def _digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=_DIGEST_BYTES,
                           person=b"chorus-history").digest()


# ---------------------------------------------------------------------------------------------
# Reading pages


@dataclass(frozen=True)
class Bucket:
    """One bucket of a stream that holds comments; ``shards`` is how many shards its rows
    may be spread over (the largest shard count it was written with)."""

    start_ms: int
    shards: int


@dataclass(frozen=True)
class HistoryPage:
    items: tuple[Stored, ...]
    next: HistoryCursor | None


class Store(Protocol):
    """What reading pages needs of the archive's storage."""

    async def buckets(self, stream: str, direction: Direction, bound: int | None,
                      limit: int) -> list[Bucket]:
        """Up to ``limit`` of the stream's buckets from ``bound`` (a bucket start,
        inclusive; None: from the newest) onwards in ``direction``: "before" goes newest
        first, "after" oldest first."""
        ...

    async def rows(self, stream: str, bucket: int, shard: int, direction: Direction,
                   position: str | None, limit: int) -> list[Stored]:
        """Up to ``limit`` rows of one shard of a bucket strictly beyond ``position``
        (None: from the newest), in ``direction`` order."""
        ...


def merge_shards(pages: Sequence[Sequence[Stored]], direction: Direction,
                 per_shard_limit: int) -> tuple[list[Stored], bool]:
    """Merges shard pages (each in ``direction`` order) into one run in that order.

    A shard page that came back full may have more rows beyond its last one, so only the
    rows up to the nearest such last row are certain to be complete; the rest is dropped and
    read again from there. Returns the rows and whether the bucket has nothing more.
    """
    newest_first = direction == "before"
    merged = list(heapq.merge(*pages, key=lambda s: s.comment.id, reverse=newest_first))
    ends = [page[-1].comment.id for page in pages if len(page) >= per_shard_limit]
    if not ends:
        return merged, True
    if newest_first:
        frontier = max(ends)
        return [s for s in merged if s.comment.id >= frontier], False
    frontier = min(ends)
    return [s for s in merged if s.comment.id <= frontier], False


class _Buckets:
    """The stream's buckets in page order, read from the index a few at a time."""

    def __init__(self, store: Store, stream: str, direction: Direction, bound: int | None):
        self.store, self.stream, self.direction = store, stream, direction
        self.bound = bound
        self.ahead: list[Bucket] = []
        self.exhausted = False

    async def peek(self) -> Bucket | None:
        if not self.ahead and not self.exhausted:
            got = await self.store.buckets(self.stream, self.direction, self.bound,
                                           BUCKETS_PER_QUERY)
            self.exhausted = len(got) < BUCKETS_PER_QUERY
            if got:
                last = got[-1].start_ms
                self.bound = last - 1 if self.direction == "before" else last + 1
            self.ahead = got
        return self.ahead[0] if self.ahead else None

    async def next(self) -> Bucket | None:
        bucket = await self.peek()
        if bucket is not None:
            self.ahead.pop(0)
        return bucket


async def read_page(store: Store, layout: Layout, stream: str, direction: Direction,
                    position: str | None, limit: int, show: Callable[[Stored], bool], *,
                    max_scan: int = MAX_SCAN_ROWS,
                    max_buckets: int = MAX_BUCKETS_PER_PAGE) -> HistoryPage:
    """One page of up to ``limit`` comments that ``show`` accepts, strictly beyond
    ``position`` in ``direction`` ("before": newest first; "after": oldest first).

    ``next`` is None when the stream holds nothing more in that direction (for now: an
    "after" page at the live edge ends, and can be continued later from its last item).
    A page may hold fewer than ``limit`` items and still have a ``next``, when hidden
    comments used up its scan budget.
    """
    if direction == "after" and position is None:
        raise ValueError("an 'after' page needs a position to start from")
    items: list[Stored] = []
    scanned = 0
    visited = 0
    pos = position
    buckets = _Buckets(store, stream, direction, first_bucket(layout, position, direction))

    def more_from(at: str | None) -> HistoryPage:
        assert at is not None
        return HistoryPage(tuple(items), HistoryCursor(stream, direction, at))

    while (bucket := await buckets.next()) is not None:
        visited += 1
        while True:
            want = limit - len(items) + 1
            pages = await asyncio.gather(*(
                store.rows(stream, bucket.start_ms, shard, direction, pos, want)
                for shard in range(bucket.shards)))
            rows, complete = merge_shards(pages, direction, want)
            for row in rows:
                if len(items) == limit or scanned >= max_scan:
                    return more_from(pos)  # `row` is proof that more exists
                pos = row.comment.id
                scanned += 1
                if show(row):
                    items.append(row)
            if complete:
                break
        pos = layout.edge(bucket.start_ms, direction)
        if len(items) == limit or scanned >= max_scan or visited >= max_buckets:
            if await buckets.peek() is None:
                break
            return more_from(pos)
    return HistoryPage(tuple(items), None)


# ---------------------------------------------------------------------------------------------
# The archive as its users see it


class Archive(Protocol):
    """The archive's operations; `CassandraArchive` implements them."""

    layout: Layout

    async def write(self, comments: Sequence[Comment]) -> None:
        """Stores every comment before returning (idempotent: a comment written again is
        stored once, and keeps its flags). Raises ArchiveUnavailable."""
        ...

    async def page(self, stream: str, direction: Direction, position: str | None,
                   limit: int, show: Callable[[Stored], bool]) -> HistoryPage:
        """`read_page` on this archive. Raises ArchiveUnavailable."""
        ...

    async def get(self, stream: str, comment_id: str) -> Stored | None:
        """The archived comment, or None. Raises ArchiveUnavailable."""
        ...

    async def mark_deleted(self, stored: Stored) -> None:
        """Stores ``stored`` as deleted. Raises ArchiveUnavailable."""
        ...

    async def close(self) -> None: ...
