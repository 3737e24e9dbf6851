"""cassandra.yaml and cassandra-rackdc.properties from plain values, and the local cluster's
node values (chorus/cluster/cassandra.py). The cloud's are tested in tests/iac."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import yaml

from chorus.cassandra_conf import (
    CassandraNode,
    GroupCommit,
    InitialToken,
    InternodeTls,
    PeriodicCommit,
    VirtualNodes,
    render_rackdc,
    render_yaml,
)
from chorus.cluster.cassandra import initial_token, node_config
from chorus.config import load_config

ROOT = Path(__file__).resolve().parents[2]

PLAIN = CassandraNode(
    cluster_name="c", address="10.0.0.5", seeds=("10.0.0.5", "10.1.0.5"), native_port=9042,
    storage_port=7000, data_dir="/var/lib/c", tokens=InitialToken(42),
    commitlog=PeriodicCommit(period_ms=10_000), auto_bootstrap=False)


def test_one_address_for_every_role_and_seeds_on_the_storage_port() -> None:
    conf = yaml.safe_load(render_yaml(PLAIN))
    assert {conf[k] for k in ("listen_address", "broadcast_address", "rpc_address",
                              "broadcast_rpc_address")} == {"10.0.0.5"}
    assert conf["seed_provider"][0]["parameters"][0]["seeds"] == "10.0.0.5:7000,10.1.0.5:7000"
    assert conf["endpoint_snitch"] == "GossipingPropertyFileSnitch"
    assert conf["commitlog_directory"] == "/var/lib/c/commitlog"
    assert conf["hinted_handoff_enabled"] is True


def test_defaults_leave_cassandra_s_own_sizes_and_plain_internode_traffic() -> None:
    conf = yaml.safe_load(render_yaml(PLAIN))
    assert "concurrent_writes" not in conf and "memtable_heap_space" not in conf
    assert "server_encryption_options" not in conf
    assert conf["auto_snapshot"] is True


def test_tokens_and_commit_log_follow_their_kind() -> None:
    one = yaml.safe_load(render_yaml(PLAIN))
    assert (one["num_tokens"], one["initial_token"]) == (1, "42")
    assert (one["commitlog_sync"], one["commitlog_sync_period"]) == ("periodic", "10000ms")
    vnodes = yaml.safe_load(render_yaml(replace(
        PLAIN, tokens=VirtualNodes(count=16, local_replication_factor=3),
        commitlog=GroupCommit(window_ms=10))))
    assert vnodes["num_tokens"] == 16 and "initial_token" not in vnodes
    assert vnodes["allocate_tokens_for_local_replication_factor"] == 3
    assert (vnodes["commitlog_sync"], vnodes["commitlog_sync_group_window"]) == ("group", "10ms")
    assert "commitlog_sync_period" not in vnodes


def test_internode_tls_demands_peer_certificates() -> None:
    tls = yaml.safe_load(render_yaml(replace(
        PLAIN, internode_tls=InternodeTls("/tls/node.pem", "/tls/ca.pem"))))
    options = tls["server_encryption_options"]
    assert options["internode_encryption"] == "all" and options["require_client_auth"]
    assert (options["keystore"], options["truststore"]) == ("/tls/node.pem", "/tls/ca.pem")


def test_rackdc_names_the_datacenter_and_rack() -> None:
    assert render_rackdc("eu-west", "rack1") == "dc=eu-west\nrack=rack1\n"


def test_local_nodes_share_one_seed_and_split_the_ring_evenly(tmp_path: Path) -> None:
    config = load_config(ROOT / "regions.yaml")
    nodes = [node_config(config, r, data_dir=tmp_path / r.name) for r in config.regions]
    assert {n.seeds for n in nodes} == {(config.regions[0].cassandra.address,)}
    assert [n.tokens for n in nodes] == [InitialToken(initial_token(i, len(nodes)))
                                         for i in range(len(nodes))]
    conf = yaml.safe_load(render_yaml(nodes[1]))
    assert conf["listen_address"] == config.regions[1].cassandra.address
    assert conf["data_file_directories"] == [str(tmp_path / config.regions[1].name / "data")]
    # A kill -9 must not take an acknowledged write: group commit, not periodic.
    assert conf["commitlog_sync"] == "group"
    assert conf["auto_snapshot"] is False and conf["concurrent_writes"] == 32


def test_initial_tokens_are_slice_middles_inside_the_ring() -> None:
    tokens = [initial_token(i, 3) for i in range(3)]
    assert tokens == sorted(tokens) and -(2**63) < tokens[0] and tokens[-1] < 2**63
