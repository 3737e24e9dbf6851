"""The address plan of a cell: subnets and the fixed private addresses of stateful nodes.

Pure: no Pulumi, no I/O. Stateful nodes (NATS, Cassandra, the hub) get fixed private IPs
computed from the VPC CIDR, so that every cell can name every other cell's nodes (NATS
routes, Cassandra seeds, leaf remotes) without a dependency between cells, and so that a
replaced instance comes back with the address its peers already know.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

# Host numbers inside each private subnet. AWS reserves .0-.3 and the last address.
NATS_HOST = 10
CASSANDRA_HOST = 20
HUB_HOST = 30

# A VPC is cut into 16 equal subnets: the first az_count are public, those from index 8 on
# are private. 16 leaves room to add AZs later without renumbering.
_SPLIT_BITS = 4
_PRIVATE_START = 8
MAX_AZS = 8


@dataclass(frozen=True)
class SubnetPlan:
    """CIDRs of the public and private subnets, one of each per availability zone."""

    public: tuple[str, ...]
    private: tuple[str, ...]


def subnet_plan(vpc_cidr: str, az_count: int) -> SubnetPlan:
    """Subnets of ``vpc_cidr`` for ``az_count`` zones (2..8). Raises `ValueError`."""
    if not 2 <= az_count <= MAX_AZS:
        raise ValueError(f"az_count must be between 2 and {MAX_AZS}, not {az_count}")
    vpc = ipaddress.ip_network(vpc_cidr)
    subnets = list(vpc.subnets(prefixlen_diff=_SPLIT_BITS))
    public = tuple(str(s) for s in subnets[:az_count])
    private = tuple(str(s) for s in subnets[_PRIVATE_START:_PRIVATE_START + az_count])
    return SubnetPlan(public=public, private=private)


def node_ips(private_subnets: tuple[str, ...], count: int, host: int) -> tuple[str, ...]:
    """Addresses of ``count`` nodes spread round-robin over the private subnets (one AZ each).

    Node ``i`` lives in subnet ``i % len(subnets)`` at host number ``host + i // len(subnets)``.
    """
    nets = [ipaddress.ip_network(s) for s in private_subnets]
    return tuple(str(nets[i % len(nets)][host + i // len(nets)]) for i in range(count))


def node_subnet(i: int, az_count: int) -> int:
    """Index of the private subnet (and AZ) that node ``i`` lives in; see `node_ips`."""
    return i % az_count


def check_vpc_cidrs(cidrs: Mapping[str, str]) -> list[tuple[str, str]]:
    """Problems with a region -> VPC CIDR mapping, as (region, reason); empty when fine.

    Cells are joined by VPC peering (Cassandra replication, leaf links to the hub), and peered
    VPCs must not overlap. A /20 is the smallest VPC that still leaves /24 subnets.
    """
    problems: list[tuple[str, str]] = []
    nets: dict[str, ipaddress.IPv4Network] = {}
    for region, cidr in cidrs.items():
        try:
            net = ipaddress.ip_network(cidr)
        except ValueError as exc:
            problems.append((region, f"not a network: {exc}"))
            continue
        if not isinstance(net, ipaddress.IPv4Network) or not net.is_private:
            problems.append((region, f"{cidr} is not a private IPv4 network"))
            continue
        if not 16 <= net.prefixlen <= 20:
            problems.append((region, f"{cidr}: the prefix must be between /16 and /20"))
            continue
        for other, other_net in nets.items():
            if net.overlaps(other_net):
                problems.append((region, f"{cidr} overlaps {other}'s {other_net}: peered "
                                         "VPCs need disjoint ranges"))
        nets[region] = net
    return problems
