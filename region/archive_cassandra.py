"""`Archive` on Apache Cassandra: the region's own datacenter, at LOCAL_QUORUM.

Why LOCAL_QUORUM, for writes and reads: the persister acknowledges a comment to JetStream
only once the write is accepted, so the write must survive the loss of any one replica of
the region (with ``archive.replication_factor`` 3, two hold it; LOCAL_ONE would let a single
disk lose an acknowledged comment before repair). Reads at LOCAL_QUORUM then see every
write acknowledged in the region. "LOCAL": a cell must work alone, so neither waits for
another region; Cassandra replicates to the other datacenters asynchronously (with hints
while one is down), which is what makes a comment posted in us-east readable in eu-west.
With one node per datacenter, as locally, LOCAL_QUORUM is that one node.

The driver runs its own I/O threads; every request goes out with ``execute_async`` and its
result is handed to the event loop with ``call_soon_threadsafe``, so nothing here blocks
the loop. Connecting (blocking in the driver) runs in a worker thread, lazily: a gateway
starts whether or not Cassandra is up, and the first use after an outage connects again.
Driver errors become `ArchiveUnavailable` here (chorus/drivers.py's table), with the
driver's error as the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cassandra import ConsistencyLevel, InvalidRequest
from cassandra.cluster import (
    EXEC_PROFILE_DEFAULT,
    Cluster,
    ExecutionProfile,
    ResponseFuture,
    Session,
)
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    TokenAwarePolicy,
)
from cassandra.query import BatchStatement, BatchType, PreparedStatement, Statement

from chorus import archive_schema
from chorus.config import Config, Region
from chorus.drivers import translated
from chorus.ids import id_time_ms
from chorus.model import BADGES, Badge, Comment
from region.archive import (
    ArchiveUnavailable,
    Bucket,
    Direction,
    HistoryPage,
    Layout,
    Stored,
    read_page,
)

CONSISTENCY = ConsistencyLevel.LOCAL_QUORUM
REQUEST_TIMEOUT_S = 10.0    # one request; the persister retries, history answers 503
CONNECT_TIMEOUT_S = 5.0
CONNECT_RETRY_S = 1.0       # after a failed connect, callers get 503 at once for this long
# Reconnection to a node that went down: from 0.5 s doubling to 10 s (the driver's default
# grows to 10 minutes, far too long for a region's own archive).
RECONNECT_BASE_S = 0.5
RECONNECT_MAX_S = 10.0
WRITES_IN_FLIGHT = 128      # concurrent requests of one `write`
# Cassandra warns about batches over 5 KiB (batch_size_warn_threshold) and refuses them over
# 50 KiB; a partition's rows go in batches below the warning.
BATCH_MAX_BYTES = 5000
BATCH_MAX_ROWS = 64
_ROW_OVERHEAD_BYTES = 40    # ts, flags, TTL and per-cell framing of one row, roughly

_COLUMNS = ("id, region, author, author_name, body, ts, reply_to, badge, shadow, pinned, "
            "deleted")


@dataclass(frozen=True)
class _Statements:
    insert: PreparedStatement
    index: PreparedStatement
    buckets_newest: PreparedStatement
    buckets_before: PreparedStatement
    buckets_after: PreparedStatement
    rows_newest: PreparedStatement
    rows_before: PreparedStatement
    rows_after: PreparedStatement
    get: PreparedStatement
    delete: PreparedStatement

    @classmethod
    def prepare(cls, session: Session, keyspace: str) -> _Statements:
        """Blocking: one round trip per statement."""
        ks = archive_schema.quote_identifier(keyspace)
        where = "WHERE stream = ? AND bucket = ? AND shard = ?"
        rows = f"SELECT {_COLUMNS} FROM {ks}.comments {where}"
        return cls(
            # Content columns only: a comment written again (a redelivery) must not reset
            # the flags a moderator set meanwhile.
            insert=session.prepare(
                f"INSERT INTO {ks}.comments (stream, bucket, shard, id, region, author, "
                "author_name, body, ts, reply_to, badge, shadow) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?"),
            index=session.prepare(
                f"UPDATE {ks}.comment_buckets USING TTL ? SET shard_counts = shard_counts + ? "
                "WHERE stream = ? AND bucket = ?"),
            buckets_newest=session.prepare(
                f"SELECT bucket, shard_counts FROM {ks}.comment_buckets WHERE stream = ? "
                "LIMIT ?"),
            buckets_before=session.prepare(
                f"SELECT bucket, shard_counts FROM {ks}.comment_buckets WHERE stream = ? "
                "AND bucket <= ? LIMIT ?"),
            buckets_after=session.prepare(
                f"SELECT bucket, shard_counts FROM {ks}.comment_buckets WHERE stream = ? "
                "AND bucket >= ? ORDER BY bucket ASC LIMIT ?"),
            rows_newest=session.prepare(f"{rows} LIMIT ?"),
            rows_before=session.prepare(f"{rows} AND id < ? LIMIT ?"),
            rows_after=session.prepare(f"{rows} AND id > ? ORDER BY id ASC LIMIT ?"),
            get=session.prepare(f"{rows} AND id = ?"),
            delete=session.prepare(
                f"UPDATE {ks}.comments USING TTL ? SET deleted = true {where} AND id = ?"),
        )


class CassandraArchive:
    """The archive through ``region``'s datacenter. Call `close` when done."""

    def __init__(self, config: Config, region: Region, *,
                 layout: Layout | None = None) -> None:
        self.config = config
        self.region = region
        self.layout = layout or Layout.from_config(config.archive)
        self._cluster: Cluster | None = None
        self._session: Session | None = None
        self._stmts: _Statements | None = None
        self._connecting = asyncio.Lock()
        self._failed_at: float | None = None
        self._failure = ""
        self._closed = False

    # -- connection --------------------------------------------------------------------------

    async def _ready(self) -> tuple[Session, _Statements]:
        if self._session is not None and self._stmts is not None:
            return self._session, self._stmts
        async with self._connecting:
            if self._closed:
                raise ArchiveUnavailable("the archive is closed")
            if self._session is not None and self._stmts is not None:
                return self._session, self._stmts  # connected while we waited
            now = time.monotonic()
            if self._failed_at is not None and now - self._failed_at < CONNECT_RETRY_S:
                raise ArchiveUnavailable(f"the archive is not reachable: {self._failure}")
            try:
                cluster, session, stmts = await asyncio.to_thread(self._connect)
            except ArchiveUnavailable as exc:
                self._failed_at, self._failure = time.monotonic(), str(exc)
                raise
            self._cluster, self._session, self._stmts = cluster, session, stmts
            self._failed_at = None
            return session, stmts

    def _connect(self) -> tuple[Cluster, Session, _Statements]:
        """Blocking: connect, check the schema is migrated, prepare the statements."""
        cass = self.config.cassandra
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(
                DCAwareRoundRobinPolicy(local_dc=self.region.name)),
            consistency_level=CONSISTENCY, request_timeout=REQUEST_TIMEOUT_S)
        cluster = Cluster(
            contact_points=[self.region.cassandra.address], port=cass.native_port,
            protocol_version=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connect_timeout=CONNECT_TIMEOUT_S, control_connection_timeout=CONNECT_TIMEOUT_S,
            reconnection_policy=ExponentialReconnectionPolicy(RECONNECT_BASE_S,
                                                              RECONNECT_MAX_S),
            # Table metadata is not needed (prepared statements carry their routing), and
            # refreshing it on every schema change elsewhere is wasted work.
            schema_metadata_enabled=False)
        where = f"{self.region.cassandra.address}:{cass.native_port}"
        try:
            with translated(ArchiveUnavailable, f"cannot reach the archive at {where}",
                            driver="cassandra"):
                session = cluster.connect()
                ks = archive_schema.quote_identifier(cass.keyspace)
                try:
                    rows = session.execute(f"SELECT version FROM {ks}.schema_migrations")
                    versions = {row.version for row in rows}
                except InvalidRequest as exc:  # no such keyspace or table
                    raise ArchiveUnavailable(
                        f"the archive has no schema in keyspace {cass.keyspace} ({exc}): run "
                        "`chorus migrate`") from exc
                if archive_schema.LATEST not in versions:
                    raise ArchiveUnavailable(
                        f"the archive's schema lacks migration {archive_schema.LATEST} "
                        f"(has {sorted(versions)}): run `chorus migrate`")
                return cluster, session, _Statements.prepare(session, cass.keyspace)
        except BaseException:
            cluster.shutdown()  # or its threads would outlive the failed connect
            raise

    async def close(self) -> None:
        async with self._connecting:  # a connect in its thread finishes first
            self._closed = True
            cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            await asyncio.to_thread(cluster.shutdown)

    # -- requests ----------------------------------------------------------------------------

    async def _run(self, pick: Callable[[_Statements], PreparedStatement],
                   values: Sequence[Any]) -> list[Any]:
        """Runs one prepared statement with ``values``; its rows."""
        return await self._execute(lambda s: pick(s).bind(values))

    async def _execute(self, build: Callable[[_Statements], Statement]) -> list[Any]:
        session, stmts = await self._ready()
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()

        def settle(rows: Any, exc: BaseException | None) -> None:
            if done.done():
                return  # the caller gave up (cancelled)
            if exc is not None:
                done.set_exception(exc)
            else:
                done.set_result(list(rows or ()))

        def from_driver(rows: Any = None, exc: BaseException | None = None) -> None:
            # Called on a driver thread; a loop that has closed meanwhile wants nothing.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, rows, exc)

        with translated(ArchiveUnavailable, "the archive refused a request",
                        driver="cassandra"):
            future: ResponseFuture = session.execute_async(build(stmts))
        future.add_callbacks(lambda rows: from_driver(rows),
                             lambda exc: from_driver(exc=exc))
        with translated(ArchiveUnavailable, "the archive did not answer", driver="cassandra"):
            return await done

    async def write(self, comments: Sequence[Comment]) -> None:
        """Stores every comment (and its bucket in the index) at LOCAL_QUORUM, concurrently,
        before returning. Comments older than the TTL are skipped. Raises ArchiveUnavailable
        when any write failed: the caller writes them all again (each write is idempotent).

        Rows of one partition go as unlogged batches (one mutation per partition: atomic,
        and far cheaper for Cassandra than a request per row), each under
        `BATCH_MAX_BYTES` so that it stays below Cassandra's batch size warning."""
        now = int(time.time() * 1000)
        layout = self.layout
        partitions: dict[tuple[str, int, int], list[tuple[Any, ...]]] = {}
        for c in comments:
            ms = id_time_ms(c.id)
            ttl = layout.ttl_for(ms, now)
            if ttl is None:
                continue
            key = (c.stream, layout.bucket_of(ms), layout.shard_of(c.id))
            partitions.setdefault(key, []).append(
                (*key, c.id, c.region, c.user, c.name, c.text, c.ts, c.reply_to, c.badge,
                 c.shadow, ttl))
        requests: list[Callable[[_Statements], Statement]] = []
        for rows in partitions.values():
            requests += [_batch(chunk) for chunk in _chunks(rows)]
        for stream, bucket in sorted({(k[0], k[1]) for k in partitions}):
            # The index entry outlives every comment the bucket can hold.
            ttl = layout.ttl_for(bucket + layout.bucket_ms, now) or 0
            requests.append(_bound(_index, (ttl, {layout.shards}, stream, bucket)))
        lane = asyncio.Semaphore(WRITES_IN_FLIGHT)

        async def one(build: Callable[[_Statements], Statement]) -> None:
            async with lane:
                await self._execute(build)

        results = await asyncio.gather(*(one(r) for r in requests), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    # -- reads -------------------------------------------------------------------------------

    async def buckets(self, stream: str, direction: Direction, bound: int | None,
                      limit: int) -> list[Bucket]:
        if bound is None:
            if direction == "after":
                raise ValueError("an 'after' read needs a bound")
            rows = await self._run(lambda s: s.buckets_newest, (stream, limit))
        elif direction == "before":
            rows = await self._run(lambda s: s.buckets_before, (stream, bound, limit))
        else:
            rows = await self._run(lambda s: s.buckets_after, (stream, bound, limit))
        return [Bucket(start_ms=row.bucket, shards=max(row.shard_counts))
                for row in rows if row.shard_counts]

    async def rows(self, stream: str, bucket: int, shard: int, direction: Direction,
                   position: str | None, limit: int) -> list[Stored]:
        key = (stream, bucket, shard)
        if position is None:
            if direction == "after":
                raise ValueError("an 'after' read needs a position")
            rows = await self._run(lambda s: s.rows_newest, (*key, limit))
        elif direction == "before":
            rows = await self._run(lambda s: s.rows_before, (*key, position, limit))
        else:
            rows = await self._run(lambda s: s.rows_after, (*key, position, limit))
        return [_stored(stream, row) for row in rows]

    async def page(self, stream: str, direction: Direction, position: str | None,
                   limit: int, show: Callable[[Stored], bool]) -> HistoryPage:
        return await read_page(self, self.layout, stream, direction, position, limit, show)

    async def get(self, stream: str, comment_id: str) -> Stored | None:
        bucket = self.layout.bucket_of(id_time_ms(comment_id))
        key = (stream, bucket, self.layout.shard_of(comment_id), comment_id)
        rows = await self._run(lambda s: s.get, key)
        return _stored(stream, rows[0]) if rows else None

    async def mark_deleted(self, stored: Stored) -> None:
        c = stored.comment
        ms = id_time_ms(c.id)
        # The flag expires with the comment's other columns, or it would outlive them.
        ttl = self.layout.ttl_for(ms, int(time.time() * 1000))
        if ttl is None:
            return  # expired meanwhile: nothing left to hide
        key = (c.stream, self.layout.bucket_of(ms), self.layout.shard_of(c.id), c.id)
        await self._run(lambda s: s.delete, (ttl, *key))


def _index(s: _Statements) -> PreparedStatement:
    return s.index


def _bound(pick: Callable[[_Statements], PreparedStatement], values: tuple[Any, ...]
           ) -> Callable[[_Statements], Statement]:
    return lambda s: pick(s).bind(values)


def _batch(rows: list[tuple[Any, ...]]) -> Callable[[_Statements], Statement]:
    def build(s: _Statements) -> Statement:
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for values in rows:
            batch.add(s.insert, values)
        return batch

    return build


def _chunks(rows: list[tuple[Any, ...]]) -> list[list[tuple[Any, ...]]]:
    """``rows`` (insert values) cut into runs of at most `BATCH_MAX_BYTES`, estimated from
    their text columns, and at most `BATCH_MAX_ROWS` rows; a larger row goes alone."""
    out: list[list[tuple[Any, ...]]] = []
    run: list[tuple[Any, ...]] = []
    size = 0
    for values in rows:
        row_bytes = _ROW_OVERHEAD_BYTES + sum(len(v.encode()) for v in values
                                              if isinstance(v, str))
        if run and (size + row_bytes > BATCH_MAX_BYTES or len(run) >= BATCH_MAX_ROWS):
            out.append(run)
            run, size = [], 0
        run.append(values)
        size += row_bytes
    if run:
        out.append(run)
    return out


def _stored(stream: str, row: Any) -> Stored:
    # A row without its content (its flags outlived it by a second of TTL rounding) stays
    # in the page's order but is shown to nobody but moderators, as a deleted comment.
    if row.author is None:
        return Stored(Comment(id=row.id, stream=stream, region="", user="", name="", text="",
                              ts=id_time_ms(row.id)), deleted=True)
    badge: Badge = row.badge if row.badge in BADGES else ""
    return Stored(
        Comment(id=row.id, stream=stream, region=row.region, user=row.author,
                name=row.author_name, text=row.body, ts=row.ts, reply_to=row.reply_to,
                badge=badge, shadow=bool(row.shadow)),
        pinned=bool(row.pinned), deleted=bool(row.deleted))
