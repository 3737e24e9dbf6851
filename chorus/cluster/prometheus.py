"""`chorus up --with-prometheus`: a local Prometheus that scrapes every gateway's operator
listener and evaluates the alert rules of ops/prometheus/alerts.yml.

`render_config` is pure (the scrape configuration from regions.yaml); `prometheus_spec` is the
process the local cluster runs: Debian's ``prometheus`` package (scripts/setup.sh installs
it), on ``127.0.0.1:<prometheus.port>``, its data under the run directory. A deployment runs
its own Prometheus; the same rules file and the Grafana dashboard of ops/grafana/ apply.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from chorus.cluster.plan import RunLayout
from chorus.cluster.process import ProcessSpec
from chorus.config import Config
from chorus.errors import SetupError

NAME = "prometheus"
JOB = "chorus-gateways"   # the job name the alert rules and the dashboard select on
RETENTION = "2d"          # a local cluster's history; a deployment sets its own
OPS = Path(__file__).resolve().parents[2] / "ops"
RULES = OPS / "prometheus" / "alerts.yml"


def targets(config: Config) -> list[str]:
    """Every gateway's operator listener, ``host:port``."""
    return [f"{r.host}:{port}" for r in config.regions for port in r.operator_ports]


def render_config(config: Config, rules: Path = RULES) -> str:
    """prometheus.yml for the local cluster."""
    interval = f"{config.prometheus.scrape_interval_s}s"
    doc = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules)],
        "scrape_configs": [{
            "job_name": JOB,
            "metrics_path": "/metrics",
            "static_configs": [{"targets": targets(config)}],
        }],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def url(config: Config) -> str:
    return f"http://127.0.0.1:{config.prometheus.port}"


def prometheus_spec(config: Config, binary: Path | None, layout: RunLayout) -> ProcessSpec:
    """The local Prometheus. Raises `SetupError` when it is not installed."""
    if binary is None:
        raise SetupError("prometheus is not installed: run scripts/setup.sh (Debian package "
                         "prometheus)")
    if not RULES.exists():
        raise SetupError(f"the alert rules are missing: {RULES}")
    conf = layout.conf(NAME).with_suffix(".yml")
    return ProcessSpec(
        name=NAME,
        argv=(str(binary), f"--config.file={conf}",
              f"--storage.tsdb.path={layout.data(NAME)}",
              f"--storage.tsdb.retention.time={RETENTION}",
              f"--web.listen-address=127.0.0.1:{config.prometheus.port}"),
        log=layout.log(NAME),
        files={conf: render_config(config)},
    )
