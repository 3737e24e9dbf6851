"""Fanout benchmark: a ladder of viewers x comments/s on one gateway process, with the post to
viewer latency, the viewers cut, and the gateway's CPU per delivery; and the memory of an
idle WebSocket, with and without the extensions a browser offers.

    .venv/bin/python bench/fanout.py               # the default ladder (below)
    .venv/bin/python bench/fanout.py --quick       # a short ladder, for a smoke run
    .venv/bin/python bench/fanout.py --ladder 1000x100,1000x200 --browser

Each step opens its viewers (WebSocket, one stream, every viewer a user of its own) on
us-east's first gateway and posts the comments, at a steady rate, on us-east's other
gateway, over HTTP. A comment's text carries the time it was posted (`time.perf_counter_ns`
of this process); a sample of the viewers (``--sampled``, 100) reads it from each comment
they receive and records post -> viewer latency; every viewer counts the comments it gets.
With ``--browser`` every viewer offers ``permessage-deflate`` as browsers do (and inflates
what the gateway compressed). "cut" counts the viewers whose connection the gateway closed
while they were reading (slow consumer); "missing" the deliveries that did not arrive within
5 s of the last post. "CPU/delivery" is the CPU of the viewers' gateway process over the step
divided by the comments delivered. Beside post -> viewer, each step gives the post's own
latency (to its 201: the posting gateway's and the log's share) and the time from the 201 to
the viewer (the fanout's share), and what the viewers' gateway's garbage collector paused
during the step (its ``chorus_gc_pause_seconds`` on the operator port, when it has one).

The viewers and posters are bench/rawclient.py's, in this process, unless ``--client go``:
then the Go load client (bench/goload, built by bench/goload/build.sh) opens the same viewers
and posts the same comments (the time in a text is the Go process's monotonic clock), and
this process only starts the cluster, meters the gateway and reads the Go client's figures.
"client" is the load client's CPU (this process, and the Go one when it runs). The idle
memory figures use the Python client either way (they measure the gateway, not a latency).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import re
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from goload.figures import fanout_figures, viewers
from goload.process import GoLoad
from rawclient import (
    BROWSER_EXTENSIONS,
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
    live_path,
    load_average,
    machine,
    post_request,
    rss_kib,
    split_url,
    summary_ms,
)

from chorus.cluster.local import LocalCluster
from region.auth import issue_token

REGION = "us-east"
POSTED_AT = re.compile(rb'"text":"t(\d+)"')
DEFAULT_LADDER = "200x50,1000x100,1000x200"
POSTERS = 32          # HTTP connections that post a step's comments


class Viewer:
    def __init__(self, sampled: bool) -> None:
        self.sampled = sampled
        self.count = 0
        self.latencies: list[float] = []
        self.arrivals: list[tuple[int, float]] = []   # (posted at, arrived at), ns
        self.hello = asyncio.Event()
        self.ws: WsClient

    def on_text(self, payload: bytes, arrived: float) -> None:
        if payload.startswith(b'{"type":"comments"'):
            self.count += payload.count(b'"id":')
            if self.sampled:
                now_ns = arrived * 1e9
                for m in POSTED_AT.finditer(payload):
                    posted_ns = int(m.group(1))
                    self.latencies.append((now_ns - posted_ns) / 1e9)
                    self.arrivals.append((posted_ns, now_ns))
        elif b'"type":"hello"' in payload:
            self.hello.set()

    @property
    def cut(self) -> bool:
        return self.ws.close_code is not None or self.ws.lost.done()


async def open_viewers(url: str, stream: str, tokens: list[str], sampled: int,
                       extensions: str | None) -> list[Viewer]:
    every = max(1, len(tokens) // max(1, sampled))
    viewers = [Viewer(sampled=i % every == 0) for i in range(len(tokens))]
    for viewer, token in zip(viewers, tokens, strict=True):
        viewer.ws = await WsClient.open(url, live_path(stream, token), viewer.on_text,
                                        extensions=extensions)
    # A gateway too busy to greet them all within a minute is part of the result ("opened").
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(v.hello.wait() for v in viewers)), 60)
    return viewers


async def step(c: LocalCluster, viewers_n: int, rate: int, seconds: float, *, sampled: int,
               browser: bool, tokens: list[str], poster_tokens: list[str],
               profile: Path | None = None) -> dict[str, Any]:
    cfg = c.config
    urls = cfg.region(REGION).gateway_urls
    stream = f"fan{viewers_n}x{rate}{'b' if browser else ''}{int(time.time() * 1000) % 10**8}"
    viewers = await open_viewers(urls[0], stream, tokens[:viewers_n], sampled,
                                 BROWSER_EXTENSIONS if browser else None)
    deflated = sum(v.ws.deflate for v in viewers)
    host, port = split_url(urls[1])
    posters = [await HttpConnection.open(host, port) for _ in range(POSTERS)]
    free: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for p in posters:
        free.put_nowait(p)
    posted = 0
    failed = 0
    post_latencies: list[float] = []
    answered_at: dict[int, int] = {}    # a post's start -> its 201, ns

    async def one(i: int) -> None:
        nonlocal posted, failed
        conn = await free.get()
        try:
            started = time.perf_counter_ns()
            body = {"text": f"t{started}"}
            status, _ = await conn.request(post_request(host, stream,
                                                        poster_tokens[i % len(poster_tokens)],
                                                        body))
            if status == 201:
                posted += 1
                answered = time.perf_counter_ns()
                post_latencies.append((answered - started) / 1e9)
                answered_at[started] = answered
            else:
                failed += 1
        finally:
            free.put_nowait(conn)

    gateway = c.child(f"{REGION}/gateway-0").pid
    meter = CpuMeter({"gateway": gateway})
    label = f"{viewers_n}x{rate}{'-browser' if browser else ''}"
    operator = cfg.region(REGION).operator_urls[0]
    server_before = await scrape(operator)
    async with Profiler(profile, label, {"viewers-gateway": gateway}):
        meter.start()
        began = time.perf_counter()
        total = int(rate * seconds)
        tasks = []
        for i in range(total):
            tasks.append(asyncio.create_task(one(i)))
            await asyncio.sleep(max(0.0, began + (i + 1) / rate - time.perf_counter()))
        await asyncio.gather(*tasks)
        posting = time.perf_counter() - began
        deadline = time.perf_counter() + 5
        while time.perf_counter() < deadline and any(
                v.count < posted and not v.cut for v in viewers):
            await asyncio.sleep(0.05)
        used = meter.stop()
    server_after = await scrape(operator)
    cut = sum(v.cut for v in viewers)
    delivered = sum(v.count for v in viewers)
    latencies = [x for v in viewers if v.sampled for x in v.latencies]
    # The fanout's share: from the poster's 201 (the comment is stored by then, and its live
    # copy left the log with the acknowledgement) to the viewer. Negative when the viewer had
    # it before the poster had its answer.
    after_201 = [(arrived - answered_at[posted]) / 1e9 for v in viewers if v.sampled
                 for posted, arrived in v.arrivals if posted in answered_at]
    for v in viewers:
        v.ws.close()
    for p in posters:
        p.close()
    return {"phase": f"{viewers_n} viewers x {rate}/s{' (browser)' if browser else ''}",
            "viewers": viewers_n, "rate": rate, "posted": posted, "post_failures": failed,
            "deliveries_per_s": delivered / posting, **summary_ms(latencies),
            "missing": posted * viewers_n - delivered - sum(
                max(0, posted - v.count) for v in viewers if v.cut),
            "cut": cut, "opened": sum(v.hello.is_set() for v in viewers),
            "deflate_negotiated": deflated,
            "gateway_cores": used["gateway"] / posting,
            "client_cores": client_cpu(used) / posting,
            "cpu_us_per_delivery": used["gateway"] / max(1, delivered) * 1e6,
            **{f"post_{k}": v for k, v in summary_ms(post_latencies).items()},
            **{f"after_201_{k}": v for k, v in summary_ms(after_201).items()},
            **server_step(server_before, server_after)}


async def step_go(go: GoLoad, c: LocalCluster, viewers_n: int, rate: int, seconds: float, *,
                  sampled: int, browser: bool, tokens: list[str], poster_tokens: list[str],
                  profile: Path | None = None) -> dict[str, Any]:
    """`step` with the Go client's viewers and posters: the same stream, tokens, rate and
    figures."""
    cfg = c.config
    urls = cfg.region(REGION).gateway_urls
    stream = f"fan{viewers_n}x{rate}{'b' if browser else ''}{int(time.time() * 1000) % 10**8}"
    opened = viewers(await go.call(
        "fanout_open", url=urls[0], stream=stream, tokens=tokens[:viewers_n], sampled=sampled,
        extensions=BROWSER_EXTENSIONS if browser else "", post_url=urls[1], posters=POSTERS))
    gateway = c.child(f"{REGION}/gateway-0").pid
    meter = CpuMeter({"gateway": gateway, GO_CLIENT: go.pid})
    label = f"{viewers_n}x{rate}{'-browser' if browser else ''}"
    operator = cfg.region(REGION).operator_urls[0]
    server_before = await scrape(operator)
    async with Profiler(profile, label, {"viewers-gateway": gateway}):
        meter.start()
        f = fanout_figures(await go.call("fanout_run", rate=rate, seconds=seconds,
                                         poster_tokens=poster_tokens, drain_s=5.0))
        used = meter.stop()
    server_after = await scrape(operator)
    await go.call("fanout_close")
    return {"phase": f"{viewers_n} viewers x {rate}/s{' (browser)' if browser else ''}",
            "viewers": viewers_n, "rate": rate, "posted": f.posted,
            "post_failures": f.post_failures,
            "deliveries_per_s": f.delivered / f.posting_s, **f.latency.as_dict(),
            "missing": f.missing, "cut": f.cut, "opened": opened.opened,
            "deflate_negotiated": opened.deflate_negotiated,
            "gateway_cores": used["gateway"] / f.posting_s,
            "client_cores": client_cpu(used) / f.posting_s,
            "cpu_us_per_delivery": used["gateway"] / max(1, f.delivered) * 1e6,
            **f.post.as_dict("post_"), **f.after_201.as_dict("after_201_"),
            **server_step(server_before, server_after)}


GC_METRIC = ("chorus_gc_pause_seconds", "generation")
DELIVERY_METRIC = ("chorus_delivery_seconds", "origin")

Samples = dict[tuple[str, str], float]


def _scrape(url: str) -> Samples:
    """The viewers' gateway's histograms of `GC_METRIC` (region/gcwatch.py) and
    `DELIVERY_METRIC` so far, by (kind and label, le): ("chorus_gc_pause_seconds bucket 2",
    "0.05"), ("chorus_delivery_seconds count us-east", "")."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: Samples = {}
    for line in text.splitlines():
        for metric, label in (GC_METRIC, DELIVERY_METRIC):
            if not line.startswith(metric + "_"):
                continue
            name, _, rest = line.partition("{")
            labels, _, value = rest.rpartition("} ")
            of = re.search(label + r'="([^"]+)"', labels)
            le = re.search(r'le="([^"]+)"', labels)
            out[(f"{metric} {name[len(metric) + 1:]} {of.group(1) if of else ''}",
                 le.group(1) if le else "")] = float(value)
    return out


async def scrape(url: str) -> Samples:
    """{} when the gateway does not answer (or a tree has no operator listener)."""
    try:
        return await asyncio.to_thread(_scrape, url)
    except (OSError, ValueError):
        return {}


def _quantile_le(before: Samples, after: Samples, prefix: str, q: float) -> float:
    """The upper bound of the bucket (seconds) holding the ``q`` quantile of what a histogram
    series observed between two scrapes; inf above its last bound, nan when it observed
    nothing."""
    def grew(key: tuple[str, str]) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    n = grew((f"{prefix.replace('@', 'count')}", ""))
    if n <= 0:
        return math.nan
    bucket = prefix.replace("@", "bucket")
    bounds = sorted((float(le), le) for (kind, le) in after if kind == bucket and le != "+Inf")
    return next((b for b, le in bounds if grew((bucket, le)) >= q * n), math.inf)


def server_step(before: Samples, after: Samples) -> dict[str, float]:
    """What the viewers' gateway saw during a step: its delivery latency (a comment's ts to
    its write on a viewer's socket, the bucket bound of p50 and p99), and what its collector
    paused (every generation's total, full collections and their total, pauses of 50 ms or
    more, the bucket bound of the longest)."""
    if not after:
        return {}

    def grew(key: tuple[str, str]) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    out: dict[str, float] = {}
    delivery = f"{DELIVERY_METRIC[0]} @ {REGION}"
    if grew((delivery.replace("@", "count"), "")) > 0:
        out["server_p50_le_ms"] = _quantile_le(before, after, delivery, 0.5) * 1000
        out["server_p99_le_ms"] = _quantile_le(before, after, delivery, 0.99) * 1000
    gc = GC_METRIC[0]
    if (f"{gc} count 0", "") in after:
        out["gc_all_ms"] = sum(grew((f"{gc} sum {g}", "")) for g in "012") * 1000
        out["gc_full_n"] = grew((f"{gc} count 2", ""))
        out["gc_full_ms"] = grew((f"{gc} sum 2", "")) * 1000
        out["gc_pauses_50ms_n"] = sum(grew((f"{gc} count {g}", ""))
                                      - grew((f"{gc} bucket {g}", "0.05")) for g in "012")
        out["gc_longest_le_ms"] = max(
            (_quantile_le(before, after, f"{gc} @ {g}", 1.0) for g in "012"
             if grew((f"{gc} count {g}", "")) > 0), default=0.0) * 1000
    return out


async def idle_memory(c: LocalCluster, n: int, tokens: list[str], browser: bool
                      ) -> dict[str, Any]:
    """RSS growth of a gateway that holds nothing else (ap-south's second) over ``n`` idle
    WebSockets, per connection."""
    cfg = c.config
    url = cfg.region("ap-south").gateway_urls[1]
    pid = c.child("ap-south/gateway-1").pid
    before = rss_kib(pid)
    viewers = await open_viewers(url, f"idle{int(time.time())}{int(browser)}", tokens[:n], 0,
                                 BROWSER_EXTENSIONS if browser else None)
    await asyncio.sleep(2)  # settle: what a connection keeps, not what its opening used
    after = rss_kib(pid)
    deflated = sum(v.ws.deflate for v in viewers)
    for v in viewers:
        v.ws.close()
    await asyncio.sleep(1)
    return {"phase": f"idle WebSocket{' (browser)' if browser else ''}",
            "kib_per_connection": (after - before) / n, "deflate_negotiated": deflated}


def show(r: dict[str, Any]) -> None:
    if "kib_per_connection" in r:
        print(f"  {r['phase']:<34} {r['kib_per_connection']:6.1f} KiB per connection "
              f"(permessage-deflate negotiated on {r['deflate_negotiated']})")
        return
    print(f"  {r['phase']:<34} {r['deliveries_per_s']:>9,.0f} deliveries/s  "
          f"p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  max {r['max_ms']:7.1f} ms  "
          f"cut {r['cut']:>4}  missing {r['missing']:>6}  gateway {r['gateway_cores']:.2f} cores"
          f"  {r['cpu_us_per_delivery']:.1f} us CPU/delivery  client {r['client_cores']:.2f} cores"
          + (f"  ({r['viewers'] - r['opened']} not greeted)" if r["opened"] < r["viewers"] else "")
          + (f"  deflate on {r['deflate_negotiated']}" if r["deflate_negotiated"] else ""))
    print(f"  {'':<34} the post (to its 201): p50 {r['post_p50_ms']:.1f} ms, "
          f"p99 {r['post_p99_ms']:.1f} ms; from the 201 to the viewer: p50 "
          f"{r['after_201_p50_ms']:.1f} ms, p99 {r['after_201_p99_ms']:.1f} ms"
          + (f"; written on the socket (the gateway's histogram): p50 <= "
             f"{r['server_p50_le_ms']:.0f} ms, p99 <= {r['server_p99_le_ms']:.0f} ms"
             if "server_p50_le_ms" in r else "")
          + (f"; collector: {r['gc_all_ms']:.0f} ms paused in all, {r['gc_full_n']:.0f} full "
             f"collections ({r['gc_full_ms']:.0f} ms), {r['gc_pauses_50ms_n']:.0f} pauses of "
             f"50 ms or more, longest <= {r['gc_longest_le_ms']:.0f} ms"
             if "gc_all_ms" in r else ""))


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    config = bench_config(tiers=UNLIMITED_TIERS, max_connections_per_ip=0, **UNLIMITED)
    ladder = [tuple(int(x) for x in s.split("x")) for s in
              ("100x50,500x100" if args.quick else args.ladder).split(",")]
    seconds = 4.0 if args.quick else args.seconds
    most = max(v for v, _ in ladder)
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    results = []
    async with cluster(config) as c:
        secret = c.config.auth.dev_secret
        tokens = [issue_token(secret, f"v{i}") for i in range(max(most, args.idle))]
        poster_tokens = [issue_token(secret, f"p{i}") for i in range(64)]
        print(f"load average before: {load_average()}")
        print(f"\none gateway's viewers of one stream, comments posted on the other gateway, "
              f"{seconds:.0f} s per step, {args.client} load client:")
        go = await GoLoad.start() if args.client == "go" else None
        try:
            for browser in ([False, True] if args.browser else [False]):
                for viewers_n, rate in ladder:
                    if go is None:
                        r = await step(c, viewers_n, rate, seconds, sampled=args.sampled,
                                       browser=browser, tokens=tokens,
                                       poster_tokens=poster_tokens, profile=args.profile)
                    else:
                        r = await step_go(go, c, viewers_n, rate, seconds,
                                          sampled=args.sampled, browser=browser, tokens=tokens,
                                          poster_tokens=poster_tokens, profile=args.profile)
                    show(r)
                    results.append(r)
        finally:
            if go is not None:
                await go.close()
        if args.idle:
            print(f"\nmemory per idle WebSocket (gateway RSS growth over {args.idle}):")
            for browser in (False, True):
                r = await idle_memory(c, args.idle, tokens, browser)
                show(r)
                results.append(r)
        print(f"load average after: {load_average()}")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ladder", default=DEFAULT_LADDER,
                        help=f"viewersxrate steps (default {DEFAULT_LADDER})")
    parser.add_argument("--seconds", type=float, default=10.0, help="posting time per step")
    parser.add_argument("--sampled", type=int, default=100,
                        help="viewers per step that record latencies")
    parser.add_argument("--browser", action="store_true",
                        help="run the ladder again with viewers offering permessage-deflate")
    parser.add_argument("--idle", type=int, default=1000,
                        help="idle connections for the memory figure (0: skip)")
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles of the viewers' "
                                                     "gateway during each step, into this dir")
    parser.add_argument("--client", choices=("python", "go"), default="python",
                        help="the load client: bench/rawclient.py in this process, or the Go "
                             "one (bench/goload; build it first with bench/goload/build.sh)")
    parser.add_argument("--json", help="also write the results here")
    arguments = parser.parse_args()
    if arguments.profile:
        arguments.profile.mkdir(parents=True, exist_ok=True)
    measured = asyncio.run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(measured, indent=1))
