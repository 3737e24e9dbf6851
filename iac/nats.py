"""NATS on EC2: a region's three-node JetStream cluster, and the hub of the global plane.

Configs are rendered by `chorus.natsconf.render`, the code the local cluster uses, from
`NatsServer` values built here; only the addresses, the cluster routes and TLS differ from a
local run. JetStream keeps its store on each node's own EBS volume: NATS advises against
network file systems for it, and Fargate tasks have no volume that survives them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from chorus.config import HubConfig, Region
from chorus.natsconf import NatsServer, Routes, Tls, hub_server, region_server, render
from iac.bootstrap import (
    DATA_MOUNT,
    common_prefix,
    nats_setup,
    node_paths,
    parameter_prefix,
    user_data,
)
from iac.nodes import DataNode, DataNodeArgs, NodeRole, NodeRoleArgs, put_files
from iac.security import Ingress, security_group
from iac.tags import Tags

# Three servers: JetStream's RAFT groups keep a quorum when one node or one AZ is lost.
NODES = 3
ROUTE_PORT = 6222
CONF_PATH = "/etc/nats/nats.conf"
TLS_DIR = "/etc/nats/tls"
STORE_DIR = f"{DATA_MOUNT}/jetstream"
# Private DNS zone shared by every cell's VPC; the internal certificate covers *.<zone>.
INTERNAL_ZONE = "chorus.internal"


@dataclass(frozen=True)
class TlsFiles:
    """PEM contents of the deployment's internal CA, certificate and key."""

    ca: pulumi.Input[str]
    cert: pulumi.Input[str]
    key: pulumi.Input[str]


def internal_tls(*, verify: bool) -> Tls:
    """Where the nodes keep the internal certificate; ``verify`` demands one from peers."""
    return Tls(cert_file=f"{TLS_DIR}/cert.pem", key_file=f"{TLS_DIR}/key.pem",
               ca_file=f"{TLS_DIR}/ca.pem", verify=verify)


def hub_host(i: int) -> str:
    return f"hub-{i}.{INTERNAL_ZONE}"


def hub_leaf_urls(hub: HubConfig, count: int = NODES) -> tuple[str, ...]:
    """What every region's servers dial: each hub node by name, so TLS can verify it."""
    return tuple(f"tls://{hub_host(i)}:{hub.leaf_port}" for i in range(count))


def _routes(name: str, ips: Sequence[str]) -> Routes:
    return Routes(name=name, port=ROUTE_PORT, routes=tuple(f"nats://{ip}:{ROUTE_PORT}"
                                                           for ip in ips))


def region_servers(region: Region, ips: Sequence[str], hub_urls: tuple[str, ...], *,
                   memory_store: int, file_store: int) -> tuple[NatsServer, ...]:
    """The region's servers: JetStream in domain = region name, clustered over ``ips``, each
    a leaf of the hub over TLS. Sizes in bytes."""
    routes = _routes(f"chorus-{region.name}", ips)
    return tuple(
        dataclasses.replace(
            region_server(f"{region.name}-nats-{i}", region.name, "0.0.0.0",
                          region.nats.client_port, region.nats.monitor_port, STORE_DIR,
                          hub_urls, max_memory_store=memory_store, max_file_store=file_store),
            leaf_tls=internal_tls(verify=False), cluster=routes)
        for i in range(len(ips)))


def hub_servers(hub: HubConfig, ips: Sequence[str]) -> tuple[NatsServer, ...]:
    """The hub's servers: no JetStream, a leafnode listener that demands the internal
    certificate (only cells connect), clustered over ``ips``."""
    # "--" cannot occur in "chorus-<region>", so the hub's name never equals a region's.
    routes = _routes("chorus--hub", ips)
    return tuple(
        dataclasses.replace(
            hub_server(f"hub-{i}", "0.0.0.0", hub.client_port, hub.leaf_port,
                       hub.monitor_port),
            leaf_tls=internal_tls(verify=True), cluster=routes)
        for i in range(len(ips)))


@dataclass(frozen=True)
class NatsClusterArgs:
    """One NATS cluster. ``servers[i]`` runs on ``private_ips[i]`` in ``subnet_ids[i]``.

    ``role`` names it in SSM paths and tags ("nats" in a cell, "hub" for the global plane);
    ``ingress`` lists who may reach it besides the cluster's own route connections;
    ``data_volume_gib`` None: no data volume (the hub keeps no state).
    """

    role: str
    stack: str
    region: str
    aws_region: str
    vpc_id: pulumi.Input[str]
    servers: tuple[NatsServer, ...]
    private_ips: tuple[str, ...]
    subnet_ids: Sequence[pulumi.Input[str]]
    availability_zones: Sequence[pulumi.Input[str]]
    ami_id: pulumi.Input[str]
    instance_type: str
    version: str
    ingress: Sequence[Ingress]
    tls: TlsFiles
    tags: Tags
    data_volume_gib: int | None = None
    protect_data: bool = True


class NatsCluster(pulumi.ComponentResource):
    """NATS servers on EC2, their security group, role and SSM-stored configs."""

    client_urls: tuple[str, ...]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: NatsClusterArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chorus:iac:NatsCluster", name, None, opts)
        if not (len(args.servers) == len(args.private_ips) == len(args.subnet_ids)):
            raise ValueError("servers, private_ips and subnet_ids must line up")
        tags = args.tags.of(args.role)
        first = args.servers[0]
        ports = [first.client_port, first.monitor_port]
        if first.leaf_port is not None:
            ports.append(first.leaf_port)
        group = security_group(
            self, f"{name}-sg", vpc_id=args.vpc_id,
            description=f"NATS {args.role}: ports {sorted(ports)} and routes",
            ingress=[Ingress(ROUTE_PORT, "routes between nodes", itself=True),
                     *args.ingress],
            egress=True, tags=tags)
        role = NodeRole(f"{name}-role", NodeRoleArgs(
            aws_region=args.aws_region,
            prefix=parameter_prefix(args.stack, args.region, args.role), tags=tags),
            opts=pulumi.ResourceOptions(parent=self))
        put_files(self, f"{name}-common", common_prefix(args.stack, args.region, args.role), {
            "/opt/chorus/setup.sh": nats_setup(args.version),
            f"{TLS_DIR}/ca.pem": args.tls.ca,
            f"{TLS_DIR}/cert.pem": args.tls.cert,
            f"{TLS_DIR}/key.pem": args.tls.key,
        }, tags)
        for i, (server, ip) in enumerate(zip(args.servers, args.private_ips, strict=True)):
            node = f"{args.role}-{i}"
            paths = node_paths(args.stack, args.region, args.role, node)
            put_files(self, f"{name}-{i}", paths.node, {CONF_PATH: render(server)}, tags)
            DataNode(f"{name}-{i}", DataNodeArgs(
                subnet_id=args.subnet_ids[i], availability_zone=args.availability_zones[i],
                private_ip=ip, instance_type=args.instance_type, ami_id=args.ami_id,
                security_group_ids=[group.id], instance_profile=role.profile_name,
                user_data=user_data(args.role, args.aws_region, paths,
                                    data_volume=args.data_volume_gib is not None),
                tags={**tags, "Name": server.server_name, "node": node},
                data_volume_gib=args.data_volume_gib, protect_data=args.protect_data),
                opts=pulumi.ResourceOptions(parent=self))
        self.client_urls = tuple(f"nats://{ip}:{first.client_port}" for ip in args.private_ips)
        self.security_group_id = group.id
        self.register_outputs({"client_urls": list(self.client_urls)})
