"""EC2 building blocks shared by the stateful parts: NATS, Cassandra and the hub.

`NodeRole` is what a node may do (read its SSM files, be reached by Session Manager and Run
Command: no SSH, no key pairs). `DataNode` is one instance at a fixed private address with
an encrypted gp3 data volume that outlives the instance. `put_files` stores a node's files
as SSM parameters (see iac/bootstrap.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from iac.bootstrap import DATA_DEVICE

# Amazon Linux 2023 on x86_64: the boot scripts use dnf, python3 and the AWS CLI it ships,
# and download amd64 builds. Graviton instance types would need arm64 downloads.
_AMI_NAME = "al2023-ami-2023.*-x86_64"


def al2023_ami(parent: pulumi.Resource) -> pulumi.Output[str]:
    """The newest Amazon Linux 2023 AMI in the parent's region (nodes ignore later AMIs
    until they are replaced one at a time)."""
    ami = aws.ec2.get_ami_output(
        most_recent=True, owners=["amazon"],
        filters=[aws.ec2.GetAmiFilterArgs(name="name", values=[_AMI_NAME])],
        opts=pulumi.InvokeOutputOptions(parent=parent))
    return ami.id


@dataclass(frozen=True)
class NodeRoleArgs:
    """``prefix``: the SSM path (iac/bootstrap.py) whose parameters the nodes may read."""

    aws_region: str
    prefix: str
    tags: Mapping[str, str]


class NodeRole(pulumi.ComponentResource):
    """IAM role and instance profile of one role's nodes in one region."""

    profile_name: pulumi.Output[str]
    role_name: pulumi.Output[str]

    def __init__(self, name: str, args: NodeRoleArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chorus:iac:NodeRole", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        role = aws.iam.Role(
            name,
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                               "Principal": {"Service": "ec2.amazonaws.com"}}],
            }),
            tags=dict(args.tags), opts=child)
        # Session Manager and Run Command replace SSH: rolling a cell runs commands through it.
        aws.iam.RolePolicyAttachment(
            f"{name}-ssm-core", role=role.name,
            policy_arn="arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore", opts=child)
        params = f"arn:aws:ssm:{args.aws_region}:*:parameter{args.prefix}"
        aws.iam.RolePolicy(
            f"{name}-files", role=role.id,
            policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow",
                     "Action": ["ssm:GetParametersByPath", "ssm:GetParameters",
                                "ssm:GetParameter"],
                     "Resource": [params, f"{params}/*"]},
                    # SecureString parameters use the account's aws/ssm key, only via SSM.
                    {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*",
                     "Condition": {"StringEquals": {
                         "kms:ViaService": f"ssm.{args.aws_region}.amazonaws.com"}}},
                ],
            }),
            opts=child)
        profile = aws.iam.InstanceProfile(name, role=role.name,
                                          tags=dict(args.tags), opts=child)
        self.profile_name = profile.name
        self.role_name = role.name
        self.register_outputs({"profile_name": profile.name})


@dataclass(frozen=True)
class DataNodeArgs:
    """One instance. ``data_volume_gib`` None: no data volume (a node that keeps no state)."""

    subnet_id: pulumi.Input[str]
    availability_zone: pulumi.Input[str]
    private_ip: str
    instance_type: str
    ami_id: pulumi.Input[str]
    security_group_ids: Sequence[pulumi.Input[str]]
    instance_profile: pulumi.Input[str]
    user_data: str
    tags: Mapping[str, str]
    data_volume_gib: int | None = None
    root_volume_gib: int = 30
    protect_data: bool = True


class DataNode(pulumi.ComponentResource):
    """An instance with a fixed private IP and, optionally, an encrypted data volume.

    The volume is a separate resource so that replacing the instance (a new AMI, a rolled
    node) keeps the data: the new instance mounts the same volume and rejoins with the same
    address and server name.
    """

    instance_id: pulumi.Output[str]
    private_ip: str

    def __init__(self, name: str, args: DataNodeArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chorus:iac:DataNode", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        instance = aws.ec2.Instance(
            name,
            ami=args.ami_id,
            instance_type=args.instance_type,
            subnet_id=args.subnet_id,
            private_ip=args.private_ip,
            vpc_security_group_ids=list(args.security_group_ids),
            iam_instance_profile=args.instance_profile,
            associate_public_ip_address=False,
            ebs_optimized=True,
            root_block_device=aws.ec2.InstanceRootBlockDeviceArgs(
                volume_type="gp3", volume_size=args.root_volume_gib, encrypted=True,
                delete_on_termination=True, tags=dict(args.tags)),
            # IMDSv2 only: a server-side request forgery cannot read the role's credentials.
            metadata_options=aws.ec2.InstanceMetadataOptionsArgs(
                http_tokens="required", http_endpoint="enabled",
                http_put_response_hop_limit=1),
            user_data=args.user_data,
            tags=dict(args.tags),
            # A changed boot script or a newer AMI must not stop every node of a cluster at
            # once: both apply when a node is replaced, one at a time (docs/operations.md).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["ami", "userData"]))
        if args.data_volume_gib is not None:
            volume = aws.ebs.Volume(
                f"{name}-data",
                availability_zone=args.availability_zone,
                size=args.data_volume_gib,
                type="gp3",
                encrypted=True,
                # Destroying a data volume snapshots it first.
                final_snapshot=True,
                tags=dict(args.tags),
                opts=pulumi.ResourceOptions(parent=self, protect=args.protect_data))
            aws.ec2.VolumeAttachment(
                f"{name}-data", device_name=DATA_DEVICE, volume_id=volume.id,
                instance_id=instance.id, stop_instance_before_detaching=True, opts=child)
        self.instance_id = instance.id
        self.private_ip = args.private_ip
        self.register_outputs({"instance_id": instance.id, "private_ip": args.private_ip})


def put_files(owner: pulumi.Resource, label: str, prefix: str,
              files: Mapping[str, pulumi.Input[str]], tags: Mapping[str, str]) -> None:
    """Store ``files`` (absolute path -> content) as SSM parameters under ``prefix``.

    Files under a ``/tls/`` directory are SecureStrings. Intelligent-Tiering lets a file grow
    past the standard tier's 4 KB without a change here.
    """
    for path, content in files.items():
        if not path.startswith("/"):
            raise ValueError(f"file paths are absolute, not {path!r}")
        secure = "/tls/" in path
        aws.ssm.Parameter(
            f"{label}{path.replace('/', '-')}",
            name=f"{prefix}{path}",
            type="SecureString" if secure else "String",
            value=pulumi.Output.secret(content) if secure else content,
            tier="Intelligent-Tiering",
            tags=dict(tags),
            opts=pulumi.ResourceOptions(parent=owner))
