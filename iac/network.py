"""A cell's VPC: public and private subnets over several availability zones.

Public subnets hold only the load balancer and the NAT gateways; every server (gateways,
NATS, Redis, Cassandra) lives in the private subnets and reaches out through its AZ's NAT
gateway, so losing one AZ leaves the others' egress intact.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from iac.addressing import subnet_plan
from iac.tags import Tags


@dataclass(frozen=True)
class NetworkArgs:
    aws_region: str
    cidr: str
    az_count: int
    tags: Tags


class Network(pulumi.ComponentResource):
    """VPC, subnets, internet and NAT gateways, route tables, and an S3 endpoint."""

    vpc_id: pulumi.Output[str]
    cidr: str
    availability_zones: list[pulumi.Output[str]]
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    private_subnet_cidrs: tuple[str, ...]
    private_route_table_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, args: NetworkArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chorus:iac:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        plan = subnet_plan(args.cidr, args.az_count)
        tags = args.tags.of("network")
        # Local Zones and Wavelength zones have no ElastiCache or NLB: regular AZs only.
        zones = aws.get_availability_zones_output(
            state="available",
            filters=[{"name": "opt-in-status", "values": ["opt-in-not-required"]}],
            opts=pulumi.InvokeOutputOptions(parent=self))
        vpc = aws.ec2.Vpc(f"{name}-vpc", cidr_block=args.cidr, enable_dns_support=True,
                          enable_dns_hostnames=True, tags={**tags, "Name": name}, opts=child)
        igw = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, tags=tags, opts=child)
        public_rt = aws.ec2.RouteTable(f"{name}-public", vpc_id=vpc.id,
                                       tags={**tags, "Name": f"{name}-public"}, opts=child)
        aws.ec2.Route(f"{name}-public-default", route_table_id=public_rt.id,
                      destination_cidr_block="0.0.0.0/0", gateway_id=igw.id, opts=child)
        self.availability_zones = []
        self.public_subnet_ids = []
        self.private_subnet_ids = []
        self.private_route_table_ids = []
        for i, (public_cidr, private_cidr) in enumerate(zip(plan.public, plan.private,
                                                            strict=True)):
            az = zones.names[i]
            public = aws.ec2.Subnet(
                f"{name}-public-{i}", vpc_id=vpc.id, cidr_block=public_cidr,
                availability_zone=az, map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{name}-public-{i}", "tier": "public"}, opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-public-{i}", subnet_id=public.id,
                                          route_table_id=public_rt.id, opts=child)
            eip = aws.ec2.Eip(f"{name}-nat-{i}", domain="vpc", tags=tags, opts=child)
            nat = aws.ec2.NatGateway(
                f"{name}-nat-{i}", subnet_id=public.id, allocation_id=eip.id,
                tags={**tags, "Name": f"{name}-nat-{i}"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]))
            private = aws.ec2.Subnet(
                f"{name}-private-{i}", vpc_id=vpc.id, cidr_block=private_cidr,
                availability_zone=az, map_public_ip_on_launch=False,
                tags={**tags, "Name": f"{name}-private-{i}", "tier": "private"}, opts=child)
            private_rt = aws.ec2.RouteTable(f"{name}-private-{i}", vpc_id=vpc.id,
                                            tags={**tags, "Name": f"{name}-private-{i}"},
                                            opts=child)
            aws.ec2.Route(f"{name}-private-{i}-default", route_table_id=private_rt.id,
                          destination_cidr_block="0.0.0.0/0", nat_gateway_id=nat.id,
                          opts=child)
            aws.ec2.RouteTableAssociation(f"{name}-private-{i}", subnet_id=private.id,
                                          route_table_id=private_rt.id, opts=child)
            self.availability_zones.append(az)
            self.public_subnet_ids.append(public.id)
            self.private_subnet_ids.append(private.id)
            self.private_route_table_ids.append(private_rt.id)
        # Snapshot uploads go to S3 through this free endpoint rather than the NAT gateways.
        aws.ec2.VpcEndpoint(
            f"{name}-s3", vpc_id=vpc.id, vpc_endpoint_type="Gateway",
            service_name=f"com.amazonaws.{args.aws_region}.s3",
            route_table_ids=self.private_route_table_ids, tags=tags, opts=child)
        self.vpc_id = vpc.id
        self.cidr = args.cidr
        self.private_subnet_cidrs = plan.private
        self.register_outputs({"vpc_id": vpc.id, "private_subnet_ids": self.private_subnet_ids})
