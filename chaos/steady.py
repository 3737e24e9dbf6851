"""The steady-state hypothesis every drill checks before its fault and after its rollback:

1. every gateway of every region answers ``/healthz`` with 200 (after a rollback: within
   `RECOVERY_S`, and the time it took is the drill's time to recover);
2. every region lists every region healthy in ``/v1/regions`` (the registry heard them all);
3. a comment posted in each region reaches every viewer of the drill, in every region, within
   `PROBE_S`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp

from chaos.workload import Workload
from chorus.cluster.health import http_json
from chorus.config import Config
from chorus.phrases import phrase

RECOVERY_S = 90.0     # how long the system may take to be healthy again after a rollback
PROBE_S = 30.0        # a probe comment's time to every viewer (generous: a loaded machine)
POLL_S = 0.5
HEALTH_TIMEOUT_S = 5.0   # one /healthz answer (a gateway on a busy machine answers late)


@dataclass
class Steady:
    ok: bool
    took_s: float
    notes: list[str] = field(default_factory=list)


async def _health(http: aiohttp.ClientSession, url: str) -> str | None:
    """None when the gateway at ``url`` says it is healthy, else what it said (or why it
    said nothing): a note that names only the URL leaves the SRE guessing."""
    try:
        async with http.get(f"{url}/healthz",
                            timeout=aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)) as resp:
            text = await resp.text()
            if resp.status == 200:
                return None
            return f"{url} /healthz answered {resp.status} {text[:200]}"
    except TimeoutError:
        return f"{url} /healthz did not answer within {HEALTH_TIMEOUT_S:g} s"
    except aiohttp.ClientError as exc:
        return f"{url} /healthz: {type(exc).__name__}: {exc}"


async def _unhealthy(http: aiohttp.ClientSession, config: Config) -> list[str]:
    urls = [u for r in config.regions for u in r.gateway_urls]
    checks = await asyncio.gather(*(_health(http, u) for u in urls))
    out = [note for note in checks if note is not None]
    for region in config.regions:
        body = await http_json(http, f"{region.gateway_urls[0]}/v1/regions")
        if body is None:
            continue  # already listed above
        down = [r["name"] for r in body.get("regions", []) if not r.get("healthy")]
        if down:
            out.append(f"{region.name} sees {', '.join(down)} unhealthy")
    return out


async def check(config: Config, workload: Workload, *, within_s: float) -> Steady:
    """The hypothesis, waiting up to ``within_s`` for the health part of it."""
    began = time.monotonic()
    async with aiohttp.ClientSession() as http:
        while True:
            bad = await _unhealthy(http, config)
            if not bad or time.monotonic() - began > within_s:
                break
            await asyncio.sleep(POLL_S)  # polling the servers' health
    if bad:
        return Steady(False, time.monotonic() - began, bad)
    workload.probes += 1
    probes = await asyncio.gather(*(workload.post_one(
        p, f"probe {phrase(workload.seed + (1 << 41) + workload.probes)} from {p.home}")
        for p in workload.posters()))
    notes = [f"probe from {p.region} was {p.outcome}" for p in probes if p.outcome != "acked"]
    ids = {p.id for p in probes if p.id is not None}
    try:
        await asyncio.wait_for(asyncio.gather(*(
            w.client.wait_for(lambda t: all(i in t for i in ids), timeout_s=PROBE_S)
            for w in workload.watchers)), PROBE_S + 1)
    except TimeoutError:
        late = [w.name for w in workload.watchers
                if not all(i in w.client.timeline for i in ids)]
        notes.append(f"probe comments did not reach {late} within {PROBE_S:g} s")
    return Steady(not notes, time.monotonic() - began, notes)
