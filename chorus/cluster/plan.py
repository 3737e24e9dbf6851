"""What the local cluster runs, as plain `ProcessSpec`s built from the config. No I/O.

Run directory layout (``config.run_dir``, default ``.chorus`` beside regions.yaml)::

    state.json            who is running: pid of `chorus up`, effective config, children
    control.sock          process control for drills (chorus/cluster/control.py)
    regions.effective.yaml  the config with the ports actually used (tests relocate them)
    logs/<part>.log       one log per process
    data/<part>/          JetStream stores, Redis working dirs, Cassandra data
    conf/<part>.conf      rendered server configs
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from chorus import natsconf
from chorus.cluster.binaries import Binaries
from chorus.cluster.process import ProcessSpec
from chorus.config import Config, Region

HUB = "hub"
TOXIPROXY = "toxiproxy"


@dataclass(frozen=True)
class RunLayout:
    """Where each file of a run lives under ``run_dir`` (the module's docstring shows it)."""

    run_dir: Path

    @property
    def state(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def lock(self) -> Path:
        return self.run_dir / "up.lock"

    @property
    def control(self) -> Path:
        """The unix socket where `chorus up` takes process control requests (drills)."""
        return self.run_dir / "control.sock"

    @property
    def effective_config(self) -> Path:
        return self.run_dir / "regions.effective.yaml"

    def log(self, part: str) -> Path:
        return self.run_dir / "logs" / f"{part.replace('/', '.')}.log"

    def data(self, part: str) -> Path:
        return self.run_dir / "data" / part.replace("/", ".")

    def conf(self, part: str) -> Path:
        return self.run_dir / "conf" / f"{part.replace('/', '.')}.conf"


def nats_name(region: Region) -> str:
    return f"{region.name}/nats"


def redis_name(region: Region) -> str:
    return f"{region.name}/redis"


def gateway_name(region: Region, index: int) -> str:
    return f"{region.name}/gateway-{index}"


def cassandra_name(region: Region) -> str:
    return f"{region.name}/cassandra"


def toxiproxy_spec(config: Config, bins: Binaries, layout: RunLayout) -> ProcessSpec:
    return ProcessSpec(
        name=TOXIPROXY,
        argv=(str(bins.toxiproxy_server), "-host", "127.0.0.1",
              "-port", str(config.toxiproxy.api_port)),
        log=layout.log(TOXIPROXY),
    )


def hub_spec(config: Config, bins: Binaries, layout: RunLayout) -> ProcessSpec:
    hub = config.hub
    # Every region reaches the hub only through its own toxiproxy proxy, and there is no
    # single address to advertise for all of them: advertise one that refuses connections
    # (port 1 on loopback), so that a leaf node reconnecting after a cut can only get back
    # through its proxy, and `chorus link` keeps controlling it.
    server = natsconf.hub_server("chorus-hub", hub.host, hub.client_port, hub.leaf_port,
                                 hub.monitor_port, leaf_advertise=f"{hub.host}:1")
    conf = layout.conf(HUB)
    return ProcessSpec(name=HUB, argv=(str(bins.nats_server), "-c", str(conf)),
                       log=layout.log(HUB), files={conf: natsconf.render(server)})


def region_nats_spec(config: Config, region: Region, bins: Binaries,
                     layout: RunLayout) -> ProcessSpec:
    name = nats_name(region)
    # The leaf link dials the region's toxiproxy proxy, never the hub directly, so that
    # `chorus link` and the chaos drills control all traffic between regions.
    server = natsconf.region_server(
        f"chorus-{region.name}", region.name, region.host, region.nats.client_port,
        region.nats.monitor_port, str(layout.data(name)),
        (f"nats://127.0.0.1:{region.link.proxy_port}",),
        max_memory_store=128 * 1024 * 1024, max_file_store=2 * 1024 * 1024 * 1024,
    )
    conf = layout.conf(name)
    return ProcessSpec(name=name, argv=(str(bins.nats_server), "-c", str(conf)),
                       log=layout.log(name), files={conf: natsconf.render(server)})


def redis_spec(config: Config, region: Region, bins: Binaries, layout: RunLayout) -> ProcessSpec:
    name = redis_name(region)
    # No persistence: Redis holds only what can be rebuilt from JetStream. Its own --dir keeps
    # instances from sharing a working directory.
    return ProcessSpec(
        name=name,
        argv=(str(bins.redis_server), "--port", str(region.redis.port), "--bind", region.host,
              "--save", "", "--appendonly", "no", "--dir", str(layout.data(name)),
              "--maxmemory", "512mb", "--maxmemory-policy", "noeviction"),
        log=layout.log(name),
        files={layout.data(name) / ".keep": ""},
    )


def gateway_spec(config: Config, region: Region, index: int, layout: RunLayout) -> ProcessSpec:
    name = gateway_name(region, index)
    return ProcessSpec(
        name=name,
        argv=(sys.executable, "-m", "region.gateway", "--config", str(layout.effective_config),
              "--region", region.name, "--index", str(index)),
        log=layout.log(name),
        env={"PYTHONUNBUFFERED": "1"},
    )
