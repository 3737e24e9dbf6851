"""Chorus's guardrails as CrossGuard policies, checked on every preview and update.

- ``no-public-data-stores``: nodes get no public IP, data stores sit in private subnets behind
  security groups, and nothing but the load balancer's 80/443 is open to the internet.
- ``encryption-at-rest-and-in-transit``: volumes, Redis, TLS material in SSM, the CDN.
- ``required-tags``: every taggable resource carries the Chorus tags.
- ``long-lived-connections``: load balancer idle timeouts of at least an hour.
- ``s3-buckets-private-and-encrypted``: every bucket has a full public access block and
  default encryption (a stack policy: those are separate resources).

Self-contained on purpose (only `pulumi_policy`), so the pack can be published on its own.
Each validate function is unit-tested directly in tests/iac/test_policies.py; `PolicyPack`
itself lives in ``__main__.py`` because constructing it starts a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

# Kept equal to iac/tags.py's REQUIRED_TAGS by a test.
REQUIRED_TAGS: tuple[str, ...] = ("project", "stack", "chorus-region", "component",
                                  "managed-by", "owner")

# Resource types Chorus creates that accept tags; a test checks that the program creates no
# taggable type missing from this list.
TAGGABLE: frozenset[str] = frozenset({
    "aws:appautoscaling/target:Target",
    "aws:cloudfront/distribution:Distribution",
    "aws:cloudwatch/logGroup:LogGroup",
    "aws:ebs/volume:Volume",
    "aws:ec2/eip:Eip",
    "aws:ec2/instance:Instance",
    "aws:ec2/internetGateway:InternetGateway",
    "aws:ec2/natGateway:NatGateway",
    "aws:ec2/routeTable:RouteTable",
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/subnet:Subnet",
    "aws:ec2/vpc:Vpc",
    "aws:ec2/vpcEndpoint:VpcEndpoint",
    "aws:ec2/vpcPeeringConnection:VpcPeeringConnection",
    "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter",
    "aws:ecs/cluster:Cluster",
    "aws:ecs/service:Service",
    "aws:ecs/taskDefinition:TaskDefinition",
    "aws:elasticache/replicationGroup:ReplicationGroup",
    "aws:elasticache/subnetGroup:SubnetGroup",
    "aws:iam/instanceProfile:InstanceProfile",
    "aws:iam/role:Role",
    "aws:lb/listener:Listener",
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:lb/targetGroup:TargetGroup",
    "aws:route53/healthCheck:HealthCheck",
    "aws:route53/zone:Zone",
    "aws:s3/bucket:Bucket",
    "aws:secretsmanager/secret:Secret",
    "aws:ssm/parameter:Parameter",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
})

# The only ports that may be open to the whole internet: the gateways' listener.
PUBLIC_PORTS = frozenset({80, 443})
WORLD = frozenset({"0.0.0.0/0", "::/0"})
# Viewers hold a connection for a whole stream; an hour of silence is the floor.
MIN_IDLE_TIMEOUT_S = 3600
HTTPS_ONLY = frozenset({"https-only", "redirect-to-https"})

INSTANCE = "aws:ec2/instance:Instance"
SUBNET = "aws:ec2/subnet:Subnet"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_ENCRYPTION = ("aws:s3/bucketServerSideEncryptionConfiguration:"
                     "BucketServerSideEncryptionConfiguration")
VOLUME = "aws:ebs/volume:Volume"
PARAMETER = "aws:ssm/parameter:Parameter"
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
LISTENER = "aws:lb/listener:Listener"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                "restrictPublicBuckets")
PUBLIC_ACLS = frozenset({"public-read", "public-read-write", "authenticated-read"})


def _port(value: Any) -> int | None:
    # Numbers arrive as floats from the engine.
    return int(value) if isinstance(value, int | float) else None


def _world_open(rule: Mapping[str, Any]) -> str | None:
    """Why an ingress rule (a standalone rule's props or an inline rule) is too open."""
    cidrs = set(rule.get("cidrBlocks") or []) | set(rule.get("ipv6CidrBlocks") or [])
    for key in ("cidrIpv4", "cidrIpv6"):
        if rule.get(key):
            cidrs.add(rule[key])
    if not cidrs & WORLD:
        return None
    low, high = _port(rule.get("fromPort")), _port(rule.get("toPort"))
    protocol = str(rule.get("ipProtocol", rule.get("protocol", "tcp")))
    if protocol == "-1" or low is None or low != high or low not in PUBLIC_PORTS:
        return (f"ingress from the internet to port(s) {low}-{high}/{protocol}: only "
                f"{sorted(PUBLIC_PORTS)} may be open to the world")
    return None


def validate_no_public_data_stores(args: ResourceValidationArgs,
                                   report_violation: ReportViolation) -> None:
    props = args.props
    kind = args.resource_type
    if kind == INSTANCE and props.get("associatePublicIpAddress") is not False:
        report_violation("Chorus instances hold data (NATS, Cassandra, hub): set "
                         "associatePublicIpAddress to false", None)
    elif kind == SUBNET and props.get("mapPublicIpOnLaunch") is True:
        report_violation("subnets must not hand out public IPs on launch", None)
    elif kind == REDIS:
        if not props.get("subnetGroupName"):
            report_violation("Redis must live in a subnet group of private subnets", None)
        if not props.get("securityGroupIds"):
            report_violation("Redis must have its own security group", None)
    elif kind == INGRESS_RULE:
        reason = _world_open(props)
        if reason:
            report_violation(reason, None)
    elif kind == SECURITY_GROUP:
        for rule in props.get("ingress") or []:
            reason = _world_open(rule)
            if reason:
                report_violation(reason, None)
    elif kind == ACCESS_BLOCK:
        off = [flag for flag in ACCESS_FLAGS if props.get(flag) is not True]
        if off:
            report_violation(f"the public access block must set {', '.join(off)}", None)
    elif kind == BUCKET and props.get("acl") in PUBLIC_ACLS:
        report_violation(f"bucket ACL {props.get('acl')!r} makes objects public", None)


def validate_encryption(args: ResourceValidationArgs,
                        report_violation: ReportViolation) -> None:
    props = args.props
    kind = args.resource_type
    if kind == VOLUME and props.get("encrypted") is not True:
        report_violation("EBS volumes must be encrypted", None)
    elif kind == INSTANCE:
        root = props.get("rootBlockDevice") or {}
        if root.get("encrypted") is not True:
            report_violation("the root volume must be encrypted (rootBlockDevice.encrypted)",
                             None)
    elif kind == REDIS:
        for flag in ("atRestEncryptionEnabled", "transitEncryptionEnabled"):
            if props.get(flag) is not True:
                report_violation(f"Redis must set {flag}", None)
    elif kind == PARAMETER and "/tls/" in str(props.get("name", "")):
        if props.get("type") != "SecureString":
            report_violation("TLS material in SSM must be a SecureString", None)
    elif kind == DISTRIBUTION:
        behaviours = [props.get("defaultCacheBehavior") or {},
                      *(props.get("orderedCacheBehaviors") or [])]
        for behaviour in behaviours:
            if behaviour.get("viewerProtocolPolicy") not in HTTPS_ONLY:
                report_violation("CloudFront must serve viewers over HTTPS only", None)


def validate_tags(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in TAGGABLE:
        return
    tags = args.props.get("tags") or {}
    missing = [key for key in REQUIRED_TAGS if not tags.get(key)]
    if missing:
        report_violation(f"missing tags: {', '.join(missing)}", None)


def validate_idle_timeout(args: ResourceValidationArgs,
                          report_violation: ReportViolation) -> None:
    props = args.props
    if args.resource_type == LISTENER:
        protocol = props.get("protocol")
        if protocol == "TLS":
            report_violation("an NLB TLS listener's idle timeout is fixed at 350 s: use a TCP "
                             "listener and terminate TLS in the gateways", None)
        elif protocol in ("TCP", "TCP_UDP"):
            timeout = _port(props.get("tcpIdleTimeoutSeconds")) or 350
            if timeout < MIN_IDLE_TIMEOUT_S:
                report_violation(f"tcpIdleTimeoutSeconds is {timeout}: long-lived "
                                 f"connections need at least {MIN_IDLE_TIMEOUT_S}", None)
    elif args.resource_type == LOAD_BALANCER and props.get("loadBalancerType") == "application":
        timeout = _port(props.get("idleTimeout")) or 60
        if timeout < MIN_IDLE_TIMEOUT_S:
            report_violation(f"idleTimeout is {timeout}: long-lived connections need at "
                             f"least {MIN_IDLE_TIMEOUT_S}", None)


def _bucket_keys(props: Mapping[str, Any]) -> set[str]:
    return {str(props[k]) for k in ("id", "bucket") if props.get(k)}


def validate_buckets(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Each bucket needs a public access block with every flag, and default encryption."""
    blocked: set[str] = set()
    encrypted: set[str] = set()
    for resource in args.resources:
        if resource.resource_type == ACCESS_BLOCK and all(
                resource.props.get(flag) is True for flag in ACCESS_FLAGS):
            blocked.add(str(resource.props.get("bucket")))
        elif resource.resource_type == BUCKET_ENCRYPTION and resource.props.get("rules"):
            encrypted.add(str(resource.props.get("bucket")))
    for resource in _of_type(args.resources, BUCKET):
        keys = _bucket_keys(resource.props)
        if not keys & blocked:
            report_violation("bucket has no full public access block", resource.urn)
        if not keys & encrypted:
            report_violation("bucket has no default encryption configuration", resource.urn)


def _of_type(resources: Iterable[Any], kind: str) -> list[Any]:
    return [r for r in resources if r.resource_type == kind]


POLICIES = [
    ResourceValidationPolicy(
        name="no-public-data-stores",
        description="No public IPs on nodes, data stores private, only 80/443 open to all.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=validate_no_public_data_stores),
    ResourceValidationPolicy(
        name="encryption-at-rest-and-in-transit",
        description="Encrypted volumes and Redis, TLS material as SecureString, HTTPS CDN.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=validate_encryption),
    ResourceValidationPolicy(
        name="required-tags",
        description=f"Taggable resources carry {', '.join(REQUIRED_TAGS)}.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=validate_tags),
    ResourceValidationPolicy(
        name="long-lived-connections",
        description=f"Load balancer idle timeouts of at least {MIN_IDLE_TIMEOUT_S} s.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=validate_idle_timeout),
    StackValidationPolicy(
        name="s3-buckets-private-and-encrypted",
        description="Every bucket has a full public access block and default encryption.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=validate_buckets),
]
