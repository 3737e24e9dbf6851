"""Archive benchmark: the persister's throughput and the latency of a history page.

    .venv/bin/python bench/archive.py                 # starts its own cluster on free ports
    .venv/bin/python bench/archive.py --running       # against `chorus up --with-cassandra`

What it measures, on a real cluster (NATS + JetStream, Redis, gateways, Cassandra with a
datacenter per region):

1. **Region drain.** ``--comments`` comments of one stream are published into us-east's
   JetStream log as fast as it takes them; the clock runs from the first publish until the
   region's persisters (one per us-east gateway, sharing the durable consumer) have archived
   them all (consumer lag 0). That is the region's archiving throughput as deployed.
2. **One persister.** The same backlog again, drained by one `Persister` in this process
   (its own durable consumer on the benchmark's stream, the real Cassandra adapter), with
   the gateways idle: the throughput of one persister, in comments/s.
3. **History pages.** Every page of the stream, ``limit`` 50, newest first and then oldest
   first from ``after=0``, through a us-east gateway and an eu-west gateway (each reads its
   own datacenter): p50, p99 and max latency in ms, measured by an HTTP client on the same
   machine.

It prints the machine (cores, CPU model, RAM) and the command next to the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import nats
from nats.aio.client import Client as Nats

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chorus.cluster.binaries import find_binaries
from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster, read_state
from chorus.cluster.plan import RunLayout
from chorus.cluster.ports import relocate
from chorus.config import Config, load_config
from chorus.ids import IdGenerator
from chorus.metrics import Metrics
from chorus.model import Comment
from chorus.names import COMMENTS_STREAM, archive_durable, comment_subject
from region.archive_cassandra import CassandraArchive
from region.auth import issue_token
from region.persister import Persister, lag

PUBLISH_IN_FLIGHT = 512
DRAIN_TIMEOUT_S = 600.0


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return (f"{os.cpu_count()} cores ({model}), {ram} RAM, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def publish(config: Config, stream: str, count: int) -> float:
    """Publishes ``count`` comments of ``stream`` into us-east's log; returns the seconds."""
    region = config.region("us-east")
    nc = await nats.connect(region.nats_url)
    js = nc.jetstream(timeout=30)
    ids = IdGenerator("us-east.99")
    lane = asyncio.Semaphore(PUBLISH_IN_FLIGHT)
    subj = comment_subject(region.name, stream)

    async def one(i: int) -> None:
        comment = Comment(id=ids.next(), stream=stream, region=region.name, user=f"u{i % 500}",
                          name=f"User {i % 500}", text=f"benchmark comment number {i}, "
                          "about as long as a typical one", ts=int(time.time() * 1000))
        async with lane:
            await js.publish(subj, comment.encode(), headers={"Nats-Msg-Id": comment.id})

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    took = time.perf_counter() - began
    await nc.close()
    return took


async def wait_drained(nc: Nats, durable: str, began: float) -> float:
    """Seconds from ``began`` until the consumer ``durable`` has nothing left."""

    async def drained() -> bool:
        return await lag(nc, "us-east", durable) == 0

    await wait_until(drained, what=f"consumer {durable} drained", timeout_s=DRAIN_TIMEOUT_S,
                     interval_s=0.02)
    return time.perf_counter() - began


async def region_drain(config: Config, stream: str, count: int) -> tuple[float, float]:
    region = config.region("us-east")
    nc = await nats.connect(region.nats_url)
    try:
        began = time.perf_counter()
        published = await publish(config, stream, count)
        drained = await wait_drained(nc, archive_durable(region.name), began)
    finally:
        await nc.close()
    return published, drained


async def one_persister(config: Config, stream: str) -> tuple[int, float]:
    region = config.region("us-east")
    nc = await nats.connect(region.nats_url)
    archive = CassandraArchive(config, region)
    durable = f"bench-{uuid.uuid4().hex[:8]}"
    persister = Persister(nc, region.name, archive, Metrics(region.name, "bench"),
                          durable=durable, filter_subject=comment_subject(region.name, stream))
    began = time.perf_counter()
    task = asyncio.create_task(persister.run(), name="bench-persister")
    try:
        async def exists() -> bool:
            return await lag(nc, region.name, durable) is not None

        await wait_until(exists, what=f"consumer {durable}", timeout_s=30, interval_s=0.01)
        took = await wait_drained(nc, durable, began)
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        await nc.jetstream().delete_consumer(COMMENTS_STREAM, durable)
        await archive.close()
        await nc.close()
    return persister.stats.handled, took


async def page_latencies(config: Config, region_name: str, stream: str, direction: str,
                         max_pages: int) -> tuple[list[float], int]:
    base = config.region(region_name).gateway_urls[0]
    tok = issue_token(config.auth.dev_secret, "bench-reader")
    headers = {"Authorization": f"Bearer {tok}"}
    out: list[float] = []
    items = 0
    position = "0" if direction == "after" else None
    async with aiohttp.ClientSession() as http:
        while len(out) < max_pages:
            params = {"limit": "50"} | ({direction: position} if position else {})
            began = time.perf_counter()
            async with http.get(f"{base}/v1/streams/{stream}/comments", params=params,
                                headers=headers) as resp:
                body = await resp.json()
                if resp.status != 200:
                    raise SystemExit(f"history answered {resp.status}: {body}")
            out.append((time.perf_counter() - began) * 1000)
            items += len(body["items"])
            position = body["next"]
            if position is None:
                break
    return out, items


async def run(config: Config, count: int, max_pages: int) -> None:
    stream = f"bench-{uuid.uuid4().hex[:8]}"
    print(f"stream {stream}: {count} comments", flush=True)
    published, drained = await region_drain(config, stream, count)
    print(f"1. region drain (us-east, {config.region('us-east').gateways} gateway "
          f"persisters): published in {published:.2f} s ({count / published:,.0f}/s); "
          f"archived in {drained:.2f} s -> {count / drained:,.0f} comments/s", flush=True)
    written, took = await one_persister(config, stream)
    print(f"2. one persister (in this process): {written} comments in {took:.2f} s -> "
          f"{written / took:,.0f} comments/s", flush=True)
    print("3. history pages of 50 (ms):", flush=True)
    for region_name in ("us-east", "eu-west"):
        for direction in ("before", "after"):
            latencies, items = await page_latencies(config, region_name, stream, direction,
                                                    max_pages)
            print(f"   {region_name:<8} {direction:<6} {len(latencies):>4} pages "
                  f"({items} comments): p50 {statistics.median(latencies):6.1f}  "
                  f"p99 {percentile(latencies, 99):6.1f}  max {max(latencies):6.1f}",
                  flush=True)


async def main_async(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    if args.running:
        state = read_state(RunLayout(config.run_dir))
        if state is None or not state.get("with_cassandra"):
            raise SystemExit("no `chorus up --with-cassandra` is running from "
                             f"{config.run_dir}")
        await run(load_config(state["config"]), args.comments, args.pages)
        return
    with tempfile.TemporaryDirectory(prefix="chorus-bench-") as tmp:
        own = dataclasses.replace(relocate(config), run_dir=Path(tmp))
        print("starting a cluster with Cassandra on free ports...", flush=True)
        async with LocalCluster(own, find_binaries(), with_cassandra=True) as cluster:
            await run(cluster.config, args.comments, args.pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(ROOT / "regions.yaml"))
    parser.add_argument("--running", action="store_true",
                        help="use the running `chorus up --with-cassandra`")
    parser.add_argument("--comments", type=int, default=20_000)
    parser.add_argument("--pages", type=int, default=200, help="history pages per series")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"command: {' '.join([os.path.relpath(sys.executable), *sys.argv])}", flush=True)
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
