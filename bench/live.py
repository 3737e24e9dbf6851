"""Live-path benchmark: post-to-display latency (same region and across regions), one
gateway's deliveries per second, memory per idle connection, and the forwards a stream
watched in one region costs.

    .venv/bin/python bench/live.py            # starts its own cluster on free ports
    .venv/bin/python bench/live.py --quick    # smaller numbers, for a smoke run

It prints the machine and the command next to every figure. Latency is measured from just
before the POST to the moment a WebSocket viewer has parsed the comment, on one machine, so
client and servers share the CPU: figures are an upper bound of what a dedicated client sees.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import presence_answered

from chorus.cluster.binaries import find_binaries
from chorus.cluster.local import LocalCluster
from chorus.cluster.ports import relocate
from chorus.config import Config, load_config
from region.auth import issue_token


def machine() -> str:
    cpu = "?"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem_gb:.0f} GiB RAM, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Watcher:
    """A WebSocket viewer that timestamps each comment id when it is parsed."""

    def __init__(self, http: aiohttp.ClientSession, base: str, stream: str, token: str):
        self.http, self.base, self.stream, self.token = http, base, stream, token
        self.seen: dict[str, float] = {}
        self.count = 0
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self, parse: bool = True) -> None:
        ws = await self.http.ws_connect(f"{self.base}/v1/streams/{self.stream}/live",
                                        params={"access_token": self.token})

        async def read() -> None:
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                if not parse:
                    self.count += msg.data.count('"id":')
                    self.ready.set()
                    continue
                frame = json.loads(msg.data)
                if frame["type"] == "hello":
                    self.ready.set()
                elif frame["type"] == "comments":
                    now = time.perf_counter()
                    for item in frame["items"]:
                        self.seen.setdefault(item["id"], now)
                    self.count += len(frame["items"])
        self.task = asyncio.create_task(read())
        if parse:
            await asyncio.wait_for(self.ready.wait(), 10)

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()


class RawViewer(asyncio.Protocol):
    """The cheapest possible viewer: a WebSocket handshake, then it only counts comment ids
    in the bytes it receives (no frame parsing), so the gateway, not the client, is measured.
    """

    def __init__(self) -> None:
        self.count = 0
        self.tail = b""
        self.upgraded = asyncio.get_event_loop().create_future()
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.buffer += data
            if b"\r\n\r\n" in self.buffer:
                head, _, rest = self.buffer.partition(b"\r\n\r\n")
                self.upgraded.set_result(b" 101 " in head.split(b"\r\n")[0])
                data = rest
            else:
                return
        chunk = self.tail + data
        self.count += chunk.count(b'"id":')
        self.tail = data[-4:]  # an id split across two reads is counted once

    @classmethod
    async def open(cls, base: str, stream: str, token: str) -> tuple[RawViewer, asyncio.Transport]:
        host, port = base.split("//")[1].split(":")
        transport, viewer = await asyncio.get_running_loop().create_connection(
            cls, host, int(port))
        transport.write((f"GET /v1/streams/{stream}/live?access_token={token} HTTP/1.1\r\n"
                         f"Host: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        if not await asyncio.wait_for(viewer.upgraded, 10):
            raise RuntimeError("WebSocket upgrade refused")
        return viewer, transport  # type: ignore[return-value]


async def post(http: aiohttp.ClientSession, base: str, stream: str, token: str,
               text: str) -> tuple[str, float]:
    began = time.perf_counter()
    async with http.post(f"{base}/v1/streams/{stream}/comments", json={"text": text},
                         headers={"Authorization": f"Bearer {token}"}) as resp:
        body = await resp.json()
        if resp.status != 201:
            raise RuntimeError(body)
    return body["id"], began


async def latency(cluster: LocalCluster, http: aiohttp.ClientSession, *, rate: float,
                  seconds: float) -> dict[str, list[float]]:
    """Posts in us-east at ``rate``/s; viewers on us-east's other gateway, in eu-west and in
    ap-south record when each comment arrives."""
    cfg = cluster.config
    stream = f"lat{int(time.time())}"
    secret = cfg.auth.dev_secret
    watchers = {
        "same region (us-east -> us-east, other gateway)": Watcher(
            http, cfg.region("us-east").gateway_urls[1], stream, issue_token(secret, "w1")),
        "cross region (us-east -> eu-west)": Watcher(
            http, cfg.region("eu-west").gateway_urls[0], stream, issue_token(secret, "w2")),
        "cross region (us-east -> ap-south)": Watcher(
            http, cfg.region("ap-south").gateway_urls[0], stream, issue_token(secret, "w3")),
    }
    for w in watchers.values():
        await w.start()
    await asyncio.sleep(3)  # presence reaches the other regions (cache expiry), then measure
    posts: dict[str, float] = {}
    users = [issue_token(secret, f"poster{i}") for i in range(int(rate * 2) + 1)]
    interval = 1 / rate
    began = time.perf_counter()
    i = 0
    pending = []
    while time.perf_counter() - began < seconds:
        async def one(i: int) -> None:
            cid, t = await post(http, cfg.region("us-east").gateway_urls[0], stream,
                                users[i % len(users)], f"comment {i}")
            posts[cid] = t
        pending.append(asyncio.create_task(one(i)))
        i += 1
        await asyncio.sleep(max(0.0, began + i * interval - time.perf_counter()))
    await asyncio.gather(*pending)
    await asyncio.sleep(2)
    out = {}
    for name, w in watchers.items():
        out[name] = [(w.seen[c] - t) * 1000 for c, t in posts.items() if c in w.seen]
        if len(out[name]) != len(posts):
            print(f"  ! {name}: {len(posts) - len(out[name])} comments not seen")
        await w.stop()
    return out


async def deliveries(cluster: LocalCluster, http: aiohttp.ClientSession, *, viewers: int,
                     rates: tuple[int, ...], seconds: float) -> list[tuple[int, float, int, int]]:
    """``viewers`` connections on one gateway; comments posted on the other gateway at each
    rate in turn. Returns (rate, deliveries/s, missing, cut) per rate: a rate is sustained
    when nothing is missing and nobody was cut."""
    cfg = cluster.config
    secret = cfg.auth.dev_secret
    base = cfg.region("us-east").gateway_urls[0]
    other = cfg.region("us-east").gateway_urls[1]
    results = []
    for rate in rates:
        stream = f"fan{rate}x{int(time.time())}"
        opened = [await RawViewer.open(base, stream, issue_token(secret, f"v{i}"))
                  for i in range(viewers)]
        ws = [v for v, _ in opened]
        await asyncio.sleep(1)
        comments = int(rate * seconds)
        users = [issue_token(secret, f"f{rate}-{i}") for i in range(comments // 5 + 1)]
        operator = cfg.region("us-east").operator_urls[0]  # base's operator listener
        cut_before = await slow_consumers(http, operator)
        began = time.perf_counter()
        pending = []
        for i in range(comments):
            pending.append(asyncio.create_task(post(http, other, stream, users[i // 5],
                                                    f"f{i}")))
            await asyncio.sleep(max(0.0, began + (i + 1) / rate - time.perf_counter()))
        await asyncio.gather(*pending)
        total = viewers * comments
        while sum(w.count for w in ws) < total and time.perf_counter() - began < seconds + 30:
            await asyncio.sleep(0.05)
        took = time.perf_counter() - began
        got = sum(w.count for w in ws)
        cut = await slow_consumers(http, operator) - cut_before
        for _, transport in opened:
            transport.close()
        results.append((rate, got / took, total - got, cut))
        if cut or got < total:
            break  # past what one gateway sustains
    return results


async def slow_consumers(http: aiohttp.ClientSession, operator: str) -> int:
    """A gateway's slow-consumer cuts, from its operator listener's /metrics."""
    async with http.get(f"{operator}/metrics") as resp:
        text = await resp.text()
    line = next(x for x in text.splitlines() if x.startswith("chorus_slow_consumers_total"))
    return int(float(line.rsplit(" ", 1)[1]))


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def idle_memory(cluster: LocalCluster, *, connections: int) -> float:
    cfg = cluster.config
    child = cluster.child("ap-south/gateway-1")
    base = cfg.region("ap-south").gateway_urls[1]
    secret = cfg.auth.dev_secret
    before = rss_kb(child.pid)
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as many:
        ws = [Watcher(many, base, f"idle{i % 50}", issue_token(secret, f"i{i}"))
              for i in range(connections)]
        await asyncio.gather(*(w.start() for w in ws))
        await asyncio.sleep(2)
        after = rss_kb(child.pid)
        for w in ws:
            await w.stop()
    return (after - before) / connections


async def main(args: argparse.Namespace) -> None:
    base = load_config(ROOT / "regions.yaml")
    limits = dataclasses.replace(base.limits, stream_rate_per_s=100000.0, stream_burst=100000)
    config: Config = dataclasses.replace(relocate(base), limits=limits,
                                         run_dir=Path(tempfile.mkdtemp(prefix="chorus-bench-")))
    quick = args.quick
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    async with LocalCluster(config, find_binaries()) as cluster, aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64)) as http:
        # A fresh region answers "unknown" to presence questions for one presence TTL (its
        # counts may be incomplete: region/presence_redis.py), and every comment is forwarded
        # to it meanwhile, fail-open: a start-up effect, not the path's.
        await presence_answered(cluster)
        rate, seconds = (20, 5) if quick else (50, 20)
        print(f"\npost -> display latency, {rate} posts/s for {seconds} s, links as regions.yaml "
              "(one-way us-east 10 ms, eu-west 30 ms, ap-south 90 ms):")
        for name, values in (await latency(cluster, http, rate=rate, seconds=seconds)).items():
            if values:
                print(f"  {name:<48} n={len(values):<5} p50 {statistics.median(values):6.1f} ms"
                      f"   p99 {pct(values, 99):6.1f} ms")
        viewers = 100 if quick else 500
        rates = (50, 100) if quick else (50, 100, 200, 400, 800)
        print(f"\ndeliveries of one gateway process, {viewers} viewers of one stream, "
              "comments posted at a steady rate on the region's other gateway:")
        for rate, per_s, missing, cut in await deliveries(
                cluster, http, viewers=viewers, rates=rates, seconds=5 if quick else 10):
            verdict = ("sustained" if not missing and not cut else
                       f"NOT sustained: {missing} deliveries missing, {cut} viewers cut")
            print(f"  {rate:>4} comments/s -> {per_s:>9,.0f} deliveries/s  {verdict}")
        conns = 200 if quick else 1000
        per = await idle_memory(cluster, connections=conns)
        print(f"\nmemory per idle WebSocket connection (gateway RSS growth over {conns}): "
              f"{per:.1f} KiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args()))
