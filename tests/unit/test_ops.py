"""ops/: the alert rules pass promtool (syntax and their unit tests), and the rules, the
Grafana dashboard and the local Prometheus's scrape configuration name only series the
gateways export and every gateway's operator listener."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chorus.cluster import prometheus
from chorus.config import load_config
from chorus.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "alerts.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "chorus.json"
# Series Prometheus makes itself, not the gateways.
PROMETHEUS_OWN = {"up"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: run scripts/setup.sh (Debian package prometheus)")
    return found


def exported() -> set[str]:
    """Every sample name a gateway's registry exposes."""
    m = Metrics("us-east", "0")
    m.declare_regions(("us-east", "eu-west"))
    m.declare_destinations(("eu-west",))
    m.set_objectives({"us-east": 0.05}, outbox_alert_depth=1)
    m.track_regions(("eu-west",), lambda peer: (True, 1))
    m.outbox_depth("eu-west", 1)
    m.archive_lag(1)
    m.error("invalid")
    m.hub_rejected("presence_answer")
    m.track_connections(lambda: 0)
    return {s.name for family in m.registry.collect() for s in family.samples}


def series_in(expr: str) -> set[str]:
    """Metric names in a PromQL expression (identifiers followed by a selector, a range or
    an aggregation's end; label names and functions are left out)."""
    names = set(re.findall(r"\b((?:chorus|process)_[a-z_]+|up)\b(?=\s*[{\[)\s]|$)", expr))
    return names


def test_the_rules_pass_promtool_and_their_unit_tests() -> None:
    tool = promtool()
    check = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run([tool, "test", "rules", "alerts_test.yml"], cwd=RULES.parent,
                          capture_output=True, text=True, timeout=60)
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_the_rules_cover_what_an_operator_is_paged_for() -> None:
    doc = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"] for g in doc["groups"] for r in g["rules"]}
    assert {"ChorusOutboxBacklog", "ChorusArchiveLag", "ChorusDeliveryP99OverObjective",
            "ChorusRegionUnhealthy", "ChorusSlowConsumerCuts"} <= alerts


def test_rules_and_dashboard_read_only_exported_series() -> None:
    known = exported() | PROMETHEUS_OWN
    doc = yaml.safe_load(RULES.read_text())
    exprs = [r["expr"] for g in doc["groups"] for r in g["rules"]]
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    exprs += [t["expr"] for p in panels for t in p["targets"]]
    used = set().union(*(series_in(e) for e in exprs))
    assert used - known == set()
    # Every latency histogram is on the dashboard.
    for name in ("chorus_delivery_seconds", "chorus_post_stored_seconds",
                 "chorus_forward_seconds", "chorus_presence_query_seconds",
                 "chorus_history_page_seconds", "chorus_archive_write_seconds"):
        assert f"{name}_bucket" in used, name


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in dashboard["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['title']} overlaps another"
        cells |= mine
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "region"}


def test_the_local_prometheus_scrapes_every_operator_listener(tmp_path: Path) -> None:
    config = load_config(ROOT / "regions.yaml")
    doc = yaml.safe_load(prometheus.render_config(config))
    (job,) = doc["scrape_configs"]
    assert job["job_name"] == prometheus.JOB
    (static,) = job["static_configs"]
    assert static["targets"] == [f"127.0.0.1:{p}" for r in config.regions
                                 for p in r.operator_ports]
    assert not {int(t.rsplit(":", 1)[1]) for t in static["targets"]} & {
        p for r in config.regions for p in r.gateway_ports}
    assert doc["rule_files"] == [str(RULES)]
    conf = tmp_path / "prometheus.yml"
    conf.write_text(prometheus.render_config(config))
    tool = promtool()
    check = subprocess.run([tool, "check", "config", str(conf)], capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
