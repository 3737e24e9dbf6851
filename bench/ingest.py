"""Ingest benchmark: durable posts per second of one region and their latency, over HTTP and
over the WebSocket ``comment`` frame, with the server CPU each post costs.

    .venv/bin/python bench/ingest.py                 # starts its own cluster on free ports
    .venv/bin/python bench/ingest.py --quick         # shorter phases, for a smoke run
    .venv/bin/python bench/ingest.py --profile DIR   # + py-spy of us-east's gateways, each phase

The whole local cluster runs (three regions, the hub, toxiproxy), with the user and stream
rate limits raised so that the limits are checked but never refuse. Load goes to us-east's
two gateways, half each, over 200 streams:

- **closed loop**: ``--concurrency`` posters (64), each posting again as soon as it is
  answered: the most the region stores per second, and the latency at that load;
- **open loop**: ``--rate`` posts/s (1,000) on a fixed schedule, latency measured from each
  post's scheduled time (a post that waits for a free connection counts its wait).

Before each phase the benchmark waits until us-east's outboxes and classifier have caught up
with what the previous phase stored (``--settle``), so that no phase pays another's backlog.

First, with ``--idle`` seconds (10) of no traffic at all, the CPU that the cluster's
processes spend anyway (timers, polls, heartbeats): per gateway and in all.

A post counts when it is answered 201: stored in us-east's JetStream. "server CPU per post"
is the CPU of us-east's processes (gateways, NATS, Redis) over the phase divided by the posts
it stored; "cluster" adds every other process (other regions, hub, toxiproxy). The load
client shares the two cores; its CPU is shown too. It is bench/rawclient.py's, in this
process, unless ``--client go``: then the Go load client (bench/goload, built by
bench/goload/build.sh) posts the same texts with the same tokens into the same streams, and
this process only starts the cluster, meters it and reads the Go client's figures.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import nats
import nats.errors

sys.path.insert(0, str(Path(__file__).resolve().parent))

from goload.figures import IngestFigures, ingest_figures
from goload.process import GoLoad
from rawclient import (
    CLIENTS,
    GO_CLIENT,
    UNLIMITED,
    UNLIMITED_TIERS,
    CpuMeter,
    HttpConnection,
    Profiler,
    WsClient,
    bench_config,
    client_cpu,
    cluster,
    forward_counts,
    live_path,
    load_average,
    machine,
    post_request,
    region_pids,
    split_url,
    summary_ms,
)

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.durable import pending
from chorus.names import classifier_durable, outbox_durable, presence_query
from region.auth import issue_token

REGION = "us-east"
STREAMS = 200
USERS = 2000
TEXT = "comment "     # a post's text is this and its serial number


class Phase:
    """What one load phase measured."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}
        self.seconds = 0.0
        self.cpu: dict[str, float] = {}
        self.forwards: dict[str, float] = {}   # rawclient.FORWARD_COUNTERS over the phase
        self.figures: IngestFigures | None = None   # what the Go client measured, if it ran

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def result(self, region_procs: set[str]) -> dict[str, Any]:
        stored = len(self.latencies)
        latency = summary_ms(self.latencies)
        if self.figures is not None:
            stored, latency = self.figures.stored, self.figures.latency.as_dict()
            self.errors = dict(self.figures.errors)
            if self.figures.queued is not None:   # in the JSON only: the tables stay alike
                latency |= self.figures.queued.as_dict("queued_")
        server = sum(v for k, v in self.cpu.items() if k in region_procs)
        every = sum(v for k, v in self.cpu.items() if k not in CLIENTS)
        return {"phase": self.name, "stored": stored, "posts_per_s": stored / self.seconds,
                **latency,
                "cpu_ms_per_post": server / max(1, stored) * 1000,
                "cluster_cpu_ms_per_post": every / max(1, stored) * 1000,
                "server_cores": server / self.seconds,
                "client_cores": client_cpu(self.cpu) / self.seconds,
                "errors": self.errors,
                "cpu_by_process": {k: round(v / self.seconds, 3) for k, v in self.cpu.items()
                                   if v / self.seconds > 0.01},
                **self.forwards}


class Load:
    def __init__(self, c: LocalCluster) -> None:
        self.cluster = c
        cfg = c.config
        self.urls = cfg.region(REGION).gateway_urls
        secret = cfg.auth.dev_secret
        self.tokens = [issue_token(secret, f"poster{i}") for i in range(USERS)]
        self.serial = itertools.count()
        self.pids = region_pids(c, REGION)
        self.all_pids = {name: child.pid for name, child in c.children.items()}

    def body(self) -> tuple[int, str, str]:
        n = next(self.serial)
        return n, f"s{n % STREAMS}", self.tokens[n % USERS]

    async def measure(self, phase: Phase, run: Callable[[], Awaitable[None]],
                      profile: Path | None = None, go: GoLoad | None = None) -> dict[str, Any]:
        meter = CpuMeter(self.all_pids if go is None else {**self.all_pids, GO_CLIENT: go.pid})
        gateways = {k: v for k, v in self.pids.items() if "gateway" in k}
        counted = await forward_counts(self.cluster, REGION)
        # "1000/s" in a phase's name is no file name.
        async with Profiler(profile, phase.name.replace("/", "per"), gateways):
            meter.start()
            began = time.perf_counter()
            await run()
            phase.seconds = time.perf_counter() - began
            phase.cpu = meter.stop()
        after = await forward_counts(self.cluster, REGION)
        # Nobody watches in the other regions: every forward is one that presence (a late
        # answer counted as "viewers") let through for nothing.
        phase.forwards = {k: v - counted[k] for k, v in after.items() if k in counted}
        return phase.result(set(self.pids))

    # -- HTTP ------------------------------------------------------------------------------

    async def http_connections(self, n: int) -> list[tuple[HttpConnection, str]]:
        out = []
        for i in range(n):
            host, port = split_url(self.urls[i % len(self.urls)])
            out.append((await HttpConnection.open(host, port), host))
        return out

    async def _http_post(self, conn: HttpConnection, host: str, phase: Phase,
                         began: float) -> None:
        n, stream, token = self.body()
        try:
            status, body = await conn.request(post_request(host, stream, token,
                                                           {"text": f"{TEXT}{n}"}))
        except ConnectionError:
            phase.error("connection lost")
            return
        if status == 201:
            phase.latencies.append(time.perf_counter() - began)
        else:
            phase.error(f"{status} {body[:80]!r}")

    async def http_closed(self, conns: list[tuple[HttpConnection, str]], seconds: float,
                          phase: Phase) -> None:
        until = time.perf_counter() + seconds

        async def poster(conn: HttpConnection, host: str) -> None:
            while time.perf_counter() < until and not conn.lost:
                await self._http_post(conn, host, phase, time.perf_counter())
        await asyncio.gather(*(poster(c, h) for c, h in conns))

    async def http_open(self, conns: list[tuple[HttpConnection, str]], rate: float,
                        seconds: float, phase: Phase) -> None:
        free: asyncio.Queue[tuple[HttpConnection, str]] = asyncio.Queue()
        for c in conns:
            free.put_nowait(c)
        pending: set[asyncio.Task[None]] = set()

        async def one(scheduled: float) -> None:
            conn, host = await free.get()
            try:
                await self._http_post(conn, host, phase, scheduled)
            finally:
                free.put_nowait((conn, host))
        await self._schedule(rate, seconds, one, pending)

    async def _schedule(self, rate: float, seconds: float,
                        one: Callable[[float], Coroutine[Any, Any, None]],
                        pending: set[asyncio.Task[None]]) -> None:
        began = time.perf_counter()
        total = int(rate * seconds)
        sent = 0
        while sent < total:
            now = time.perf_counter()
            due = min(total, int((now - began) * rate) + 1)
            while sent < due:
                task = asyncio.create_task(one(began + sent / rate))
                pending.add(task)
                task.add_done_callback(pending.discard)
                sent += 1
            await asyncio.sleep(max(0.0, began + sent / rate - time.perf_counter()))
        await asyncio.gather(*pending)

    # -- WebSocket ---------------------------------------------------------------------------

    async def ws_connections(self, n: int) -> list[WsPoster]:
        out = []
        for i in range(n):
            poster = WsPoster(f"w{i}")
            token = self.tokens[i % USERS]
            poster.ws = await WsClient.open(self.urls[i % len(self.urls)],
                                            live_path(poster.stream, token), poster.on_text)
            out.append(poster)
        await asyncio.gather(*(p.hello.wait() for p in out))
        return out

    async def ws_closed(self, posters: list[WsPoster], seconds: float, phase: Phase) -> None:
        until = time.perf_counter() + seconds

        async def run(p: WsPoster) -> None:
            while time.perf_counter() < until and not p.ws.lost.done():
                await p.post(next(self.serial), phase, time.perf_counter())
        await asyncio.gather(*(run(p) for p in posters))

    async def ws_open(self, posters: list[WsPoster], rate: float, seconds: float,
                      phase: Phase) -> None:
        turn = itertools.cycle(posters)

        async def one(scheduled: float) -> None:
            await next(turn).post(next(self.serial), phase, scheduled)
        await self._schedule(rate, seconds, one, set())


class WsPoster:
    """A WebSocket that watches its own stream and posts into it with `comment` frames."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.ws: WsClient
        self.hello = asyncio.Event()
        self.waiting: dict[str, asyncio.Future[str]] = {}

    def on_text(self, payload: bytes, arrived: float) -> None:
        if payload.startswith(b'{"type":"comments"'):
            return  # its own comments, delivered back to it as a viewer
        frame = json.loads(payload)
        match frame.get("type"):
            case "ack" | "error":
                waiter = self.waiting.pop(str(frame.get("ref")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result("ok" if frame["type"] == "ack"
                                      else frame.get("code", "?"))
            case "hello":
                self.hello.set()

    async def post(self, n: int, phase: Phase, began: float) -> None:
        ref = str(n)
        waiter = asyncio.get_running_loop().create_future()
        self.waiting[ref] = waiter
        self.ws.send_text(json.dumps({"type": "comment", "text": f"{TEXT}{n}",
                                      "ref": ref}).encode())
        try:
            verdict = await asyncio.wait_for(waiter, 30)
        except TimeoutError:
            phase.error("no ack in 30 s")
            return
        if verdict == "ok":
            phase.latencies.append(time.perf_counter() - began)
        else:
            phase.error(verdict)


async def presence_answered(c: LocalCluster) -> None:
    """Waits until every other region answers presence questions with a count. A fresh Redis
    answers "unknown" for one presence TTL (region/presence_redis.py: counts may be
    incomplete after a loss), and meanwhile every comment is forwarded, fail-open: a
    start-up effect, not the load's."""
    nc = await nats.connect(c.config.region(REGION).nats_url)
    try:
        for region in c.config.region_names:
            if region == REGION:
                continue

            async def answered(region: str = region) -> bool:
                try:
                    reply = await nc.request(presence_query(region), json.dumps(
                        {"stream": "bench-presence"}).encode(), timeout=1)
                except (nats.errors.Error, TimeoutError):
                    return False
                # null: "unknown", what a region rebuilding its presence answers at once.
                return json.loads(reply.data).get("viewers") is not None
            await wait_until(answered, what=f"{region}'s presence answers",
                             timeout_s=c.config.limits.presence_ttl_s + 20)
    finally:
        await nc.close()


async def settled(c: LocalCluster, timeout_s: float) -> None:
    """Waits until us-east's log consumers (the outbox to each other region, the classifier)
    have done everything the previous phase stored: a closed loop stores faster than they
    follow, and their catching up would otherwise be charged to the next phase (its CPU per
    post, its latency). Prints how long the backlog took; ``timeout_s`` 0: no wait."""
    if timeout_s <= 0:
        return
    durables = [outbox_durable(REGION, r) for r in c.config.region_names if r != REGION]
    durables.append(classifier_durable(REGION))
    nc = await nats.connect(c.config.region(REGION).nats_url)
    began = time.perf_counter()
    try:
        async def done() -> bool:
            counts = [await pending(nc, d) for d in durables]
            return all(not n for n in counts)   # None: no such consumer in this tree
        await wait_until(done, what="us-east's consumers to catch up", timeout_s=timeout_s,
                         interval_s=0.2)
    finally:
        await nc.close()
    print(f"  (consumers caught up in {time.perf_counter() - began:.1f} s)")


async def idle(c: LocalCluster, seconds: float) -> dict[str, Any]:
    """The CPU of every process of the cluster over ``seconds`` without a request."""
    pids = {name: child.pid for name, child in c.children.items()}
    meter = CpuMeter(pids)
    meter.start()
    await asyncio.sleep(seconds)  # the span measured, not a synchronisation
    used = meter.stop()
    gateways = [v for k, v in used.items() if "gateway" in k]
    by_process = {k: round(v / seconds * 1000, 1) for k, v in used.items()}
    result: dict[str, Any] = {"phase": "idle", "seconds": seconds,
              "gateway_idle_cpu_ms_per_s": sum(gateways) / max(1, len(gateways)) / seconds
              * 1000,
              "cluster_idle_cpu_ms_per_s": sum(v for k, v in used.items()
                                               if k != "load client") / seconds * 1000,
              "cpu_by_process": by_process}
    print(f"  idle {seconds:.0f} s: {result['gateway_idle_cpu_ms_per_s']:.1f} ms of CPU per "
          f"second per gateway, {result['cluster_idle_cpu_ms_per_s']:.0f} ms/s the whole "
          f"cluster")
    print("      " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(
        by_process.items(), key=lambda kv: -kv[1]) if k != "load client"))
    return result


def show(r: dict[str, Any]) -> None:
    print(f"  {r['phase']:<22} {r['posts_per_s']:>7,.0f} posts/s  p50 {r['p50_ms']:6.1f} ms"
          f"  p99 {r['p99_ms']:6.1f} ms  max {r['max_ms']:6.1f} ms   server CPU/post "
          f"{r['cpu_ms_per_post']:.2f} ms (cluster {r['cluster_cpu_ms_per_post']:.2f} ms)  "
          f"cores: us-east {r['server_cores']:.2f}, client {r['client_cores']:.2f}"
          + (f"  errors {r['errors']}" if r["errors"] else ""))
    print("      " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(
        r["cpu_by_process"].items(), key=lambda kv: -kv[1])))
    if "forwarded" in r:
        print(f"      us-east forwards to regions without viewers {r['forwarded']:.0f}, "
              f"skipped {r['skipped_no_viewers']:.0f}; presence questions "
              f"{r['presence_questions']:.0f}, unanswered {r['presence_unanswered']:.0f}")


async def go_phases(load: Load, go: GoLoad, args: argparse.Namespace, seconds: float,
                    phases: set[str]) -> list[dict[str, Any]]:
    """The phases of `main`, in the same order and with the same posts, by the Go client."""
    await go.call("ingest_setup", urls=list(load.urls), tokens=load.tokens, streams=STREAMS,
                  text=TEXT)
    results = []

    async def phase(name: str, transport: str, mode: str, length: float,
                    measured: bool = True) -> None:
        p = Phase(name)

        async def run() -> None:
            p.figures = ingest_figures(await go.call(
                "ingest_run", transport=transport, mode=mode, seconds=length,
                rate=args.rate))
        if not measured:
            await run()
            return
        await settled(load.cluster, args.settle)
        r = await load.measure(p, run, args.profile, go)
        show(r)
        results.append(r)

    loops = set(args.loops.split(","))
    await go.call("http_connect", n=args.concurrency)
    await phase("warm-up", "http", "closed", 2.0, measured=False)
    if "http" in phases:
        if "closed" in loops:
            await phase(f"HTTP closed x{args.concurrency}", "http", "closed", seconds)
        if "open" in loops:
            await phase(f"HTTP open {args.rate}/s", "http", "open", seconds)
    await go.call("http_close")
    if "ws" in phases:
        await go.call("ws_connect", n=args.concurrency)
        if "closed" in loops:
            await phase(f"WS closed x{args.concurrency}", "ws", "closed", seconds)
        if "open" in loops:
            await phase(f"WS open {args.rate}/s", "ws", "open", seconds)
        await go.call("ws_close")
    return results


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    config = bench_config(tiers=UNLIMITED_TIERS, **UNLIMITED)
    seconds = 4.0 if args.quick else args.seconds
    phases = set(args.phases.split(","))
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    results: list[dict[str, Any]] = []
    async with cluster(config) as c:
        load = Load(c)
        await presence_answered(c)
        print(f"load average before: {load_average()}")
        if args.idle > 0:
            results.append(await idle(c, args.idle))
        print(f"\nus-east, 2 gateways, {STREAMS} streams, {seconds:.0f} s per phase, "
              f"{args.client} load client:")
        if args.client == "go":
            async with await GoLoad.start() as go:
                results += await go_phases(load, go, args, seconds, phases)
            print(f"load average after: {load_average()}")
            return results
        conns = await load.http_connections(args.concurrency)
        warm = Phase("warm-up")
        await load.http_closed(conns, 2.0, warm)
        if "http" in phases:
            await settled(c, args.settle)
            p = Phase(f"HTTP closed x{args.concurrency}")
            r = await load.measure(p, lambda: load.http_closed(conns, seconds, p),
                                   args.profile)
            show(r)
            results.append(r)
            await settled(c, args.settle)
            p = Phase(f"HTTP open {args.rate}/s")
            r = await load.measure(p, lambda: load.http_open(conns, args.rate, seconds, p),
                                   args.profile)
            show(r)
            results.append(r)
        for conn, _ in conns:
            conn.close()
        if "ws" in phases:
            posters = await load.ws_connections(args.concurrency)
            await settled(c, args.settle)
            p = Phase(f"WS closed x{args.concurrency}")
            r = await load.measure(p, lambda: load.ws_closed(posters, seconds, p),
                                   args.profile)
            show(r)
            results.append(r)
            await settled(c, args.settle)
            p = Phase(f"WS open {args.rate}/s")
            r = await load.measure(p, lambda: load.ws_open(posters, args.rate, seconds, p),
                                   args.profile)
            show(r)
            results.append(r)
            for poster in posters:
                poster.ws.close()
        print(f"load average after: {load_average()}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=int, default=1000, help="posts/s of the open loop")
    parser.add_argument("--phases", default="http,ws", help="http, ws or both")
    parser.add_argument("--loops", default="closed,open",
                        help="closed, open or both (the Go client only: the Python one runs "
                             "both)")
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles of the gateways "
                                                     "during each phase, into this dir")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds without traffic measured first (0: none)")
    parser.add_argument("--client", choices=("python", "go"), default="python",
                        help="the load client: bench/rawclient.py in this process, or the Go "
                             "one (bench/goload; build it first with bench/goload/build.sh)")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="before each phase, wait up to this long for us-east's outboxes "
                             "and classifier to catch up (0: do not wait)")
    parser.add_argument("--json", help="also write the results here")
    arguments = parser.parse_args()
    if arguments.profile:
        arguments.profile.mkdir(parents=True, exist_ok=True)
    measured = asyncio.run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(measured, indent=1))
