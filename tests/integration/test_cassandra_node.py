"""Cassandra as `chorus up --with-cassandra` runs it: one datacenter per region, one node each
on its own loopback address, and a write in one datacenter readable in another."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest
from cassandra import ConsistencyLevel
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, Session
from cassandra.policies import DCAwareRoundRobinPolicy, WhiteListRoundRobinPolicy
from cassandra.query import SimpleStatement

from chorus.cluster import cassandra, health
from chorus.cluster.local import LocalCluster
from chorus.config import Config

pytestmark = [pytest.mark.integration, pytest.mark.cassandra]

# Replication to another datacenter is asynchronous once the local quorum has acknowledged:
# nothing signals its arrival, so the read in the other datacenter polls, bounded.
REPLICATION_TIMEOUT_S = 10.0

T = TypeVar("T")


def session(config: Config, region_name: str, consistency: int) -> tuple[Cluster, Session]:
    """A session that only uses ``region_name``'s datacenter (its one node)."""
    region = config.region(region_name)
    profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy(local_dc=region.name),
                               consistency_level=consistency, request_timeout=60)
    # A schema change waits for every datacenter's node; on a machine whose two cores also run
    # three JVMs and the rest of the suite, a node can miss the driver's 30 s heartbeat while
    # it agrees, and the driver then calls the connection defunct: give both a minute.
    cluster = Cluster(contact_points=[region.cassandra.address],
                      port=config.cassandra.native_port, protocol_version=5,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=5,
                      idle_heartbeat_timeout=60, max_schema_agreement_wait=60)
    return cluster, cluster.connect()


def eventually(probe: Callable[[], T | None], timeout_s: float) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.05)


async def test_the_cluster_reports_cassandra_healthy(archive_cluster: LocalCluster) -> None:
    status = await health.probe(archive_cluster.config, with_cassandra=True)
    assert status.healthy and all(r.cassandra for r in status.regions), status.as_json()


def _local_and_peers(config: Config, address: str) -> tuple[object, dict[str, str]]:
    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([address]))
    cluster = Cluster(contact_points=[address], port=config.cassandra.native_port,
                      protocol_version=5, execution_profiles={EXEC_PROFILE_DEFAULT: profile})
    try:
        s = cluster.connect()
        local = s.execute("SELECT data_center, rack, tokens FROM system.local").one()
        peers = {str(row.peer): row.data_center
                 for row in s.execute("SELECT peer, data_center FROM system.peers_v2")}
    finally:
        cluster.shutdown()
    return local, peers


async def test_each_region_is_its_own_datacenter(archive_cluster: LocalCluster) -> None:
    config = archive_cluster.config
    for region in config.regions:
        local, peers = await asyncio.to_thread(_local_and_peers, config,
                                               region.cassandra.address)
        assert (local.data_center, local.rack) == (region.name, cassandra.RACK)  # type: ignore[attr-defined]
        assert len(local.tokens) == 1  # type: ignore[attr-defined]
        assert peers == {r.cassandra.address: r.name for r in config.regions if r is not region}


def _write_east_read_west(config: Config) -> None:
    ks = config.cassandra.keyspace
    east, east_session = session(config, "us-east", ConsistencyLevel.LOCAL_QUORUM)
    west, west_session = session(config, "eu-west", ConsistencyLevel.LOCAL_ONE)
    try:
        east_session.execute(cassandra.keyspace_cql(config))
        east_session.execute(f'CREATE TABLE IF NOT EXISTS "{ks}".smoke '
                             "(id uuid PRIMARY KEY, body text)")
        replication = west_session.execute(
            "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s",
            (ks,)).one().replication
        assert replication == {
            "class": "org.apache.cassandra.locator.NetworkTopologyStrategy",
            **{r.name: "1" for r in config.regions}}
        row_id = uuid.uuid4()
        east_session.execute(f'INSERT INTO "{ks}".smoke (id, body) VALUES (%s, %s)',
                             (row_id, "hello from us-east"))
        select = f'SELECT body FROM "{ks}".smoke WHERE id = %s'
        body = eventually(
            lambda: next((r.body for r in west_session.execute(select, (row_id,))), None),
            REPLICATION_TIMEOUT_S)
        assert body == "hello from us-east"
        at_quorum = SimpleStatement(select, consistency_level=ConsistencyLevel.LOCAL_QUORUM)
        assert west_session.execute(at_quorum, (row_id,)).one().body == "hello from us-east"
    finally:
        east.shutdown()
        west.shutdown()


async def test_row_written_in_us_east_is_read_in_eu_west(archive_cluster: LocalCluster) -> None:
    await asyncio.to_thread(_write_east_read_west, archive_cluster.config)
