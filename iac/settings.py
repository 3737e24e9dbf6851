"""What a stack deploys: regions.yaml plus the stack's own settings, checked in one place.

`__main__.py` reads ``pulumi.Config()`` and hands the raw values to `plan_cells` and
`sizing_from`, which reject bad input with the stack file, the key and the reason (the same
`ConfigError` that regions.yaml's loader raises). The result is one frozen `Deployment` that
the components receive their slices of.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from chorus.config import Config, Region
from chorus.errors import ConfigError
from iac.addressing import MAX_AZS, check_vpc_cidrs

# regions.yaml names -> AWS regions, for the three regions the repository ships; any other
# region needs an entry in the stack's chorus:awsRegions.
DEFAULT_AWS_REGIONS: Mapping[str, str] = {
    "us-east": "us-east-1",
    "eu-west": "eu-west-1",
    "ap-south": "ap-south-1",
}

# Disjoint on purpose: cells are peered. Any other region needs a chorus:vpcCidrs entry.
DEFAULT_VPC_CIDRS: Mapping[str, str] = {
    "us-east": "10.10.0.0/16",
    "eu-west": "10.20.0.0/16",
    "ap-south": "10.30.0.0/16",
}


@dataclass(frozen=True)
class Sizing:
    """Instance types and sizes of a cell; docs/operations.md prices these defaults.

    Override any field with the stack's ``chorus:sizing`` object (snake_case keys).
    """

    gateway_cpu: int = 1024            # Fargate CPU units per task (1024 = 1 vCPU)
    gateway_memory_mib: int = 2048
    gateway_max_tasks: int = 12        # the floor is regions.yaml's `gateways`
    gateway_cpu_target_pct: int = 60   # scale out above this average CPU
    # Scale out when the average task holds this share of limits.max_connections_per_gateway.
    gateway_connection_fill: float = 0.7
    nats_instance_type: str = "m6i.large"
    nats_volume_gib: int = 200         # gp3 per node, JetStream's file store
    nats_memory_store_mib: int = 2048  # JetStream memory store cap per node
    redis_node_type: str = "cache.m7g.large"
    redis_replicas: int = 1            # replicas of the primary, each in another AZ
    cassandra_instance_type: str = "m6i.xlarge"
    cassandra_nodes: int = 3           # per region; keyspace RF 3 with LOCAL_QUORUM
    cassandra_volume_gib: int = 500
    cassandra_heap_mib: int = 8192
    hub_instance_type: str = "m6i.large"


@dataclass(frozen=True)
class Software:
    """Versions the nodes install at boot, and the gateway's container image."""

    gateway_image: str
    nats_version: str = "2.12.15"
    cassandra_version: str = "5.0.7"


@dataclass(frozen=True)
class Dns:
    """Public latency-routed name for clients: ``name`` in the hosted zone ``zone_id``."""

    zone_id: str
    name: str


@dataclass(frozen=True)
class Secrets:
    """Secret stack values (``pulumi config set --secret``), PEM text where it is TLS.

    ``internal_*`` is the deployment's own CA and the one certificate the servers present to
    each other (NATS leaf links, Cassandra internode); iac/scripts/make-internal-tls.sh makes
    them. ``gateway_*`` is the public certificate the gateways terminate TLS with; without it
    the load balancer listens on plain port 80 (development stacks only).
    """

    auth_secret: pulumi.Input[str]
    internal_ca: pulumi.Input[str]
    internal_cert: pulumi.Input[str]
    internal_key: pulumi.Input[str]
    gateway_cert: pulumi.Input[str] | None = None
    gateway_key: pulumi.Input[str] | None = None

    @property
    def gateway_tls(self) -> bool:
        return self.gateway_cert is not None and self.gateway_key is not None


@dataclass(frozen=True)
class CellPlan:
    """One region's cell: its regions.yaml entry, AWS region and VPC range."""

    region: Region
    aws_region: str
    vpc_cidr: str

    @property
    def name(self) -> str:
        return self.region.name


@dataclass(frozen=True)
class Deployment:
    """Everything one stack deploys.

    ``dns`` None: no public DNS records (clients use each region's load balancer name from
    the stack outputs). ``health_path`` is what the load balancer and Route 53 probe on the
    gateways; a region failing it drops out of the DNS answers. ``retiring`` lists regions
    about to be removed: they leave the DNS answers, and their data volumes and load
    balancer lose their protection.
    """

    config: Config
    stack: str
    owner: str
    cells: tuple[CellPlan, ...]
    hub_region: str
    az_count: int
    sizing: Sizing
    software: Software
    secrets: Secrets
    dns: Dns | None = None
    health_path: str = "/healthz"
    # Data volumes are protected: removing a region is a deliberate, documented procedure.
    protect_data: bool = True
    retiring: tuple[str, ...] = ()

    def protects(self, region: str) -> bool:
        return self.protect_data and region not in self.retiring


def plan_cells(config: Config, aws_regions: Mapping[str, str] | None,
               vpc_cidrs: Mapping[str, str] | None, *, source: str) -> tuple[CellPlan, ...]:
    """One `CellPlan` per regions.yaml region, with stack overrides over the defaults.

    Entries for regions that regions.yaml does not list are ignored, so removing a region
    is a one-file change. Raises `ConfigError` naming ``source`` (the stack file).
    """
    regions_map = {**DEFAULT_AWS_REGIONS, **(aws_regions or {})}
    cidr_map = {**DEFAULT_VPC_CIDRS, **(vpc_cidrs or {})}
    cells = []
    seen_aws: dict[str, str] = {}
    for region in config.regions:
        aws_region = regions_map.get(region.name)
        if not aws_region:
            raise ConfigError(source, f"chorus:awsRegions.{region.name}",
                              "missing: map this regions.yaml region to an AWS region")
        if aws_region in seen_aws:
            raise ConfigError(source, f"chorus:awsRegions.{region.name}",
                              f"{aws_region} is already {seen_aws[aws_region]}'s: latency "
                              "routing needs one cell per AWS region")
        seen_aws[aws_region] = region.name
        cidr = cidr_map.get(region.name)
        if not cidr:
            raise ConfigError(source, f"chorus:vpcCidrs.{region.name}",
                              "missing: give this region a private /16../20 range that no "
                              "other region uses")
        cells.append(CellPlan(region=region, aws_region=aws_region, vpc_cidr=cidr))
    for name, reason in check_vpc_cidrs({c.name: c.vpc_cidr for c in cells}):
        raise ConfigError(source, f"chorus:vpcCidrs.{name}", reason)
    return tuple(cells)


def hub_region_of(config: Config, requested: str | None, *, source: str) -> str:
    """The region whose VPC hosts the hub: ``requested``, or regions.yaml's first region."""
    if requested is None:
        return config.regions[0].name
    if requested not in config.region_names:
        raise ConfigError(source, "chorus:hubRegion",
                          f"{requested!r} is not a regions.yaml region "
                          f"({', '.join(config.region_names)})")
    return requested


def az_count_of(value: int, *, source: str) -> int:
    """Availability zones per cell. Three keeps NATS and Cassandra quorums through the loss
    of a zone; two is the least a VPC here spans."""
    if not 2 <= value <= MAX_AZS:
        raise ConfigError(source, "chorus:azCount", f"must be between 2 and {MAX_AZS}")
    return value


def sizing_from(raw: Mapping[str, Any] | None, *, source: str) -> Sizing:
    """`Sizing` defaults overridden by the stack's ``chorus:sizing`` object."""
    sizing = Sizing()
    if not raw:
        return sizing
    fields = {f.name: f for f in dataclasses.fields(Sizing)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(source, f"chorus:sizing.{key}",
                              f"unknown key (allowed: {', '.join(sorted(fields))})")
        expected = type(getattr(sizing, key))
        ok = isinstance(value, expected) and not isinstance(value, bool)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise ConfigError(source, f"chorus:sizing.{key}",
                              f"must be of type {expected.__name__}, not {value!r}")
        if isinstance(value, int | float) and value <= 0:
            raise ConfigError(source, f"chorus:sizing.{key}", "must be greater than 0")
        values[key] = value
    sizing = dataclasses.replace(sizing, **values)
    if not 0 < sizing.gateway_connection_fill <= 1:
        raise ConfigError(source, "chorus:sizing.gateway_connection_fill",
                          "is a share of the per-gateway connection limit: (0, 1]")
    return sizing
