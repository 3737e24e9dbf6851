"""A cell's gateways: Fargate tasks behind a network load balancer, scaled on load.

The listener is plain TCP so that its idle timeout can be raised to an hour: viewers hold
WebSocket and SSE connections for the length of a stream, and an NLB TLS listener's idle
timeout is fixed at 350 s. TLS is therefore terminated by the gateways themselves (certificate
and key injected from Secrets Manager); without a certificate the listener is port 80, for
development stacks only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from chorus.config import Limits, Region
from iac.tags import Tags

# pulumi_aws's names for the pieces of a target-tracking policy, shortened.
_as = aws.appautoscaling
_Tracking = _as.PolicyTargetTrackingScalingPolicyConfigurationArgs
_Predefined = _as.PolicyTargetTrackingScalingPolicyConfigurationPredefinedMetricSpecificationArgs
_Customized = _as.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationArgs
_Query = _as.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationMetricArgs
_Stat = _as.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationMetricMetricStatArgs  # noqa: E501
_Metric = _as.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationMetricMetricStatMetricArgs  # noqa: E501
_Dimension = _as.PolicyTargetTrackingScalingPolicyConfigurationCustomizedMetricSpecificationMetricMetricStatMetricDimensionArgs  # noqa: E501

CONTAINER = "gateway"
# Long enough for a gateway to send every connection its resume hint and close it cleanly.
DRAIN_S = 120
# File descriptors beyond the connection limit: NATS, Redis, Cassandra, logs.
FD_HEADROOM = 4096


def connections_target(limits: Limits, fill: float) -> float:
    """Average open connections per task that the connections policy holds."""
    return round(limits.max_connections_per_gateway * fill)


@dataclass(frozen=True)
class GatewaysArgs:
    """``security_group_id`` is the tasks' group, made by the cell so that the data stores
    can admit it before the service exists. ``environment`` tells the gateway where its
    region's servers are. ``tls_cert``/``tls_key`` None: plain TCP on port 80."""

    region: Region
    limits: Limits
    aws_region: str
    vpc_id: pulumi.Input[str]
    public_subnet_ids: Sequence[pulumi.Input[str]]
    private_subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    image: str
    cpu: int
    memory_mib: int
    max_tasks: int
    cpu_target_pct: int
    connection_fill: float
    health_path: str
    environment: Mapping[str, pulumi.Input[str]]
    auth_secret: pulumi.Input[str]
    snapshot_bucket_arn: pulumi.Input[str]
    tags: Tags
    tls_cert: pulumi.Input[str] | None = None
    tls_key: pulumi.Input[str] | None = None
    idle_timeout_s: int = 3600
    protect: bool = True

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None and self.tls_key is not None


class Gateways(pulumi.ComponentResource):
    """ECS cluster and service, NLB, listener, target group, scaling policies, secrets."""

    url: pulumi.Output[str]
    dns_name: pulumi.Output[str]
    zone_id: pulumi.Output[str]
    listener_port: int

    def __init__(self, name: str, args: GatewaysArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("chorus:iac:Gateways", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = args.tags.of("gateways")
        port = args.region.gateway_port
        self.listener_port = 443 if args.tls else 80

        # The NLB's own group: the internet reaches the listener, the NLB reaches the tasks.
        nlb_sg = aws.ec2.SecurityGroup(f"{name}-nlb-sg", vpc_id=args.vpc_id,
                                       description="Gateway load balancer: listener only",
                                       tags={**tags, "Name": f"{name}-nlb-sg"}, opts=child)
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-nlb-in", security_group_id=nlb_sg.id, ip_protocol="tcp",
            from_port=self.listener_port, to_port=self.listener_port, cidr_ipv4="0.0.0.0/0",
            description="clients", tags=tags, opts=child)
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-nlb-out", security_group_id=nlb_sg.id, ip_protocol="tcp",
            from_port=port, to_port=port, referenced_security_group_id=args.security_group_id,
            description="to gateways", tags=tags, opts=child)
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-tasks-in", security_group_id=args.security_group_id, ip_protocol="tcp",
            from_port=port, to_port=port, referenced_security_group_id=nlb_sg.id,
            description="from the load balancer", tags=tags, opts=child)

        nlb = aws.lb.LoadBalancer(
            f"{name}-nlb", load_balancer_type="network", internal=False,
            subnets=list(args.public_subnet_ids), security_groups=[nlb_sg.id],
            # Spread long-lived connections evenly over tasks in every AZ.
            enable_cross_zone_load_balancing=True,
            enable_deletion_protection=args.protect, tags=tags, opts=child)
        health = "HTTPS" if args.tls else "HTTP"
        target_group = aws.lb.TargetGroup(
            f"{name}-tg", port=port, protocol="TCP", target_type="ip", vpc_id=args.vpc_id,
            deregistration_delay=DRAIN_S,
            # Gateways cap live connections per client address (docs/security.md); with IP
            # targets over TCP the NLB hides that address unless told to keep it.
            preserve_client_ip="true",
            # After the drain, cut what is left so clients resume on another task at once.
            connection_termination=True,
            health_check=aws.lb.TargetGroupHealthCheckArgs(
                protocol=health, path=args.health_path, port="traffic-port", interval=10,
                healthy_threshold=2, unhealthy_threshold=2),
            tags=tags, opts=child)
        listener = aws.lb.Listener(
            f"{name}-listener", load_balancer_arn=nlb.arn, port=self.listener_port,
            protocol="TCP", tcp_idle_timeout_seconds=args.idle_timeout_s,
            default_actions=[aws.lb.ListenerDefaultActionArgs(
                type="forward", target_group_arn=target_group.arn)],
            tags=tags, opts=child)

        scheme = "https" if args.tls else "http"
        # What the region's gateways announce to every region's /v1/regions.
        public_url = pulumi.Output.concat(scheme, "://", nlb.dns_name,
                                          "" if args.tls else f":{self.listener_port}")
        secrets = self._secrets(name, args, tags)
        execution_role, task_role = self._roles(name, args, list(secrets.values()), tags)
        logs = aws.cloudwatch.LogGroup(f"{name}-logs", retention_in_days=30, tags=tags,
                                       opts=child)
        cluster = aws.ecs.Cluster(
            f"{name}-cluster", settings=[aws.ecs.ClusterSettingArgs(
                name="containerInsights", value="enabled")], tags=tags, opts=child)
        task = aws.ecs.TaskDefinition(
            f"{name}-task", family=f"chorus-{args.region.name}-gateway",
            cpu=str(args.cpu), memory=str(args.memory_mib), network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform=aws.ecs.TaskDefinitionRuntimePlatformArgs(
                operating_system_family="LINUX", cpu_architecture="X86_64"),
            execution_role_arn=execution_role.arn, task_role_arn=task_role.arn,
            container_definitions=pulumi.Output.json_dumps([self._container(
                args, logs.name, secrets, public_url)]),
            tags=tags, opts=child)
        service = aws.ecs.Service(
            f"{name}-service", cluster=cluster.arn, task_definition=task.arn,
            launch_type="FARGATE", desired_count=args.region.gateways,
            network_configuration=aws.ecs.ServiceNetworkConfigurationArgs(
                subnets=list(args.private_subnet_ids),
                security_groups=[args.security_group_id], assign_public_ip=False),
            load_balancers=[aws.ecs.ServiceLoadBalancerArgs(
                target_group_arn=target_group.arn, container_name=CONTAINER,
                container_port=port)],
            deployment_circuit_breaker=aws.ecs.ServiceDeploymentCircuitBreakerArgs(
                enable=True, rollback=True),
            # A rolling deploy never drops below the regions.yaml floor of gateways.
            deployment_minimum_healthy_percent=100, deployment_maximum_percent=200,
            health_check_grace_period_seconds=60,
            propagate_tags="SERVICE", enable_ecs_managed_tags=True, tags=tags,
            # The scaling policies own the task count once the service exists.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[listener],
                                        ignore_changes=["desiredCount"]))
        self._scaling(name, args, cluster, service, nlb, target_group, tags)

        self.url = public_url
        self.dns_name = nlb.dns_name
        self.zone_id = nlb.zone_id
        self.register_outputs({"url": self.url})

    def _secrets(self, name: str, args: GatewaysArgs,
                 tags: dict[str, str]) -> dict[str, pulumi.Output[str]]:
        """Secrets Manager entries the tasks read at start: env name -> secret ARN."""
        values: dict[str, pulumi.Input[str]] = {"CHORUS_AUTH_SECRET": args.auth_secret}
        if args.tls_cert is not None and args.tls_key is not None:
            values["CHORUS_TLS_CERT"] = args.tls_cert
            values["CHORUS_TLS_KEY"] = args.tls_key
        arns = {}
        for env, value in values.items():
            slug = env.lower().replace("_", "-")
            secret = aws.secretsmanager.Secret(f"{name}-{slug}", recovery_window_in_days=7,
                                               tags=tags,
                                               opts=pulumi.ResourceOptions(parent=self))
            aws.secretsmanager.SecretVersion(f"{name}-{slug}", secret_id=secret.id,
                                             secret_string=pulumi.Output.secret(value),
                                             opts=pulumi.ResourceOptions(parent=self))
            arns[env] = secret.arn
        return arns

    def _roles(self, name: str, args: GatewaysArgs, secret_arns: list[pulumi.Output[str]],
               tags: dict[str, str]) -> tuple[aws.iam.Role, aws.iam.Role]:
        child = pulumi.ResourceOptions(parent=self)
        assume = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"}}]})
        execution = aws.iam.Role(f"{name}-execution", assume_role_policy=assume, tags=tags,
                                 opts=child)
        aws.iam.RolePolicyAttachment(
            f"{name}-execution", role=execution.name, opts=child,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy")
        aws.iam.RolePolicy(f"{name}-execution-secrets", role=execution.id, opts=child,
                           policy=pulumi.Output.json_dumps({
                               "Version": "2012-10-17", "Statement": [{
                                   "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                                   "Resource": secret_arns}]}))
        task = aws.iam.Role(f"{name}-task", assume_role_policy=assume, tags=tags, opts=child)
        # The region's snapshot writer puts one JSON document per hot stream per second.
        aws.iam.RolePolicy(f"{name}-task-snapshots", role=task.id, opts=child,
                           policy=pulumi.Output.json_dumps({
                               "Version": "2012-10-17", "Statement": [{
                                   "Effect": "Allow",
                                   "Action": ["s3:PutObject", "s3:GetObject", "s3:DeleteObject"],
                                   "Resource": pulumi.Output.concat(
                                       args.snapshot_bucket_arn, "/*")}]}))
        return execution, task

    def _container(self, args: GatewaysArgs, log_group: pulumi.Output[str],
                   secrets: Mapping[str, pulumi.Output[str]],
                   public_url: pulumi.Output[str]) -> dict[str, object]:
        port = args.region.gateway_port
        nofile = args.limits.max_connections_per_gateway + FD_HEADROOM
        environment = {
            "CHORUS_REGION": args.region.name,
            "CHORUS_GATEWAY_PORT": str(port),
            # The snapshot store's client needs its AWS region; said here rather than left to
            # whatever the platform sets, so the task is complete as defined.
            "AWS_REGION": args.aws_region,
            **args.environment,
        }
        environment_outputs = {"CHORUS_PUBLIC_URL": public_url}
        return {
            "name": CONTAINER,
            "image": args.image,
            "essential": True,
            "portMappings": [{"containerPort": port, "protocol": "tcp"}],
            "environment": [{"name": k, "value": v} for k, v in sorted(
                {**environment, **environment_outputs}.items())],
            "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(secrets.items())],
            "ulimits": [{"name": "nofile", "softLimit": nofile, "hardLimit": nofile}],
            # SIGTERM first: the gateway hands out resume hints before it is killed.
            "stopTimeout": DRAIN_S,
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": log_group, "awslogs-region": args.aws_region,
                "awslogs-stream-prefix": CONTAINER}},
        }

    def _scaling(self, name: str, args: GatewaysArgs, cluster: aws.ecs.Cluster,
                 service: aws.ecs.Service, nlb: aws.lb.LoadBalancer,
                 target_group: aws.lb.TargetGroup, tags: dict[str, str]) -> None:
        """Two target-tracking policies; the larger of their answers wins."""
        child = pulumi.ResourceOptions(parent=self)
        target = aws.appautoscaling.Target(
            f"{name}-scaling", service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", cluster.name, "/", service.name),
            min_capacity=args.region.gateways,
            max_capacity=max(args.max_tasks, args.region.gateways), tags=tags, opts=child)
        aws.appautoscaling.Policy(
            f"{name}-cpu", policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace, resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            target_tracking_scaling_policy_configuration=_Tracking(
                target_value=float(args.cpu_target_pct),
                predefined_metric_specification=_Predefined(
                    predefined_metric_type="ECSServiceAverageCPUUtilization"),
                scale_in_cooldown=300, scale_out_cooldown=60),
            opts=child)
        # Open connections per healthy task, from the load balancer's own metrics.
        lb = _Dimension(name="LoadBalancer", value=nlb.arn_suffix)
        tg = _Dimension(name="TargetGroup", value=target_group.arn_suffix)
        aws.appautoscaling.Policy(
            f"{name}-connections", policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace, resource_id=target.resource_id,
            scalable_dimension=target.scalable_dimension,
            target_tracking_scaling_policy_configuration=_Tracking(
                target_value=float(connections_target(args.limits, args.connection_fill)),
                customized_metric_specification=_Customized(metrics=[
                    _Query(id="flows", return_data=False, metric_stat=_Stat(
                        stat="Average", metric=_Metric(
                            namespace="AWS/NetworkELB", metric_name="ActiveFlowCount",
                            dimensions=[lb]))),
                    _Query(id="tasks", return_data=False, metric_stat=_Stat(
                        stat="Minimum", metric=_Metric(
                            namespace="AWS/NetworkELB", metric_name="HealthyHostCount",
                            dimensions=[lb, tg]))),
                    _Query(id="per_task", expression="flows / tasks", return_data=True,
                           label="open connections per gateway task"),
                ]),
                # Scale in slowly: removing a task moves all of its viewers.
                scale_in_cooldown=900, scale_out_cooldown=60),
            opts=child)
