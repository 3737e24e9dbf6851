"""The archive's pure logic: layout, cursors, shard merging and paging over an in-memory
store that keeps rows exactly as the Cassandra tables do (partition = stream, bucket,
shard; ids newest first)."""

from __future__ import annotations

import base64
import random
from collections import defaultdict

import pytest

from chorus import archive_schema
from chorus.config import ArchiveConfig, parse_config
from chorus.ids import IdGenerator
from chorus.model import Comment
from region.archive import (
    Bucket,
    Direction,
    HistoryCursor,
    Layout,
    Stored,
    first_bucket,
    merge_shards,
    read_page,
    time_position,
    visible,
)

MINUTE = 60_000
T0 = 1_790_000_000_000  # a fixed moment, ms


class MemoryStore:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.partitions: dict[tuple[str, int, int], dict[str, Stored]] = defaultdict(dict)
        self.index: dict[str, dict[int, int]] = defaultdict(dict)
        self.queries = 0

    def write(self, comment: Comment, **flags: bool) -> None:
        from chorus.ids import id_time_ms

        bucket = self.layout.bucket_of(id_time_ms(comment.id))
        key = (comment.stream, bucket, self.layout.shard_of(comment.id))
        self.partitions[key][comment.id] = Stored(comment, **flags)
        self.index[comment.stream][bucket] = self.layout.shards

    async def buckets(self, stream: str, direction: Direction, bound: int | None,
                      limit: int) -> list[Bucket]:
        self.queries += 1
        starts = sorted(self.index[stream], reverse=direction == "before")
        if bound is not None:
            starts = [b for b in starts if (b <= bound if direction == "before" else b >= bound)]
        return [Bucket(b, self.index[stream][b]) for b in starts[:limit]]

    async def rows(self, stream: str, bucket: int, shard: int, direction: Direction,
                   position: str | None, limit: int) -> list[Stored]:
        self.queries += 1
        rows = self.partitions[(stream, bucket, shard)]
        ids = sorted(rows, reverse=direction == "before")
        if position is not None:
            ids = [i for i in ids if (i < position if direction == "before" else i > position)]
        return [rows[i] for i in ids[:limit]]


def comments(stream: str, count: int, *, step_ms: int, start: int = T0) -> list[Comment]:
    clock = iter(range(start, start + count * step_ms + 1, step_ms))
    gen = IdGenerator("us-east.0", clock=lambda: next(clock))
    out = []
    for i in range(count):
        cid = gen.next()
        out.append(Comment(id=cid, stream=stream, region="us-east", user=f"u{i % 7}",
                           name="n", text=f"c{i}", ts=0))
    return out


async def page_all(store: MemoryStore, stream: str, direction: Direction,
                   position: str | None, limit: int, user: str = "x",
                   moderator: bool = False) -> list[list[str]]:
    pages = []
    while True:
        page = await read_page(store, store.layout, stream, direction, position, limit,
                               lambda s: visible(s, user, moderator=moderator))
        pages.append([s.comment.id for s in page.items])
        assert len(page.items) <= limit
        if page.next is None:
            return pages
        # Through the wire form, as a client does.
        cursor = HistoryCursor.decode(page.next.encode())
        assert (cursor.stream, cursor.direction) == (stream, direction)
        position = cursor.position


# -- layout --------------------------------------------------------------------------------------


def test_bucket_shard_and_ttl_math() -> None:
    layout = Layout.from_config(ArchiveConfig(ttl_days=2, bucket_minutes=60, shards=4))
    assert layout.bucket_of(T0) == T0 - T0 % 3_600_000
    assert layout.bucket_of(layout.bucket_of(T0)) == layout.bucket_of(T0)
    ids = [c.id for c in comments("s", 400, step_ms=1)]
    shards = [layout.shard_of(i) for i in ids]
    assert set(shards) == {0, 1, 2, 3}
    assert min(shards.count(s) for s in range(4)) > 60  # spread, roughly evenly
    assert shards == [layout.shard_of(i) for i in ids]  # stable: a redelivery lands alike
    assert layout.ttl_for(T0, T0) == 2 * 86_400
    assert layout.ttl_for(T0, T0 + 86_400_000) == 86_400
    assert layout.ttl_for(T0, T0 + 2 * 86_400_000) is None
    assert layout.ttl_for(T0 + 5000, T0) == 2 * 86_400  # a clock ahead does not extend it
    forever = Layout.from_config(ArchiveConfig(ttl_days=0))
    assert forever.ttl_for(0, T0) == 0


def test_edges_and_positions() -> None:
    layout = Layout(bucket_ms=MINUTE, shards=2, ttl_s=0)
    bucket = layout.bucket_of(T0)
    ids = [c.id for c in comments("s", 50, step_ms=2000, start=bucket)]
    inside = [i for i in ids if layout.bucket_of(int(i[:12], 16)) == bucket]
    before, after = layout.edge(bucket, "before"), layout.edge(bucket, "after")
    assert all(before <= i < after for i in inside)
    assert all(i < before or i > after for i in ids if i not in inside)
    assert time_position(0) == "000000000000"
    with pytest.raises(ValueError):
        time_position(16**12)
    # A bare time excludes its own millisecond when paging backwards.
    assert first_bucket(layout, time_position(bucket), "before") == bucket - MINUTE
    assert first_bucket(layout, time_position(bucket), "after") == bucket
    assert first_bucket(layout, ids[0], "before") == layout.bucket_of(T0)
    assert first_bucket(layout, None, "before") is None


# -- cursors -------------------------------------------------------------------------------------


def test_cursor_round_trip() -> None:
    for direction in ("before", "after"):
        for position in ("01a1fe4dca1d0000-us-east.0", "0000000000ff"):
            cursor = HistoryCursor("match-42", direction, position)
            text = cursor.encode()
            assert HistoryCursor.decode(text) == cursor
            assert "|" not in text and "match-42" not in text


@pytest.mark.parametrize("text", [
    "", "abc", "not a cursor!", "x" * 400, "AAAA",
    "eu-west:abc:5", "01a1fe4dca1d0000-us-east.0",
])
def test_malformed_cursors_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="not a history cursor"):
        HistoryCursor.decode(text)


def test_tampered_cursors_are_rejected() -> None:
    good = HistoryCursor("s", "before", "01a1fe4dca1d0000-us-east.0").encode()
    raw = bytearray(base64.urlsafe_b64decode(good + "=" * (-len(good) % 4)))
    for i in range(len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        text = base64.urlsafe_b64encode(bytes(bad)).rstrip(b"=").decode()
        with pytest.raises(ValueError):
            HistoryCursor.decode(text)
    # Truncated, or re-signed with contents that are not a position: refused too.
    with pytest.raises(ValueError):
        HistoryCursor.decode(good[:-3])
    from region.archive import _digest

    payload = b"b|s|DROP TABLE"
    forged = base64.urlsafe_b64encode(bytes([1]) + _digest(payload) + payload)
    with pytest.raises(ValueError, match="bad contents"):
        HistoryCursor.decode(forged.rstrip(b"=").decode())


# -- merging shards ------------------------------------------------------------------------------


def test_merge_keeps_only_what_every_shard_covered() -> None:
    cs = comments("s", 12, step_ms=1)
    stored = [Stored(c) for c in cs]
    # Newest first; shard 0 came back full (limit 3), shard 1 short.
    shard0 = [stored[11], stored[8], stored[5]]
    shard1 = [stored[10], stored[2]]
    rows, complete = merge_shards([shard0, shard1], "before", 3)
    assert not complete
    assert [s.comment.id for s in rows] == [cs[11].id, cs[10].id, cs[8].id, cs[5].id]
    rows, complete = merge_shards([shard0[:2], shard1], "before", 3)
    assert complete and len(rows) == 4
    # Oldest first: shard 0 (full) ends at 4, so shard 1's 10 must wait for the next read.
    up = [[stored[1], stored[3], stored[4]], [stored[2], stored[10]]]
    rows, complete = merge_shards(up, "after", 3)
    assert not complete
    assert [s.comment.id for s in rows] == [cs[1].id, cs[2].id, cs[3].id, cs[4].id]


# -- pages ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("shards", "limit"), [(1, 5), (3, 7), (4, 1), (5, 200)])
async def test_pages_cross_buckets_and_shards_without_gap_or_repeat(shards: int,
                                                                    limit: int) -> None:
    layout = Layout(bucket_ms=MINUTE, shards=shards, ttl_s=0)
    store = MemoryStore(layout)
    cs = comments("s", 300, step_ms=1700)  # about 8 buckets, some comments per shard each
    other = comments("other", 20, step_ms=1000)
    for c in [*cs, *other]:
        store.write(c)
    ids = [c.id for c in cs]
    back = await page_all(store, "s", "before", None, limit)
    assert [i for p in back for i in p] == ids[::-1]
    assert all(len(p) == limit for p in back[:-1]) and back[-1]
    forward = await page_all(store, "s", "after", time_position(0), limit)
    assert [i for p in forward for i in p] == ids
    # From the middle, by id, both ways.
    mid = ids[137]
    assert [i for p in await page_all(store, "s", "before", mid, limit) for i in p] == \
        ids[:137][::-1]
    assert [i for p in await page_all(store, "s", "after", mid, limit) for i in p] == \
        ids[138:]


async def test_empty_stream_and_exact_fit() -> None:
    layout = Layout(bucket_ms=MINUTE, shards=2, ttl_s=0)
    store = MemoryStore(layout)
    assert await page_all(store, "nothing", "before", None, 10) == [[]]
    cs = comments("s", 10, step_ms=1)
    for c in cs:
        store.write(c)
    pages = await page_all(store, "s", "before", None, 10)
    assert pages == [[c.id for c in reversed(cs)]]  # no empty trailing page


async def test_hidden_comments_are_skipped_and_pages_stay_bounded() -> None:
    layout = Layout(bucket_ms=MINUTE, shards=3, ttl_s=0)
    store = MemoryStore(layout)
    cs = comments("s", 120, step_ms=900)
    rng = random.Random(7)
    deleted = {c.id for c in cs if rng.random() < 0.3}
    shadow = {c.id for c in cs if rng.random() < 0.2} - deleted
    for c in cs:
        if c.id in shadow:
            c = Comment(**{**c.to_json(), "shadow": True})
        store.write(c, deleted=c.id in deleted)
    ids = [c.id for c in cs]
    shown = [i for i in ids if i not in deleted and i not in shadow]
    got = [i for p in await page_all(store, "s", "before", None, 9) for i in p]
    assert got == shown[::-1]
    author = cs[3].user
    mine = [c.id for c in cs if c.id not in deleted
            and (c.id not in shadow or c.user == author)]
    got = [i for p in await page_all(store, "s", "after", time_position(0), 9, user=author)
           for i in p]
    assert got == mine
    got = [i for p in await page_all(store, "s", "after", time_position(0), 50,
                                     moderator=True) for i in p]
    assert got == ids

    # A page that finds nothing to show stops at its scan budget and says where to go on.
    everything_hidden = [Stored(c, deleted=True) for c in cs]
    store2 = MemoryStore(layout)
    for s in everything_hidden:
        store2.write(s.comment, deleted=True)
    page = await read_page(store2, layout, "s", "before", None, 5, lambda s: not s.deleted,
                           max_scan=40)
    assert page.items == () and page.next is not None
    assert store2.queries < 40


def test_visibility_rules() -> None:
    c = Comment(id="01a1fe4dca1d0000-us-east.0", stream="s", region="us-east", user="ana",
                name="Ana", text="hi", ts=0)
    shadow = Comment(**{**c.to_json(), "shadow": True})
    assert visible(Stored(c), "bob", moderator=False)
    assert not visible(Stored(c, deleted=True), "ana", moderator=False)
    assert visible(Stored(c, deleted=True), "mod", moderator=True)
    assert visible(Stored(shadow), "ana", moderator=False)
    assert not visible(Stored(shadow), "bob", moderator=False)
    assert Stored(c, pinned=True).to_json()["pinned"] is True


# -- schema and batches --------------------------------------------------------------------------


def test_schema_statements_are_idempotent_and_replicate_to_every_region() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "regions.yaml").read_text()
    config = parse_config(text)
    cql = archive_schema.keyspace_cql(config)
    assert "NetworkTopologyStrategy" in cql and "IF NOT EXISTS" in cql
    for region in config.region_names:
        assert f"'{region}': 1" in cql
    versions = [m.version for m in archive_schema.MIGRATIONS]
    assert versions == sorted(set(versions)) and versions[0] == 1
    for migration in archive_schema.MIGRATIONS:
        for statement in archive_schema.statements(migration, "chorus"):
            assert "IF NOT EXISTS" in statement and '"chorus".' in statement
    assert archive_schema.pending({1}) == [m for m in archive_schema.MIGRATIONS
                                           if m.version > 1]


def test_partition_batches_stay_under_the_size_warning() -> None:
    from region.archive_cassandra import BATCH_MAX_BYTES, BATCH_MAX_ROWS, _chunks

    rows = [("s", 0, 0, f"id{i}", "x" * (50 if i % 3 else 1500)) for i in range(300)]
    rows.append(("s", 0, 0, "big", "y" * 9000))
    chunks = _chunks(rows)
    assert [r for c in chunks for r in c] == rows  # all of them, in order
    assert chunks[-1] == [rows[-1]]  # too big for any batch: alone
    for chunk in chunks[:-1]:
        assert len(chunk) <= BATCH_MAX_ROWS
        assert sum(len(str(v)) for r in chunk for v in r) <= BATCH_MAX_BYTES
