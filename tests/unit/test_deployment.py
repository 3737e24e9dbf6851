"""A deployed gateway's settings from CHORUS_* variables: each mistake names the variable."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chorus.config import load_config
from chorus.errors import ConfigError
from region.deployment import local_settings, settings_from_env

CONFIG = load_config(Path(__file__).resolve().parents[2] / "regions.yaml")
GOOD = {
    "CHORUS_REGION": "eu-west",
    "CHORUS_NATS_URLS": "tls://nats-0.chorus.internal:4222, tls://nats-1.chorus.internal:4222",
    "CHORUS_REDIS_URL": "rediss://redis.eu-west.internal:6379/0",
    "CHORUS_AUTH_SECRET": "k" * 48,
    "CHORUS_PUBLIC_URL": "https://eu-west.chorus.example",
    "CHORUS_CASSANDRA_CONTACT_POINTS": "10.1.2.3,10.1.2.4",
    "CHORUS_CASSANDRA_DATACENTER": "eu-west",
    "CHORUS_SNAPSHOT_BUCKET": "snapshots",
    "CHORUS_SNAPSHOT_URL": "https://d111111abcdef8.cloudfront.net",
    "AWS_REGION": "eu-west-1",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc",
    "PATH": "/usr/bin",
}


def test_a_deployed_gateway_takes_its_addresses_from_the_environment() -> None:
    config, settings = settings_from_env(GOOD, CONFIG, rng=random.Random(1))
    assert settings.nats_urls == ("tls://nats-0.chorus.internal:4222",
                                  "tls://nats-1.chorus.internal:4222")
    assert settings.redis_url.startswith("rediss://") and settings.listen_host == "0.0.0.0"
    assert settings.listen_port == CONFIG.region("eu-west").gateway_port
    assert settings.peers == ("https://eu-west.chorus.example",)
    assert 0 <= settings.node < 2**40
    assert config.auth.dev_secret == "k" * 48
    assert config.cassandra.enabled and config.region("eu-west").cassandra.address == "10.1.2.3"
    assert config.region("us-east") == CONFIG.region("us-east")


@pytest.mark.parametrize(("change", "var", "reason"), [
    ({"CHORUS_REGION": None}, "CHORUS_REGION", "missing"),
    ({"CHORUS_REGION": "mars"}, "CHORUS_REGION", "not a region"),
    ({"CHORUS_NATS_URLS": "http://x"}, "CHORUS_NATS_URLS", "nats or tls URL"),
    ({"CHORUS_REDIS_URL": "redis-host:6379"}, "CHORUS_REDIS_URL", "redis or rediss"),
    ({"CHORUS_AUTH_SECRET": "short"}, "CHORUS_AUTH_SECRET", "at least 32"),
    ({"CHORUS_GATEWAY_PORT": "0"}, "CHORUS_GATEWAY_PORT", "port"),
    ({"CHORUS_GATEWAY_NODE": "-1"}, "CHORUS_GATEWAY_NODE", "whole number"),
    ({"CHORUS_TLS_CERT": "PEM"}, "CHORUS_TLS_KEY", "go together"),
    ({"CHORUS_CASSANDRA_DATACENTER": "us-east-1"}, "CHORUS_CASSANDRA_DATACENTER", "region's"),
    ({"CHORUS_REGOIN": "eu-west"}, "CHORUS_REGOIN", "unknown variable"),
])
def test_each_mistake_names_its_variable(change: dict[str, str | None], var: str,
                                         reason: str) -> None:
    env = {**GOOD}
    for key, value in change.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    with pytest.raises(ConfigError) as info:
        settings_from_env(env, CONFIG)
    assert info.value.key == var and reason in info.value.reason, str(info.value)


def test_local_settings_follow_regions_yaml() -> None:
    region = CONFIG.region("us-east")
    settings = local_settings(CONFIG, region, 1)
    assert settings.listen_port == region.gateway_ports[1]
    assert settings.public_url == region.gateway_urls[1]
    assert settings.peers == (region.gateway_urls[0],)


def test_the_operator_listener_has_its_own_port() -> None:
    region = CONFIG.region("eu-west")
    _, default = settings_from_env(GOOD, CONFIG)
    assert default.operator_port == region.operator_port
    _, chosen = settings_from_env({**GOOD, "CHORUS_OPERATOR_PORT": "9464"}, CONFIG)
    assert chosen.operator_port == 9464
    assert local_settings(CONFIG, region, 1).operator_port == region.operator_ports[1]
    with pytest.raises(ConfigError) as info:
        settings_from_env({**GOOD, "CHORUS_GATEWAY_PORT": "8080",
                           "CHORUS_OPERATOR_PORT": "8080"}, CONFIG)
    assert info.value.key == "CHORUS_OPERATOR_PORT" and "differ" in info.value.reason
