"""The archive's schema in Cassandra, as numbered migrations that the project applies itself.

`apply` creates the keyspace (NetworkTopologyStrategy, ``archive.replication_factor``
replicas in every region's datacenter), a ``schema_migrations`` table, and then runs every
migration not recorded there, in order, recording each. Every statement is idempotent
(``IF NOT EXISTS``), so a second run, or a run interrupted half-way, is safe. The local
cluster applies it once its ring has converged; a deployed cluster runs ``chorus migrate``.
Gateways never apply it (concurrent schema changes from several coordinators can leave
Cassandra with conflicting table ids): they check `LATEST` is recorded and report the
archive unavailable until it is.

Tables (see region/archive.py for why they look like this):

- ``comments``: partition ``(stream, bucket, shard)``, clustering ``id`` newest first;
  columns for the comment and the flags ``shadow``, ``pinned``, ``deleted``. Rows carry a
  TTL from ``archive.ttl_days`` counted from the comment's time.
- ``comment_buckets``: per stream, the buckets that hold comments, newest first, with the
  shard counts each was written with.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from chorus.config import Config, Region
from chorus.drivers import describe, driver_errors
from chorus.errors import ChorusError

SCHEMA_AGREEMENT_WAIT_S = 30   # DDL waits until every node has the new schema, up to this
REQUEST_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 10.0


class MigrationError(ChorusError):
    """The schema could not be applied; the message says which step and why."""


@dataclass(frozen=True)
class Migration:
    """One numbered step; ``{ks}`` in a statement is the quoted keyspace name."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "comments by stream, time bucket and shard; the bucket index", (
        """CREATE TABLE IF NOT EXISTS {ks}.comments (
            stream text,
            bucket bigint,
            shard int,
            id text,
            region text,
            author text,
            author_name text,
            body text,
            ts bigint,
            reply_to text,
            badge text,
            shadow boolean,
            pinned boolean,
            deleted boolean,
            PRIMARY KEY ((stream, bucket, shard), id)
        ) WITH CLUSTERING ORDER BY (id DESC)""",
        """CREATE TABLE IF NOT EXISTS {ks}.comment_buckets (
            stream text,
            bucket bigint,
            shard_counts set<int>,
            PRIMARY KEY (stream, bucket)
        ) WITH CLUSTERING ORDER BY (bucket DESC)""",
    )),
)

LATEST = MIGRATIONS[-1].version


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def keyspace_cql(config: Config) -> str:
    """CREATE KEYSPACE for ``config.cassandra.keyspace``: ``archive.replication_factor``
    replicas in every region's datacenter."""
    rf = config.archive.replication_factor
    replicas = ", ".join(f"{_quote_string(r.name)}: {rf}" for r in config.regions)
    return (f"CREATE KEYSPACE IF NOT EXISTS {quote_identifier(config.cassandra.keyspace)} "
            f"WITH replication = {{'class': 'NetworkTopologyStrategy', {replicas}}}")


def migrations_table_cql(keyspace: str) -> str:
    return (f"CREATE TABLE IF NOT EXISTS {quote_identifier(keyspace)}.schema_migrations "
            "(version int PRIMARY KEY, description text, applied_at timestamp)")


def statements(migration: Migration, keyspace: str) -> list[str]:
    return [s.format(ks=quote_identifier(keyspace)) for s in migration.statements]


def pending(applied: set[int]) -> list[Migration]:
    """The migrations not in ``applied``, in order."""
    return [m for m in MIGRATIONS if m.version not in applied]


def apply(config: Config, region: Region | None = None,
          progress: Callable[[str], None] | None = None) -> list[int]:
    """Brings the archive's schema to `LATEST` through ``region``'s node (default: the
    first region's). Blocking. Returns the versions applied now (empty: nothing to do).
    Raises `MigrationError`."""
    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy
    from cassandra.query import SimpleStatement

    region = region or config.regions[0]
    say = progress or (lambda _msg: None)
    ks = config.cassandra.keyspace
    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=region.name),
        consistency_level=ConsistencyLevel.LOCAL_QUORUM, request_timeout=REQUEST_TIMEOUT_S)
    cluster = Cluster(contact_points=[region.cassandra.address],
                      port=config.cassandra.native_port, protocol_version=5,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                      connect_timeout=CONNECT_TIMEOUT_S,
                      control_connection_timeout=CONNECT_TIMEOUT_S,
                      max_schema_agreement_wait=SCHEMA_AGREEMENT_WAIT_S)
    step = f"connecting to {region.cassandra.address}:{config.cassandra.native_port}"
    try:
        session = cluster.connect()
        step = "creating the keyspace"
        session.execute(keyspace_cql(config))
        session.execute(migrations_table_cql(ks))
        step = "reading schema_migrations"
        rows = session.execute(f"SELECT version FROM {quote_identifier(ks)}.schema_migrations")
        applied = {row.version for row in rows}
        done = []
        for migration in pending(applied):
            step = f"migration {migration.version} ({migration.description})"
            say(f"applying {step}")
            for cql in statements(migration, ks):
                session.execute(cql)
            # Recorded in every datacenter at once: a gateway elsewhere must not wait for
            # a migration that ran, and the next `apply` reads it from its own datacenter.
            session.execute(SimpleStatement(
                f"INSERT INTO {quote_identifier(ks)}.schema_migrations "
                "(version, description, applied_at) VALUES (%s, %s, %s)",
                consistency_level=ConsistencyLevel.EACH_QUORUM),
                (migration.version, migration.description, int(time.time() * 1000)))
            done.append(migration.version)
        return done
    except driver_errors("cassandra") as exc:
        raise MigrationError(f"archive schema: {step} failed: {describe(exc)}") from exc
    finally:
        cluster.shutdown()
