"""The CrossGuard policies, each validate function called directly (no policy server)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)

from iac.policy import policies as p
from tests.iac.mockrun import Run

Report = Callable[[str, str | None], None]
Validate = Callable[[ResourceValidationArgs, Report], None]


def collector(found: list[str]) -> Report:
    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    return report


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(protect=False, ignore_changes=[], delete_before_replace=None,
                                 aliases=[], custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
                                 additional_secret_outputs=[])


def violations(validate: Validate, kind: str, props: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    args = ResourceValidationArgs(resource_type=kind, props=props, urn=f"urn:test::{kind}",
                                  name="r", opts=_opts(), provider=None)
    validate(args, collector(found))
    return found


def stack_violations(resources: list[tuple[str, dict[str, Any]]]) -> list[str]:
    found: list[str] = []
    items = [PolicyResource(resource_type=kind, props=props, urn=f"urn:{i}", name=str(i),
                            opts=_opts(), provider=None, parent=None, dependencies=[],
                            property_dependencies={})
             for i, (kind, props) in enumerate(resources)]
    p.validate_buckets(StackValidationArgs(resources=items), collector(found))
    return found


TAGS = {key: "x" for key in p.REQUIRED_TAGS}


# --- no-public-data-stores ---------------------------------------------------------------------


def test_instances_must_not_get_public_ips() -> None:
    check = p.validate_no_public_data_stores
    assert violations(check, p.INSTANCE, {"associatePublicIpAddress": False}) == []
    assert violations(check, p.INSTANCE, {"associatePublicIpAddress": True})
    assert violations(check, p.INSTANCE, {})  # unset: the subnet would decide


@pytest.mark.parametrize(("rule", "ok"), [
    ({"cidrIpv4": "0.0.0.0/0", "fromPort": 443.0, "toPort": 443.0, "ipProtocol": "tcp"}, True),
    ({"cidrIpv4": "0.0.0.0/0", "fromPort": 80.0, "toPort": 80.0, "ipProtocol": "tcp"}, True),
    ({"cidrIpv4": "0.0.0.0/0", "fromPort": 6379.0, "toPort": 6379.0, "ipProtocol": "tcp"}, False),
    ({"cidrIpv6": "::/0", "fromPort": 9042.0, "toPort": 9042.0, "ipProtocol": "tcp"}, False),
    ({"cidrIpv4": "0.0.0.0/0", "fromPort": 0.0, "toPort": 65535.0, "ipProtocol": "tcp"}, False),
    ({"cidrIpv4": "0.0.0.0/0", "ipProtocol": "-1"}, False),
    ({"cidrIpv4": "10.0.0.0/16", "fromPort": 6379.0, "toPort": 6379.0}, True),
    ({"referencedSecurityGroupId": "sg-1", "fromPort": 4222.0, "toPort": 4222.0}, True),
])
def test_only_the_listener_ports_may_be_open_to_the_internet(rule: dict[str, Any],
                                                             ok: bool) -> None:
    found = violations(p.validate_no_public_data_stores, p.INGRESS_RULE, rule)
    assert (found == []) is ok


def test_inline_security_group_rules_are_checked_too() -> None:
    group = {"ingress": [{"cidrBlocks": ["0.0.0.0/0"], "fromPort": 7000.0, "toPort": 7000.0,
                          "protocol": "tcp"}]}
    assert violations(p.validate_no_public_data_stores, p.SECURITY_GROUP, group)


def test_redis_needs_private_subnets_and_a_group() -> None:
    check = p.validate_no_public_data_stores
    assert violations(check, p.REDIS, {"subnetGroupName": "g", "securityGroupIds": ["sg"]}) == []
    assert len(violations(check, p.REDIS, {})) == 2


def test_public_access_blocks_and_acls() -> None:
    check = p.validate_no_public_data_stores
    full = dict.fromkeys(p.ACCESS_FLAGS, True)
    assert violations(check, p.ACCESS_BLOCK, full) == []
    assert violations(check, p.ACCESS_BLOCK, {**full, "restrictPublicBuckets": False})
    assert violations(check, p.BUCKET, {"acl": "public-read"})
    assert violations(check, p.SUBNET, {"mapPublicIpOnLaunch": True})


# --- encryption-at-rest-and-in-transit ---------------------------------------------------------


def test_volumes_and_root_devices_are_encrypted() -> None:
    check = p.validate_encryption
    assert violations(check, p.VOLUME, {"encrypted": True}) == []
    assert violations(check, p.VOLUME, {"encrypted": False})
    assert violations(check, p.INSTANCE, {"rootBlockDevice": {"encrypted": True}}) == []
    assert violations(check, p.INSTANCE, {})


def test_redis_is_encrypted_both_ways() -> None:
    check = p.validate_encryption
    both = {"atRestEncryptionEnabled": True, "transitEncryptionEnabled": True}
    assert violations(check, p.REDIS, both) == []
    assert violations(check, p.REDIS, {**both, "transitEncryptionEnabled": False}) == [
        "Redis must set transitEncryptionEnabled"]


def test_tls_material_is_a_secure_string() -> None:
    check = p.validate_encryption
    assert violations(check, p.PARAMETER, {"name": "/c/etc/nats/tls/key.pem",
                                           "type": "SecureString"}) == []
    assert violations(check, p.PARAMETER, {"name": "/c/etc/nats/tls/key.pem", "type": "String"})
    assert violations(check, p.PARAMETER, {"name": "/c/etc/nats/nats.conf",
                                           "type": "String"}) == []


def test_the_cdn_serves_https_only() -> None:
    check = p.validate_encryption
    assert violations(check, p.DISTRIBUTION, {
        "defaultCacheBehavior": {"viewerProtocolPolicy": "https-only"}}) == []
    assert violations(check, p.DISTRIBUTION, {
        "defaultCacheBehavior": {"viewerProtocolPolicy": "https-only"},
        "orderedCacheBehaviors": [{"viewerProtocolPolicy": "allow-all"}]})


# --- required-tags -----------------------------------------------------------------------------


def test_taggable_resources_carry_every_tag() -> None:
    assert violations(p.validate_tags, "aws:ec2/vpc:Vpc", {"tags": TAGS}) == []
    assert violations(p.validate_tags, "aws:ec2/vpc:Vpc", {"tags": {**TAGS, "owner": ""}}) == [
        "missing tags: owner"]
    assert violations(p.validate_tags, "aws:ec2/vpc:Vpc", {})
    assert violations(p.validate_tags, "aws:ec2/route:Route", {}) == []  # takes no tags


# --- long-lived-connections --------------------------------------------------------------------


def test_listener_idle_timeout() -> None:
    check = p.validate_idle_timeout
    assert violations(check, p.LISTENER, {"protocol": "TCP",
                                          "tcpIdleTimeoutSeconds": 3600.0}) == []
    assert violations(check, p.LISTENER, {"protocol": "TCP", "tcpIdleTimeoutSeconds": 350.0})
    assert violations(check, p.LISTENER, {"protocol": "TCP"})  # the default is 350 s
    assert violations(check, p.LISTENER, {"protocol": "TLS"})
    assert violations(check, p.LOAD_BALANCER, {"loadBalancerType": "application"})
    assert violations(check, p.LOAD_BALANCER, {"loadBalancerType": "application",
                                               "idleTimeout": 4000.0}) == []
    assert violations(check, p.LOAD_BALANCER, {"loadBalancerType": "network"}) == []


# --- s3-buckets-private-and-encrypted ----------------------------------------------------------


def test_every_bucket_is_blocked_and_encrypted() -> None:
    block = (p.ACCESS_BLOCK, {"bucket": "b-1", **dict.fromkeys(p.ACCESS_FLAGS, True)})
    sse = (p.BUCKET_ENCRYPTION, {"bucket": "b-1", "rules": [{"x": 1}]})
    bucket = (p.BUCKET, {"id": "b-1", "bucket": "b-1"})
    assert stack_violations([bucket, block, sse]) == []
    assert stack_violations([bucket, sse]) == ["bucket has no full public access block"]
    assert stack_violations([bucket, block]) == [
        "bucket has no default encryption configuration"]


# --- the program against the pack --------------------------------------------------------------


def test_the_program_passes_every_policy(deployed: Run) -> None:
    resource_checks = [p.validate_no_public_data_stores, p.validate_encryption,
                       p.validate_tags, p.validate_idle_timeout]
    found = [f"{r.type} {r.name}: {message}"
             for r in deployed.resources if r.custom
             for check in resource_checks
             for message in violations(check, r.type, r.inputs)]
    assert found == []
    stack = [(r.type, {**r.inputs, "id": f"{r.name}-id"}) for r in deployed.resources
             if r.custom]
    assert stack_violations(stack) == []


def test_the_pack_declares_every_policy_mandatory() -> None:
    names = [policy.name for policy in p.POLICIES]
    assert names == ["no-public-data-stores", "encryption-at-rest-and-in-transit",
                     "required-tags", "long-lived-connections",
                     "s3-buckets-private-and-encrypted"]
    assert {policy.enforcement_level for policy in p.POLICIES} == {EnforcementLevel.MANDATORY}
