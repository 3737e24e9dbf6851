"""One order over a stream's comments in the chained log and the hot partitions. Pure.

A hot stream's comments are stored in the region's chained log (part 0) and in its P hot
partitions (1 to P), each a JetStream stream with its own sequences: no sequence orders them
all. What does is the time each stream stored a comment (JetStream's ``Nats-Time-Stamp``, ns
since the epoch), ties broken by part and then by that part's sequence: a `Position`. Within
one part the stored time grows with the sequence, so a part read forwards or backwards by
sequence is already in this order, and the merge of the parts' reads is too.

Late join and reply checks read forwards from a time (`merge_oldest_first`); history reads
backwards from a position (`first_bound`, then `newest_first`, which pulls one older entry at a
time from whichever part holds the newest one still unread, so a page costs about one read per
entry plus one per part, as the chained log's own backward pages do).
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from region.log import Entry

_NS = 1_000_000_000
_LAST_NS = 253402300799 * _NS + _NS - 1   # 9999-12-31T23:59:59.999999999Z, RFC 3339's last
# Go's RFC 3339 with nanoseconds, as JetStream writes it: UTC, trailing zeros of the
# fraction dropped (and the fraction with them when it is zero).
_STAMP = re.compile(r"\A(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z\Z")


@dataclass(frozen=True, order=True)
class Position:
    """Where a comment stands among every comment of its stream the region stores: older
    positions compare lower. ``stored_ns``: when its part stored it (ns since the epoch);
    ``part``: 0 for the chained log, 1 to P for a hot partition; ``seq``: that part's
    sequence (a cursor only when ``part`` is 0)."""

    stored_ns: int
    part: int
    seq: int


@dataclass(frozen=True)
class Placed:
    """An entry and its position (``entry.part`` and ``entry.seq`` are the position's)."""

    at: Position
    entry: Entry


def stored_ns(stamp: str) -> int:
    """ns since the epoch of a ``Nats-Time-Stamp`` header; ValueError when it is not one."""
    match = _STAMP.match(stamp)
    if not match:
        raise ValueError(f"not a JetStream time stamp: {stamp[:60]!r}")
    seconds = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    return seconds * _NS + int((match.group(2) or "0").ljust(9, "0"))


def stamp_of(ns: int) -> str:
    """The RFC 3339 time (UTC, every nanosecond) JetStream reads as ``start_time`` or
    ``up_to_time``; a negative ``ns`` is the epoch, one past the year 9999 that year's end."""
    seconds, frac = divmod(min(max(ns, 0), _LAST_NS), _NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def merge_oldest_first(parts: Iterable[Sequence[Placed]], limit: int) -> list[Placed]:
    """The oldest ``limit`` of the parts' reads, oldest first. Sorted whole rather than merged
    as sorted runs: a wall clock stepped back would leave one part's read out of time order,
    and the reads are bounded (each at most ``limit``)."""
    return sorted((p for part in parts for p in part), key=lambda p: p.at)[:max(limit, 0)]


@dataclass(frozen=True)
class Bound:
    """How a part's backward read finds its first entry: the newest at or below
    ``up_to_seq``, or the newest stored strictly before ``before_ns`` (exclusive, as
    JetStream's ``up_to_time``), or with neither the part's newest."""

    up_to_seq: int | None = None
    before_ns: int | None = None


def first_bound(part: int, before: Position | None) -> Bound | None:
    """The bound of ``part``'s first read for the entries older than ``before`` (None: from
    the newest); None when the part holds nothing older. The position's own part goes by
    sequence; a lower part may hold an older entry stored in the same nanosecond, a higher
    one may not."""
    if before is None:
        return Bound()
    if part == before.part:
        # A sequence starts at 1; JetStream reads an up_to_seq of 0 as "no bound".
        return Bound(up_to_seq=before.seq - 1) if before.seq > 1 else None
    if part < before.part:
        return Bound(before_ns=before.stored_ns + 1)
    return Bound(before_ns=before.stored_ns) if before.stored_ns > 0 else None


def older_bound(placed: Placed) -> Bound | None:
    """The bound of the read after ``placed`` in its part: the sequences below it (None: it
    was the part's first)."""
    return Bound(up_to_seq=placed.at.seq - 1) if placed.at.seq > 1 else None


async def newest_first(heads: Mapping[int, Placed],
                       older: Callable[[Placed], Awaitable[Placed | None]],
                       limit: int) -> list[Placed]:
    """Up to ``limit`` entries, newest first, from the parts whose newest unread entries are
    ``heads`` (part -> entry); ``older(p)`` reads the entry before ``p`` in its part (None:
    none). Reads only what the page takes: one ``older`` call per entry taken, but the last."""
    unread = dict(heads)
    out: list[Placed] = []
    while unread and len(out) < limit:
        part = max(unread, key=lambda k: unread[k].at)
        taken = unread.pop(part)
        out.append(taken)
        if len(out) < limit:
            following = await older(taken)
            if following is not None:
                unread[part] = following
    return out
