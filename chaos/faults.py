"""How a drill injects its faults, wherever the servers are.

`Faults` is what every drill of the catalogue uses: kill, start, freeze and thaw one process
(a *part*: ``<region>/nats``, ``<region>/redis``, ``<region>/gateway-<i>``,
``<region>/cassandra``), flush a region's Redis, cut, heal or slow a region's link. Three
implementations:

- `ClusterFaults`: a `LocalCluster` in this process (the tests);
- `ControlFaults`: a `chorus up` running elsewhere on this machine, through its control
  socket (chorus/cluster/control.py) and toxiproxy's API;
- `HookFaults`: a deployment, where the drill cannot reach the servers: each fault is a shell
  command the SRE supplies in a hooks file (docs/operations.md, "Drills against a
  deployment"), with ``{part}``, ``{region}``, ``{latency_ms}`` filled in.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
import yaml

from chorus.cluster import control
from chorus.cluster.local import LocalCluster
from chorus.config import Config
from chorus.drivers import driver_errors
from chorus.errors import ChorusError, ClusterError
from chorus.toxiproxy import Toxiproxy, leaf_proxy_name

HOOK_TIMEOUT_S = 120.0   # one hook command (a restart may wait for the server)

# The hooks a deployment's file may define, and what each receives.
HOOKS: dict[str, str] = {
    "kill": "kill -9 one process {part} ({region} is its region)",
    "start": "start {part} again after kill (returns once it is started)",
    "freeze": "SIGSTOP {part}",
    "thaw": "SIGCONT {part}",
    "flush_redis": "FLUSHALL the Redis of {region}",
    "cut_link": "cut {region}'s link to the hub",
    "heal_link": "restore {region}'s link to the hub",
    "slow_link": "add {latency_ms} ms one way to {region}'s link",
    "parts": "print {region}'s parts, one per line (servers first, gateways last)",
}


class DrillError(ChorusError):
    """A drill could not be run as asked (a missing hook, a part that does not exist)."""


class Faults(Protocol):
    async def parts(self, region: str) -> list[str]:
        """Every process of ``region``, servers first and gateways last."""
        ...

    async def kill(self, part: str) -> None: ...

    async def start(self, part: str) -> None:
        """Starts a killed part again; returns once the process runs (not once it is
        healthy: the drill waits for that)."""
        ...

    async def freeze(self, part: str) -> None: ...

    async def thaw(self, part: str) -> None: ...

    async def flush_redis(self, region: str) -> None: ...

    async def link(self, region: str, *, enabled: bool | None = None,
                   latency_ms: int | None = None) -> None:
        """Cuts (False) or heals (True) the link and/or sets its one-way latency (None:
        regions.yaml's)."""
        ...


def part_region(part: str) -> str:
    return part.split("/", 1)[0]


class _LocalLinks:
    """Links and Redis of a cluster on this machine (toxiproxy, Redis ports)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        # Generous: on a machine busy with the drill's own traffic, toxiproxy answers late.
        self.toxi = Toxiproxy("127.0.0.1", config.toxiproxy.api_port, timeout_s=15.0)

    async def flush_redis(self, region: str) -> None:
        r = self.config.region(region)
        client = aioredis.Redis(host=r.host, port=r.redis.port, socket_timeout=5)
        try:
            await client.flushall()
        except driver_errors("redis") as exc:
            raise DrillError(f"FLUSHALL of {region}'s Redis failed: {exc}") from exc
        finally:
            await client.aclose()

    async def link(self, region: str, *, enabled: bool | None = None,
                   latency_ms: int | None = None) -> None:
        r = self.config.region(region)
        name = leaf_proxy_name(r.name)
        if enabled is not None:
            await asyncio.to_thread(self.toxi.set_enabled, name, enabled)
        if latency_ms is not None or enabled is True:
            # Only on an enabled proxy: toxiproxy hangs removing a toxic from a disabled one.
            latency = r.link.latency_ms if latency_ms is None else latency_ms
            await asyncio.to_thread(self.toxi.set_latency, name, latency, r.link.jitter_ms)


class ClusterFaults(_LocalLinks):
    """Faults on a `LocalCluster` of this process."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(cluster.config)
        self.cluster = cluster

    async def parts(self, region: str) -> list[str]:
        return self.cluster.parts(region)

    async def kill(self, part: str) -> None:
        await asyncio.to_thread(self.cluster.child(part).kill)

    async def start(self, part: str) -> None:
        if not self.cluster.child(part).alive:
            await self.cluster.restart(part)

    async def freeze(self, part: str) -> None:
        self.cluster.child(part).freeze()

    async def thaw(self, part: str) -> None:
        self.cluster.child(part).thaw()


class ControlFaults(_LocalLinks):
    """Faults on a `chorus up` of this machine, through its control socket."""

    def __init__(self, config: Config, socket: Path) -> None:
        super().__init__(config)
        self.socket = socket

    async def _do(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            return await control.request(self.socket, message)
        except ClusterError as exc:
            raise DrillError(str(exc)) from exc

    async def parts(self, region: str) -> list[str]:
        return [str(p) for p in (await self._do({"op": "parts", "region": region}))["parts"]]

    async def kill(self, part: str) -> None:
        await self._do({"op": "kill", "part": part})

    async def start(self, part: str) -> None:
        await self._do({"op": "start", "part": part})

    async def freeze(self, part: str) -> None:
        await self._do({"op": "freeze", "part": part})

    async def thaw(self, part: str) -> None:
        await self._do({"op": "thaw", "part": part})


@dataclass(frozen=True)
class HookFaults:
    """Faults as the SRE's commands. ``hooks`` maps a name of `HOOKS` to a shell command."""

    hooks: Mapping[str, str]

    @classmethod
    def load(cls, path: Path) -> HookFaults:
        """A hooks file: YAML with one key, ``hooks``, mapping names of `HOOKS` to commands."""
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise DrillError(f"{path}: cannot read the hooks file: {exc}") from exc
        hooks = doc.get("hooks") if isinstance(doc, dict) else None
        if not isinstance(hooks, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in hooks.items()):
            raise DrillError(f"{path}: expected `hooks:` mapping names to commands")
        unknown = sorted(set(hooks) - set(HOOKS))
        if unknown:
            raise DrillError(f"{path}: unknown hooks {unknown} (known: {sorted(HOOKS)})")
        return cls(hooks)

    def missing(self, needed: set[str]) -> list[str]:
        return sorted(needed - set(self.hooks))

    async def _run(self, name: str, **values: Any) -> str:
        command = self.hooks.get(name)
        if command is None:
            raise DrillError(f"the hooks file has no `{name}` ({HOOKS[name]})")
        text = command.format(**{k: shlex.quote(str(v)) for k, v in values.items()})
        proc = await asyncio.create_subprocess_shell(
            text, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), HOOK_TIMEOUT_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise DrillError(f"hook {name} ({text}) ran over {HOOK_TIMEOUT_S:.0f} s") from None
        if proc.returncode != 0:
            raise DrillError(f"hook {name} ({text}) exited {proc.returncode}: "
                             f"{out.decode(errors='replace')[-500:]}")
        return out.decode(errors="replace")

    async def parts(self, region: str) -> list[str]:
        out = await self._run("parts", region=region)
        return [line.strip() for line in out.splitlines() if line.strip()]

    async def kill(self, part: str) -> None:
        await self._run("kill", part=part, region=part_region(part))

    async def start(self, part: str) -> None:
        await self._run("start", part=part, region=part_region(part))

    async def freeze(self, part: str) -> None:
        await self._run("freeze", part=part, region=part_region(part))

    async def thaw(self, part: str) -> None:
        await self._run("thaw", part=part, region=part_region(part))

    async def flush_redis(self, region: str) -> None:
        await self._run("flush_redis", region=region)

    async def link(self, region: str, *, enabled: bool | None = None,
                   latency_ms: int | None = None) -> None:
        if enabled is False:
            await self._run("cut_link", region=region)
        elif enabled is True:
            await self._run("heal_link", region=region)
        if latency_ms is not None:
            await self._run("slow_link", region=region, latency_ms=latency_ms)
