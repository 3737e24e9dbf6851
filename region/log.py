"""The region's durable comment log: every comment the region delivers, in the region's order.

Its sequence numbers are the cursors viewers resume from. `JetStreamLog` (log_jetstream.py)
is the implementation: one JetStream stream per region, in the region's own domain.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from chorus.errors import Unavailable
from chorus.model import Comment

if TYPE_CHECKING:  # region/log_merge.py builds on Entry
    from region.log_merge import Placed, Position


def part_of(msg_id: str, partitions: int) -> int:
    """The hot partition (1 to ``partitions``) of a comment stored under ``msg_id``: a hash of
    it, so a retried post meets its first copy in the same partition's duplicate window, and a
    comment forwarded or copied by late join (both under its id) meets the other copy."""
    return 1 + zlib.crc32(msg_id.encode()) % partitions


class LogUnavailable(Unavailable):
    """The log did not store or answer in time; nothing was half-stored."""


@dataclass(frozen=True)
class Entry:
    """A comment at its place in the log: ``prev`` is the sequence of the stream's previous
    comment in this log (0: none), which lets readers prove they have no gap."""

    seq: int
    prev: int
    comment: Comment
    # 0: the region's chained log, whose sequences are the cursors. 1 to P: a hot stream's
    # partition (chorus/names.py `hot_stream`): ``seq`` and ``prev`` are that partition's,
    # never a cursor; such an entry is delivered out of the chain (region/session.py).
    part: int = 0


@dataclass(frozen=True)
class Appended:
    seq: int
    comment: Comment      # the stored comment: the original one when ``duplicate``
    duplicate: bool
    part: int = 0         # as `Entry.part`


@dataclass(frozen=True)
class Page:
    """Entries after a sequence, oldest first; ``more`` says the log holds newer ones."""

    entries: tuple[Entry, ...]
    more: bool


class CommentLog(Protocol):
    epoch: str

    async def append(self, comment: Comment, *, msg_id: str, hot: bool = False) -> Appended:
        """Stores durably before returning; a repeated ``msg_id`` within the duplicate window
        returns the first comment stored with it. ``hot``: the stream is above the push tier
        and the comment is outside the priority lane, so it goes to the hot partition of
        ``msg_id`` when the log has partitions. Raises LogUnavailable."""
        ...

    async def read_after(self, stream: str, after_seq: int, limit: int) -> Page:
        """Up to ``limit`` entries of ``stream`` with sequence above ``after_seq``."""
        ...

    async def read_since(self, stream: str, since_ms: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries of ``stream`` stored at or after ``since_ms`` (ms since the
        epoch, wall clock), oldest first by the time stored, from the chained log and every
        hot partition (``part`` says which); their ``prev`` is 0 (unknown). Late-join
        bootstrap reads a region's recent comments with it, a reply check its parent."""
        ...

    async def read_before(self, stream: str, before_seq: int | None, limit: int
                          ) -> list[Entry]:
        """Up to ``limit`` entries below ``before_seq`` (None: the newest), newest first."""
        ...

    async def count_after(self, stream: str, after_seq: int) -> int:
        """How many entries of ``stream`` the log holds above ``after_seq``."""
        ...

    async def head(self, stream: str) -> int:
        """The sequence of the stream's newest comment in this log (0: none)."""
        ...

    # -- every comment of a stream, the hot partitions' too (region/log_merge.py's order) ----

    async def count(self, stream: str) -> int:
        """How many comments of ``stream`` the region stores: the chained log's and every
        hot partition's."""
        ...

    async def position_of(self, stream: str, seq: int) -> Position:
        """The position of the chained log's sequence ``seq`` (a cursor's) in the merged
        order: a history page before a cursor holds what is older than this."""
        ...

    async def page_before(self, stream: str, before: Position | None, limit: int
                          ) -> list[Placed]:
        """Up to ``limit`` comments of ``stream`` older than ``before`` (None: the newest),
        newest first, over the chained log and every hot partition; ``prev`` is 0."""
        ...
