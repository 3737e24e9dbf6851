"""Hot-stream benchmark: one stream watched in three regions, posted to ever faster, in the
push tier and in the sampled tier; how many comments a second one hot stream takes in one
region through one and through two gateways; what a sampled viewer costs its gateway.

    .venv/bin/python bench/hot.py                  # both parts, its own clusters
    .venv/bin/python bench/hot.py --quick          # shorter steps, fewer viewers
    .venv/bin/python bench/hot.py --parts ingest   # or: ramp, viewers, follow, stage, cache

**ramp** (a cluster per tier: the push run's thresholds are out of reach, the sampled run's
are reached by one viewer and 5 comments/s): ``--viewers`` WebSocket viewers per region (half
on each of its gateways) that only count the comments they receive, one probe viewer per
region that times the priority lane, comments posted in us-east at each rate of ``--rates``
for ``--step`` seconds, and two host comments a second on top. Per step: comments stored per
second, deliveries per viewer per second, the priority lane's post-to-display p99 in each
region, each region's CPU (cores: its gateways, NATS and Redis), and viewers cut as slow
consumers. The push ramp stops at the first cut (where push would cut the audience), the
sampled one where the region stops keeping up (stored below 90% of the rate, or refusals).

**ingest**: the sampled tier (per-stream bucket of the hot tiers, no limit reached), one
viewer per region, ``--concurrency`` posters in a closed loop on one stream for ``--step``
seconds, through one of us-east's gateways and then through both, in ``--rounds`` turns:
comments stored a second, and the CPU it took per process. With ``--client go`` the posts are
the Go load client's (bench/goload, built by bench/goload/build.sh; one process through one
gateway, another through both, into the stream it calls "s0"), so that the client's own share
of the two cores is smaller and steadier than this process's.

**follow**: what following a sampled stream costs a gateway per comment (a lone
nats-server, the fanout's own decoding and the sampler, without the cluster).

**stage**: what following a sampled stream costs a gateway that is not its keeper, with
and without the region's sampling stage (region/stage.py), A/B in alternating rounds at
``--stage-rates`` comments a second: a follower process (this script, ``--follower``) on a
lone nats-server reads either the live feed (the log's RePublish, decoded and sampled as the
fanout and `TierFeeds` do) or the stage's subject and the own subjects of the posters that
watch through it (``--stage-authors`` of 1,000, 50 by default; a real `StageLink` and
`TierFeeds`), while this process plays the log or the keeper (a real `TierFeeds` and
`StageLink` deciding the same comments); the follower's CPU per second,
measured by itself over ``--step`` seconds, with the load average beside it. The keeper's
CPU per second is shown too (its pacing loop included).

**cache**: the replay cache of one stream posted to at 100,000 comments a second (a tick's
batch of 2,500 entries a write), on a lone redis-server, with the stream's one key (push) and
with its 16 keys (above push), in alternating rounds: Redis's CPU per entry written and per
resume of 500 read back, and the largest share of the writes one key took.

**viewers**: ``--many`` sampled viewers on one gateway, the stream posted to at 100, 400 and
1,000 comments a second: the gateway's CPU per viewer, which must not grow with the rate.

Load and viewers run in this process with the cheapest clients we have (bench/rawclient.py),
sharing the machine's cores with the cluster: every figure is what this machine does with
everything on it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import itertools
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from goload.figures import ingest_figures
from goload.process import GoLoad
from rawclient import (
    GO_CLIENT,
    UNLIMITED,
    UNLIMITED_TIERS,
    CpuMeter,
    HttpConnection,
    WsClient,
    bench_config,
    client_cpu,
    cluster,
    cpu_seconds,
    live_path,
    load_average,
    machine,
    pct,
    post_request,
    region_pids,
    split_url,
)

from chorus.cluster.local import LocalCluster
from chorus.config import Config
from region.auth import issue_token

REGIONS = ("us-east", "eu-west", "ap-south")
ORIGIN = "us-east"
HOST_PER_S = 2
PUSH_TIERS = {"sampled_enter_viewers": 10**8, "sampled_exit_viewers": 10**8 - 1,
              "snapshot_enter_viewers": 10**9, "snapshot_exit_viewers": 10**9 - 1}
SNAPSHOT_TIERS = {"sampled_enter_viewers": 1, "sampled_exit_viewers": 1,
                  "sampled_enter_rate_per_s": 5.0, "sampled_exit_rate_per_s": 1.0,
                  "snapshot_enter_viewers": 2, "snapshot_exit_viewers": 2}
SAMPLED_TIERS = {"sampled_enter_viewers": 1, "sampled_exit_viewers": 1,
                 "sampled_enter_rate_per_s": 5.0, "sampled_exit_rate_per_s": 1.0,
                 "sampled_per_viewer_per_s": 10, "snapshot_enter_viewers": 10**8,
                 "snapshot_exit_viewers": 10**8 - 1}


# -- viewers ------------------------------------------------------------------------------------


class Counter:
    """A viewer that counts the comments it receives (no parsing) and notices a cut."""

    def __init__(self) -> None:
        self.count = 0
        self.tail = b""
        self.tier = "push"
        self.ws: WsClient | None = None

    def on_text(self, payload: bytes, arrived: float) -> None:
        if payload.startswith(b'{"type":"comments"'):
            self.count += payload.count(b'"id":')
        elif payload.startswith(b'{"tier":') or b'"type":"tier"' in payload[:200]:
            self.tier = json.loads(payload)["tier"]

    @property
    def cut(self) -> bool:
        return self.ws is not None and self.ws.lost.done()


class Probe(Counter):
    """Also times each priority comment's arrival, by id."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    def on_text(self, payload: bytes, arrived: float) -> None:
        super().on_text(payload, arrived)
        if payload.startswith(b'{"type":"comments"') and b'"badge":"host"' in payload:
            for item in json.loads(payload)["items"]:
                if item.get("badge") == "host":
                    self.arrived.setdefault(item["id"], arrived)


async def open_viewer(viewer: Counter, base: str, stream: str, token: str) -> Counter:
    viewer.ws = await WsClient.open(base, live_path(stream, token), viewer.on_text)
    return viewer


# -- posting ------------------------------------------------------------------------------------


class Posting:
    """HTTP posts to one stream from a pool of users over keep-alive connections."""

    def __init__(self, c: LocalCluster, stream: str, urls: tuple[str, ...], conns: int) -> None:
        self.stream = stream
        self.urls = urls
        self.n_conns = conns
        self.tokens = [issue_token(c.config.auth, f"poster{i}") for i in range(2000)]
        self.host_token = issue_token(c.config.auth, "the-host", roles=("host",))
        self.serial = itertools.count()
        self.conns: list[tuple[HttpConnection, str]] = []
        self.stored = 0
        self.errors: dict[str, int] = {}
        self.host_sent: dict[str, float] = {}

    async def open(self) -> None:
        for i in range(self.n_conns):
            host, port = split_url(self.urls[i % len(self.urls)])
            self.conns.append((await HttpConnection.open(host, port), host))

    def close(self) -> None:
        for conn, _ in self.conns:
            conn.close()

    async def _post(self, conn: HttpConnection, host: str, *, priority: bool = False) -> None:
        n = next(self.serial)
        token = self.host_token if priority else self.tokens[n % len(self.tokens)]
        began = time.perf_counter()
        try:
            status, body = await conn.request(post_request(host, self.stream, token,
                                                           {"text": f"comment {n}"}))
        except ConnectionError:
            self.errors["connection lost"] = self.errors.get("connection lost", 0) + 1
            return
        if status == 201:
            self.stored += 1
            if priority:
                self.host_sent[json.loads(body)["id"]] = began
        else:
            key = f"{status} {body[:60]!r}"
            self.errors[key] = self.errors.get(key, 0) + 1

    async def closed_loop(self, seconds: float) -> None:
        until = time.perf_counter() + seconds

        async def poster(conn: HttpConnection, host: str) -> None:
            while time.perf_counter() < until and not conn.lost:
                await self._post(conn, host)
        await asyncio.gather(*(poster(c, h) for c, h in self.conns))

    async def open_loop(self, rate: float, seconds: float) -> None:
        """``rate`` posts a second (and `HOST_PER_S` host posts) on a fixed schedule; a post
        waits for a free connection (none is opened on the way)."""
        free: asyncio.Queue[tuple[HttpConnection, str]] = asyncio.Queue()
        for c in self.conns:
            free.put_nowait(c)
        pending: set[asyncio.Task[None]] = set()

        async def one(priority: bool) -> None:
            conn, host = await free.get()
            try:
                await self._post(conn, host, priority=priority)
            finally:
                free.put_nowait((conn, host))

        began = time.perf_counter()
        total = int(rate * seconds)
        hosts = int(HOST_PER_S * seconds)
        schedule = sorted([(i / rate, False) for i in range(total)]
                          + [((i + 0.5) / HOST_PER_S, True) for i in range(hosts)])
        try:
            for at, priority in schedule:
                await asyncio.sleep(max(0.0, began + at - time.perf_counter()))  # the schedule
                task = asyncio.create_task(one(priority))
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            # Stopped early or not, the posts under way keep their connections until answered.
            await asyncio.gather(*pending, return_exceptions=True)


class GoPosting:
    """`Posting`'s closed loop by the Go load client: one process posting to the stream it
    calls "s0" (``streams`` 1) through ``urls``."""

    STREAM = "s0"

    def __init__(self, c: LocalCluster, urls: tuple[str, ...], conns: int) -> None:
        self.urls = urls
        self.n_conns = conns
        self.tokens = [issue_token(c.config.auth, f"poster{i}") for i in range(2000)]
        self.stored = 0
        self.errors: dict[str, int] = {}
        self.go: GoLoad | None = None

    async def open(self) -> None:
        self.go = await GoLoad.start()
        await self.go.call("ingest_setup", urls=list(self.urls), tokens=self.tokens,
                           streams=1, text="comment ")
        await self.go.call("http_connect", n=self.n_conns)

    @property
    def pid(self) -> int:
        assert self.go is not None
        return self.go.pid

    async def closed_loop(self, seconds: float) -> None:
        assert self.go is not None
        figures = ingest_figures(await self.go.call(
            "ingest_run", transport="http", mode="closed", seconds=seconds, rate=0))
        self.stored += figures.stored
        for key, n in figures.errors.items():
            self.errors[key] = self.errors.get(key, 0) + n

    async def aclose(self) -> None:
        if self.go is not None:
            await self.go.close()


# -- measuring ----------------------------------------------------------------------------------


def cores_by_region(c: LocalCluster, used: dict[str, float], seconds: float
                    ) -> dict[str, float]:
    out = {}
    for region in REGIONS:
        names = region_pids(c, region)
        out[region] = round(sum(used.get(n, 0.0) for n in names) / seconds, 2)
    out["load client"] = round(client_cpu(used) / seconds, 2)
    return out


async def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout_s:.0f} s")
        await asyncio.sleep(0.1)  # a benchmark polls its own counters (see pyproject)


async def heat(posting: Posting, probes: list[Probe], tier: str = "sampled") -> None:
    """Posts at 20/s until every region delivers the stream in ``tier``."""
    warming = asyncio.create_task(posting.open_loop(20, 120))
    try:
        await wait_for(lambda: all(p.tier == tier for p in probes), 60,
                       f"the {tier} tier in every region")
    finally:
        warming.cancel()
        await asyncio.gather(warming, return_exceptions=True)


def tiered(tiers: dict[str, Any], gateways: int | None = None) -> Config:
    # Every viewer connects from loopback: no per-address cap (max_connections_per_ip 0).
    config = bench_config(tiers={**UNLIMITED_TIERS, **tiers}, **UNLIMITED,
                          max_connections_per_ip=0)
    if gateways is None:
        return config
    regions = tuple(dataclasses.replace(
        r, gateways=gateways, gateway_ports=r.gateway_ports[:gateways],
        operator_ports=r.operator_ports[:gateways]) for r in config.regions)
    return dataclasses.replace(config, regions=regions)


async def ramp(tier: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    config = tiered(SAMPLED_TIERS if tier == "sampled" else PUSH_TIERS)
    stream = f"hot{tier}{int(time.time())}"
    results: list[dict[str, Any]] = []
    async with cluster(config) as c:
        cfg = c.config
        viewers: list[Counter] = []
        probes: dict[str, Probe] = {}
        for region in REGIONS:
            urls = cfg.region(region).gateway_urls
            probes[region] = await open_viewer(  # type: ignore[assignment]
                Probe(), urls[0], stream, issue_token(cfg.auth, f"probe-{region}"))
            for i in range(args.viewers):
                viewers.append(await open_viewer(Counter(), urls[i % len(urls)], stream,
                                                 issue_token(cfg.auth, f"v{region}{i}")))
        posting = Posting(c, stream, cfg.region(ORIGIN).gateway_urls, args.concurrency)
        await posting.open()
        if tier == "sampled":
            await heat(posting, list(probes.values()))
        else:
            # Until every region forwards to every other (presence answers cached), the first
            # comments of a stream reach the others by late-join bootstrap, not live.
            await posting.open_loop(5, 4)
            await wait_for(lambda: all(p.count >= 20 for p in probes.values()), 30,
                           "comments in every region")
        pids = {name: child.pid for name, child in c.children.items()}
        print(f"\n{tier} tier: {args.viewers} viewers per region (+1 probe), one stream, "
              f"posting in {ORIGIN}, {HOST_PER_S} host comments/s on top, {args.step:.0f} s "
              f"per step; load average {load_average()}")
        for rate in args.rates:
            before = [v.count for v in viewers]
            stored_before, errors_before = posting.stored, sum(posting.errors.values())
            posting.host_sent.clear()
            meter = CpuMeter(pids)
            meter.start()
            began = time.perf_counter()
            await posting.open_loop(rate, args.step)
            # The step lasts until its last post is answered: a region that cannot keep up
            # answers the step's posts over a longer time, and that is its rate.
            posting_s = max(args.step, time.perf_counter() - began)
            await asyncio.sleep(1.0)  # the last posts reach the farthest region
            seconds = time.perf_counter() - began
            used = meter.stop()
            live = [v for v in viewers if not v.cut]
            # Over the whole step and its tail: what a viewer got while the step lasted.
            per_viewer = [(v.count - b) / seconds for v, b in zip(viewers, before,
                                                                  strict=True) if not v.cut]
            lane = {}
            for region, probe in probes.items():
                late = [(probe.arrived[cid] - sent) * 1000
                        for cid, sent in posting.host_sent.items() if cid in probe.arrived]
                lane[region] = (round(pct(late, 99), 1) if late else None,
                                len(posting.host_sent) - len(late))
            stored = (posting.stored - stored_before) / posting_s
            errors = sum(posting.errors.values()) - errors_before
            row = {"tier": tier, "rate": rate, "stored_per_s": round(stored, 1),
                   "deliveries_per_viewer_per_s": round(sum(per_viewer) / max(1, len(live)), 1),
                   "deliveries_per_s": round(sum(per_viewer), 0),
                   "priority_p99_ms": {r: v[0] for r, v in lane.items()},
                   "priority_missing": {r: v[1] for r, v in lane.items()},
                   "cores": cores_by_region(c, used, seconds),
                   "viewers_cut": len(viewers) - len(live), "errors": errors}
            results.append(row)
            show(row)
            if row["viewers_cut"]:
                print(f"  -> push cuts viewers at {rate} comments/s")
                break
            if stored < 0.9 * rate or errors:
                print(f"  -> the region no longer keeps up at {rate} comments/s "
                      f"({posting.errors})")
                break
        posting.close()
        for v in (*viewers, *probes.values()):
            if v.ws is not None:
                v.ws.close()
    return results


def show(row: dict[str, Any]) -> None:
    lane = ", ".join(f"{r} {'-' if v is None else f'{v:.0f}'} ms"
                     for r, v in row["priority_p99_ms"].items())
    cores = ", ".join(f"{k} {v:.2f}" for k, v in row["cores"].items())
    print(f"  {row['rate']:>6} /s: stored {row['stored_per_s']:>7,.0f}/s, "
          f"{row['deliveries_per_viewer_per_s']:>6,.1f} per viewer/s "
          f"({row['deliveries_per_s']:>8,.0f}/s), priority p99 {lane}; cores {cores}; "
          f"cut {row['viewers_cut']}, errors {row['errors']}")


async def ingest(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The region's gateways take posts through one of them, then through both, in turns
    (`--rounds`): on a machine others share too, alternating short phases compares the two
    under the same load, where two clusters measured minutes apart would not."""
    partitions = ({} if args.partitions is None
                  else {"hot_log_partitions": args.partitions})
    config = tiered({**SAMPLED_TIERS, **partitions})
    go = args.client == "go"
    stream = GoPosting.STREAM if go else f"ingest{int(time.time())}"
    rows: list[dict[str, Any]] = []
    async with cluster(config) as c:
        cfg = c.config
        urls = cfg.region(ORIGIN).gateway_urls
        probes = [await open_viewer(Probe(), cfg.region(r).gateway_urls[0], stream,
                                    issue_token(cfg.auth, f"probe-{r}")) for r in REGIONS]
        heating = Posting(c, stream, urls, args.concurrency)
        await heating.open()
        one: Posting | GoPosting
        both: Posting | GoPosting
        if go:
            one = GoPosting(c, urls[:1], args.concurrency)
            both = GoPosting(c, urls, args.concurrency)
        else:
            one = Posting(c, stream, urls[:1], args.concurrency)
            both = Posting(c, stream, urls, args.concurrency)
        await one.open()
        await both.open()
        await heat(heating, probes)
        heating.close()
        await both.closed_loop(2.0)  # warm-up
        pids = {name: child.pid for name, child in c.children.items()}
        for turn in range(args.rounds):
            for label, posting in (("1 gateway", one), ("2 gateways", both)):
                if isinstance(posting, GoPosting):
                    # The Go client is the load client; this process only waits.
                    pids = {**pids, GO_CLIENT: posting.pid}
                meter = CpuMeter(pids)
                stored_before = posting.stored
                load = load_average()
                meter.start()
                began = time.perf_counter()
                await posting.closed_loop(args.step)
                seconds = time.perf_counter() - began
                used = meter.stop()
                stored = (posting.stored - stored_before) / seconds
                by_process = {k: round(v / seconds, 2) for k, v in used.items()
                              if v / seconds > 0.02}
                # CPU per stored comment holds still when others load the machine, where the
                # rate does not: it is what the arithmetic in docs/design.md builds on.
                total = max(1, posting.stored - stored_before)
                per_post = {group: round(sum(v for k, v in used.items() if k.startswith(
                    prefix)) / total * 1e6) for group, prefix in (
                    ("origin gateways", f"{ORIGIN}/gateway"), ("origin nats", f"{ORIGIN}/nats"),
                    ("origin redis", f"{ORIGIN}/redis"), ("load client", "load client"))}
                per_post["other regions' gateways (each region)"] = round(sum(
                    v for k, v in used.items() if "/gateway" in k and not k.startswith(ORIGIN)
                ) / 2 / total * 1e6)
                row = {"round": turn, "taking_posts": label, "stored_per_s": round(stored),
                       "errors": dict(posting.errors), "cores": by_process,
                       "cores_by_region": cores_by_region(c, used, seconds),
                       "cpu_us_per_comment": per_post, "load_average": load}
                rows.append(row)
                print(f"  round {turn}, {label:<10}: {stored:>7,.0f} comments/s stored in "
                      f"{ORIGIN}; cores {row['cores_by_region']} (load {load})")
                print(f"      CPU per comment (us): {per_post}")
                print("      " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(
                    by_process.items(), key=lambda kv: -kv[1])))
        for posting in (one, both):
            if isinstance(posting, GoPosting):
                await posting.aclose()
            else:
                posting.close()
        for p in probes:
            if p.ws is not None:
                p.ws.close()
    for label in ("1 gateway", "2 gateways"):
        rates = sorted(r["stored_per_s"] for r in rows if r["taking_posts"] == label)
        print(f"  {label}: median {rates[len(rates) // 2]:,} comments/s over {len(rates)} "
              "rounds")
    return rows


async def viewer_cost(args: argparse.Namespace, tier: str) -> list[dict[str, Any]]:
    """The CPU a viewer of a hot stream costs its gateway: ``--many`` viewers on us-east's
    first gateway, the stream in ``tier``, comments posted on its second gateway at each
    rate; the first gateway's CPU over the step, per viewer."""
    config = tiered(SAMPLED_TIERS if tier == "sampled" else SNAPSHOT_TIERS)
    stream = f"many{int(time.time())}"
    rows = []
    async with cluster(config) as c:
        cfg = c.config
        first, second = cfg.region(ORIGIN).gateway_urls
        probes = [await open_viewer(Probe(), cfg.region(r).gateway_urls[0], stream,
                                    issue_token(cfg.auth, f"probe-{r}")) for r in REGIONS]
        viewers = [await open_viewer(Counter(), first, stream, issue_token(cfg.auth, f"m{i}"))
                   for i in range(args.many)]
        posting = Posting(c, stream, (second,), args.concurrency)
        await posting.open()
        await heat(posting, probes, tier)
        gateway = c.children[f"{ORIGIN}/gateway-0"].pid
        print(f"\n{args.many} {tier} viewers on one gateway of {ORIGIN}, comments posted on "
              f"its other gateway, {args.step:.0f} s per rate:")
        def frames() -> int:
            return sum(v.ws.frames for v in viewers if v.ws is not None)

        for rate in (100, 400, 1000):
            before = sum(v.count for v in viewers)
            frames_before = frames()
            meter = CpuMeter({"gateway": gateway})
            meter.start()
            began = time.perf_counter()
            await posting.open_loop(rate, args.step)
            seconds = time.perf_counter() - began
            used = meter.stop()["gateway"]
            got = sum(v.count for v in viewers) - before
            row = {"tier": tier, "viewers": args.many, "rate": rate,
                   "deliveries_per_viewer_per_s": round(got / len(viewers) / seconds, 1),
                   "frames_per_viewer_per_s": round((frames() - frames_before)
                                                    / len(viewers) / seconds, 1),
                   "gateway_cores": round(used / seconds, 3),
                   "us_per_viewer_second": round(used / seconds / len(viewers) * 1e6, 1),
                   "cut": sum(v.cut for v in viewers)}
            rows.append(row)
            print(f"  {rate:>5}/s posted: {row['deliveries_per_viewer_per_s']:>5.1f} comments "
                  f"({row['frames_per_viewer_per_s']:.1f} frames) per viewer/s, gateway "
                  f"{row['gateway_cores']:.2f} cores = "
                  f"{row['us_per_viewer_second']:.0f} us per viewer-second (cut {row['cut']})")
        posting.close()
        for v in (*viewers, *probes):
            if v.ws is not None:
                v.ws.close()
    return rows


async def follow_cost(n: int = 60_000) -> dict[str, float]:
    """The CPU a gateway spends per comment of a sampled stream it follows, alone: a lone
    nats-server, messages shaped as the log's RePublish, the fanout's `entry_of` and
    `TierFeeds.take` (the sampler) in this process; the publisher's own cost, measured
    first without a follower, is taken off."""
    import resource
    import socket
    import subprocess

    import nats

    from chorus.cluster.binaries import find_binaries
    from chorus.config import Tiers
    from chorus.metrics import Metrics
    from chorus.model import Comment
    from region.fanout import entry_of
    from region.tiers_feed import Followed, TierFeeds

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        str(find_binaries().nats_server), "-a", "127.0.0.1", "-p", str(port),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        pub = await nats.connect(f"nats://127.0.0.1:{port}", connect_timeout=5,
                                 max_reconnect_attempts=20, reconnect_time_wait=0.2)
        follower = await nats.connect(f"nats://127.0.0.1:{port}", pending_size=1 << 30)
        body = Comment(id="0190000000000000-us-east.0", stream="s", region="us-east",
                       user="user123", name="User 123", text="what a goal!!! " * 4,
                       ts=1).encode()

        async def publish(subject: str) -> None:
            for i in range(1, n + 1):
                await pub.publish(subject, body, headers={
                    "Nats-Sequence": str(i), "Nats-Last-Sequence": str(i - 1)})
                if i % 5000 == 0:
                    await pub.flush()
            await pub.flush()

        began = cpu()
        await publish("nobody.listens")
        publisher = (cpu() - began) / n
        feeds = TierFeeds(region="us-east", tiers=Tiers(), metrics=Metrics("us-east", "0"),
                          store=None, snapshot_url=lambda stream: "")
        feeds.streams["s"] = Followed()
        feeds.apply("s", "sampled", keeper=False, reading=None)
        got = 0
        done = asyncio.Event()

        async def on_live(msg: Any) -> None:
            nonlocal got
            feeds.take(entry_of(msg))
            got += 1
            if got == n:
                done.set()

        await follower.subscribe("live.us-east.s", cb=on_live)
        await follower.flush()
        began = cpu()
        await publish("live.us-east.s")
        await asyncio.wait_for(done.wait(), 120)
        following = (cpu() - began) / n - publisher
        await pub.close()
        await follower.close()
    finally:
        server.terminate()
        await server.wait()
    row = {"us_per_comment": round(following * 1e6, 1),
           "comments_per_s_per_core": round(1 / following)}
    print(f"\nfollowing a sampled stream: {row['us_per_comment']} us of CPU per comment "
          f"(about {row['comments_per_s_per_core']:,} comments/s per core)")
    return row


STAGE_USERS = 50        # authors the follower holds sessions of (own subjects), by default
STAGE_POSTERS = 1_000   # authors of the comments


def stage_comment(i: int) -> Any:
    from chorus.model import Comment
    return Comment(id=f"{i:016x}-us-east.0", stream="s", region="us-east",
                   user=f"user{i % STAGE_POSTERS}", name="User", text="what a goal!!! " * 4,
                   ts=int(time.time() * 1000), badge="host" if i % 500 == 0 else "")


async def stage_follower(mode: str, port: int, seconds: float, users: int) -> None:
    """The follower process: reads the live feed or the stage, reports its CPU a second."""
    import resource

    import nats

    from chorus.config import Tiers
    from chorus.metrics import Metrics
    from region.fanout import entry_of
    from region.stage_nats import StageLink
    from region.tiers_feed import Followed, TierFeeds

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    nc = await nats.connect(f"nats://127.0.0.1:{port}", pending_size=1 << 30)
    heard = asyncio.Event()

    class Quiet:
        async def set_live(self, stream: str, on: bool) -> None:
            return None

    link = StageLink(nc, region="us-east") if mode == "stage" else None
    feeds = TierFeeds(region="us-east", tiers=Tiers(), metrics=Metrics("us-east", "1"),
                      store=None, snapshot_url=lambda stream: "", gateway="us-east.1",
                      stage=link, on_plan=link.replan if link else None)
    followed = feeds.streams["s"] = Followed()
    for u in range(users):
        followed.by_user[f"user{u * (STAGE_POSTERS // users)}"] = set()
    feeds.apply("s", "sampled", keeper=False, reading=None)
    tasks = []
    if link is not None:
        link.bind(feeds, Quiet())
        tasks.append(asyncio.create_task(link.run()))
        heard_stage = feeds.heard

        def hearing(stream: str, message: Any) -> None:
            heard_stage(stream, message)
            heard.set()
        feeds.heard = hearing  # type: ignore[method-assign]
        await asyncio.sleep(0.5)   # the link's first plan: its subscriptions
        await nc.flush()
    else:
        async def on_live(msg: Any) -> None:
            feeds.take(entry_of(msg))
            heard.set()
        await nc.subscribe("live.us-east.s", cb=on_live)
        await nc.flush()
    print("ready", flush=True)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(heard.wait(), 3.0)   # nothing comes to an idle follower
    await asyncio.sleep(1.0)    # past the start
    began, t0 = cpu(), time.monotonic()
    await asyncio.sleep(seconds)   # the measured window
    used, took = cpu() - began, time.monotonic() - t0
    following = feeds.feeds["s"].following
    print(json.dumps({"cpu_per_s": used / took, "following": following}), flush=True)
    for task in tasks:
        task.cancel()
    await nc.close()


async def stage_cost(rates: list[int], rounds: int, step: float,
                     users: int = STAGE_USERS) -> list[dict[str, Any]]:
    """A/B of a following gateway: the live feed against the stage (see the module's doc)."""
    import resource
    import socket
    import subprocess

    import nats

    from chorus.cluster.binaries import find_binaries
    from chorus.config import Tiers
    from chorus.metrics import Metrics
    from region.log import Entry
    from region.stage_nats import StageLink
    from region.tiers_feed import Followed, TierFeeds

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        str(find_binaries().nats_server), "-a", "127.0.0.1", "-p", str(port),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows: list[dict[str, Any]] = []
    try:
        await asyncio.sleep(0.5)   # the server starting
        nc = await nats.connect(f"nats://127.0.0.1:{port}", connect_timeout=5,
                                max_reconnect_attempts=20, reconnect_time_wait=0.2)
        seq = 0
        for rnd in range(rounds):
            for rate in rates:
                for mode in ("live", "stage", "alone"):
                    # alone: the keeper deciding without a stage, its follower idle (both
                    # floors: what the stage adds to the keeper, what a follower costs idle).
                    child = await asyncio.create_subprocess_exec(
                        sys.executable, __file__, "--follower",
                        f"{'live' if mode == 'live' else 'stage'}:{port}:{step}:{users}",
                        stdout=subprocess.PIPE)
                    assert child.stdout is not None
                    assert (await child.stdout.readline()).strip() == b"ready"
                    link: StageLink | None = None
                    feeds: TierFeeds | None = None
                    tasks: list[asyncio.Task[None]] = []
                    if mode != "live":
                        link = StageLink(nc, region="us-east") if mode == "stage" else None
                        feeds = TierFeeds(region="us-east", tiers=Tiers(),
                                          metrics=Metrics("us-east", "0"), store=None,
                                          snapshot_url=lambda stream: "", gateway="us-east.0",
                                          stage=link, on_plan=link.replan if link else None)
                        feeds.streams["s"] = Followed()
                        feeds.apply("s", "sampled", keeper=True, reading=None)
                        tasks = [asyncio.create_task(feeds.run())]

                        class Quiet:
                            async def set_live(self, stream: str, on: bool) -> None:
                                return None
                        if link is not None:
                            link.bind(feeds, Quiet())
                            tasks.append(asyncio.create_task(link.run()))
                    result = asyncio.create_task(child.stdout.readline())
                    began, t0, sent = cpu(), time.monotonic(), 0
                    while not result.done():
                        due = int((time.monotonic() - t0) * rate) - sent
                        for _ in range(due):
                            seq += 1
                            comment = stage_comment(seq)
                            if feeds is not None:
                                feeds.take(Entry(seq=seq, prev=seq - 1, comment=comment))
                            else:
                                await nc.publish("live.us-east.s", comment.encode(), headers={
                                    "Nats-Sequence": str(seq),
                                    "Nats-Last-Sequence": str(seq - 1)})
                        sent += due
                        await asyncio.sleep(0.005)   # pacing the load
                    keeper = (cpu() - began) / (time.monotonic() - t0)
                    got = json.loads(await result)
                    await child.wait()
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    row = {"round": rnd + 1, "rate": rate, "mode": mode,
                           "follower_ms_per_s": round(got["cpu_per_s"] * 1000, 2),
                           "followed_stage": got["following"],
                           "source_ms_per_s": round(keeper * 1000, 1),
                           "load": load_average()}
                    rows.append(row)
                    source = {"live": "log publisher", "stage": "keeper",
                              "alone": "keeper without a stage"}[mode]
                    print(f"  round {row['round']} {rate:>5}/s {mode:>5}: follower "
                          f"{row['follower_ms_per_s']:>7} ms CPU/s "
                          f"(us per comment {got['cpu_per_s'] / rate * 1e6:.1f}); "
                          f"{source} {row['source_ms_per_s']} ms/s; load {row['load']}",
                          flush=True)
        await nc.close()
    finally:
        server.terminate()
        await server.wait()
    return rows


async def cache_cost(rounds: int = 3, n: int = 200_000, batch: int = 2_500,
                     resumes: int = 1_000) -> list[dict[str, Any]]:
    """Redis's CPU per replay-cache entry and per resume, one key against 16 keys: the same
    entries, the same reads, alternating rounds on one lone redis-server."""
    import random
    import socket
    import subprocess

    import redis.asyncio as aioredis

    from chorus.cluster.binaries import find_binaries
    from chorus.model import Comment
    from region.log import Entry
    from region.replay import shard_of
    from region.replay_redis import RedisReplayCache

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = await asyncio.create_subprocess_exec(
        str(find_binaries().redis_server), "--port", str(port), "--save", "",
        "--appendonly", "no", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        client = aioredis.Redis(port=port)
        await wait_for_async(client.ping, 10, "redis-server")
        rng = random.Random(7)
        for turn in range(rounds):
            for shards in (1, 16):
                stream = f"cache{turn}x{shards}"
                cache = RedisReplayCache(client, 2000, hot=(lambda _: True) if shards > 1
                                         else (lambda _: False), shards=16)
                entries = [Entry(seq, seq - 1, Comment(
                    id=f"{seq:016x}-us-east.{seq % 4}", stream=stream, region="us-east",
                    user=f"user{seq % 5000}", name="User", text="what a goal!!! " * 4,
                    ts=seq)) for seq in range(1, n + 1)]
                began = cpu_seconds(server.pid)
                for at in range(0, n, batch):
                    await cache.add(entries[at:at + batch])
                wrote = cpu_seconds(server.pid) - began
                began = cpu_seconds(server.pid)
                for _ in range(resumes):
                    got = await cache.after(stream, rng.randrange(n - 1900, n - 500), 500)
                    assert len(got) == 500, len(got)
                read = cpu_seconds(server.pid) - began
                share = (max(sum(1 for e in entries if shard_of(e.comment.id, 16) == k)
                             for k in range(16)) / n if shards > 1 else 1.0)
                row = {"keys": shards, "load": load_average(),
                       "redis_us_per_entry": round(wrote / n * 1e6, 2),
                       "redis_us_per_resume": round(read / resumes * 1e6),
                       "largest_key_share": round(share, 3)}
                rows.append(row)
                print(f"replay cache, {shards:2d} key(s): Redis {row['redis_us_per_entry']} us "
                      f"per entry written, {row['redis_us_per_resume']} us per resume of 500; "
                      f"largest key {share:.1%} of the writes (load {row['load']})")
                await client.delete(*cache.keys(stream), f"chorus:r:{stream}")
        await client.aclose()
    finally:
        server.terminate()
        await server.wait()
    return rows


async def wait_for_async(check: Callable[[], Any], timeout_s: float, what: str) -> None:
    """Until ``check()`` answers (an awaitable that raises while ``what`` is not up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await check()
            return
        except Exception:   # not up yet: any driver error
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)   # polling a server that is starting


async def main(args: argparse.Namespace) -> dict[str, Any]:
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    out: dict[str, Any] = {}
    if "ramp" in args.parts:
        out["ramp"] = [row for tier in args.tiers.split(",") for row in await ramp(tier, args)]
    if "ingest" in args.parts:
        print(f"\none hot stream's ingest in {ORIGIN} (sampled tier, closed loop, "
              f"{args.concurrency} posters, {args.step:.0f} s):")
        out["ingest"] = await ingest(args)
    if "follow" in args.parts:
        out["follow"] = await follow_cost()
    if "stage" in args.parts:
        print(f"\na following gateway, live feed (A) against the stage (B), "
              f"{args.step:.0f} s a step, {args.stage_authors} of the 1,000 posters "
              "watching through it:")
        out["stage"] = await stage_cost([int(r) for r in args.stage_rates.split(",")],
                                        args.rounds, args.step, args.stage_authors)
    if "cache" in args.parts:
        out["cache"] = await cache_cost()
    if "viewers" in args.parts:
        out["viewers"] = [*await viewer_cost(args, "sampled"),
                          *await viewer_cost(args, "snapshot")]
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", default="ramp,ingest,viewers,follow")
    parser.add_argument("--tiers", default="push,sampled", help="ramp: the tiers to ramp")
    parser.add_argument("--many", type=int, default=2000,
                        help="viewers on one gateway (part viewers)")
    parser.add_argument("--viewers", type=int, default=100, help="per region")
    parser.add_argument("--rates", default="10,20,50,100,200,400,800,1200,1600,2400,3200")
    parser.add_argument("--step", type=float, default=6.0, help="seconds per step")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="ingest: turns of 1 and 2")
    parser.add_argument("--client", choices=("python", "go"), default="python",
                        help="ingest: the load client (go: bench/goload, build it first with "
                             "bench/goload/build.sh)")
    parser.add_argument("--partitions", type=int,
                        help="ingest: tiers.hot_log_partitions (default: regions.yaml's)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--stage-rates", default="100,1000", help="stage: comments a second")
    parser.add_argument("--stage-authors", type=int, default=STAGE_USERS,
                        help="stage: the follower's viewers among the 1,000 posters")
    parser.add_argument("--follower", help=argparse.SUPPRESS)   # stage: the follower process
    arguments = parser.parse_args()
    if arguments.follower:
        follow_mode, follow_port, follow_s, follow_users = arguments.follower.split(":")
        asyncio.run(stage_follower(follow_mode, int(follow_port), float(follow_s),
                                   int(follow_users)))
        sys.exit(0)
    arguments.rates = [int(r) for r in arguments.rates.split(",")]
    if arguments.quick:
        arguments.viewers, arguments.step = 20, 3.0
    measured = asyncio.run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(measured, indent=1))
