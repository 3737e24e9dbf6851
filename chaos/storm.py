"""reconnect-storm: thousands of viewers of one gateway cut at once, all coming back at once.

The viewers are bare WebSocket connections (an SDK client each would measure this process,
not the gateways): each resumes with its last cursor, going round the region's gateways with
the shared `Backoff`, as the SDK does. The drill connects them all to the region's first
gateway, kills that gateway, and measures how fast they come back (the peak connect rate,
seconds until every one is back), while it posts a comment a second and asks the surviving
gateways' ``/healthz`` four times a second: a health check must not fail under the storm
(a load balancer would take the gateway out and move the storm on). It passes when every
viewer is back with every acknowledged comment, no health check failed, and the steady state
comes back once the gateway is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from chaos.faults import Faults
from chaos.report import DrillReport
from chaos.verdict import Arrival, Post, Verdict, ViewerCounts, judge
from chorus.backoff import Backoff
from chorus.config import Config
from chorus.phrases import phrase
from region.auth import issue_token

BACK_WITHIN_S = 60.0       # every viewer must be back within this
CONNECT_CONCURRENCY = 200  # connections opened at once while setting up (not in the storm)
PER_ADDRESS = 200          # viewers per loopback source address (under the per-address cap)


@dataclass
class BareViewer:
    urls: tuple[str, ...]
    stream: str
    token: str
    first: int = 0
    cursor: str | None = None
    ids: set[str] = field(default_factory=set)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    connects: list[float] = field(default_factory=list)   # monotonic times of each connect

    async def run(self, http: aiohttp.ClientSession) -> None:
        backoff = Backoff(0.1, 2.0)
        attempt = self.first
        while True:
            url = self.urls[attempt % len(self.urls)]
            attempt += 1
            params = {"access_token": self.token} | ({"cursor": self.cursor}
                                                    if self.cursor else {})
            try:
                async with http.ws_connect(f"{url}/v1/streams/{self.stream}/live",
                                           params=params, heartbeat=None) as ws:
                    async for msg in ws:
                        if msg.type is not aiohttp.WSMsgType.TEXT:
                            break
                        self._frame(json.loads(msg.data))
                        backoff.reset()
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError):
                pass
            self.connected.clear()
            await backoff.wait()

    def _frame(self, frame: dict[str, object]) -> None:
        kind = frame.get("type")
        if kind == "hello":
            self.connected.set()
            self.connects.append(time.monotonic())
            if self.cursor is None:
                self.cursor = str(frame.get("cursor"))
        elif kind == "comments":
            items = frame.get("items")
            for item in items if isinstance(items, list) else []:
                self.ids.add(str(item["id"]))
        if kind in ("comments", "recovered") and frame.get("cursor"):
            self.cursor = str(frame["cursor"])


async def run(config: Config, faults: Faults, *, region: str, clients: int,
              progress: Callable[[str], None], out_dir: Path | None,
              target: str) -> DrillReport:
    r = config.region(region)
    victim = f"{r.name}/gateway-0"
    stream = f"drill-storm-{uuid.uuid4().hex[:8]}"
    # Each viewer its own user, and at most `PER_ADDRESS` of them from one loopback address:
    # the gateways cap connections per user and per address (limits.max_connections_per_*).
    viewers = [BareViewer(tuple(r.gateway_urls), stream,
                          issue_token(config.auth.dev_secret, f"{stream}-{i}"))
               for i in range(clients)]
    sessions = [aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        limit=0, local_addr=(f"127.0.{10 + k // 250}.{1 + k % 250}", 0)))
        for k in range(math.ceil(clients / PER_ADDRESS))]
    http = sessions[0]
    tasks: list[asyncio.Task[None]] = []
    posts: list[Post] = []
    notes: list[str] = []
    health_failures: list[str] = []
    began = time.monotonic()
    killed = False
    try:
        progress(f"reconnect-storm on {r.name}: {clients} viewers on {r.gateway_urls[0]}")
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def start(i: int, v: BareViewer) -> None:
            async with gate:
                tasks.append(asyncio.create_task(v.run(sessions[i // PER_ADDRESS])))
                await asyncio.wait_for(v.connected.wait(), 30)

        await asyncio.gather(*(start(i, v) for i, v in enumerate(viewers)))
        progress(f"{clients} viewers connected in {time.monotonic() - began:.1f} s")
        for v in viewers:
            v.first = 1   # once cut, each tries the next gateway first, as the SDK does
        stop = asyncio.Event()
        poster = asyncio.create_task(_post(http, config, region, stream, posts, stop))
        checker = asyncio.create_task(_watch_health(http, r.gateway_urls[1:], health_failures,
                                                    stop))
        await asyncio.sleep(1.0)  # a comment or two before the storm, by design
        cut_at = time.monotonic()
        await faults.kill(victim)
        killed = True
        progress(f"killed {victim}; {clients} viewers reconnect at once")
        back_s: float | None = None
        while time.monotonic() - cut_at < BACK_WITHIN_S:
            await asyncio.sleep(0.25)  # sampling the viewers; they measure, not we
            back = sum(v.connected.is_set() for v in viewers)
            if back == clients and all(v.connects[-1] > cut_at for v in viewers):
                back_s = time.monotonic() - cut_at
                break
        progress(f"all back after {back_s:.1f} s" if back_s is not None
                 else f"not all back within {BACK_WITHIN_S:g} s")
        await faults.start(victim)
        killed = False
        await asyncio.sleep(2.0)  # traffic after the rollback, by design
        stop.set()
        await asyncio.gather(poster, checker)
        acked = {p.id for p in posts if p.id is not None}
        settle = time.monotonic() + 30
        while time.monotonic() < settle:
            if all(acked <= v.ids for v in viewers):
                break
            await asyncio.sleep(0.5)  # polling thousands of viewers: one wake-up, not one each
        reconnects = sorted(t - cut_at for v in viewers for t in v.connects if t > cut_at)
        peak = max((sum(1 for t in reconnects if s <= t < s + 1)
                    for s in range(int(reconnects[-1]) + 1)), default=0) if reconnects else 0
        missing = sorted({i for v in viewers for i in acked - v.ids})
    finally:
        if killed:
            with contextlib.suppress(Exception):
                await faults.start(victim)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for session in sessions:
            await session.close()
    verdict: Verdict = judge(posts, [], [])
    verdict.viewers = [ViewerCounts(name=f"{clients} bare viewers", home=r.name,
                                    region=r.name, received=len(acked), missing=missing,
                                    rendered_twice=0, gaps=0, failovers=0, failbacks=0,
                                    failover_s=None)]
    verdict.missing = missing
    if missing:
        verdict.reasons.append(f"{len(missing)} acknowledged comments missing from some viewer")
    if back_s is None:
        verdict.reasons.append(f"not every viewer was back within {BACK_WITHIN_S:g} s")
    if health_failures:
        verdict.reasons.append(f"{len(health_failures)} health checks failed during the storm")
    verdict.passed = not verdict.reasons
    report = DrillReport(drill="reconnect-storm", region=r.name, seconds=back_s or 0.0,
                         stream=stream, target=target, verdict=verdict, steady_before=[],
                         steady_after=[], recovered_s=back_s, converged_s=None, notes=notes,
                         windows=[(cut_at - began, cut_at - began + (back_s or 0.0),
                                   f"{victim} killed")],
                         extra={"viewers": clients, "peak connects per second": peak,
                                "seconds until all were back": back_s,
                                "health checks failed": len(health_failures)})
    if out_dir is not None:
        arrivals = [Arrival("storm", t, "", r.name, 0.0) for t in reconnects]
        for path in report.write(out_dir, arrivals, {"storm": f"{r.name} reconnects"}):
            progress(f"wrote {path}")
    return report


async def _post(http: aiohttp.ClientSession, config: Config, region: str, stream: str,
                posts: list[Post], stop: asyncio.Event) -> None:
    url = config.region(region).gateway_urls[-1]
    token = issue_token(config.auth.dev_secret, f"drill-storm-poster-{stream}")
    seed = random.randrange(1 << 40)   # texts no earlier drill posted (the classifier)
    n = 0
    while not stop.is_set():
        n += 1
        text = f"storm {phrase(seed + n)}"
        body = {"text": text, "client_key": f"storm-{n}"}
        for _ in range(10):
            try:
                async with http.post(f"{url}/v1/streams/{stream}/comments", json=body,
                                     headers={"Authorization": f"Bearer {token}"}) as resp:
                    if resp.status in (200, 201):
                        posts.append(Post(text, region, "acked", (await resp.json())["id"]))
                        break
            except (aiohttp.ClientError, OSError):
                pass
            await asyncio.sleep(0.2)  # pacing a retry
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)


async def _watch_health(http: aiohttp.ClientSession, urls: tuple[str, ...],
                        failures: list[str], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for url in urls:
            try:
                async with http.get(f"{url}/healthz",
                                    timeout=aiohttp.ClientTimeout(total=5)) as resp:
                    if resp.status != 200:
                        failures.append(f"{url} {resp.status}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures.append(f"{url} {type(exc).__name__}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
