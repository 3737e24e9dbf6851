"""The Pulumi program under mocks: what each region gets, and the rules every stack keeps.

No CLI, no engine, no credentials (tests/iac/mockrun.py). The repository's regions.yaml is
deployed once per session (`deployed`); variants deploy their own.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import ipaddress
import itertools
import json
import runpy
from typing import Any

import pytest
import yaml

from chorus.cassandra_conf import render_yaml
from chorus.config import Config
from chorus.natsconf import render
from iac.addressing import CASSANDRA_HOST, node_ips, subnet_plan
from iac.cassandra import node_config
from iac.cell import FILE_STORE_SHARE, GIB, MIB
from iac.nats import hub_leaf_urls, region_servers
from iac.policy.policies import REQUIRED_TAGS as POLICY_TAGS
from iac.policy.policies import TAGGABLE
from iac.settings import DEFAULT_AWS_REGIONS, DEFAULT_VPC_CIDRS, Sizing
from iac.tags import REQUIRED_TAGS
from tests.iac.conftest import ROOT
from tests.iac.helpers import SECRETS, make_deployment, run_deployment, with_region
from tests.iac.mockrun import Resource, Run, run

CELL = "chorus:iac:Cell"
# A component's type token is part of its URN and of every child's: a changed token makes
# `pulumi up` replace a deployed stack's resources. Classes may be renamed; tokens stay.
COMPONENT_TOKENS = {
    "chorus:iac:CassandraDatacenter", "chorus:iac:Cell", "chorus:iac:DataNode",
    "chorus:iac:Gateways", "chorus:iac:GlobalPlane", "chorus:iac:NatsCluster",
    "chorus:iac:Network", "chorus:iac:NodeRole", "chorus:iac:Peering", "chorus:iac:Redis",
    "chorus:iac:Snapshots",
}
PROVIDER = "pulumi:providers:aws"
SERVICE = "aws:ecs/service:Service"
SCALING = "aws:appautoscaling/target:Target"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
LISTENER = "aws:lb/listener:Listener"
LOAD_BALANCER = "aws:lb/loadBalancer:LoadBalancer"
PARAMETER = "aws:ssm/parameter:Parameter"
REDIS = "aws:elasticache/replicationGroup:ReplicationGroup"
INSTANCE = "aws:ec2/instance:Instance"
VOLUME = "aws:ebs/volume:Volume"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
BUCKET = "aws:s3/bucket:Bucket"
RECORD = "aws:route53/record:Record"
HEALTH_CHECK = "aws:route53/healthCheck:HealthCheck"
PEERING = "aws:ec2/vpcPeeringConnection:VpcPeeringConnection"
ACCEPTER = "aws:ec2/vpcPeeringConnectionAccepter:VpcPeeringConnectionAccepter"


def parameter(run_: Run, name: str) -> str:
    """Content of the SSM parameter (a node's file) called ``name``."""
    (found,) = [r for r in run_.of_type(PARAMETER) if r.inputs["name"] == name]
    return str(found.inputs["value"])


def container(run_: Run, region: str) -> dict[str, Any]:
    task = run_.named(f"{region}-gateways-task", TASK)
    (only,) = json.loads(task.inputs["containerDefinitions"])
    return dict(only)


def sdk_class(token: str) -> Any:
    """The pulumi_aws class of a type token such as ``aws:ec2/vpc:Vpc``."""
    module, _, cls = token.split(":", 1)[1].partition("/")
    return getattr(importlib.import_module(f"pulumi_aws.{module}"), cls.split(":")[1])


def taggable(resource: Resource) -> bool:
    """Whether the resource's type takes tags, according to the SDK itself."""
    if not resource.custom or not resource.type.startswith("aws:"):
        return False
    return "tags" in inspect.signature(sdk_class(resource.type)._internal_init).parameters


# --- each region's resources follow regions.yaml ---------------------------------------------


def test_one_cell_per_region_on_its_own_provider(deployed: Run, repo_regions: Config) -> None:
    names = list(repo_regions.region_names)
    assert sorted(c.name for c in deployed.of_type(CELL)) == sorted(names)
    assert {p.name: p.inputs["region"] for p in deployed.of_type(PROVIDER)} == {
        f"aws-{n}": DEFAULT_AWS_REGIONS[n] for n in names}
    for resource in deployed.resources:
        cell = (resource.inputs.get("tags") or {}).get("chorus-region")
        if resource.custom and resource.type != PROVIDER and cell in names:
            assert resource.provider_name == f"aws-{cell}", resource.name


def test_gateways_follow_the_region(deployed: Run, repo_regions: Config) -> None:
    for region in repo_regions.regions:
        service = deployed.named(f"{region.name}-gateways-service", SERVICE)
        assert service.inputs["desiredCount"] == region.gateways
        assert service.inputs["launchType"] == "FARGATE"
        assert service.inputs["networkConfiguration"]["assignPublicIp"] is False
        scaling = deployed.named(f"{region.name}-gateways-scaling", SCALING)
        assert scaling.inputs["minCapacity"] == region.gateways
        assert scaling.inputs["maxCapacity"] == Sizing().gateway_max_tasks
        group = deployed.named(f"{region.name}-gateways-tg", TARGET_GROUP)
        assert group.inputs["port"] == region.gateway_port
        # The per-address connection cap needs the client's address, not the NLB's.
        assert group.inputs["preserveClientIp"] == "true"
        spec = container(deployed, region.name)
        assert spec["portMappings"] == [{"containerPort": region.gateway_port,
                                         "protocol": "tcp"}]
        env = {e["name"]: e["value"] for e in spec["environment"]}
        assert env["CHORUS_REGION"] == region.name
        assert env["CHORUS_CASSANDRA_DATACENTER"] == region.name
        assert {s["name"] for s in spec["secrets"]} == {"CHORUS_AUTH_SECRET"}
        limit = repo_regions.limits.max_connections_per_gateway
        assert spec["ulimits"][0]["softLimit"] > limit


def test_the_gateway_image_accepts_the_environment_its_task_gets(deployed: Run,
                                                                repo_regions: Config) -> None:
    """The task definition and the gateway's --from-env mode agree: every variable the task
    sets is known to the gateway, and together they are enough for it to start."""
    from region.deployment import settings_from_env

    for region in repo_regions.regions:
        spec = container(deployed, region.name)
        env = {e["name"]: str(e["value"]) for e in spec["environment"]}
        # Secrets are injected by ECS at start; stand in their values, and the task role's
        # credentials endpoint that ECS gives every task with a role.
        env.update({s["name"]: SECRETS.auth_secret for s in spec["secrets"]})
        env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"] = "/v2/credentials/stand-in"
        env["CHORUS_NATS_URLS"] = env["CHORUS_NATS_URLS"] or "tls://nats.invalid:4222"
        config, settings = settings_from_env(env, repo_regions)
        assert settings.region == region.name
        assert settings.listen_port == region.gateway_port
        assert settings.public_url.startswith(("http://", "https://"))
        assert config.cassandra.enabled


def test_gateways_scale_on_cpu_and_on_connections(deployed: Run, repo_regions: Config) -> None:
    policies = {p.name: p.inputs["targetTrackingScalingPolicyConfiguration"]
                for p in deployed.of_type("aws:appautoscaling/policy:Policy")}
    for region in repo_regions.region_names:
        cpu = policies[f"{region}-gateways-cpu"]
        assert cpu["predefinedMetricSpecification"]["predefinedMetricType"] == (
            "ECSServiceAverageCPUUtilization")
        connections = policies[f"{region}-gateways-connections"]
        assert connections["targetValue"] == round(
            repo_regions.limits.max_connections_per_gateway * Sizing().gateway_connection_fill)
        metrics = connections["customizedMetricSpecification"]["metrics"]
        assert [m["id"] for m in metrics if m.get("returnData")] == ["per_task"]


def test_nats_configs_are_rendered_by_natsconf(deployed: Run, repo_regions: Config) -> None:
    for region in repo_regions.regions:
        private = subnet_plan(DEFAULT_VPC_CIDRS[region.name], 3).private
        ips = tuple(str(ipaddress.ip_network(c)[10]) for c in private)
        expected = region_servers(
            region, ips, hub_leaf_urls(repo_regions.hub),
            memory_store=Sizing().nats_memory_store_mib * MIB,
            file_store=int(Sizing().nats_volume_gib * GIB * FILE_STORE_SHARE))
        for i, server in enumerate(expected):
            text = parameter(deployed, f"/chorus/test/{region.name}/nats/nats-{i}"
                                       "/etc/nats/nats.conf")
            assert text == render(server)
            assert f'domain: "{region.name}"' in text
            assert f'listen: "0.0.0.0:{region.nats.client_port}"' in text
            assert "tls://hub-0.chorus.internal:7422" in text
            assert 'ca_file: "/etc/nats/tls/ca.pem"' in text
            assert text.count("nats://") == 3  # routes to the cluster's three nodes
        nodes = [r for r in deployed.of_type(INSTANCE)
                 if r.inputs["tags"].get("component") == "nats"
                 and r.inputs["tags"]["chorus-region"] == region.name]
        assert sorted(n.inputs["privateIp"] for n in nodes) == sorted(ips)


def test_redis_follows_the_region(deployed: Run, repo_regions: Config) -> None:
    for region in repo_regions.regions:
        redis = deployed.named(f"{region.name}-redis", REDIS).inputs
        assert redis["port"] == region.redis.port
        assert redis["multiAzEnabled"] is True and redis["automaticFailoverEnabled"] is True
        assert redis["numCacheClusters"] >= 2
        (rule,) = [r for r in deployed.of_type(INGRESS)
                   if r.name.startswith(f"{region.name}-redis-sg-in")]
        assert rule.inputs["referencedSecurityGroupId"] == f"{region.name}-gateway-sg-id"
        assert "cidrIpv4" not in rule.inputs


def test_each_region_is_one_cassandra_datacenter(deployed: Run, repo_regions: Config) -> None:
    for region in repo_regions.regions:
        for i in range(Sizing().cassandra_nodes):
            base = f"/chorus/test/{region.name}/cassandra/cassandra-{i}/etc/cassandra"
            conf = yaml.safe_load(parameter(deployed, f"{base}/cassandra.yaml"))
            assert conf["native_transport_port"] == repo_regions.cassandra.native_port
            assert conf["cluster_name"] == repo_regions.cassandra.cluster_name
            assert parameter(deployed, f"{base}/cassandra-rackdc.properties").startswith(
                f"dc={region.name}\n")
            seeds = conf["seed_provider"][0]["parameters"][0]["seeds"].split(",")
            assert len(seeds) == 2 * len(repo_regions.regions)  # two per datacenter


def test_cassandra_configs_are_rendered_by_cassandra_conf(deployed: Run,
                                                          repo_regions: Config) -> None:
    cass = repo_regions.cassandra
    region = repo_regions.regions[0]
    (address, *_others) = node_ips(subnet_plan(DEFAULT_VPC_CIDRS[region.name], 3).private,
                                   Sizing().cassandra_nodes, CASSANDRA_HOST)
    text = parameter(deployed, f"/chorus/test/{region.name}/cassandra/cassandra-0"
                               "/etc/cassandra/cassandra.yaml")
    seed_ips = yaml.safe_load(text)["seed_provider"][0]["parameters"][0]["seeds"]
    assert text == render_yaml(node_config(
        cluster_name=cass.cluster_name, address=address,
        seed_ips=[s.rpartition(":")[0] for s in seed_ips.split(",")],
        native_port=cass.native_port, storage_port=cass.storage_port))


def test_component_type_tokens_do_not_change(deployed: Run) -> None:
    assert {r.type for r in deployed.resources if not r.custom} == COMPONENT_TOKENS


def test_outputs_per_region(deployed: Run, repo_regions: Config) -> None:
    assert set(deployed.value) == set(repo_regions.region_names)
    for region in repo_regions.regions:
        out = deployed.value[region.name]
        vpc = ipaddress.ip_network(DEFAULT_VPC_CIDRS[region.name])
        assert out["aws_region"] == DEFAULT_AWS_REGIONS[region.name]
        assert out["gateway_url"] == f"http://{region.name}-gateways-nlb.elb.mock:80"
        assert len(out["nats_urls"]) == 3
        assert all(u.endswith(f":{region.nats.client_port}") for u in out["nats_urls"])
        assert out["nats_leaf_urls"] == [f"tls://hub-{i}.chorus.internal:7422"
                                         for i in range(3)]
        assert out["redis_endpoint"] == (
            f"rediss://{region.name}-redis.cache.mock:{region.redis.port}/0")
        points = out["cassandra_contact_points"]
        assert len(points) == 3 and all(ipaddress.ip_address(p) in vpc for p in points)
        assert out["snapshots_url"].startswith("https://")


# --- adding a region ---------------------------------------------------------------------------


def test_adding_a_region_adds_a_cell(deployed: Run, regions_text: str) -> None:
    config = with_region(regions_text, "sa-east")
    grown = run_deployment(make_deployment(config, aws_regions={"sa-east": "sa-east-1"},
                                           vpc_cidrs={"sa-east": "10.40.0.0/16"}))
    assert sorted(c.name for c in grown.of_type(CELL)) == sorted(config.region_names)
    assert grown.named("aws-sa-east", PROVIDER).inputs["region"] == "sa-east-1"
    service = grown.named("sa-east-gateways-service", SERVICE)
    assert service.provider_name == "aws-sa-east"
    assert service.inputs["desiredCount"] == config.region("sa-east").gateways
    # The new cell joins the mesh, the hub's leaf listener and the latency records...
    assert len(grown.of_type(PEERING)) == 6 and len(deployed.of_type(PEERING)) == 3
    assert any(r.inputs.get("cidrIpv4") == "10.40.0.0/16" and r.name.startswith("hub-sg")
               for r in grown.of_type(INGRESS))
    assert {r.inputs["setIdentifier"] for r in grown.of_type(RECORD)
            if r.inputs.get("setIdentifier")} == set(config.region_names)
    # ...and the other datacenters list its seeds.
    conf = parameter(grown, "/chorus/test/us-east/cassandra/cassandra-0/etc/cassandra/"
                            "cassandra.yaml")
    assert "10.40.128.20:7000" in conf
    # Resources of the existing cells keep their names, so nothing of theirs is replaced.
    before = {(r.type, r.name) for r in deployed.resources}
    after = {(r.type, r.name) for r in grown.resources}
    assert before <= after


# --- rules every stack keeps -------------------------------------------------------------------


def test_no_data_store_is_public(deployed: Run) -> None:
    private_subnets = {r.name + "-id" for r in deployed.of_type("aws:ec2/subnet:Subnet")
                       if r.inputs["tags"]["tier"] == "private"}
    for node in deployed.of_type(INSTANCE):
        assert node.inputs["associatePublicIpAddress"] is False, node.name
        assert node.inputs["subnetId"] in private_subnets, node.name
    for group in deployed.of_type("aws:elasticache/subnetGroup:SubnetGroup"):
        assert set(group.inputs["subnetIds"]) <= private_subnets
    world = [r for r in deployed.of_type(INGRESS) if r.inputs.get("cidrIpv4") == "0.0.0.0/0"]
    assert {r.name for r in world} == {f"{n}-gateways-nlb-in" for n in DEFAULT_AWS_REGIONS}
    assert {r.inputs["fromPort"] for r in world} == {80}
    for lb in deployed.of_type(LOAD_BALANCER):
        assert lb.inputs["loadBalancerType"] == "network"
    for block in deployed.of_type("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"):
        assert all(block.inputs[k] is True for k in (
            "blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    for policy in deployed.of_type("aws:s3/bucketPolicy:BucketPolicy"):
        allow = [s for s in json.loads(policy.inputs["policy"])["Statement"]
                 if s["Effect"] == "Allow"]
        assert [s["Principal"] for s in allow] == [{"Service": "cloudfront.amazonaws.com"}]


def test_encryption_is_on(deployed: Run) -> None:
    assert all(v.inputs["encrypted"] is True for v in deployed.of_type(VOLUME))
    assert all(i.inputs["rootBlockDevice"]["encrypted"] is True
               for i in deployed.of_type(INSTANCE))
    for redis in deployed.of_type(REDIS):
        assert redis.inputs["atRestEncryptionEnabled"] is True
        assert redis.inputs["transitEncryptionEnabled"] is True
        assert redis.inputs["transitEncryptionMode"] == "required"
    encrypted = {r.inputs["bucket"] for r in deployed.of_type(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")}
    assert encrypted == {b.name + "-id" for b in deployed.of_type(BUCKET)}
    for cdn in deployed.of_type("aws:cloudfront/distribution:Distribution"):
        assert cdn.inputs["defaultCacheBehavior"]["viewerProtocolPolicy"] == "https-only"
    tls_files = [p for p in deployed.of_type(PARAMETER) if "/tls/" in p.inputs["name"]]
    assert tls_files and all(p.inputs["type"] == "SecureString" for p in tls_files)
    hub = parameter(deployed, "/chorus/test/us-east/hub/hub-0/etc/nats/nats.conf")
    assert "verify: true" in hub  # only holders of the internal certificate join the hub
    cassandra = yaml.safe_load(parameter(
        deployed, "/chorus/test/eu-west/cassandra/cassandra-0/etc/cassandra/cassandra.yaml"))
    assert cassandra["server_encryption_options"]["internode_encryption"] == "all"


def test_everything_taggable_is_tagged(deployed: Run) -> None:
    assert POLICY_TAGS == REQUIRED_TAGS
    tagged_types = set()
    for resource in filter(taggable, deployed.resources):
        tags = resource.inputs.get("tags") or {}
        missing = [k for k in REQUIRED_TAGS if not tags.get(k)]
        assert not missing, f"{resource.type} {resource.name} lacks {missing}"
        tagged_types.add(resource.type)
    # The policy pack knows every taggable type the program creates.
    assert tagged_types <= TAGGABLE


def test_the_load_balancer_keeps_idle_connections_for_an_hour(deployed: Run) -> None:
    listeners = deployed.of_type(LISTENER)
    assert len(listeners) == 3
    for listener in listeners:
        assert listener.inputs["protocol"] == "TCP"
        assert listener.inputs["tcpIdleTimeoutSeconds"] >= 3600


# --- the global plane --------------------------------------------------------------------------


def test_hub_is_three_stateless_nodes_in_the_hub_region(deployed: Run) -> None:
    hub = [i for i in deployed.of_type(INSTANCE) if i.inputs["tags"]["component"] == "hub"]
    assert len(hub) == 3 and {h.provider_name for h in hub} == {"aws-us-east"}
    assert not [v for v in deployed.of_type(VOLUME) if v.inputs["tags"]["component"] == "hub"]
    zone = deployed.named("internal", "aws:route53/zone:Zone")
    assert len(zone.inputs["vpcs"]) == 3
    names = {r.inputs["name"] for r in deployed.of_type(RECORD) if r.inputs["type"] == "A"}
    assert {f"hub-{i}.chorus.internal" for i in range(3)} <= names


def test_latency_records_with_health_checks(deployed: Run, repo_regions: Config) -> None:
    checks = {c.name: c.inputs for c in deployed.of_type(HEALTH_CHECK)}
    for region in repo_regions.region_names:
        record = deployed.named(f"latency-{region}", RECORD).inputs
        assert record["name"] == "comments.test.example"
        assert record["latencyRoutingPolicies"] == [{"region": DEFAULT_AWS_REGIONS[region]}]
        assert record["aliases"][0]["evaluateTargetHealth"] is True
        assert record["healthCheckId"] == f"health-{region}-id"
        check = checks[f"health-{region}"]
        assert check["fqdn"] == f"{region}-gateways-nlb.elb.mock"
        assert check["resourcePath"] == "/healthz" and check["type"] == "HTTP"


def test_cells_are_peered_in_a_full_mesh(deployed: Run) -> None:
    region_of = {p.name: p.inputs["region"] for p in deployed.of_type(PROVIDER)}
    accepter_region = {a.name: region_of[str(a.provider_name)]
                       for a in deployed.of_type(ACCEPTER)}
    pairs = set()
    for peering in deployed.of_type(PEERING):
        requester = region_of[str(peering.provider_name)]
        # Accepted on the other side, by that region's provider.
        assert accepter_region[peering.name] == peering.inputs["peerRegion"] != requester
        pairs.add(frozenset((requester, peering.inputs["peerRegion"])))
    regions = sorted(DEFAULT_AWS_REGIONS.values())
    assert pairs == {frozenset(p) for p in itertools.combinations(regions, 2)}


# --- variants and the entry point --------------------------------------------------------------


@pytest.fixture(scope="module")
def variant(repo_regions: Config) -> Run:
    """Gateway TLS on, eu-west being retired."""
    secrets = dataclasses.replace(SECRETS, gateway_cert="-----GW CERT-----",
                                  gateway_key="-----GW KEY-----")
    return run_deployment(make_deployment(repo_regions, secrets=secrets,
                                          retiring=("eu-west",)))


def test_gateway_tls_moves_the_listener_to_443(variant: Run) -> None:
    for listener in variant.of_type(LISTENER):
        assert listener.inputs["port"] == 443 and listener.inputs["protocol"] == "TCP"
        assert listener.inputs["tcpIdleTimeoutSeconds"] == 3600
    for group in variant.of_type(TARGET_GROUP):
        assert group.inputs["healthCheck"]["protocol"] == "HTTPS"
    assert {s["name"] for s in container(variant, "eu-west")["secrets"]} == {
        "CHORUS_AUTH_SECRET", "CHORUS_TLS_CERT", "CHORUS_TLS_KEY"}
    assert variant.value["eu-west"]["gateway_url"] == "https://eu-west-gateways-nlb.elb.mock"
    for check in variant.of_type(HEALTH_CHECK):
        assert check.inputs["type"] == "HTTPS" and check.inputs["port"] == 443


def test_a_retiring_region_leaves_dns_and_loses_its_protection(variant: Run) -> None:
    answered = {r.inputs["setIdentifier"] for r in variant.of_type(RECORD)
                if r.inputs.get("setIdentifier")}
    assert answered == {"us-east", "ap-south"}
    protected = {lb.name: lb.inputs["enableDeletionProtection"]
                 for lb in variant.of_type(LOAD_BALANCER)}
    assert protected == {"us-east-gateways-nlb": True, "eu-west-gateways-nlb": False,
                         "ap-south-gateways-nlb": True}


def stack_config(path: str) -> dict[str, str]:
    """A Pulumi.<stack>.yaml as the engine hands it to a program: JSON for structures."""
    raw = yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))["config"]
    config = {}
    for key, value in raw.items():
        if isinstance(value, dict | list):
            config[key] = json.dumps(value)
        elif isinstance(value, bool):
            config[key] = "true" if value else "false"
        else:
            config[key] = str(value)
    return config


def test_the_program_runs_from_the_example_stack() -> None:
    config = stack_config("iac/Pulumi.prod.yaml") | {
        "chorus:authSecret": "stack-auth-secret-0123456789abcdef", "chorus:internalCa": "ca",
        "chorus:internalCert": "cert", "chorus:internalKey": "key"}
    path = str(ROOT / "iac" / "__main__.py")

    def program() -> None:
        # As the Pulumi language host runs it.
        runpy.run_path(path, run_name="__main__")

    result = run(program, config=config)
    assert sorted(c.name for c in result.of_type(CELL)) == ["ap-south", "eu-west", "us-east"]
    assert {r.inputs["name"] for r in result.of_type(RECORD)
            if r.inputs.get("setIdentifier")} == {"comments.example.com"}
    image = container(result, "ap-south")["image"]
    assert image.endswith("/chorus-gateway:0.1.0")
    assert result.named("us-east-redis", REDIS).inputs["nodeType"] == Sizing().redis_node_type
