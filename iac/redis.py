"""A cell's Redis: ElastiCache, a primary and replicas in other AZs with automatic failover.

Encrypted at rest and in transit (clients connect with ``rediss://``), in private subnets,
reachable only from the gateways' security group. Redis holds only what can be rebuilt from
JetStream (DESIGN.md, G1), so no snapshots are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from iac.security import Ingress, security_group
from iac.tags import Tags

ENGINE_VERSION = "7.1"


@dataclass(frozen=True)
class RedisArgs:
    """``port`` is regions.yaml's ``regions.<name>.redis.port``; ``replicas`` >= 1."""

    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    client_security_group_id: pulumi.Input[str]
    port: int
    node_type: str
    replicas: int
    tags: Tags


class Redis(pulumi.ComponentResource):
    """ElastiCache replication group, its subnet group and security group."""

    endpoint: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: RedisArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chorus:iac:Redis", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags.of("redis")
        group = security_group(
            self, f"{name}-sg", vpc_id=args.vpc_id, description="Redis: gateways only",
            ingress=[Ingress(args.port, "from gateways", group=args.client_security_group_id)],
            egress=False, tags=tags)
        subnets = aws.elasticache.SubnetGroup(f"{name}-subnets", subnet_ids=list(args.subnet_ids),
                                              description="Chorus Redis, private subnets",
                                              tags=tags, opts=child)
        replication = aws.elasticache.ReplicationGroup(
            name,
            description="Chorus presence, replay buffer, rate limits, counters",
            engine="redis",
            engine_version=ENGINE_VERSION,
            node_type=args.node_type,
            port=args.port,
            num_cache_clusters=1 + args.replicas,
            automatic_failover_enabled=True,
            multi_az_enabled=True,
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            subnet_group_name=subnets.name,
            security_group_ids=[group.id],
            snapshot_retention_limit=0,
            auto_minor_version_upgrade=True,
            apply_immediately=False,
            tags=tags,
            opts=child)
        self.endpoint = replication.primary_endpoint_address
        self.url = pulumi.Output.concat("rediss://", replication.primary_endpoint_address,
                                        ":", str(args.port), "/0")
        self.register_outputs({"endpoint": self.endpoint, "url": self.url})
