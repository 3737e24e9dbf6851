"""The whole deployment: one provider and one `CellInfra` per region, then the
`GlobalPlaneInfra`.

`deploy` is what ``__main__.py`` runs and what the tests run under Pulumi mocks, with a
`Deployment` built from regions.yaml and the stack's settings.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from iac.addressing import CASSANDRA_HOST, node_ips, subnet_plan
from iac.cell import CellInfra, CellInfraArgs
from iac.global_plane import GlobalPlaneInfra, GlobalPlaneInfraArgs
from iac.nats import TlsFiles, hub_leaf_urls
from iac.settings import Deployment
from iac.tags import Tags


@dataclass(frozen=True)
class RegionOutputs:
    """What SREs and clients need of one region (the stack output ``regions.<name>``)."""

    aws_region: str
    gateway_url: pulumi.Output[str]
    nats_urls: tuple[str, ...]
    nats_leaf_urls: tuple[str, ...]
    redis_endpoint: pulumi.Output[str]
    cassandra_contact_points: tuple[str, ...]
    snapshots_url: pulumi.Output[str]

    def as_output(self) -> dict[str, object]:
        return {
            "aws_region": self.aws_region,
            "gateway_url": self.gateway_url,
            "nats_urls": list(self.nats_urls),
            "nats_leaf_urls": list(self.nats_leaf_urls),
            "redis_endpoint": self.redis_endpoint,
            "cassandra_contact_points": list(self.cassandra_contact_points),
            "snapshots_url": self.snapshots_url,
        }


@dataclass(frozen=True)
class Deployed:
    cells: dict[str, CellInfra]
    plane: GlobalPlaneInfra
    regions: dict[str, RegionOutputs]


def deploy(d: Deployment) -> Deployed:
    """Declare every resource of ``d``. Call inside a Pulumi program (or under mocks)."""
    providers = {
        c.name: aws.Provider(f"aws-{c.name}", region=c.aws_region)
        for c in d.cells
    }
    # Every datacenter's addresses are known up front, so cells need not wait on each other.
    cassandra_ips = {
        c.name: node_ips(subnet_plan(c.vpc_cidr, d.az_count).private,
                         d.sizing.cassandra_nodes, CASSANDRA_HOST)
        for c in d.cells
    }
    hub_urls = hub_leaf_urls(d.config.hub)
    cells: dict[str, CellInfra] = {}
    for plan in d.cells:
        cells[plan.name] = CellInfra(plan.name, CellInfraArgs(
            plan=plan, config=d.config, stack=d.stack, az_count=d.az_count, sizing=d.sizing,
            software=d.software, secrets=d.secrets,
            tags=Tags(stack=d.stack, region=plan.name, owner=d.owner),
            hub_urls=hub_urls, cassandra_ips=cassandra_ips,
            peer_cidrs=tuple(c.vpc_cidr for c in d.cells if c.name != plan.name),
            health_path=d.health_path, protect_data=d.protects(plan.name)),
            opts=pulumi.ResourceOptions(providers=[providers[plan.name]]))
    plane = GlobalPlaneInfra("global", GlobalPlaneInfraArgs(
        stack=d.stack, hub=d.config.hub, hub_region=d.hub_region, az_count=d.az_count,
        plans=d.cells, cells=cells, providers=providers,
        hub_instance_type=d.sizing.hub_instance_type, nats_version=d.software.nats_version,
        tls=TlsFiles(ca=d.secrets.internal_ca, cert=d.secrets.internal_cert,
                     key=d.secrets.internal_key),
        tags=Tags(stack=d.stack, region="global", owner=d.owner), dns=d.dns,
        health_path=d.health_path, retiring=d.retiring))
    regions = {
        plan.name: RegionOutputs(
            aws_region=plan.aws_region,
            gateway_url=cells[plan.name].gateways.url,
            nats_urls=cells[plan.name].nats.client_urls,
            nats_leaf_urls=hub_urls,
            redis_endpoint=cells[plan.name].redis.url,
            cassandra_contact_points=cells[plan.name].cassandra.contact_points,
            snapshots_url=cells[plan.name].snapshots.url)
        for plan in d.cells
    }
    return Deployed(cells=cells, plane=plane, regions=regions)
