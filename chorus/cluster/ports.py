"""Moving a whole topology onto free ports, so that tests run beside each other and beside a
developer's own `chorus up`."""

from __future__ import annotations

import dataclasses
import random
import socket
from collections.abc import Iterable

from chorus.config import Config


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as fh:
            low, high = (int(v) for v in fh.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return low, high


def free_port(hosts: Iterable[str] = ("127.0.0.1",)) -> int:
    """A TCP port that is free on every one of ``hosts`` right now.

    Chosen below the kernel's ephemeral range: a port handed out by ``bind(0)`` can be taken
    by any outgoing connection a moment later, and then a server restarted on it (a test that
    kills and restarts a gateway) fails with "address in use".
    """
    hosts = tuple(hosts)
    low, _ = _ephemeral_range()
    pool_low, pool_high = (10000, low - 1) if low > 12000 else (low, 65535)
    for _ in range(1000):
        port = random.randint(pool_low, pool_high)
        if all(port_free(host, port) for host in hosts):
            return port
    raise RuntimeError(f"no port free on all of {hosts}")


def port_free(host: str, port: int) -> bool:
    """Whether a TCP listener could bind ``host:port`` now."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def relocate(config: Config) -> Config:
    """``config`` with every port replaced by a free one (gateway ports stay consecutive)."""
    taken: set[int] = set()

    def pick(hosts: Iterable[str] = ("127.0.0.1",)) -> int:
        while True:
            port = free_port(hosts)
            if port not in taken:
                taken.add(port)
                return port

    def pick_run(count: int) -> tuple[int, ...]:
        # regions.yaml gives gateways as a first port and a count: keep them consecutive.
        while True:
            base = pick()
            run = tuple(range(base, base + count))
            if all(p not in taken and p < 65536 and port_free("127.0.0.1", p) for p in run[1:]):
                taken.update(run)
                return run

    regions = []
    for r in config.regions:
        ports = pick_run(len(r.gateway_ports))
        operator = pick_run(len(r.operator_ports))
        regions.append(dataclasses.replace(
            r, gateway_port=ports[0], gateway_ports=ports,
            operator_port=operator[0] if operator else r.operator_port,
            operator_ports=operator,
            nats=dataclasses.replace(r.nats, client_port=pick(), monitor_port=pick()),
            redis=dataclasses.replace(r.redis, port=pick()),
            link=dataclasses.replace(r.link, proxy_port=pick()),
        ))
    cassandra_hosts = [r.cassandra.address for r in config.regions]
    return dataclasses.replace(
        config,
        regions=tuple(regions),
        hub=dataclasses.replace(config.hub, client_port=pick(), leaf_port=pick(),
                                monitor_port=pick()),
        toxiproxy=dataclasses.replace(config.toxiproxy, api_port=pick()),
        prometheus=dataclasses.replace(config.prometheus, port=pick()),
        cassandra=dataclasses.replace(config.cassandra, native_port=pick(cassandra_hosts),
                                      storage_port=pick(cassandra_hosts)),
    )
