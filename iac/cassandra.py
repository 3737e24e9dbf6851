"""A region's Cassandra datacenter, self-managed on EC2 (docs/operations.md says why).

Three nodes, one per AZ (rack = AZ), each with an encrypted gp3 data volume at a fixed
private address. The datacenter is named after the region, as in the local cluster, so the
archive's NetworkTopologyStrategy keyspace and LOCAL_QUORUM work unchanged. Nodes of other
regions reach this one over VPC peering; that traffic is TLS (internode_encryption: all)
with the deployment's internal certificate.

Both files are rendered by `chorus.cassandra_conf`, the code the local cluster uses; only the
values of `node_config` (tokens, seeds, commit log sync, TLS) differ from a local node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi

from chorus.cassandra_conf import (
    CassandraNode,
    InternodeTls,
    PeriodicCommit,
    VirtualNodes,
    render_rackdc,
    render_yaml,
)
from iac.bootstrap import (
    DATA_MOUNT,
    cassandra_setup,
    common_prefix,
    node_paths,
    parameter_prefix,
    user_data,
)
from iac.nats import TlsFiles
from iac.nodes import DataNode, DataNodeArgs, NodeRole, NodeRoleArgs, put_files
from iac.security import Ingress, security_group
from iac.tags import Tags

CONF_DIR = "/etc/cassandra"
TLS_DIR = f"{CONF_DIR}/tls"
DATA_DIR = f"{DATA_MOUNT}/cassandra"
# Seeds per datacenter: two, so that a node can join while one seed is down.
SEEDS_PER_DC = 2


def seeds(ips_by_region: Mapping[str, Sequence[str]]) -> tuple[str, ...]:
    """The seed addresses of the whole cluster: the first nodes of every datacenter."""
    return tuple(ip for ips in ips_by_region.values() for ip in ips[:SEEDS_PER_DC])


def node_config(*, cluster_name: str, address: str, seed_ips: Sequence[str],
                native_port: int, storage_port: int) -> CassandraNode:
    """What `chorus.cassandra_conf` renders for the node at ``address``."""
    return CassandraNode(
        cluster_name=cluster_name, address=address, seeds=tuple(seed_ips),
        native_port=native_port, storage_port=storage_port, data_dir=DATA_DIR,
        # Several nodes per datacenter: tokens are allocated for the datacenter's three
        # replicas, which keeps ownership even as nodes are added.
        tokens=VirtualNodes(count=16, local_replication_factor=3),
        # Cassandra's default, unlike the local cluster's group commit: the archive writes at
        # LOCAL_QUORUM, so a write acknowledged before its fsync is held by two replicas in
        # two AZs, and losing it takes both failing within one period.
        commitlog=PeriodicCommit(period_ms=10_000),
        # A node always restarts on its own volume; a new datacenter is filled by
        # `nodetool rebuild` (docs/operations.md), not by bootstrap streaming.
        auto_bootstrap=False,
        internode_tls=InternodeTls(keystore=f"{TLS_DIR}/node.pem",
                                   truststore=f"{TLS_DIR}/ca.pem"),
    )


@dataclass(frozen=True)
class CassandraArgs:
    """The datacenter of ``region``. ``ips_by_region`` holds every datacenter's node
    addresses (seeds come from all of them); node ``i`` runs in ``subnet_ids[i]`` and
    ``availability_zones[i]``; ``peer_cidrs`` are the other cells' VPCs."""

    stack: str
    region: str
    aws_region: str
    cluster_name: str
    native_port: int
    storage_port: int
    ips_by_region: Mapping[str, tuple[str, ...]]
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    availability_zones: Sequence[pulumi.Input[str]]
    client_security_group_id: pulumi.Input[str]
    peer_cidrs: Sequence[str]
    ami_id: pulumi.Input[str]
    instance_type: str
    volume_gib: int
    heap_mib: int
    version: str
    tls: TlsFiles
    tags: Tags
    protect_data: bool = True


class CassandraDatacenter(pulumi.ComponentResource):
    """One datacenter of the archive's cluster: nodes, security group, role, configs."""

    contact_points: tuple[str, ...]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: CassandraArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chorus:iac:CassandraDatacenter", name, None, opts)
        tags = args.tags.of("cassandra")
        ips = args.ips_by_region[args.region]
        group = security_group(
            self, f"{name}-sg", vpc_id=args.vpc_id,
            description="Cassandra: CQL from gateways, internode from the cluster",
            ingress=[
                Ingress(args.native_port, "cql from gateways",
                        group=args.client_security_group_id),
                Ingress(args.storage_port, "internode in this dc", itself=True),
                *(Ingress(args.storage_port, f"internode from {cidr}", cidr=cidr)
                  for cidr in args.peer_cidrs),
            ],
            egress=True, tags=tags)
        role = NodeRole(f"{name}-role", NodeRoleArgs(
            aws_region=args.aws_region,
            prefix=parameter_prefix(args.stack, args.region, "cassandra"), tags=tags),
            opts=pulumi.ResourceOptions(parent=self))
        put_files(self, f"{name}-common", common_prefix(args.stack, args.region, "cassandra"), {
            "/opt/chorus/setup.sh": cassandra_setup(args.version, args.heap_mib),
            f"{TLS_DIR}/ca.pem": args.tls.ca,
            f"{TLS_DIR}/node.pem": pulumi.Output.concat(args.tls.key, "\n", args.tls.cert),
        }, tags)
        seed_ips = seeds(args.ips_by_region)
        for i, ip in enumerate(ips):
            node = f"cassandra-{i}"
            paths = node_paths(args.stack, args.region, "cassandra", node)
            az = args.availability_zones[i]
            put_files(self, f"{name}-{i}", paths.node, {
                f"{CONF_DIR}/cassandra.yaml": render_yaml(node_config(
                    cluster_name=args.cluster_name, address=ip, seed_ips=seed_ips,
                    native_port=args.native_port, storage_port=args.storage_port)),
                # rack = availability zone, so each replica of a datacenter lands in its own.
                f"{CONF_DIR}/cassandra-rackdc.properties": pulumi.Output.from_input(az).apply(
                    lambda zone: render_rackdc(args.region, zone)),
            }, tags)
            DataNode(f"{name}-{i}", DataNodeArgs(
                subnet_id=args.subnet_ids[i], availability_zone=az, private_ip=ip,
                instance_type=args.instance_type, ami_id=args.ami_id,
                security_group_ids=[group.id], instance_profile=role.profile_name,
                user_data=user_data("cassandra", args.aws_region, paths, data_volume=True),
                tags={**tags, "Name": f"{args.region}-{node}", "node": node},
                data_volume_gib=args.volume_gib, protect_data=args.protect_data),
                opts=pulumi.ResourceOptions(parent=self))
        self.contact_points = ips
        self.security_group_id = group.id
        self.register_outputs({"contact_points": list(ips)})
