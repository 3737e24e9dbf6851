"""Forwards to regions rebuilding their presence: post -> display latency from us-east to
eu-west and ap-south once their presence is known, then right after their Redis lost it
(FLUSHALL: for one presence TTL their counts may be too low, and they say "unknown").

    .venv/bin/python bench/presence_rebuild.py [--seconds 6] [--json OUT]
    .venv/bin/python bench/ab.py A B --rounds 2 -- bench/presence_rebuild.py   # two trees

Each phase posts 20 comments a second in us-east for ``--seconds`` (under the presence TTL,
10 s, so that the second phase lies inside the rebuild); a viewer in each other region
records when each comment arrives. Before a region answered "unknown", each forward to it
during the rebuild waited out the presence question's timeout (500 ms) and then went,
fail-open.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import nats
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from live import Watcher, pct, post

from chorus.cluster.binaries import find_binaries
from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.cluster.ports import relocate
from chorus.config import Config, load_config
from chorus.errors import ClusterError
from chorus.names import presence_query
from region.auth import issue_token

DESTS = ("eu-west", "ap-south")
RATE = 20


async def counted(c: LocalCluster, stream: str, at_least: int) -> None:
    """Waits until each of `DESTS` answers a count (not "unknown") of at least ``at_least``
    viewers of ``stream``."""
    nc = await nats.connect(c.config.region("us-east").nats_url)
    try:
        for region in DESTS:
            async def known(region: str = region) -> bool:
                try:
                    reply = await nc.request(presence_query(region),
                                             json.dumps({"stream": stream}).encode(), timeout=1)
                except (nats.errors.Error, TimeoutError):
                    return False
                viewers = json.loads(reply.data).get("viewers")
                return viewers is not None and viewers >= at_least
            await wait_until(known, what=f"{region}'s presence of {stream}",
                             timeout_s=c.config.limits.presence_ttl_s + 20)
    finally:
        await nc.close()


async def phase(c: LocalCluster, http: aiohttp.ClientSession, stream: str, name: str,
                watchers: dict[str, Watcher], seconds: float) -> dict[str, object]:
    secret = c.config.auth.dev_secret
    users = [issue_token(secret, f"poster{i}") for i in range(RATE * 2 + 1)]
    posts: dict[str, float] = {}
    began = time.perf_counter()
    pending = []
    i = 0
    while time.perf_counter() - began < seconds:
        # A short text: a longer one posted by several users is a flood to the classifier
        # (region/classifier.py), retracted, and then not shown to a viewer who had not seen it.
        async def one(i: int) -> None:
            cid, t = await post(http, c.config.region("us-east").gateway_urls[0], stream,
                                users[i % len(users)], f"comment {i}")
            posts[cid] = t
        pending.append(asyncio.create_task(one(i)))
        i += 1
        await asyncio.sleep(max(0.0, began + i * (1 / RATE) - time.perf_counter()))
    await asyncio.gather(*pending)

    async def arrived() -> bool:
        return all(cid in w.seen for w in watchers.values() for cid in posts)
    with contextlib.suppress(ClusterError):
        await wait_until(arrived, what=f"{name}: every comment seen", timeout_s=30)
    row: dict[str, object] = {"phase": name, "load": os.getloadavg()[0]}
    for region, w in watchers.items():
        ms = [(w.seen[cid] - t) * 1000 for cid, t in posts.items() if cid in w.seen]
        if len(ms) < len(posts):
            print(f"  ! {name}, {region}: {len(posts) - len(ms)} of {len(posts)} comments "
                  "not seen", flush=True)
        if not ms:
            continue
        key = region.replace("-", "_")
        row[f"{key}_p50_ms"] = round(statistics.median(ms), 1)
        row[f"{key}_p99_ms"] = round(pct(ms, 99), 1)
        print(f"  {name:<22} us-east -> {region:<9} n={len(ms):<4} "
              f"p50 {row[f'{key}_p50_ms']:7.1f} ms   p99 {row[f'{key}_p99_ms']:7.1f} ms   "
              f"(load {row['load']:.2f})", flush=True)
    return row


async def main(args: argparse.Namespace) -> list[dict[str, object]]:
    base = load_config(ROOT / "regions.yaml")
    config: Config = dataclasses.replace(
        relocate(base), run_dir=Path(tempfile.mkdtemp(prefix="chorus-bench-")))
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}", flush=True)
    rows = []
    async with LocalCluster(config, find_binaries()) as c, aiohttp.ClientSession() as http:
        stream = f"rebuild{int(time.time())}"
        secret = c.config.auth.dev_secret
        watchers = {r: Watcher(http, c.config.region(r).gateway_urls[0], stream,
                               issue_token(secret, f"w-{r}")) for r in DESTS}
        for w in watchers.values():
            await w.start()
        await counted(c, stream, 1)
        rows.append(await phase(c, http, stream, "presence known", watchers, args.seconds))
        for region in DESTS:
            redis = aioredis.Redis(port=c.config.region(region).redis.port)
            try:
                await redis.flushall()
            finally:
                await redis.aclose()
        rows.append(await phase(c, http, stream, "presence rebuilding", watchers,
                                args.seconds))
        for w in watchers.values():
            await w.stop()
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--json", help="also write the results here")
    arguments = parser.parse_args()
    measured = asyncio.run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(measured, indent=1))
