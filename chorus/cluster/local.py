"""The whole multi-region system on one machine: `chorus up` and the tests start it here.

Start order, each step waiting (bounded) until its parts are healthy:
toxiproxy + hub -> one proxy per leaf link (with the region's latency) -> every region's NATS
(leaf link up) and Redis -> Cassandra nodes one at a time (when asked) -> gateways.
`stop` ends everything this object started, in reverse order, and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import aiohttp

from chorus.cluster import health, plan
from chorus.cluster.binaries import Binaries
from chorus.cluster.plan import RunLayout
from chorus.cluster.ports import port_free
from chorus.cluster.process import Child, ProcessSpec
from chorus.config import Config, bound_ports, dump_config
from chorus.errors import AlreadyRunning, ClusterError
from chorus.toxiproxy import Toxiproxy, leaf_proxy_name

# Bounds on start-up; generous because CI has 2 cores shared by every server.
SERVER_TIMEOUT_S = 30.0
GATEWAY_TIMEOUT_S = 30.0
CASSANDRA_TIMEOUT_S = 180.0


def read_state(layout: RunLayout) -> dict[str, Any] | None:
    """The state file of a running `chorus up` in this run directory, or None."""
    try:
        return dict(json.loads(layout.state.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def running_pid(layout: RunLayout) -> int | None:
    """The pid of the `chorus up` that holds the run directory's lock, or None."""
    if not layout.lock.exists():
        return None
    with open(layout.lock, "a+", encoding="utf-8") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            text = fh.read().strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def already_running(layout: RunLayout, pid: int | str) -> AlreadyRunning:
    return AlreadyRunning(
        f"a cluster is already running from {layout.run_dir} (chorus up, pid {pid}); see it "
        f"with `chorus status`, stop it with Ctrl-C in its terminal or `kill {pid}`")


class LocalCluster:
    """Start with ``async with LocalCluster(...) as cluster:`` or `start`/`stop`."""

    def __init__(self, config: Config, bins: Binaries, *, with_cassandra: bool = False,
                 with_prometheus: bool = False,
                 fresh: bool = False, progress: Callable[[str], None] | None = None) -> None:
        # The processes read the effective config: with Cassandra running, its archive is on.
        if with_cassandra and not config.cassandra.enabled:
            config = dataclasses.replace(
                config, cassandra=dataclasses.replace(config.cassandra, enabled=True))
        self.config = config
        self.bins = bins
        self.with_cassandra = with_cassandra
        self.with_prometheus = with_prometheus
        self.fresh = fresh
        self.layout = RunLayout(config.run_dir)
        self.children: dict[str, Child] = {}
        self.timings: dict[str, float] = {}
        self._progress = progress or (lambda _msg: None)
        self._lock_file: IO[str] | None = None
        self.toxiproxy = Toxiproxy("127.0.0.1", config.toxiproxy.api_port)

    async def __aenter__(self) -> LocalCluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.stop()

    # -- start -------------------------------------------------------------------------------

    async def start(self) -> None:
        began = time.monotonic()
        self._take_lock()
        self._check_ports()
        if self.fresh:
            shutil.rmtree(self.layout.run_dir / "data", ignore_errors=True)
        self.layout.effective_config.write_text(dump_config(self.config), encoding="utf-8")
        cfg, bins, layout = self.config, self.bins, self.layout

        self._progress("starting toxiproxy and the NATS hub")
        toxi = self._spawn(plan.toxiproxy_spec(cfg, bins, layout))
        hub = self._spawn(plan.hub_spec(cfg, bins, layout))
        async with aiohttp.ClientSession() as session:
            await self._wait("toxiproxy", self._toxi_up, [toxi], SERVER_TIMEOUT_S)
            await self._wait("the NATS hub", lambda: health.nats_ok(
                session, cfg.hub.host, cfg.hub.monitor_port, leafs=0), [hub], SERVER_TIMEOUT_S)
            for region in cfg.regions:
                await asyncio.to_thread(self._make_proxy, region.name)

            self._progress("starting each region's NATS (JetStream) and Redis")
            for region in cfg.regions:
                self._spawn(plan.region_nats_spec(cfg, region, bins, layout))
                self._spawn(plan.redis_spec(cfg, region, bins, layout))
            waits = []
            for region in cfg.regions:
                nats_child = self.children[plan.nats_name(region)]
                redis_child = self.children[plan.redis_name(region)]
                waits.append(self._wait(
                    f"{region.name} NATS with its leaf link",
                    _bind(health.nats_ok, session, region.host, region.nats.monitor_port,
                          leafs=1), [nats_child], SERVER_TIMEOUT_S))
                waits.append(self._wait(
                    f"{region.name} Redis", _bind(health.redis_ok, region.host,
                                                  region.redis.port),
                    [redis_child], SERVER_TIMEOUT_S))
            await asyncio.gather(*waits)
            await self._wait("every region's leaf link at the hub", lambda: health.nats_ok(
                session, cfg.hub.host, cfg.hub.monitor_port, leafs=len(cfg.regions)),
                [hub], SERVER_TIMEOUT_S)

            if self.with_cassandra:
                await self._start_cassandra()

            self._progress("starting the gateways")
            gateways = []
            for region in cfg.regions:
                for i, url in enumerate(region.gateway_urls):
                    child = self._spawn(plan.gateway_spec(cfg, region, i, layout))
                    gateways.append(self._wait(
                        f"{child.spec.name} at {url}",
                        _bind(_gateway_ok, session, url), [child], GATEWAY_TIMEOUT_S))
            await asyncio.gather(*gateways)
            if self.with_prometheus:
                await self.start_prometheus()
        self.timings["total"] = time.monotonic() - began
        self._write_state()

    async def _start_cassandra(self) -> None:
        from chorus.cluster import cassandra  # imported late: it pulls in cassandra-driver

        java, lib = self.bins.require_cassandra()
        nodes = []
        # One node at a time: a node joins through the seed (the first region), which must be
        # up, and concurrent joins of a fresh ring fight over token ownership.
        for region in self.config.regions:
            name = plan.cassandra_name(region)
            self._progress(f"starting Cassandra datacenter {region.name} "
                           f"({region.cassandra.address})")
            spec = cassandra.node_spec(self.config, region, java=java, lib=lib,
                                       data_dir=self.layout.data(name),
                                       log_dir=self.layout.data(name) / "logs")
            child = self._spawn(_with_log(spec, self.layout.log(name)))
            nodes.append(child)
            began = time.monotonic()
            await cassandra.wait_ready(region.cassandra.address, self.config.cassandra.native_port,
                                       timeout_s=CASSANDRA_TIMEOUT_S, child=child)
            self.timings[name] = time.monotonic() - began
        # A node answers CQL before gossip has told the others of it; until then a keyspace
        # naming its datacenter is refused.
        began = time.monotonic()
        await cassandra.wait_converged(self.config, timeout_s=CASSANDRA_TIMEOUT_S,
                                       children=nodes)
        self.timings["cassandra ring"] = time.monotonic() - began
        # The archive's schema, before any gateway looks for it (`chorus migrate` does the
        # same for a deployed cluster).
        from chorus import archive_schema

        self._progress("applying the archive's schema")
        began = time.monotonic()
        await asyncio.to_thread(archive_schema.apply, self.config)
        self.timings["archive schema"] = time.monotonic() - began

    async def start_prometheus(self) -> Child:
        """Starts the local Prometheus (chorus/cluster/prometheus.py) and waits until it is
        ready; `start` calls it last when ``with_prometheus``."""
        from chorus.cluster import prometheus

        self._progress("starting Prometheus (scraping every gateway's operator port)")
        child = self._spawn(prometheus.prometheus_spec(self.config, self.bins.prometheus,
                                                       self.layout))
        ready = f"{prometheus.url(self.config)}/-/ready"
        async with aiohttp.ClientSession() as session:
            async def answers() -> bool:
                try:
                    async with session.get(ready,
                                           timeout=aiohttp.ClientTimeout(total=2)) as r:
                        return r.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    return False
            await self._wait("Prometheus", answers, [child], SERVER_TIMEOUT_S)
        return child

    def _spawn(self, spec: ProcessSpec) -> Child:
        child = Child.start(spec)
        self.children[spec.name] = child
        return child

    async def _wait(self, what: str, check: Callable[[], Any], children: list[Child],
                    timeout_s: float) -> None:
        self.timings[what] = await health.wait_until(check, what=what, timeout_s=timeout_s,
                                                     children=children)

    async def _toxi_up(self) -> bool:
        try:
            await asyncio.to_thread(self.toxiproxy.version)
        except ClusterError:
            return False
        return True

    def _make_proxy(self, region_name: str) -> None:
        region = self.config.region(region_name)
        name = leaf_proxy_name(region.name)
        self.toxiproxy.create(name, f"127.0.0.1:{region.link.proxy_port}",
                              f"{self.config.hub.host}:{self.config.hub.leaf_port}")
        self.toxiproxy.set_latency(name, region.link.latency_ms, region.link.jitter_ms)

    # -- control -----------------------------------------------------------------------------

    def child(self, name: str) -> Child:
        try:
            return self.children[name]
        except KeyError:
            raise ClusterError(f"no process {name!r} (running: "
                               f"{', '.join(sorted(self.children))})") from None

    def set_link(self, region_name: str, *, enabled: bool | None = None,
                 latency_ms: int | None = None, jitter_ms: int = 0) -> None:
        """Cut, restore or slow a region's leaf link (blocking; a few ms)."""
        name = leaf_proxy_name(self.config.region(region_name).name)
        if enabled is not None:
            self.toxiproxy.set_enabled(name, enabled)
        if latency_ms is not None:
            self.toxiproxy.set_latency(name, latency_ms, jitter_ms)

    async def restart(self, name: str) -> Child:
        """Start a stopped or killed child again from the same spec."""
        old = self.child(name)
        await old.stop()
        child = self._spawn(old.spec)
        if self._lock_file is not None:
            self._write_state()  # `chorus status` and the drills read the pids there
        return child

    def parts(self, region_name: str) -> list[str]:
        """Every process of a region, servers first, gateways last (the order to start them
        in): what a drill kills to take the region down."""
        prefix = f"{self.config.region(region_name).name}/"
        names = [n for n in self.children if n.startswith(prefix)]
        return sorted(names, key=lambda n: ("/gateway-" in n, n))

    # -- stop --------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stops every child, newest first by layer: gateways, Cassandra, NATS and Redis,
        then the hub and toxiproxy. Idempotent."""
        layers: list[list[Child]] = [[], [], [], []]
        for name, child in self.children.items():
            if "/gateway-" in name:
                layers[0].append(child)
            elif name.endswith("/cassandra"):
                layers[1].append(child)
            elif "/" in name:
                layers[2].append(child)
            else:
                layers[3].append(child)
        for layer in layers:
            await asyncio.gather(*(c.stop() for c in layer))
        self.children.clear()
        if self._lock_file is not None:
            # Only the owner of the run directory may remove its state: a second `chorus up`
            # that was refused must leave the running one's alone.
            with contextlib.suppress(FileNotFoundError):
                self.layout.state.unlink()
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    # -- bookkeeping -------------------------------------------------------------------------

    def _take_lock(self) -> None:
        self.layout.run_dir.mkdir(parents=True, exist_ok=True)
        fh = open(self.layout.lock, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            pid = fh.read().strip() or "?"
            fh.close()
            raise already_running(self.layout, pid) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._lock_file = fh

    def _check_ports(self) -> None:
        busy = []
        for host, port, key in bound_ports(self.config):
            if not port_free(host, port):
                busy.append(f"{key} = {port}")
        if self.with_cassandra:
            for region in self.config.regions:
                for port in (self.config.cassandra.native_port, self.config.cassandra.storage_port):
                    if not port_free(region.cassandra.address, port):
                        busy.append(f"cassandra {region.cassandra.address}:{port}")
        if busy:
            raise ClusterError(
                f"ports of {self.config.source} are in use by another program: "
                f"{'; '.join(busy)}. Stop that program or change the ports in the file.")

    def _write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "started_at": time.time(),
            "config": str(self.layout.effective_config),
            "source": self.config.source,
            "with_cassandra": self.with_cassandra,
            "with_prometheus": self.with_prometheus,
            "processes": {name: {"pid": c.pid, "log": str(c.spec.log)}
                          for name, c in self.children.items()},
        }
        tmp = self.layout.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2), encoding="utf-8")
        tmp.replace(self.layout.state)


def _bind(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[[], Any]:
    return lambda: fn(*args, **kwargs)


def _with_log(spec: ProcessSpec, log: Path) -> ProcessSpec:
    return dataclasses.replace(spec, log=log)


async def _gateway_ok(session: aiohttp.ClientSession, url: str) -> bool:
    body = await health.http_json(session, f"{url}/healthz")
    return body is not None and body.get("status") == "ok"
