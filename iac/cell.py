"""One region's cell: everything a region needs to serve its viewers on its own.

Built from the region's regions.yaml entry (ports, gateway count, limits) and the stack's
settings. A cell depends on no other cell: the addresses of other regions' nodes that it needs
(Cassandra seeds, the hub) are computed from the address plan, and the links between cells
(VPC peering) belong to the global plane.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi

from chorus.config import Config
from iac.addressing import NATS_HOST, node_ips, node_subnet, subnet_plan
from iac.cassandra import CassandraArgs, CassandraDatacenter
from iac.gateways import Gateways, GatewaysArgs
from iac.nats import NODES, NatsCluster, NatsClusterArgs, TlsFiles, region_servers
from iac.network import Network, NetworkArgs
from iac.nodes import al2023_ami
from iac.redis import Redis, RedisArgs
from iac.security import Ingress, security_group
from iac.settings import CellPlan, Secrets, Sizing, Software
from iac.snapshots import Snapshots, SnapshotsArgs
from iac.tags import Tags

MIB = 1024 * 1024
GIB = 1024 * MIB
# JetStream may fill this share of its volume; the rest absorbs compaction and logs.
FILE_STORE_SHARE = 0.8


@dataclass(frozen=True)
class CellInfraArgs:
    """``cassandra_ips`` holds every region's Cassandra node addresses (for seeds);
    ``peer_cidrs`` are the other cells' VPC ranges; ``hub_urls`` what the leaf links dial."""

    plan: CellPlan
    config: Config
    stack: str
    az_count: int
    sizing: Sizing
    software: Software
    secrets: Secrets
    tags: Tags
    hub_urls: tuple[str, ...]
    cassandra_ips: Mapping[str, tuple[str, ...]]
    peer_cidrs: tuple[str, ...]
    health_path: str
    protect_data: bool = True


class CellInfra(pulumi.ComponentResource):
    """A region's network, gateways, NATS, Redis, Cassandra datacenter and snapshot CDN on
    AWS: the infrastructure a cell runs on (the cell's code is region/).

    Give it the region's provider (``ResourceOptions(providers=[...])``): every child
    inherits it, so the whole cell lands in one AWS region.
    """

    network: Network
    gateways: Gateways
    nats: NatsCluster
    redis: Redis
    cassandra: CassandraDatacenter
    snapshots: Snapshots
    ami_id: pulumi.Output[str]

    def __init__(self, name: str, args: CellInfraArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        # The type token keeps the class's former name: it is part of every child's URN, and
        # a new token would make `pulumi up` replace a deployed stack's resources.
        super().__init__("chorus:iac:Cell", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        region = args.plan.region
        aws_region = args.plan.aws_region
        sizing = args.sizing
        tls = TlsFiles(ca=args.secrets.internal_ca, cert=args.secrets.internal_cert,
                       key=args.secrets.internal_key)
        self.network = Network(name, NetworkArgs(
            aws_region=aws_region, cidr=args.plan.vpc_cidr, az_count=args.az_count,
            tags=args.tags), opts=child)
        net = self.network
        self.ami_id = al2023_ami(self)

        def per_node(count: int) -> tuple[list[pulumi.Output[str]], list[pulumi.Output[str]]]:
            """Subnet and AZ of each of ``count`` nodes, matching `node_ips`."""
            idx = [node_subnet(i, args.az_count) for i in range(count)]
            return ([net.private_subnet_ids[i] for i in idx],
                    [net.availability_zones[i] for i in idx])

        # Made here, before the stores, so that each store can admit the gateways by group.
        gateway_sg = security_group(
            self, f"{name}-gateway-sg", vpc_id=net.vpc_id,
            description="Gateway tasks (ingress added by the load balancer)", ingress=[],
            egress=True, tags=args.tags.of("gateways"))

        nats_ips = node_ips(subnet_plan(args.plan.vpc_cidr, args.az_count).private, NODES,
                            NATS_HOST)
        subnets, zones = per_node(NODES)
        self.nats = NatsCluster(f"{name}-nats", NatsClusterArgs(
            role="nats", stack=args.stack, region=region.name, aws_region=aws_region,
            vpc_id=net.vpc_id,
            servers=region_servers(
                region, nats_ips, args.hub_urls,
                memory_store=sizing.nats_memory_store_mib * MIB,
                file_store=int(sizing.nats_volume_gib * GIB * FILE_STORE_SHARE)),
            private_ips=nats_ips, subnet_ids=subnets, availability_zones=zones,
            ami_id=self.ami_id, instance_type=sizing.nats_instance_type,
            version=args.software.nats_version,
            ingress=[Ingress(region.nats.client_port, "clients from gateways",
                             group=gateway_sg.id),
                     Ingress(region.nats.monitor_port, "monitoring from the vpc",
                             cidr=args.plan.vpc_cidr)],
            tls=tls, tags=args.tags, data_volume_gib=sizing.nats_volume_gib,
            protect_data=args.protect_data), opts=child)

        self.redis = Redis(f"{name}-redis", RedisArgs(
            vpc_id=net.vpc_id, subnet_ids=net.private_subnet_ids,
            client_security_group_id=gateway_sg.id, port=region.redis.port,
            node_type=sizing.redis_node_type, replicas=sizing.redis_replicas,
            tags=args.tags), opts=child)

        cass = args.config.cassandra
        subnets, zones = per_node(sizing.cassandra_nodes)
        self.cassandra = CassandraDatacenter(f"{name}-cassandra", CassandraArgs(
            stack=args.stack, region=region.name, aws_region=aws_region,
            cluster_name=cass.cluster_name, native_port=cass.native_port,
            storage_port=cass.storage_port, ips_by_region=args.cassandra_ips,
            vpc_id=net.vpc_id, subnet_ids=subnets, availability_zones=zones,
            client_security_group_id=gateway_sg.id, peer_cidrs=args.peer_cidrs,
            ami_id=self.ami_id, instance_type=sizing.cassandra_instance_type,
            volume_gib=sizing.cassandra_volume_gib, heap_mib=sizing.cassandra_heap_mib,
            version=args.software.cassandra_version, tls=tls, tags=args.tags,
            protect_data=args.protect_data), opts=child)

        self.snapshots = Snapshots(f"{name}-snapshots", SnapshotsArgs(
            stack=args.stack, region=region.name, tags=args.tags), opts=child)

        self.gateways = Gateways(f"{name}-gateways", GatewaysArgs(
            region=region, limits=args.config.limits, aws_region=aws_region,
            vpc_id=net.vpc_id, public_subnet_ids=net.public_subnet_ids,
            private_subnet_ids=net.private_subnet_ids, security_group_id=gateway_sg.id,
            image=args.software.gateway_image, cpu=sizing.gateway_cpu,
            memory_mib=sizing.gateway_memory_mib, max_tasks=sizing.gateway_max_tasks,
            cpu_target_pct=sizing.gateway_cpu_target_pct,
            connection_fill=sizing.gateway_connection_fill, health_path=args.health_path,
            environment={
                "CHORUS_NATS_URLS": ",".join(self.nats.client_urls),
                "CHORUS_REDIS_URL": self.redis.url,
                "CHORUS_CASSANDRA_CONTACT_POINTS": ",".join(self.cassandra.contact_points),
                "CHORUS_CASSANDRA_PORT": str(cass.native_port),
                "CHORUS_CASSANDRA_DATACENTER": region.name,
                "CHORUS_SNAPSHOT_BUCKET": self.snapshots.bucket_name,
                "CHORUS_SNAPSHOT_URL": self.snapshots.url,
            },
            auth_secret=args.secrets.auth_secret,
            snapshot_bucket_arn=self.snapshots.bucket_arn,
            tls_cert=args.secrets.gateway_cert, tls_key=args.secrets.gateway_key,
            tags=args.tags, protect=args.protect_data), opts=child)

        self.register_outputs({
            "gateway_url": self.gateways.url,
            "nats_urls": list(self.nats.client_urls),
            "redis_endpoint": self.redis.url,
            "cassandra_contact_points": list(self.cassandra.contact_points),
            "snapshots_url": self.snapshots.url,
        })
