"""Cassandra node configuration files (cassandra.yaml, cassandra-rackdc.properties), rendered
from plain values.

The local cluster (chorus/cluster/cassandra.py) and the cloud datacenters (iac/cassandra.py)
both render their nodes' files here, so that what they share cannot drift apart: the snitch,
the datacenter named after the region, one address for every role, the directory layout
under the data directory, open authentication, hinted handoff. Each passes what differs as a
`CassandraNode`: tokens, seeds, commit log sync, resource sizes, internode TLS. Pure: no I/O.

Written for Cassandra 5.0, whose loader rejects unknown keys: every key rendered here is one
5.0's Config knows, and every key not rendered keeps its default.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

PARTITIONER = "org.apache.cassandra.dht.Murmur3Partitioner"
SNITCH = "GossipingPropertyFileSnitch"


@dataclass(frozen=True)
class InitialToken:
    """One token per node at a fixed place on the ring (``token``: a Murmur3 token)."""

    token: int


@dataclass(frozen=True)
class VirtualNodes:
    """``count`` tokens per node, placed so that ownership stays even for
    ``local_replication_factor`` replicas in the node's datacenter."""

    count: int
    local_replication_factor: int


@dataclass(frozen=True)
class GroupCommit:
    """A write is acknowledged after the fsync of its group, one every ``window_ms`` at most."""

    window_ms: int


@dataclass(frozen=True)
class PeriodicCommit:
    """A write is acknowledged at once; the commit log is fsynced every ``period_ms``, so an
    OS crash or a kill -9 can take the writes of the last period from this replica."""

    period_ms: int


@dataclass(frozen=True)
class InternodeTls:
    """TLS on every connection between nodes, with PEM files on the node's host:
    ``keystore`` holds the unencrypted PKCS#8 key followed by the certificate, ``truststore``
    the CA. Peers must present a certificate signed by it."""

    keystore: str
    truststore: str


@dataclass(frozen=True)
class Footprint:
    """Memory (MiB) and thread-pool sizes for a node that shares its machine. Cassandra's
    defaults are sized from the heap and the cores, for a machine of its own."""

    commitlog_segment_mib: int
    commitlog_total_mib: int
    memtable_heap_mib: int
    memtable_offheap_mib: int
    memtable_flush_writers: int
    key_cache_mib: int
    row_cache_mib: int
    counter_cache_mib: int
    prepared_statements_cache_mib: int
    file_cache_mib: int
    networking_cache_mib: int
    index_summary_mib: int
    concurrent_reads: int
    concurrent_writes: int
    concurrent_counter_writes: int
    concurrent_materialized_view_writes: int
    concurrent_compactors: int
    native_transport_max_threads: int


@dataclass(frozen=True)
class CassandraNode:
    """One node. ``address`` is where it listens and what it announces, for peers and clients
    alike; ``seeds`` are addresses of seed nodes (reached on ``storage_port``); data, commit
    log, caches and hints go under ``data_dir``. ``auto_bootstrap`` False: the node serves at
    once without streaming its ranges from peers (each caller says why that is safe).
    ``auto_snapshot`` False: dropping or truncating a table takes no snapshot first.
    ``footprint`` None and ``internode_tls`` None: Cassandra's defaults (sizes from the
    machine; plain internode traffic)."""

    cluster_name: str
    address: str
    seeds: tuple[str, ...]
    native_port: int
    storage_port: int
    data_dir: str
    tokens: InitialToken | VirtualNodes
    commitlog: GroupCommit | PeriodicCommit
    auto_bootstrap: bool
    auto_snapshot: bool = True
    footprint: Footprint | None = None
    internode_tls: InternodeTls | None = None


def _tokens(tokens: InitialToken | VirtualNodes) -> dict[str, object]:
    match tokens:
        case InitialToken(token=token):
            # A string: Config.initial_token is one (a comma-separated list of tokens).
            return {"num_tokens": 1, "initial_token": str(token)}
        case VirtualNodes(count=count, local_replication_factor=rf):
            return {"num_tokens": count, "allocate_tokens_for_local_replication_factor": rf}


def _commitlog(commitlog: GroupCommit | PeriodicCommit) -> dict[str, object]:
    match commitlog:
        case GroupCommit(window_ms=window):
            return {"commitlog_sync": "group", "commitlog_sync_group_window": f"{window}ms"}
        case PeriodicCommit(period_ms=period):
            return {"commitlog_sync": "periodic", "commitlog_sync_period": f"{period}ms"}


def _footprint(f: Footprint) -> dict[str, object]:
    return {
        "commitlog_segment_size": f"{f.commitlog_segment_mib}MiB",
        "commitlog_total_space": f"{f.commitlog_total_mib}MiB",
        "memtable_heap_space": f"{f.memtable_heap_mib}MiB",
        "memtable_offheap_space": f"{f.memtable_offheap_mib}MiB",
        "memtable_flush_writers": f.memtable_flush_writers,
        "key_cache_size": f"{f.key_cache_mib}MiB",
        "row_cache_size": f"{f.row_cache_mib}MiB",
        "counter_cache_size": f"{f.counter_cache_mib}MiB",
        "prepared_statements_cache_size": f"{f.prepared_statements_cache_mib}MiB",
        "file_cache_size": f"{f.file_cache_mib}MiB",
        "networking_cache_size": f"{f.networking_cache_mib}MiB",
        "index_summary_capacity": f"{f.index_summary_mib}MiB",
        "concurrent_reads": f.concurrent_reads,
        "concurrent_writes": f.concurrent_writes,
        "concurrent_counter_writes": f.concurrent_counter_writes,
        "concurrent_materialized_view_writes": f.concurrent_materialized_view_writes,
        "concurrent_compactors": f.concurrent_compactors,
        "native_transport_max_threads": f.native_transport_max_threads,
    }


def _internode_tls(tls: InternodeTls) -> dict[str, object]:
    return {"server_encryption_options": {
        "internode_encryption": "all",
        "legacy_ssl_storage_port_enabled": False,
        "ssl_context_factory": {
            "class_name": "org.apache.cassandra.security.PEMBasedSslContextFactory"},
        "keystore": tls.keystore,
        "truststore": tls.truststore,
        "require_client_auth": True,
        # Nodes are addressed by IP, which the deployment's certificate does not name; the
        # CA alone admits a peer.
        "require_endpoint_verification": False,
    }}


def render_yaml(node: CassandraNode) -> str:
    """cassandra.yaml for ``node``, as text."""
    doc: dict[str, object] = {
        "cluster_name": node.cluster_name,
        **_tokens(node.tokens),
        "partitioner": PARTITIONER,
        "auto_bootstrap": node.auto_bootstrap,
        "seed_provider": [{
            "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
            "parameters": [{"seeds": ",".join(f"{seed}:{node.storage_port}"
                                              for seed in node.seeds)}],
        }],
        # The datacenter and rack come from cassandra-rackdc.properties (`render_rackdc`).
        "endpoint_snitch": SNITCH,
        # One address for everything: loopback aliases locally, peered VPCs with disjoint
        # ranges in the cloud, so a private address reaches the node from every region.
        "listen_address": node.address,
        "broadcast_address": node.address,
        "rpc_address": node.address,
        "broadcast_rpc_address": node.address,
        "storage_port": node.storage_port,
        "native_transport_port": node.native_port,
        "start_native_transport": True,
        # Open: nodes are reachable only from the cell's gateways and the other datacenters
        # (loopback locally, security groups in the cloud).
        "authenticator": "AllowAllAuthenticator",
        "authorizer": "AllowAllAuthorizer",
        "role_manager": "CassandraRoleManager",
        "network_authorizer": "AllowAllNetworkAuthorizer",
        "data_file_directories": [f"{node.data_dir}/data"],
        "commitlog_directory": f"{node.data_dir}/commitlog",
        "saved_caches_directory": f"{node.data_dir}/saved_caches",
        "hints_directory": f"{node.data_dir}/hints",
        "cdc_raw_directory": f"{node.data_dir}/cdc_raw",
        **_commitlog(node.commitlog),
        **(_footprint(node.footprint) if node.footprint else {}),
        "auto_snapshot": node.auto_snapshot,
        # Hinted handoff stays on: it is what brings a datacenter back in sync after an outage.
        "hinted_handoff_enabled": True,
        **(_internode_tls(node.internode_tls) if node.internode_tls else {}),
    }
    return yaml.safe_dump(doc, sort_keys=False)


def render_rackdc(dc: str, rack: str) -> str:
    """cassandra-rackdc.properties: the node's datacenter (always its region's name, which
    the archive's keyspace and LOCAL_QUORUM name) and its rack."""
    return f"dc={dc}\nrack={rack}\n"
