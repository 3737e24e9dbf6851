"""``pulumi preview`` / ``pulumi up`` entry point.

The only module that reads the stack's configuration (``pulumi.Config()``); it turns it,
with regions.yaml read by `chorus.config.load_config`, into one `Deployment` and hands that
to `iac.program.deploy`. docs/operations.md lists every key.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# Pulumi runs this file from iac/; the repository root makes `iac` and `chorus` importable
# whether or not the chorus package is installed in the project's virtualenv.
_HERE = Path(__file__).resolve().parent
if str(_HERE.parent) not in sys.path:
    sys.path.insert(0, str(_HERE.parent))

import pulumi  # noqa: E402

from chorus.config import load_config  # noqa: E402
from chorus.errors import ConfigError  # noqa: E402
from iac.program import deploy  # noqa: E402
from iac.settings import (  # noqa: E402
    Deployment,
    Dns,
    Secrets,
    Software,
    az_count_of,
    hub_region_of,
    plan_cells,
    sizing_from,
)


def _dns(raw: Any, source: str) -> Dns | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) != {"zoneId", "name"}:
        raise ConfigError(source, "chorus:dns", "must be {zoneId: <hosted zone>, name: <fqdn>}")
    return Dns(zone_id=str(raw["zoneId"]), name=str(raw["name"]))


def _names(raw: Any, key: str, source: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise ConfigError(source, key, "must be a list of region names")
    return tuple(raw)


def main() -> None:
    cfg = pulumi.Config()
    stack = pulumi.get_stack()
    source = f"Pulumi.{stack}.yaml"
    config = load_config(_HERE / cfg.get("regionsFile", "../regions.yaml"))
    defaults = Software(gateway_image="")
    software = Software(
        gateway_image=cfg.require("gatewayImage"),
        nats_version=cfg.get("natsVersion", defaults.nats_version),
        cassandra_version=cfg.get("cassandraVersion", defaults.cassandra_version))
    deployment = Deployment(
        config=config,
        stack=stack,
        owner=cfg.get("owner", "sre"),
        cells=plan_cells(config, cfg.get_object("awsRegions"), cfg.get_object("vpcCidrs"),
                         source=source),
        hub_region=hub_region_of(config, cfg.get("hubRegion"), source=source),
        az_count=az_count_of(cfg.get_int("azCount", 3), source=source),
        sizing=sizing_from(cfg.get_object("sizing"), source=source),
        software=software,
        secrets=Secrets(
            auth_secret=cfg.require_secret("authSecret"),
            internal_ca=cfg.require_secret("internalCa"),
            internal_cert=cfg.require_secret("internalCert"),
            internal_key=cfg.require_secret("internalKey"),
            gateway_cert=cfg.get_secret("gatewayTlsCert"),
            gateway_key=cfg.get_secret("gatewayTlsKey"),
        ),
        dns=_dns(cfg.get_object("dns"), source),
        health_path=cfg.get("healthPath", "/healthz"),
        protect_data=cfg.get_bool("protectData", True),
        retiring=_names(cfg.get_object("retiringRegions"), "chorus:retiringRegions", source),
    )
    deployed = deploy(deployment)
    pulumi.export("regions", {name: out.as_output() for name, out in deployed.regions.items()})
    pulumi.export("hub_ips", list(deployed.plane.hub_ips))
    if deployed.plane.public_url is not None:
        pulumi.export("public_url", deployed.plane.public_url)


if __name__ == "__main__":
    main()
