"""Deployments the iac/ tests build: the repository's regions with fake secrets."""

from __future__ import annotations

from typing import Any

import yaml

from chorus.config import Config, parse_config
from iac.program import deploy
from iac.settings import Deployment, Dns, Secrets, Sizing, Software, plan_cells
from tests.iac.mockrun import Run, run

SECRETS = Secrets(auth_secret="test-auth-secret-0123456789abcdef0123",
                  internal_ca="-----CA-----", internal_cert="-----CERT-----",
                  internal_key="-----KEY-----")
DNS = Dns(zone_id="ZTEST", name="comments.test.example")


def make_deployment(config: Config, *, aws_regions: dict[str, str] | None = None,
                    vpc_cidrs: dict[str, str] | None = None, **overrides: Any) -> Deployment:
    """Repository defaults, fake secrets, public DNS on; ``overrides`` replace fields."""
    fields: dict[str, Any] = dict(
        config=config, stack="test", owner="sre-test",
        cells=plan_cells(config, aws_regions, vpc_cidrs, source="Pulumi.test.yaml"),
        hub_region=config.regions[0].name, az_count=3, sizing=Sizing(),
        software=Software(gateway_image="chorus:test"), secrets=SECRETS, dns=DNS)
    fields.update(overrides)
    return Deployment(**fields)


def run_deployment(deployment: Deployment) -> Run:
    """Deploy under mocks; the run's value is what the stack exports as ``regions``."""

    def program() -> object:
        deployed = deploy(deployment)
        return {name: out.as_output() for name, out in deployed.regions.items()}

    return run(program)


def with_region(regions_text: str, name: str) -> Config:
    """regions.yaml text with one more region (ports past the existing ones), parsed by
    the same loader as everything else."""
    raw = yaml.safe_load(regions_text)
    n = len(raw["regions"]) + 1
    raw["regions"][name] = {
        "gateways": 3,
        "gateway_port": 8001 + 100 * n,
        "nats": {"client_port": 4300 + n, "monitor_port": 8410 + n},
        "redis": {"port": 6300 + n},
        "cassandra": {"address": f"127.0.0.{n + 1}"},
    }
    raw["links"][name] = {"latency_ms": 60, "jitter_ms": 3, "proxy_port": 7510 + n}
    return parse_config(yaml.safe_dump(raw, sort_keys=False), source="regions+1.yaml")
