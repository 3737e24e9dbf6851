"""nats-server configuration files, rendered from plain values.

The local cluster (chorus.cluster) and the cloud cells (iac/) both render their servers'
configs here, so the two cannot drift apart. Pure: no I/O.

A region's server runs JetStream under the region's own domain and joins the hub as a leaf
node; the hub has no JetStream and only relays. Leaf links form a star (hub and spokes): a
mesh of leaf links in one account trips NATS's loop detection.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Tls:
    """Paths of PEM files on the server's host; ``verify`` asks clients for certificates."""

    cert_file: str
    key_file: str
    ca_file: str = ""
    verify: bool = False


@dataclass(frozen=True)
class JetStream:
    """JetStream on a region's server. Sizes in bytes; the domain is the region's name."""

    domain: str
    store_dir: str
    max_memory_store: int = 256 * 1024 * 1024
    max_file_store: int = 4 * 1024 * 1024 * 1024
    # nats-server fsyncs every 2 min by default; a shorter interval narrows what an OS crash
    # (not a process crash) can take. "always" fsyncs every write.
    sync_interval: str = "10s"


@dataclass(frozen=True)
class Routes:
    """A NATS cluster of several servers (production: three per region)."""

    name: str
    port: int
    routes: tuple[str, ...]
    host: str = "0.0.0.0"


@dataclass(frozen=True)
class NatsServer:
    """One nats-server process.

    ``leaf_port`` set: this server accepts leaf connections (the hub). ``leaf_remotes`` set:
    this server joins those URLs as a leaf (a region). ``ping_interval_s`` x ``ping_max`` is
    how long a silently dead link goes unnoticed; the default 2 min x 2 is far too long for
    failover, so it is lowered here.
    """

    server_name: str
    host: str
    client_port: int
    monitor_port: int
    jetstream: JetStream | None = None
    leaf_port: int | None = None
    leaf_remotes: tuple[str, ...] = ()
    leaf_advertise: str | None = None
    leaf_tls: Tls | None = None
    client_tls: Tls | None = None
    cluster: Routes | None = None
    ping_interval_s: int = 2
    ping_max: int = 3
    max_payload: int = 1024 * 1024


def _q(value: str) -> str:
    # NATS config accepts JSON strings, which escape everything that needs it.
    return json.dumps(value)


def _tls_block(tls: Tls, indent: str) -> list[str]:
    lines = [f"{indent}tls {{", f"{indent}  cert_file: {_q(tls.cert_file)}",
             f"{indent}  key_file: {_q(tls.key_file)}"]
    if tls.ca_file:
        lines.append(f"{indent}  ca_file: {_q(tls.ca_file)}")
    if tls.verify:
        lines.append(f"{indent}  verify: true")
    lines.append(f"{indent}}}")
    return lines


def render(server: NatsServer) -> str:
    """The nats-server config file for ``server``, as text."""
    out = [
        f"server_name: {_q(server.server_name)}",
        f"listen: {_q(f'{server.host}:{server.client_port}')}",
        f"http: {_q(f'{server.host}:{server.monitor_port}')}",
        f"ping_interval: {_q(f'{server.ping_interval_s}s')}",
        f"ping_max: {server.ping_max}",
        f"max_payload: {server.max_payload}",
    ]
    if server.client_tls:
        out += _tls_block(server.client_tls, "")
    if server.jetstream:
        js = server.jetstream
        out += [
            "jetstream {",
            f"  domain: {_q(js.domain)}",
            f"  store_dir: {_q(js.store_dir)}",
            f"  max_memory_store: {js.max_memory_store}",
            f"  max_file_store: {js.max_file_store}",
            f"  sync_interval: {_q(js.sync_interval)}",
            "}",
        ]
    if server.leaf_port is not None or server.leaf_remotes:
        out.append("leafnodes {")
        if server.leaf_port is not None:
            out.append(f"  listen: {_q(f'{server.host}:{server.leaf_port}')}")
            # Leaf nodes add the address the hub advertises to the URLs they dial, and could
            # reconnect around the proxy or load balancer they were given; advertise that.
            if server.leaf_advertise:
                out.append(f"  advertise: {_q(server.leaf_advertise)}")
            out.append("  no_advertise: true")
            if server.leaf_tls:
                out += _tls_block(server.leaf_tls, "  ")
        if server.leaf_remotes:
            # Retry a lost link every second: the default is the same, but say it, because
            # failover and outbox drain times depend on it.
            out.append('  reconnect: "1s"')
            out.append("  remotes: [")
            urls = ", ".join(_q(u) for u in server.leaf_remotes)
            out.append(f"    {{ urls: [{urls}]")
            if server.leaf_tls:
                out += _tls_block(server.leaf_tls, "      ")
            out.append("    }")
            out.append("  ]")
        out.append("}")
    if server.cluster:
        c = server.cluster
        routes = ", ".join(_q(r) for r in c.routes)
        out += [
            "cluster {",
            f"  name: {_q(c.name)}",
            f"  listen: {_q(f'{c.host}:{c.port}')}",
            f"  routes: [{routes}]",
            # Clients must not learn the servers' own addresses and bypass a proxy or load
            # balancer in front of them.
            "  no_advertise: true",
            "}",
        ]
    return "\n".join(out) + "\n"


def hub_server(name: str, host: str, client_port: int, leaf_port: int,
               monitor_port: int, *, leaf_advertise: str | None = None) -> NatsServer:
    """The global plane's hub: accepts every region's leaf link, no JetStream of its own.
    ``leaf_advertise``: the host:port leaf nodes should know the hub by (see render)."""
    return NatsServer(server_name=name, host=host, client_port=client_port,
                      monitor_port=monitor_port, leaf_port=leaf_port,
                      leaf_advertise=leaf_advertise)


def region_server(name: str, region: str, host: str, client_port: int, monitor_port: int,
                  store_dir: str, hub_urls: tuple[str, ...], *,
                  max_memory_store: int = 256 * 1024 * 1024,
                  max_file_store: int = 4 * 1024 * 1024 * 1024) -> NatsServer:
    """A region's server: JetStream in domain ``region`` and a leaf link to ``hub_urls``."""
    return NatsServer(
        server_name=name, host=host, client_port=client_port, monitor_port=monitor_port,
        jetstream=JetStream(domain=region, store_dir=store_dir,
                            max_memory_store=max_memory_store, max_file_store=max_file_store),
        leaf_remotes=hub_urls,
    )
