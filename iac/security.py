"""Security groups built from a short list of allowed flows.

Each part of a cell declares who may reach which of its ports (`Ingress`); nothing else gets
in. Rules are separate `aws.vpc.SecurityGroupIngressRule` resources, so adding a region's
CIDR to a rule list changes one rule instead of rewriting the group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

# The only flows open to the internet are the load balancer's listeners; a policy in
# iac/policy enforces that nothing else is.
ANYWHERE = "0.0.0.0/0"


@dataclass(frozen=True)
class Ingress:
    """One allowed flow to ``port`` (through ``to_port`` when a range).

    Exactly one source: ``group`` (a security group id), ``cidr``, or ``itself`` (members of
    the same group, e.g. NATS route connections between a cluster's nodes).
    """

    port: int
    description: str
    group: pulumi.Input[str] | None = None
    cidr: str | None = None
    itself: bool = False
    to_port: int | None = None

    def __post_init__(self) -> None:
        sources = (self.group is not None) + (self.cidr is not None) + self.itself
        if sources != 1:
            raise ValueError(f"ingress {self.description!r}: give exactly one source")


def security_group(owner: pulumi.Resource, name: str, *, vpc_id: pulumi.Input[str],
                   description: str, ingress: Sequence[Ingress], egress: bool,
                   tags: dict[str, str]) -> aws.ec2.SecurityGroup:
    """A group that admits ``ingress`` only; ``egress`` False also forbids outbound traffic
    (a managed data store that never opens connections)."""
    child = pulumi.ResourceOptions(parent=owner)
    group = aws.ec2.SecurityGroup(name, vpc_id=vpc_id, description=description,
                                  tags={**tags, "Name": name}, opts=child)
    for rule in ingress:
        slug = rule.description.lower().replace(" ", "-")
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-in-{rule.port}-{slug}",
            security_group_id=group.id,
            ip_protocol="tcp",
            from_port=rule.port,
            to_port=rule.to_port if rule.to_port is not None else rule.port,
            referenced_security_group_id=group.id if rule.itself else rule.group,
            cidr_ipv4=rule.cidr,
            description=rule.description,
            tags=tags,
            opts=child)
    if egress:
        aws.vpc.SecurityGroupEgressRule(f"{name}-out", security_group_id=group.id,
                                        ip_protocol="-1", cidr_ipv4=ANYWHERE,
                                        description="outbound", tags=tags, opts=child)
    return group
