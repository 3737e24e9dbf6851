"""The merged order of a stream's comments over the chained log and the hot partitions
(region/log_merge.py), and the history mark that carries a position (region/cursor.py)."""

from __future__ import annotations

import random

import pytest

from chorus.model import Comment
from region.cursor import Cursor, HistoryMark, history_before
from region.log import Entry
from region.log_merge import (
    Bound,
    Placed,
    Position,
    first_bound,
    merge_oldest_first,
    newest_first,
    older_bound,
    stamp_of,
    stored_ns,
)


def placed(ns: int, part: int, seq: int) -> Placed:
    comment = Comment(id=f"c{ns}.{part}.{seq}", stream="s", region="us-east", user="u",
                      name="U", text="x", ts=ns // 1_000_000)
    return Placed(Position(ns, part, seq), Entry(seq=seq, prev=0, comment=comment, part=part))


class Parts:
    """Each part's entries in sequence order, read as JetStream's ``multi_last`` reads them:
    the newest within a bound (``up_to_time`` exclusive)."""

    def __init__(self, entries: list[Placed]) -> None:
        self.parts: dict[int, list[Placed]] = {}
        for p in sorted(entries, key=lambda p: (p.at.part, p.at.seq)):
            self.parts.setdefault(p.at.part, []).append(p)
        self.reads = 0

    def last(self, part: int, bound: Bound) -> Placed | None:
        self.reads += 1
        within = [p for p in self.parts.get(part, [])
                  if (bound.up_to_seq is None or p.at.seq <= bound.up_to_seq)
                  and (bound.before_ns is None or p.at.stored_ns < bound.before_ns)]
        return within[-1] if within else None

    async def page(self, before: Position | None, limit: int) -> list[Placed]:
        heads = {}
        for part in self.parts:
            bound = first_bound(part, before)
            head = None if bound is None else self.last(part, bound)
            if head is not None:
                heads[part] = head

        async def older(p: Placed) -> Placed | None:
            bound = older_bound(p)
            return None if bound is None else self.last(p.at.part, bound)
        return await newest_first(heads, older, limit)


def interleaved(rng: random.Random, n: int, parts: int) -> list[Placed]:
    """``n`` comments over ``parts`` + 1 parts, each part's sequences and times growing, with
    times that collide across parts (same ns) now and then."""
    seqs = [0] * (parts + 1)
    ns = 1_000
    out = []
    for _ in range(n):
        part = rng.randrange(parts + 1)
        seqs[part] += rng.choice((1, 1, 2))   # other streams' comments leave holes
        ns += rng.choice((0, 1, 7))
        out.append(placed(ns, part, seqs[part]))
    return out


# -- time stamps -------------------------------------------------------------------------------

@pytest.mark.parametrize(("stamp", "ns"), [
    ("2026-11-29T18:53:40.783680872Z", 1795978420783680872),
    ("2026-11-29T18:53:40.78Z", 1795978420780000000),      # Go drops trailing zeros
    ("2026-11-29T18:53:40Z", 1795978420000000000),         # and a zero fraction
    ("1970-01-01T00:00:00Z", 0),
])
def test_a_jetstream_time_stamp_reads_as_ns(stamp: str, ns: int) -> None:
    assert stored_ns(stamp) == ns
    assert stored_ns(stamp_of(ns)) == ns


@pytest.mark.parametrize("stamp", ["", "2026-11-29 18:53:40Z", "2026-11-29T18:53:40+01:00",
                                   "2026-11-29T18:53:40.1234567891Z", "yesterday"])
def test_anything_else_is_not_a_time_stamp(stamp: str) -> None:
    with pytest.raises(ValueError, match="not a JetStream time stamp"):
        stored_ns(stamp)


def test_a_time_beyond_rfc3339_is_its_last_instant_and_before_the_epoch_the_epoch() -> None:
    assert stamp_of(10**30) == "9999-12-31T23:59:59.999999999Z"
    assert stamp_of(-1) == "1970-01-01T00:00:00.000000000Z"


# -- forwards from a time ----------------------------------------------------------------------

def test_parts_read_forwards_merge_oldest_first_by_time_then_part_then_seq() -> None:
    chained = [placed(10, 0, 4), placed(30, 0, 9)]
    hot1 = [placed(10, 1, 2), placed(20, 1, 3)]
    hot2 = [placed(5, 2, 1), placed(10, 2, 7)]
    merged = merge_oldest_first([chained, hot1, hot2], 10)
    assert [p.at for p in merged] == [Position(5, 2, 1), Position(10, 0, 4), Position(10, 1, 2),
                                      Position(10, 2, 7), Position(20, 1, 3), Position(30, 0, 9)]
    assert [p.at for p in merge_oldest_first([chained, hot1, hot2], 2)] == [
        Position(5, 2, 1), Position(10, 0, 4)]
    assert merge_oldest_first([chained], 0) == []


def test_a_part_out_of_time_order_still_merges_in_order() -> None:
    # A wall clock stepped back between two appends of one part.
    merged = merge_oldest_first([[placed(50, 1, 1), placed(40, 1, 2)], [placed(45, 0, 1)]], 3)
    assert [p.at.stored_ns for p in merged] == [40, 45, 50]


# -- backwards from a position -----------------------------------------------------------------

def test_the_first_bound_of_each_part() -> None:
    at = Position(100, 2, 7)
    assert first_bound(0, None) == Bound()
    assert first_bound(2, at) == Bound(up_to_seq=6)           # its own part: by sequence
    assert first_bound(1, at) == Bound(before_ns=101)         # lower: same ns is older
    assert first_bound(3, at) == Bound(before_ns=100)         # higher: same ns is newer
    assert first_bound(2, Position(100, 2, 1)) is None        # the part's first: none older
    assert first_bound(3, Position(0, 0, 0)) is None          # before the epoch: nothing
    assert first_bound(0, Position(0, 0, 0)) is None


def test_older_bound_never_asks_for_sequence_zero() -> None:
    # JetStream reads up_to_seq 0 as "no bound": the part's newest, a loop.
    assert older_bound(placed(5, 1, 1)) is None
    assert older_bound(placed(5, 1, 9)) == Bound(up_to_seq=8)


async def test_paging_backwards_in_small_pages_sees_every_comment_once_newest_first() -> None:
    rng = random.Random(7)
    for _ in range(30):
        entries = interleaved(rng, rng.randrange(0, 60), parts=rng.randrange(0, 5))
        parts = Parts(entries)
        limit = rng.randrange(1, 6)
        seen: list[Placed] = []
        before: Position | None = None
        while True:
            page = await parts.page(before, limit)
            seen.extend(page)
            if len(page) < limit:
                break
            before = page[-1].at
        assert seen == sorted(entries, key=lambda p: p.at, reverse=True)


async def test_a_page_reads_about_one_entry_per_comment_plus_one_per_part() -> None:
    entries = [placed(i, i % 5, 1 + i // 5) for i in range(100)]
    parts = Parts(entries)
    page = await parts.page(None, 20)
    assert [p.at.stored_ns for p in page] == list(range(99, 79, -1))
    assert parts.reads == 5 + 19     # each part's head, then one read per entry but the last


async def test_a_page_from_a_cursor_position_takes_what_is_older_in_every_part() -> None:
    # A cursor of the chained log placed at its comment's stored time: partition comments
    # stored in the same nanosecond come after it (higher part), older ones before.
    entries = [placed(10, 0, 1), placed(20, 1, 1), placed(30, 0, 2), placed(30, 1, 2),
               placed(40, 2, 1)]
    page = await Parts(entries).page(Position(30, 0, 2), 10)
    assert [p.at for p in page] == [Position(20, 1, 1), Position(10, 0, 1)]


# -- the history mark --------------------------------------------------------------------------

def test_a_history_mark_encodes_and_parses() -> None:
    mark = HistoryMark("us-east", "k3x9", Position(1795978420783680872, 3, 12))
    assert mark.encode() == "us-east:k3x9:h1795978420783680872.3.12"
    assert HistoryMark.parse(mark.encode()) == mark
    assert mark.same_log("us-east", "k3x9") and not mark.same_log("eu-west", "k3x9")


def test_before_is_a_mark_or_a_cursor() -> None:
    assert history_before("us-east:k3x9:h5.0.2") == HistoryMark("us-east", "k3x9",
                                                                Position(5, 0, 2))
    assert history_before("us-east:k3x9:12") == Cursor("us-east", "k3x9", 12)


@pytest.mark.parametrize("text", ["", "us-east:k3x9:h5.0", "us-east:k3x9:h5.0.2.1",
                                  "us-east:k3x9:hx.0.2", "US-EAST:k3x9:h5.0.2",
                                  "us-east:k3x9:h12345678901234567890.0.1",
                                  "us-east:k3x9:h5.1234.1", "us-east:k3x9:h5.0.2\n",
                                  "01a1fe4dca1d0000-us-east.0"])
def test_anything_else_before_says_what_to_send(text: str) -> None:
    with pytest.raises(ValueError, match="send a page's 'next' as it came, or a cursor"):
        history_before(text)
    with pytest.raises(ValueError, match="not a history mark"):
        HistoryMark.parse(text)
