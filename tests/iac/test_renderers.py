"""Pure renderers of iac/: boot scripts, Cassandra and NATS configs, names."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from chorus.cassandra_conf import render_rackdc, render_yaml
from chorus.config import Config
from chorus.natsconf import render
from iac.bootstrap import cassandra_setup, nats_setup, node_paths, user_data
from iac.cassandra import node_config, seeds
from iac.nats import hub_leaf_urls, hub_servers, region_servers
from iac.security import Ingress
from iac.snapshots import bucket_prefix

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")


def bash_syntax_ok(script: str) -> bool:
    return subprocess.run(["bash", "-n"], input=script, text=True,
                          capture_output=True, check=False).returncode == 0


@needs_bash
@pytest.mark.parametrize("data_volume", [True, False])
def test_user_data_is_valid_bash_and_reads_both_prefixes(data_volume: bool) -> None:
    paths = node_paths("prod", "us-east", "nats", "nats-1")
    script = user_data("nats", "us-east-1", paths, data_volume=data_volume)
    assert bash_syntax_ok(script)
    assert f"chorus-node-sync {paths.common} {paths.node}" in script
    assert ("mkfs.xfs" in script) is data_volume
    assert paths.common == "/chorus/prod/us-east/nats/common"


@needs_bash
def test_setup_scripts_are_valid_bash_and_pin_versions() -> None:
    nats = nats_setup("v2.12.15")
    assert bash_syntax_ok(nats)
    assert "nats-server-v2.12.15-linux-amd64.tar.gz" in nats and "sha256sum -c" in nats
    cassandra = cassandra_setup("5.0.7", 8192)
    assert bash_syntax_ok(cassandra)
    assert "apache-cassandra-5.0.7-bin.tar.gz" in cassandra
    assert "MAX_HEAP_SIZE=8192M" in cassandra


def test_cassandra_yaml_names_the_node_and_every_datacenter_seeds() -> None:
    ips = {"us-east": ("10.10.128.20", "10.10.144.20", "10.10.160.20"),
           "eu-west": ("10.20.128.20", "10.20.144.20", "10.20.160.20")}
    assert seeds(ips) == ("10.10.128.20", "10.10.144.20", "10.20.128.20", "10.20.144.20")
    conf = yaml.safe_load(render_yaml(node_config(
        cluster_name="chorus", address="10.10.144.20", seed_ips=seeds(ips), native_port=9042,
        storage_port=7000)))
    assert conf["listen_address"] == conf["broadcast_address"] == "10.10.144.20"
    assert conf["endpoint_snitch"] == "GossipingPropertyFileSnitch"
    assert conf["seed_provider"][0]["parameters"][0]["seeds"].count(":7000") == 4
    assert conf["server_encryption_options"]["internode_encryption"] == "all"
    assert conf["data_file_directories"] == ["/data/cassandra/data"]
    # Several nodes per datacenter, spread over three AZs: virtual nodes, periodic sync.
    assert conf["num_tokens"] == 16 and "initial_token" not in conf
    assert conf["commitlog_sync"] == "periodic"
    assert render_rackdc("eu-west", "eu-west-1b") == "dc=eu-west\nrack=eu-west-1b\n"


def test_region_servers_cluster_and_join_the_hub_over_tls(repo_regions: Config) -> None:
    region = repo_regions.region("ap-south")
    ips = ("10.30.128.10", "10.30.144.10", "10.30.160.10")
    servers = region_servers(region, ips, hub_leaf_urls(repo_regions.hub),
                             memory_store=1 << 30, file_store=1 << 34)
    assert [s.server_name for s in servers] == [f"ap-south-nats-{i}" for i in range(3)]
    for server in servers:
        assert server.jetstream is not None and server.jetstream.domain == "ap-south"
        assert server.cluster is not None and len(server.cluster.routes) == 3
        assert server.leaf_tls is not None and not server.leaf_tls.verify
        assert server.leaf_remotes == hub_leaf_urls(repo_regions.hub)


def test_hub_servers_demand_client_certificates(repo_regions: Config) -> None:
    (hub, *_rest) = hub_servers(repo_regions.hub, ("10.10.128.30", "10.10.144.30",
                                                   "10.10.160.30"))
    assert hub.jetstream is None
    assert hub.leaf_port == repo_regions.hub.leaf_port
    assert hub.leaf_tls is not None and hub.leaf_tls.verify
    text = render(hub)
    assert f'listen: "0.0.0.0:{repo_regions.hub.leaf_port}"' in text
    assert 'name: "chorus--hub"' in text


def test_bucket_prefix_is_a_valid_s3_prefix() -> None:
    assert bucket_prefix("Prod_EU", "eu-west") == "chorus-prod-eu-eu-west-"
    assert len(bucket_prefix("a" * 40, "ap-south")) == 37


def test_an_ingress_has_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one source"):
        Ingress(4222, "nobody")
    with pytest.raises(ValueError, match="exactly one source"):
        Ingress(4222, "two", cidr="10.0.0.0/8", itself=True)
