"""Pure parts of iac/: the address plan and the stack settings' checks."""

from __future__ import annotations

import ipaddress

import pytest

from chorus.config import Config
from chorus.errors import ConfigError
from iac.addressing import check_vpc_cidrs, node_ips, subnet_plan
from iac.settings import (
    DEFAULT_AWS_REGIONS,
    az_count_of,
    hub_region_of,
    plan_cells,
    sizing_from,
)
from tests.iac.helpers import make_deployment, with_region


def test_subnets_are_disjoint_and_inside_the_vpc() -> None:
    plan = subnet_plan("10.10.0.0/16", 3)
    nets = [ipaddress.IPv4Network(c) for c in plan.public + plan.private]
    vpc = ipaddress.IPv4Network("10.10.0.0/16")
    assert len(plan.public) == len(plan.private) == 3
    assert all(n.subnet_of(vpc) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])


@pytest.mark.parametrize("az_count", [1, 9])
def test_az_count_out_of_range_is_rejected(az_count: int) -> None:
    with pytest.raises(ValueError, match="az_count"):
        subnet_plan("10.10.0.0/16", az_count)


def test_nodes_spread_over_zones_at_fixed_hosts() -> None:
    private = subnet_plan("10.10.0.0/16", 2).private
    ips = node_ips(private, 3, 20)
    assert ips == ("10.10.128.20", "10.10.144.20", "10.10.128.21")


def test_overlapping_or_public_ranges_are_reported() -> None:
    problems = dict(check_vpc_cidrs({"a": "10.0.0.0/16", "b": "10.0.128.0/17",
                                     "c": "8.8.0.0/16", "d": "10.9.0.0/24"}))
    assert "overlaps a" in problems["b"]
    assert "not a private" in problems["c"]
    assert "/16 and /20" in problems["d"]
    assert check_vpc_cidrs({"a": "10.0.0.0/16", "b": "10.1.0.0/16"}) == []


def test_cells_follow_regions_yaml_with_default_mappings(repo_regions: Config) -> None:
    cells = plan_cells(repo_regions, None, None, source="Pulumi.test.yaml")
    assert [c.name for c in cells] == list(repo_regions.region_names)
    assert {c.name: c.aws_region for c in cells} == dict(DEFAULT_AWS_REGIONS)


def test_stack_overrides_win_and_unknown_regions_are_ignored(repo_regions: Config) -> None:
    cells = plan_cells(repo_regions, {"eu-west": "eu-central-1", "gone": "sa-east-1"},
                       {"eu-west": "10.40.0.0/16"}, source="s")
    by_name = {c.name: c for c in cells}
    assert by_name["eu-west"].aws_region == "eu-central-1"
    assert by_name["eu-west"].vpc_cidr == "10.40.0.0/16"


def test_a_new_region_needs_an_aws_region_and_a_range(repo_regions: Config,
                                                      regions_text: str) -> None:
    config = with_region(regions_text, "sa-east")
    with pytest.raises(ConfigError) as missing:
        plan_cells(config, None, None, source="Pulumi.prod.yaml")
    assert missing.value.key == "chorus:awsRegions.sa-east"
    with pytest.raises(ConfigError) as no_range:
        plan_cells(config, {"sa-east": "sa-east-1"}, None, source="Pulumi.prod.yaml")
    assert no_range.value.key == "chorus:vpcCidrs.sa-east"
    with pytest.raises(ConfigError, match="overlaps"):
        plan_cells(config, {"sa-east": "sa-east-1"}, {"sa-east": "10.10.0.0/16"}, source="s")


def test_two_cells_cannot_share_an_aws_region(repo_regions: Config) -> None:
    with pytest.raises(ConfigError, match="latency routing"):
        plan_cells(repo_regions, {"eu-west": "us-east-1"}, None, source="s")


def test_hub_region_must_be_a_region(repo_regions: Config) -> None:
    assert hub_region_of(repo_regions, None, source="s") == repo_regions.regions[0].name
    with pytest.raises(ConfigError, match=r"not a regions\.yaml region"):
        hub_region_of(repo_regions, "mars", source="s")


def test_sizing_overrides_are_checked() -> None:
    assert sizing_from({"gateway_max_tasks": 20}, source="s").gateway_max_tasks == 20
    assert sizing_from({"gateway_connection_fill": 1}, source="s").gateway_connection_fill == 1.0
    with pytest.raises(ConfigError, match="unknown key"):
        sizing_from({"gateway_tasks": 3}, source="s")
    with pytest.raises(ConfigError, match="must be of type int"):
        sizing_from({"gateway_max_tasks": "many"}, source="s")
    with pytest.raises(ConfigError, match="greater than 0"):
        sizing_from({"redis_replicas": 0}, source="s")


def test_az_count_is_checked() -> None:
    assert az_count_of(3, source="s") == 3
    with pytest.raises(ConfigError, match="between 2 and 8"):
        az_count_of(1, source="s")


def test_retiring_regions_lose_protection(repo_regions: Config) -> None:
    deployment = make_deployment(repo_regions, retiring=("eu-west",))
    assert deployment.protects("us-east") and not deployment.protects("eu-west")
    assert not make_deployment(repo_regions, protect_data=False).protects("us-east")
