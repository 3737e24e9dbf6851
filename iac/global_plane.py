"""The global plane: the hub NATS cluster, the links between cells, and the public name.

- The hub: three NATS servers (no JetStream) in the hub region's VPC, one per AZ. Every
  region's NATS cluster joins it as a leaf over TLS with the internal certificate, at
  ``hub-<i>.chorus.internal`` (a private zone shared by every cell's VPC).
- VPC peering between every pair of cells (Cassandra replication and the leaf links).
- Route 53: one latency record per region under the public name, each with a health check
  of that region's gateways, so a client resolves to the nearest healthy region.

A cell keeps serving its own viewers without the hub; cross-region forwards wait in the
outboxes until it is back (DESIGN.md).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from chorus.config import HubConfig
from iac.addressing import HUB_HOST, node_ips, node_subnet, subnet_plan
from iac.cell import CellInfra
from iac.nats import (
    INTERNAL_ZONE,
    NODES,
    NatsCluster,
    NatsClusterArgs,
    TlsFiles,
    hub_host,
    hub_servers,
)
from iac.peering import Peering, PeeringArgs, PeerSide
from iac.security import Ingress
from iac.settings import CellPlan, Dns
from iac.tags import Tags


@dataclass(frozen=True)
class GlobalPlaneInfraArgs:
    """``cells`` and ``providers`` are keyed by region name; ``dns`` None: no public
    records; ``retiring`` regions get no record, so new clients stop arriving there."""

    stack: str
    hub: HubConfig
    hub_region: str
    az_count: int
    plans: tuple[CellPlan, ...]
    cells: Mapping[str, CellInfra]
    providers: Mapping[str, pulumi.ProviderResource]
    hub_instance_type: str
    nats_version: str
    tls: TlsFiles
    tags: Tags
    dns: Dns | None = None
    health_path: str = "/healthz"
    retiring: tuple[str, ...] = ()


class GlobalPlaneInfra(pulumi.ComponentResource):
    """Hub cluster, peering mesh, private zone, latency records and health checks on AWS: the
    infrastructure the global plane runs on (the plane's code is global_/)."""

    hub_ips: tuple[str, ...]
    public_url: pulumi.Output[str] | None

    def __init__(self, name: str, args: GlobalPlaneInfraArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        # The type token keeps the class's former name: it is part of every child's URN, and
        # a new token would make `pulumi up` replace a deployed stack's resources.
        super().__init__("chorus:iac:GlobalPlane", name, None, opts)
        hub_provider = args.providers[args.hub_region]
        on_hub = pulumi.ResourceOptions(parent=self, provider=hub_provider)
        plans = {p.name: p for p in args.plans}

        for a, b in itertools.combinations(args.plans, 2):
            Peering(f"peer-{a.name}-{b.name}", PeeringArgs(
                requester=self._side(a, args), accepter=self._side(b, args), tags=args.tags),
                opts=pulumi.ResourceOptions(parent=self))

        hub_plan = plans[args.hub_region]
        hub_cell = args.cells[args.hub_region]
        self.hub_ips = node_ips(subnet_plan(hub_plan.vpc_cidr, args.az_count).private, NODES,
                                HUB_HOST)
        idx = [node_subnet(i, args.az_count) for i in range(NODES)]
        NatsCluster("hub", NatsClusterArgs(
            role="hub", stack=args.stack, region=args.hub_region,
            aws_region=hub_plan.aws_region, vpc_id=hub_cell.network.vpc_id,
            servers=hub_servers(args.hub, self.hub_ips), private_ips=self.hub_ips,
            subnet_ids=[hub_cell.network.private_subnet_ids[i] for i in idx],
            availability_zones=[hub_cell.network.availability_zones[i] for i in idx],
            ami_id=hub_cell.ami_id, instance_type=args.hub_instance_type,
            version=args.nats_version,
            ingress=[
                *(Ingress(args.hub.leaf_port, f"leaf links from {p.name}", cidr=p.vpc_cidr)
                  for p in args.plans),
                Ingress(args.hub.client_port, "tools in the hub vpc", cidr=hub_plan.vpc_cidr),
                Ingress(args.hub.monitor_port, "monitoring in the hub vpc",
                        cidr=hub_plan.vpc_cidr),
            ],
            tls=args.tls, tags=args.tags, data_volume_gib=None),
            opts=pulumi.ResourceOptions(parent=self, providers=[hub_provider]))

        zone = aws.route53.Zone(
            "internal", name=INTERNAL_ZONE, comment="Chorus: names inside the cells' VPCs",
            vpcs=[aws.route53.ZoneVpcArgs(vpc_id=args.cells[p.name].network.vpc_id,
                                          vpc_region=p.aws_region) for p in args.plans],
            tags=args.tags.of("dns"), opts=on_hub)
        for i, ip in enumerate(self.hub_ips):
            aws.route53.Record(f"hub-{i}", zone_id=zone.zone_id, name=hub_host(i), type="A",
                               ttl=60, records=[ip], opts=on_hub)

        self.public_url = None
        if args.dns is not None:
            self._latency_records(args, args.dns, on_hub)
        self.register_outputs({"hub_ips": list(self.hub_ips)})

    @staticmethod
    def _side(plan: CellPlan, args: GlobalPlaneInfraArgs) -> PeerSide:
        cell = args.cells[plan.name]
        return PeerSide(region=plan.name, aws_region=plan.aws_region,
                        vpc_id=cell.network.vpc_id, cidr=plan.vpc_cidr,
                        route_table_ids=cell.network.private_route_table_ids,
                        provider=args.providers[plan.name])

    def _latency_records(self, args: GlobalPlaneInfraArgs, dns: Dns,
                         opts: pulumi.ResourceOptions) -> None:
        """One alias record per region, answered only while its health check passes."""
        for plan in args.plans:
            if plan.name in args.retiring:
                continue
            gateways = args.cells[plan.name].gateways
            tls = gateways.listener_port == 443
            check = aws.route53.HealthCheck(
                f"health-{plan.name}", type="HTTPS" if tls else "HTTP",
                fqdn=gateways.dns_name, port=gateways.listener_port,
                resource_path=args.health_path, request_interval=10, failure_threshold=3,
                tags=args.tags.of("dns", f"chorus-{plan.name}"), opts=opts)
            aws.route53.Record(
                f"latency-{plan.name}", zone_id=dns.zone_id, name=dns.name, type="A",
                set_identifier=plan.name,
                latency_routing_policies=[aws.route53.RecordLatencyRoutingPolicyArgs(
                    region=plan.aws_region)],
                aliases=[aws.route53.RecordAliasArgs(
                    name=gateways.dns_name, zone_id=gateways.zone_id,
                    evaluate_target_health=True)],
                health_check_id=check.id, opts=opts)
        tls = all(cell.gateways.listener_port == 443 for cell in args.cells.values())
        self.public_url = pulumi.Output.from_input(
            f"https://{dns.name}" if tls else f"http://{dns.name}")
