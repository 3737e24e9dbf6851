"""Where a gateway process finds its servers, and what it calls itself. Pure.

In the local cluster everything follows from regions.yaml (`local_settings`). A deployed
gateway (iac/: ECS tasks behind a load balancer) runs from the same regions.yaml, baked into
its image for limits and topology, and learns its addresses from ``CHORUS_*`` environment
variables (`settings_from_env`). The entry point reads the environment once and passes the
result down; unknown ``CHORUS_*`` variables and bad values are refused, naming the variable.

| variable | required | meaning |
| --- | --- | --- |
| CHORUS_REGION | yes | the region (a name in regions.yaml) |
| CHORUS_NATS_URLS | yes | the region's NATS servers, comma-separated |
| CHORUS_REDIS_URL | yes | redis:// or rediss:// (TLS) URL of the region's Redis |
| CHORUS_AUTH_SECRET | yes | HS256 key of client tokens, at least 32 characters |
| CHORUS_PUBLIC_URL | yes | the region's URL for clients (the load balancer's) |
| CHORUS_GATEWAY_PORT | no | port to listen on (default: regions.yaml's gateway_port) |
| CHORUS_OPERATOR_PORT | no | operator listener: /metrics, health (default: operator_port) |
| CHORUS_GATEWAY_NODE | no | unique among the region's gateways, for ids (default: random) |
| CHORUS_TLS_CERT, CHORUS_TLS_KEY | no | PEM text: terminate TLS here (both or neither) |
| CHORUS_CASSANDRA_CONTACT_POINTS | no | the region's Cassandra nodes, comma-separated |
| CHORUS_CASSANDRA_PORT | no | their CQL port |
| CHORUS_CASSANDRA_DATACENTER | no | must be the region's name |
| CHORUS_SNAPSHOT_BUCKET, CHORUS_SNAPSHOT_URL | no | snapshot bucket, its CDN's URL (both) |

Hot streams' snapshot documents go to the snapshot bucket (region/snapshot_s3.py). With
one the gateway also reads what ECS gives every task: ``AWS_REGION`` (or
``AWS_DEFAULT_REGION``), the bucket's region, and ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``
(or ``..._FULL_URI``), where the task role's credentials are served.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from chorus.config import Config, Region
from chorus.errors import ConfigError
from region.snapshot_s3 import SnapshotTarget

SOURCE = "environment"
KNOWN = frozenset({
    "CHORUS_REGION", "CHORUS_NATS_URLS", "CHORUS_REDIS_URL", "CHORUS_AUTH_SECRET",
    "CHORUS_PUBLIC_URL", "CHORUS_GATEWAY_PORT", "CHORUS_OPERATOR_PORT", "CHORUS_GATEWAY_NODE",
    "CHORUS_TLS_CERT",
    "CHORUS_TLS_KEY", "CHORUS_CASSANDRA_CONTACT_POINTS", "CHORUS_CASSANDRA_PORT",
    "CHORUS_CASSANDRA_DATACENTER", "CHORUS_SNAPSHOT_BUCKET", "CHORUS_SNAPSHOT_URL",
})
# Variables read elsewhere, not by the gateway (the cache of the setup step, for one).
IGNORED = frozenset({"CHORUS_CACHE"})


@dataclass(frozen=True)
class GatewaySettings:
    """``node`` makes comment ids unique (``<region>.<node>``); ``public_url`` is what this
    gateway announces to the registry; ``peers`` are where its viewers go when it stops.
    ``operator_port`` is the operator listener (/metrics, health details), plain HTTP on
    ``listen_host``, for the operators' network only (None: none, as in tests that build a
    gateway in process)."""

    region: str
    node: int
    listen_host: str
    listen_port: int
    nats_urls: tuple[str, ...]
    redis_url: str
    public_url: str
    peers: tuple[str, ...]
    tls_cert_pem: str | None = None
    tls_key_pem: str | None = None
    operator_port: int | None = None
    # Where hot streams' snapshot documents go for the CDN (None: served by the gateways).
    snapshots: SnapshotTarget | None = None


ECS_CREDENTIALS_HOST = "http://169.254.170.2"  # where ECS serves a task role's credentials


def _snapshots(env: Mapping[str, str]) -> SnapshotTarget | None:
    bucket = env.get("CHORUS_SNAPSHOT_BUCKET", "").strip()
    url = env.get("CHORUS_SNAPSHOT_URL", "").strip()
    if not bucket and not url:
        return None
    if not bucket or not url:
        raise _fail("CHORUS_SNAPSHOT_BUCKET" if not bucket else "CHORUS_SNAPSHOT_URL",
                    "CHORUS_SNAPSHOT_BUCKET and CHORUS_SNAPSHOT_URL go together")
    (public_url,) = _urls("CHORUS_SNAPSHOT_URL", url, ("https",))
    aws_region = (env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "").strip()
    if not aws_region:
        raise _fail("CHORUS_SNAPSHOT_BUCKET", "needs AWS_REGION (ECS sets it): the bucket's "
                                              "region")
    relative = env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "").strip()
    full = env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI", "").strip()
    if not relative and not full:
        raise _fail("CHORUS_SNAPSHOT_BUCKET", "needs the task role's credentials "
                                              "(AWS_CONTAINER_CREDENTIALS_RELATIVE_URI, which "
                                              "ECS sets)")
    return SnapshotTarget(bucket=bucket, public_url=public_url, aws_region=aws_region,
                          credentials_url=full or f"{ECS_CREDENTIALS_HOST}{relative}")


def local_settings(config: Config, region: Region, index: int) -> GatewaySettings:
    url = region.gateway_urls[index]
    return GatewaySettings(
        region=region.name, node=index, listen_host=region.host,
        listen_port=region.gateway_ports[index], nats_urls=(region.nats_url,),
        redis_url=region.redis_url, public_url=url,
        peers=tuple(u for u in region.gateway_urls if u != url),
        operator_port=region.operator_ports[index] if region.operator_ports else None)


def _fail(var: str, reason: str) -> ConfigError:
    return ConfigError(SOURCE, var, reason)


def _urls(var: str, raw: str, schemes: tuple[str, ...]) -> tuple[str, ...]:
    urls = tuple(u.strip() for u in raw.split(",") if u.strip())
    if not urls:
        raise _fail(var, "must list at least one URL")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in schemes or not parts.hostname:
            raise _fail(var, f"{url!r} is not a {' or '.join(schemes)} URL with a host")
    return urls


def _port(var: str, raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise _fail(var, f"must be a port 1-65535, not {raw!r}")
    return int(raw)


def settings_from_env(env: Mapping[str, str], config: Config, *,
                      rng: random.Random | None = None) -> tuple[Config, GatewaySettings]:
    """The config (auth key and Cassandra address replaced) and settings of a deployed
    gateway. Raises `ConfigError` naming the variable."""
    unknown = sorted(k for k in env if k.startswith("CHORUS_") and k not in KNOWN | IGNORED)
    if unknown:
        raise _fail(unknown[0], f"unknown variable (known: {', '.join(sorted(KNOWN))})")

    def need(var: str) -> str:
        value = env.get(var, "").strip()
        if not value:
            raise _fail(var, "missing")
        return value

    name = need("CHORUS_REGION")
    if name not in config.region_names:
        raise _fail("CHORUS_REGION", f"{name!r} is not a region of {config.source} "
                                     f"({', '.join(config.region_names)})")
    region = config.region(name)
    nats_urls = _urls("CHORUS_NATS_URLS", need("CHORUS_NATS_URLS"), ("nats", "tls"))
    (redis_url,) = _urls("CHORUS_REDIS_URL", need("CHORUS_REDIS_URL"), ("redis", "rediss"))
    (public_url,) = _urls("CHORUS_PUBLIC_URL", need("CHORUS_PUBLIC_URL"), ("http", "https"))
    secret = need("CHORUS_AUTH_SECRET")
    if len(secret) < 32:
        raise _fail("CHORUS_AUTH_SECRET", "must be at least 32 characters for HS256")
    port = _port("CHORUS_GATEWAY_PORT", env["CHORUS_GATEWAY_PORT"]) if env.get(
        "CHORUS_GATEWAY_PORT") else region.gateway_port
    operator_port = _port("CHORUS_OPERATOR_PORT", env["CHORUS_OPERATOR_PORT"]) if env.get(
        "CHORUS_OPERATOR_PORT") else region.operator_port
    if operator_port == port:
        raise _fail("CHORUS_OPERATOR_PORT", f"must differ from the client port {port}: "
                                            "metrics are not served to clients")
    raw_node = env.get("CHORUS_GATEWAY_NODE", "")
    if raw_node and not raw_node.isdigit():
        raise _fail("CHORUS_GATEWAY_NODE", f"must be a whole number, not {raw_node!r}")
    node = int(raw_node) if raw_node else (rng or random.SystemRandom()).randrange(2**40)
    cert, key = env.get("CHORUS_TLS_CERT") or None, env.get("CHORUS_TLS_KEY") or None
    if (cert is None) != (key is None):
        raise _fail("CHORUS_TLS_KEY" if key is None else "CHORUS_TLS_CERT",
                    "CHORUS_TLS_CERT and CHORUS_TLS_KEY go together")

    cassandra = config.cassandra
    if env.get("CHORUS_CASSANDRA_DATACENTER", name) != name:
        raise _fail("CHORUS_CASSANDRA_DATACENTER", f"must be the region's name, {name!r}: "
                                                   "the archive routes by region datacenter")
    if env.get("CHORUS_CASSANDRA_CONTACT_POINTS"):
        points = [p.strip() for p in env["CHORUS_CASSANDRA_CONTACT_POINTS"].split(",")
                  if p.strip()]
        if not points:
            raise _fail("CHORUS_CASSANDRA_CONTACT_POINTS", "must list at least one host")
        region = dataclasses.replace(region, cassandra=dataclasses.replace(
            region.cassandra, address=points[0]))
        cassandra = dataclasses.replace(cassandra, enabled=True)
    if env.get("CHORUS_CASSANDRA_PORT"):
        cassandra = dataclasses.replace(
            cassandra, native_port=_port("CHORUS_CASSANDRA_PORT", env["CHORUS_CASSANDRA_PORT"]))
    regions = tuple(region if r.name == name else r for r in config.regions)
    deployed = dataclasses.replace(
        config, regions=regions, cassandra=cassandra,
        auth=dataclasses.replace(config.auth, dev_secret=secret))
    return deployed, GatewaySettings(
        region=name, node=node, listen_host="0.0.0.0", listen_port=port,
        nats_urls=nats_urls, redis_url=redis_url, public_url=public_url,
        peers=(public_url,), tls_cert_pem=cert, tls_key_pem=key,
        operator_port=operator_port or None, snapshots=_snapshots(env))
