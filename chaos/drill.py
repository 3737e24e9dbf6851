"""Chaos drills against a running cluster: fault a region's link, keep the system busy, check
the guarantees, report.

A drill watches a fresh stream from every region with the SDK (one client preferring each
region), posts to it from every region at a steady rate before, during and after the fault,
then waits (bounded) until every client holds every acknowledged comment and checks:

- G1: every acknowledged comment reached every watching client (nothing missing);
- G2/G3: no client is left with an unfilled gap (a client's timeline holds each comment once
  by construction; copies it received twice are counted and reported);
- the outboxes drained once the fault was lifted.

Faults: ``link-cut`` (the region's leaf link through toxiproxy is cut) and ``link-slow``
(``--latency`` ms one-way added). `chorus drill` runs one and exits 0 when it passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from chorus.cluster.health import outboxes
from chorus.config import Config
from chorus.sdk import ChorusClientError, Client
from chorus.toxiproxy import Toxiproxy, leaf_proxy_name
from region.auth import issue_token

SETTLE_S = 60.0        # how long clients may take to converge after the fault is lifted
BEFORE_AFTER_S = 2.0   # traffic before the fault and after it is lifted


@dataclass
class ClientResult:
    region: str
    connected_to: str | None
    received: int
    missing: int
    redelivered: int   # copies the client received and dropped by id (never rendered twice)
    gaps: int
    failovers: int


@dataclass
class DrillReport:
    drill: str
    region: str
    seconds: float
    stream: str
    posted: int
    refused: int
    clients: list[ClientResult] = field(default_factory=list)
    # None: unknown (the regions' NATS is not reachable from here, as with a deployment
    # whose NATS is private); the drill then rests on what the clients received.
    outboxes_drained: bool | None = False
    converged_s: float | None = None

    @property
    def passed(self) -> bool:
        return (self.outboxes_drained is not False and self.posted > 0 and
                all(c.missing == 0 and c.gaps == 0 for c in self.clients))

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def text(self) -> str:
        lines = [f"drill {self.drill} on {self.region} for {self.seconds:g} s, stream "
                 f"{self.stream}: {'PASSED' if self.passed else 'FAILED'}",
                 f"  posted {self.posted} comments ({self.refused} posts refused and retried "
                 f"out), outboxes drained: {self.outboxes_drained}, converged in "
                 f"{'-' if self.converged_s is None else f'{self.converged_s:.1f} s'}"]
        for c in self.clients:
            lines.append(f"  client preferring {c.region:<9} on {c.connected_to or '-':<9} "
                         f"received {c.received:>5}  missing {c.missing}  gaps {c.gaps}  "
                         f"redelivered (dropped) {c.redelivered}  failovers {c.failovers}")
        return "\n".join(lines)


async def run_drill(config: Config, *, drill: str, region: str, seconds: float,
                    rate: float = 10.0, latency_ms: int = 500) -> DrillReport:
    """Runs one drill on the cluster described by ``config`` (its effective config)."""
    if drill not in ("link-cut", "link-slow"):
        raise ValueError("drill is link-cut or link-slow")
    target = config.region(region)
    stream = f"drill-{uuid.uuid4().hex[:10]}"
    secret = config.auth.dev_secret
    toxi = Toxiproxy("127.0.0.1", config.toxiproxy.api_port)
    proxy = leaf_proxy_name(target.name)
    clients = {r.name: Client(list(r.gateway_urls), token=issue_token(secret, f"drill-{r.name}"),
                              stream=stream, prefer=r.name) for r in config.regions}
    report = DrillReport(drill=drill, region=region, seconds=seconds, stream=stream,
                         posted=0, refused=0)
    acked: list[str] = []
    try:
        for client in clients.values():
            await client.start()
            await asyncio.wait_for(client.connected.wait(), 15)
        stop = asyncio.Event()
        posting = asyncio.create_task(_post_steadily(clients, rate, stop, acked, report))
        try:
            await asyncio.sleep(BEFORE_AFTER_S)
            if drill == "link-cut":
                await asyncio.to_thread(toxi.set_enabled, proxy, False)
            else:
                await asyncio.to_thread(toxi.set_latency, proxy,
                                        target.link.latency_ms + latency_ms,
                                        target.link.jitter_ms)
            await asyncio.sleep(seconds)
        finally:
            await asyncio.to_thread(toxi.set_enabled, proxy, True)
            await asyncio.to_thread(toxi.set_latency, proxy, target.link.latency_ms,
                                    target.link.jitter_ms)
        await asyncio.sleep(BEFORE_AFTER_S)
        stop.set()
        await posting
        began = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.gather(*(c.wait_for(lambda t: all(i in t for i in acked),
                                              timeout_s=SETTLE_S) for c in clients.values()))
            report.converged_s = time.monotonic() - began
        report.outboxes_drained = await _outboxes_drained(config, SETTLE_S)
        for name, client in clients.items():
            have = set(client.timeline.ids())
            report.clients.append(ClientResult(
                region=name, connected_to=client.region,
                received=len(have & set(acked)), missing=len(set(acked) - have),
                redelivered=client.timeline.duplicates, gaps=len(client.timeline.gaps),
                failovers=client.failovers))
    finally:
        for client in clients.values():
            await client.close()
    return report


async def _post_steadily(clients: dict[str, Client], rate: float, stop: asyncio.Event,
                         acked: list[str], report: DrillReport) -> None:
    """Round-robin over the regions' clients; each post retries (same client key) until
    acknowledged, so that every entry of ``acked`` is a comment the system took."""
    order = list(clients.values())
    i = 0
    began = time.monotonic()
    pending: set[asyncio.Task[None]] = set()

    async def one(client: Client, n: int) -> None:
        try:
            comment = await client.post(f"drill comment {n}", attempts=20)
        except ChorusClientError:
            report.refused += 1
            return
        acked.append(comment.id)
        report.posted += 1

    while not stop.is_set():
        task = asyncio.create_task(one(order[i % len(order)], i))
        pending.add(task)
        task.add_done_callback(pending.discard)
        i += 1
        await asyncio.sleep(max(0.0, began + i / rate - time.monotonic()))
    await asyncio.gather(*pending)


async def _outboxes_drained(config: Config, timeout_s: float) -> bool | None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        depths = await asyncio.gather(*(outboxes(config, r.name) for r in config.regions))
        values = [d for region in depths for d in region.values()]
        if all(d is None for d in values):
            return None  # no region's NATS answers from here
        if all(d == 0 for d in values):
            return True
        await asyncio.sleep(0.5)
    return False
