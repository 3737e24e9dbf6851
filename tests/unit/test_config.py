"""regions.yaml: the shipped file loads, and each kind of bad file says file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chorus.config import dump_config, load_config, parse_config
from chorus.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
GOOD = (ROOT / "regions.yaml").read_text()


def test_shipped_file_loads_with_three_regions_and_documented_latencies() -> None:
    config = load_config(ROOT / "regions.yaml")
    assert config.region_names == ("us-east", "eu-west", "ap-south")
    rtt = {(a, b): 2 * (config.region(a).link.latency_ms + config.region(b).link.latency_ms)
           for a, b in (("us-east", "eu-west"), ("us-east", "ap-south"))}
    assert rtt == {("us-east", "eu-west"): 80, ("us-east", "ap-south"): 200}
    assert config.region("us-east").gateway_ports == (8101, 8102)
    assert config.run_dir == ROOT / ".chorus"


def test_dump_then_parse_gives_the_same_config() -> None:
    config = load_config(ROOT / "regions.yaml")
    again = parse_config(dump_config(config), source=config.source,
                         base_dir=config.run_dir.parent)
    assert again == config


def test_defaults_fill_optional_sections() -> None:
    doc = yaml.safe_load(GOOD)
    for section in ("hub", "toxiproxy", "cassandra", "auth", "limits", "tiers", "archive"):
        del doc[section]
    config = parse_config(yaml.safe_dump(doc))
    assert config.limits.tick_ms == 25 and config.archive.ttl_days == 90
    assert config.archive.replication_factor == 1


def edit(path: str, value: object) -> str:
    """The shipped file with one key set (value ... deletes it)."""
    doc = yaml.safe_load(GOOD)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.mark.parametrize(("path", "value", "key", "reason"), [
    ("regions.us-east.colour", "blue", "regions.us-east.colour", "unknown key"),
    ("limits.tick_msec", 5, "limits.tick_msec", "unknown key"),
    ("extra", {}, "extra", "unknown key"),
    ("regions.eu-west.redis", ..., "regions.eu-west.redis", "missing"),
    ("regions.eu-west.nats.client_port", ..., "regions.eu-west.nats.client_port", "missing"),
    ("regions.eu-west.redis.port", 6301, "regions.eu-west.redis.port", "duplicate port 6301"),
    ("regions.ap-south.gateway_port", 8102, "regions.ap-south.gateway_port",
     "duplicate port 8102"),
    ("links.eu-west.latency_ms", -5, "links.eu-west.latency_ms", "must not be negative"),
    ("links.mars", {"latency_ms": 5, "proxy_port": 7600}, "links.mars", "unknown region"),
    ("links.ap-south", ..., "links.ap-south", "needs a link to the hub"),
    ("regions.us-east.gateways", 0, "regions.us-east.gateways", "at least 1"),
    ("regions.us-east.gateways", "two", "regions.us-east.gateways", "whole number"),
    ("regions.us-east.redis.port", 70000, "regions.us-east.redis.port", "between 1 and 65535"),
    ("regions.us-east.cassandra.address", "db", "regions.us-east.cassandra.address",
     "IP address"),
    ("regions.eu-west.cassandra.address", "127.0.0.2", "regions.eu-west.cassandra.address",
     "duplicate address"),
    ("cassandra.enabled", "yes", "cassandra.enabled", "true or false"),
    ("limits.replay_window", 0, "limits.replay_window", "greater than 0"),
    ("archive.replication_factor", 0, "archive.replication_factor", "greater than 0"),
    ("archive.shards", 0, "archive.shards", "greater than 0"),
    ("limits.comment_max_bytes", 99999, "limits.comment_max_bytes", "frame_max_bytes"),
    ("limits.presence_heartbeat_s", 30, "limits.presence_heartbeat_s", "presence_ttl_s"),
    ("tiers.sampled_exit_viewers", 9000, "tiers.sampled_exit_viewers", "must not exceed"),
    ("auth.dev_secret", "short", "auth.dev_secret", "at least 32"),
    ("auth.allowed_origins", "http://x", "auth.allowed_origins", "must be a list"),
    ("regions.Bad_Name", {}, "regions.Bad_Name", "lowercase"),
    ("regions", {}, "regions", "non-empty"),
    ("regions", ..., "regions", "missing"),
    ("links", ..., "links", "missing"),
])
def test_bad_file_is_rejected_with_key_and_reason(path: str, value: object, key: str,
                                                  reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(edit(path, value), source="regions.yaml")
    err = info.value
    assert err.file == "regions.yaml"
    assert err.key == key, str(err)
    assert reason in err.reason, str(err)
    assert str(err).startswith(f"regions.yaml: {key}: ")


def test_not_yaml_or_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"line 1, column"):
        parse_config("regions: [unclosed", source="r.yaml")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        parse_config("- a\n- b\n", source="r.yaml")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_each_gateway_has_an_operator_port_apart_from_its_client_port() -> None:
    shipped = parse_config(GOOD)
    us = shipped.region("us-east")
    assert us.operator_ports == (9101, 9102)
    assert us.operator_urls == ("http://127.0.0.1:9101", "http://127.0.0.1:9102")
    assert not set(us.operator_ports) & set(us.gateway_ports)
    # Without the key, gateway_port + 1000: an older file keeps loading.
    derived = parse_config(edit("regions.us-east.operator_port", ...)).region("us-east")
    assert derived.operator_ports == (9101, 9102)
    assert parse_config(dump_config(shipped)) == shipped


@pytest.mark.parametrize(("path", "value", "key", "reason"), [
    ("regions.eu-west.operator_port", 8101, "regions.eu-west.operator_port",
     "duplicate port 8101"),
    ("regions.eu-west.operator_port", 65535, "regions.eu-west.operator_port", "exceeds 65535"),
    ("regions.eu-west.operator_port", 0, "regions.eu-west.operator_port", "between 1 and"),
    ("prometheus.port", 4222, "prometheus.port", "duplicate port 4222"),
    ("prometheus.scrape_interval_s", 0, "prometheus.scrape_interval_s", "greater than 0"),
    ("prometheus.retention", "1d", "prometheus.retention", "unknown key"),
])
def test_bad_operator_and_prometheus_ports_are_refused(path: str, value: object, key: str,
                                                       reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(edit(path, value), source="regions.yaml")
    assert info.value.key == key and reason in info.value.reason, str(info.value)
