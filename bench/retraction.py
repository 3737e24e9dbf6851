"""Retraction benchmark: from a moderator's DELETE (or the classifier's verdict) to the
``retract`` frame on a viewer's WebSocket, per pair of regions.

    .venv/bin/python bench/retraction.py             # starts its own cluster on free ports
    .venv/bin/python bench/retraction.py --n 20      # fewer retractions per deciding region

A WebSocket viewer watches one stream in every region. For each deciding region in turn, a
comment is posted (in us-east), seen by every viewer, and retracted by a moderator through the
deciding region; the time runs from just before the DELETE to the moment each viewer has parsed
the frame that names it. The DELETE itself answers once every region applied the decision
("answer" below). The classifier's path: a flood of one text from many users posted in us-east,
timed from each flagged comment's 201 to its ``retract`` frame in every region. Client and
servers share the machine (and its link latencies are toxiproxy's, as regions.yaml sets them):
figures are an upper bound of what a dedicated client sees.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rawclient import (
    UNLIMITED,
    UNLIMITED_TIERS,
    bench_config,
    cluster,
    load_average,
    machine,
    summary_ms,
)

from chorus.cluster.local import LocalCluster
from region.auth import issue_token

REGIONS = ("us-east", "eu-west", "ap-south")
ORIGIN = "us-east"
FLOOD = "Free followers at bots.example/free"


class Viewer:
    """A WebSocket viewer: when it parsed each comment id, and each retracted id."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.seen: dict[str, float] = {}
        self.retracted: dict[str, float] = {}
        self.changed = asyncio.Event()

    async def run(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = time.perf_counter()
            frame = json.loads(msg.data)
            match frame.get("type"):
                case "comments":
                    for item in frame["items"]:
                        self.seen.setdefault(item["id"], now)
                case "retract":
                    for cid in frame["ids"]:
                        self.retracted.setdefault(cid, now)
            self.changed.set()

    async def until(self, check: Any, timeout_s: float = 10.0) -> None:
        async def wait() -> None:
            while not check():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout_s)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="retractions per deciding region")
    parser.add_argument("--flood", type=int, default=40, help="comments of the flood")
    args = parser.parse_args()
    config = bench_config(tiers=UNLIMITED_TIERS, **UNLIMITED)
    async with cluster(config) as running, aiohttp.ClientSession() as http:
        print(f"machine: {machine()}; load average before: {load_average()}")
        print(f"command: .venv/bin/python bench/retraction.py --n {args.n} "
              f"--flood {args.flood}")
        await moderator_path(running, http, args.n)
        await classifier_path(running, http, args.flood)
        print(f"load average after: {load_average()}")


def _token(c: LocalCluster, user: str, role: str = "viewer") -> str:
    return issue_token(c.config.auth.dev_secret, user, roles=(role,))


def _url(c: LocalCluster, region: str, i: int = 0) -> str:
    return c.config.region(region).gateway_urls[i]


async def _viewers(c: LocalCluster, http: aiohttp.ClientSession, stream: str,
                   tasks: list[asyncio.Task[None]]) -> dict[str, Viewer]:
    viewers = {}
    for region in REGIONS:
        viewer = Viewer(region)
        ws = await http.ws_connect(f"{_url(c, region)}/v1/streams/{stream}/live",
                                   params={"access_token": _token(c, f"viewer-{region}")})
        tasks.append(asyncio.create_task(viewer.run(ws)))
        viewers[region] = viewer
    return viewers


async def _post(http: aiohttp.ClientSession, base: str, stream: str, token: str,
                text: str) -> str:
    async with http.post(f"{base}/v1/streams/{stream}/comments", json={"text": text},
                         headers={"Authorization": f"Bearer {token}"}) as resp:
        doc = await resp.json()
        if resp.status != 201:
            raise RuntimeError(f"post answered {resp.status}: {doc}")
        return str(doc["id"])


async def _settle(c: LocalCluster, http: aiohttp.ClientSession, stream: str,
                  viewers: dict[str, Viewer]) -> None:
    """Until a comment reaches every region (presence is read globally once a viewer joins)."""
    author = _token(c, "warm-up")
    for _ in range(100):
        cid = await _post(http, _url(c, ORIGIN), stream, author, "warm-up")
        try:
            for viewer in viewers.values():
                await viewer.until(lambda v=viewer, i=cid: i in v.seen, 2.0)
            return
        except TimeoutError:
            continue
    raise RuntimeError("comments do not reach every region")


async def moderator_path(c: LocalCluster, http: aiohttp.ClientSession, n: int) -> None:
    stream = "bench-retract"
    tasks: list[asyncio.Task[None]] = []
    viewers = await _viewers(c, http, stream, tasks)
    moderator = _token(c, "bench-moderator", "moderator")
    author = _token(c, "bench-author")
    latency: dict[tuple[str, str], list[float]] = {}
    answers: dict[str, list[float]] = {}
    try:
        await _settle(c, http, stream, viewers)
        for decider in REGIONS:
            for i in range(n):
                cid = await _post(http, _url(c, ORIGIN, i % 2), stream, author, f"oops {i}")
                for viewer in viewers.values():
                    await viewer.until(lambda v=viewer, i=cid: i in v.seen)
                began = time.perf_counter()
                async with http.delete(f"{_url(c, decider, i % 2)}/v1/streams/{stream}/"
                                       f"comments/{cid}",
                                       headers={"Authorization": f"Bearer {moderator}"}) as r:
                    doc = await r.json()
                    if r.status != 200 or doc["pending"]:
                        raise RuntimeError(f"DELETE answered {r.status}: {doc}")
                answers.setdefault(decider, []).append(time.perf_counter() - began)
                for region, viewer in viewers.items():
                    await viewer.until(lambda v=viewer, i=cid: i in v.retracted)
                    latency.setdefault((decider, region), []).append(
                        viewer.retracted[cid] - began)
    finally:
        for task in tasks:
            task.cancel()
    print(f"\nmoderator's DELETE -> retract frame, {n} retractions per deciding region "
          f"(comments posted in {ORIGIN}):")
    print("| decided in | viewer in | p50 | p99 | max |")
    print("| --- | --- | --- | --- | --- |")
    for (decider, region), values in latency.items():
        s = summary_ms(values)
        print(f"| {decider} | {region} | {s['p50_ms']:.0f} ms | {s['p99_ms']:.0f} ms | "
              f"{s['max_ms']:.0f} ms |")
    for decider, values in answers.items():
        s = summary_ms(values)
        print(f"| {decider} | (the DELETE's answer: applied everywhere) | {s['p50_ms']:.0f} ms "
              f"| {s['p99_ms']:.0f} ms | {s['max_ms']:.0f} ms |")


async def classifier_path(c: LocalCluster, http: aiohttp.ClientSession, flood: int) -> None:
    stream = "bench-flood"
    tasks: list[asyncio.Task[None]] = []
    viewers = await _viewers(c, http, stream, tasks)
    moderator = _token(c, "bench-moderator", "moderator")
    async with http.put(f"{_url(c, ORIGIN)}/v1/streams/{stream}/moderation",
                        json={"classifier": "retract"},
                        headers={"Authorization": f"Bearer {moderator}"}) as resp:
        if resp.status != 200:
            raise RuntimeError(f"policy answered {resp.status}")
    posted: dict[str, float] = {}
    try:
        await _settle(c, http, stream, viewers)
        for i in range(flood):
            cid = await _post(http, _url(c, ORIGIN, i % 2), stream,
                              _token(c, f"bot-{i}"), FLOOD)
            posted[cid] = time.perf_counter()
            await asyncio.sleep(0.05)  # pacing: a flood of 20 a second
        flagged = list(posted)[4:]     # from the fifth user on, at the latest
        for viewer in viewers.values():
            await viewer.until(lambda v=viewer: all(i in v.retracted for i in flagged), 15)
    finally:
        for task in tasks:
            task.cancel()
    print(f"\nclassifier: a flood of {flood} (one text, {flood} users, 20/s) posted in "
          f"{ORIGIN}, policy retract; 201 -> retract frame of the comments it flagged:")
    print("| viewer in | flagged | p50 | p99 | max |")
    print("| --- | --- | --- | --- | --- |")
    for region, viewer in viewers.items():
        values = [viewer.retracted[i] - posted[i] for i in posted if i in viewer.retracted]
        s = summary_ms(values)
        print(f"| {region} | {len(values)} of {flood} | {s['p50_ms']:.0f} ms | "
              f"{s['p99_ms']:.0f} ms | {s['max_ms']:.0f} ms |")


if __name__ == "__main__":
    asyncio.run(main())
