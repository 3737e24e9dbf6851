"""VPC peering between two cells in different AWS regions.

Cells are peered in a full mesh: every Cassandra datacenter replicates to every other, and
every region's NATS reaches the hub. Inter-region peering traffic stays on the AWS backbone
and is encrypted by AWS; Cassandra and NATS add their own TLS on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from iac.tags import Tags


@dataclass(frozen=True)
class PeerSide:
    """One end of a peering: its cell's VPC, range, private route tables and provider."""

    region: str
    aws_region: str
    vpc_id: pulumi.Input[str]
    cidr: str
    route_table_ids: Sequence[pulumi.Input[str]]
    provider: pulumi.ProviderResource


@dataclass(frozen=True)
class PeeringArgs:
    requester: PeerSide
    accepter: PeerSide
    tags: Tags


class Peering(pulumi.ComponentResource):
    """The peering connection, its acceptance, and routes on both sides."""

    def __init__(self, name: str, args: PeeringArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chorus:iac:Peering", name, None, opts)
        a, b = args.requester, args.accepter
        tags = args.tags.of("peering", name)
        on_a = pulumi.ResourceOptions(parent=self, provider=a.provider)
        on_b = pulumi.ResourceOptions(parent=self, provider=b.provider)
        connection = aws.ec2.VpcPeeringConnection(
            name, vpc_id=a.vpc_id, peer_vpc_id=b.vpc_id, peer_region=b.aws_region,
            tags=tags, opts=on_a)
        accepted = aws.ec2.VpcPeeringConnectionAccepter(
            name, vpc_peering_connection_id=connection.id, auto_accept=True, tags=tags,
            opts=on_b)
        for side, other, side_opts in ((a, b, on_a), (b, a, on_b)):
            for i, table in enumerate(side.route_table_ids):
                aws.ec2.Route(
                    f"{name}-{side.region}-{i}", route_table_id=table,
                    destination_cidr_block=other.cidr,
                    vpc_peering_connection_id=accepted.vpc_peering_connection_id,
                    opts=side_opts)
        self.connection_id = connection.id
        self.register_outputs({"connection_id": connection.id})
