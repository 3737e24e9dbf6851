"""Reactions benchmark: how many reactions a second one gateway process takes per core, and how
many messages cross between regions while 10,000 reactions a second are tapped on one stream.

    .venv/bin/python bench/reactions.py            # starts its own cluster on free ports
    .venv/bin/python bench/reactions.py --quick    # shorter runs, for a smoke test

Taps are WebSocket ``react`` frames written by raw sockets that send the same pre-masked frame
over and over, so the load generator costs next to nothing and the gateway is what is
measured. The users' buckets are lifted for the run (``reactions.user_rate_per_s``), so every
tap is counted rather than refused. Per core: taps counted by the gateway divided by the CPU
seconds its process used meanwhile (from /proc), which does not depend on how the machine's
cores were shared with the load generator and the other servers. Cross-region messages: the
reaction aggregates every gateway stored in another region's log
(``chorus_reaction_aggregates_forwarded_total``), and the comments (``chorus_forwarded_total``,
none here), read from every gateway's operator listener.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.live import machine
from chorus.cluster.binaries import find_binaries
from chorus.cluster.local import LocalCluster
from chorus.cluster.ports import relocate
from chorus.config import Config, load_config
from region.auth import issue_token

REGIONS = ("us-east", "eu-west", "ap-south")
MASK = b"\x11\x22\x33\x44"


def masked_text_frame(text: str) -> bytes:
    """One client-to-server WebSocket text frame (masked, as RFC 6455 requires)."""
    payload = text.encode()
    if len(payload) >= 126:
        raise ValueError("keep the frame short")
    masked = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + MASK + masked


class Tapper(asyncio.Protocol):
    """A WebSocket that writes react frames and reads nothing but the handshake and counts
    error frames (refused taps) in what comes back."""

    def __init__(self) -> None:
        self.upgraded: asyncio.Future[bool] = asyncio.get_event_loop().create_future()
        self.buffer = b""
        self.errors = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.upgraded.done():
            self.buffer += data
            if b"\r\n\r\n" not in self.buffer:
                return
            head, _, data = self.buffer.partition(b"\r\n\r\n")
            self.upgraded.set_result(b" 101 " in head.split(b"\r\n")[0])
        self.errors += data.count(b'"type":"error"')

    @classmethod
    async def open(cls, base: str, stream: str, token: str) -> Tapper:
        host, port = base.split("//")[1].split(":")
        _, tapper = await asyncio.get_running_loop().create_connection(cls, host, int(port))
        assert tapper.transport is not None
        tapper.transport.write((
            f"GET /v1/streams/{stream}/live?access_token={token} HTTP/1.1\r\n"
            f"Host: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode())
        if not await asyncio.wait_for(tapper.upgraded, 10):
            raise RuntimeError("WebSocket upgrade refused")
        return tapper

    def tap(self, frame: bytes, n: int) -> None:
        """Writes ``n`` frames, unless the gateway closed the connection (it cuts a client
        whose refusals it cannot send fast enough, as any slow consumer)."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame * n)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def metric(http: aiohttp.ClientSession, operators: list[str], name: str) -> float:
    """A counter summed over the given gateways' operator listeners (every label)."""
    total = 0.0
    for base in operators:
        async with http.get(f"{base}/metrics") as resp:
            text = await resp.text()
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.rsplit(" ", 1)[1])
    return total


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def paced(tappers: list[Tapper], frame: bytes, *, rate: float | None,
                seconds: float) -> None:
    """Taps at ``rate`` a second in all (None: as fast as the sockets take them) for
    ``seconds``, spread over ``tappers``, in slices of 20 ms."""
    slice_s = 0.02
    began = time.perf_counter()
    sent = 0.0
    while (elapsed := time.perf_counter() - began) < seconds:
        if rate is None:
            for t in tappers:
                if t.transport is not None and t.transport.get_write_buffer_size() < 65536:
                    t.tap(frame, 50)
        else:
            due = rate * elapsed - sent
            per = int(due // len(tappers))
            if per:
                for t in tappers:
                    t.tap(frame, per)
                sent += per * len(tappers)
        await asyncio.sleep(slice_s)  # pacing the load, not synchronisation


async def per_core(cluster: LocalCluster, http: aiohttp.ClientSession, *, connections: int,
                   rates: tuple[int, ...], seconds: float) -> list[dict[str, float]]:
    """Taps on one gateway (us-east's first) at each rate in turn; for each, what it counted,
    what it refused and the CPU its process used. Stops after the first rate it did not
    keep up with (counted less than 97 % of what was offered, or refused any)."""
    cfg = cluster.config
    region = cfg.region("us-east")
    base, operator = region.gateway_urls[0], region.operator_urls[0]
    pid = cluster.child("us-east/gateway-0").pid
    frame = masked_text_frame(json.dumps({"type": "react", "kind": "heart"}))
    out = []
    for rate in rates:
        stream = f"rxcore{rate}x{int(time.time())}"
        tappers = [await Tapper.open(base, stream, issue_token(cfg.auth, f"core{rate}-{i}"))
                   for i in range(connections)]
        accepted0 = await metric(http, [operator], "chorus_reactions_accepted_total")
        cpu0, began = cpu_seconds(pid), time.perf_counter()
        await paced(tappers, frame, rate=rate, seconds=seconds)
        offered = rate * (time.perf_counter() - began)
        # What was written is read and counted within a few ticks.
        await asyncio.sleep(1.0)
        cpu, took = cpu_seconds(pid) - cpu0, time.perf_counter() - began
        accepted = await metric(http, [operator], "chorus_reactions_accepted_total") - accepted0
        refused = sum(t.errors for t in tappers)
        for t in tappers:
            t.close()
        out.append({"rate": rate, "accepted": accepted, "per_s": accepted / (took - 1.0),
                    "cpu_s": cpu, "per_core_s": accepted / cpu if cpu else 0.0,
                    "refused": refused, "kept_up": accepted >= 0.97 * offered and not refused})
        if not out[-1]["kept_up"]:
            break
    return out


class Watcher:
    """A viewer that keeps the last ``reactions`` frame's totals."""

    def __init__(self, http: aiohttp.ClientSession, base: str, stream: str, token: str) -> None:
        self.http, self.base, self.stream, self.token = http, base, stream, token
        self.totals: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None

    async def start(self) -> None:
        self.ws = ws = await self.http.ws_connect(f"{self.base}/v1/streams/{self.stream}/live",
                                                  params={"access_token": self.token})

        async def read() -> None:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT and '"reactions"' in msg.data:
                    self.totals = json.loads(msg.data)["totals"]
        self.task = asyncio.create_task(read())

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            self.task.cancel()


async def burst(cluster: LocalCluster, http: aiohttp.ClientSession, *, rate: float,
                seconds: float) -> dict[str, Any]:
    """``rate`` taps a second on one stream for ``seconds``, spread over every gateway of
    every region, the stream watched in every region: what crossed between regions."""
    cfg = cluster.config
    stream = f"rxburst{int(time.time())}"
    operators = [u for r in REGIONS for u in cfg.region(r).operator_urls]
    watchers = [Watcher(http, cfg.region(r).gateway_urls[0], stream,
                        issue_token(cfg.auth, f"bw-{r}")) for r in REGIONS]
    for w in watchers:
        await w.start()
    await asyncio.sleep(3)  # every region hears of the others' viewers (presence changes)
    tappers = [await Tapper.open(base, stream, issue_token(cfg.auth, f"burst{i}-{j}"))
               for i, r in enumerate(REGIONS) for j, base in enumerate(
                   cfg.region(r).gateway_urls) for _ in range(4)]
    frame = masked_text_frame(json.dumps({"type": "react", "kind": "clap"}))
    names = ("chorus_reaction_aggregates_forwarded_total", "chorus_forwarded_total",
             "chorus_reaction_aggregates_emitted_total", "chorus_reactions_accepted_total")
    before = {n: await metric(http, operators, n) for n in names}
    began, first_second = time.perf_counter(), int(time.time())
    await paced(tappers, frame, rate=rate, seconds=seconds)
    took = time.perf_counter() - began
    # The wall-clock seconds that had taps: each region emits one aggregate for each.
    spanned = int(time.time()) - first_second + 1
    await asyncio.sleep(4)  # the last seconds are emitted, forwarded and shown
    after = {n: await metric(http, operators, n) for n in names}
    delta = {n: after[n] - before[n] for n in names}
    for t in tappers:
        t.close()
    accepted = int(delta["chorus_reactions_accepted_total"])
    totals = [w.totals.get("clap", 0) for w in watchers]
    for w in watchers:
        await w.stop()
    pairs = len(REGIONS) * (len(REGIONS) - 1)
    return {"offered_per_s": rate, "accepted_per_s": accepted / took, "seconds": took,
            "spanned": spanned, "cross_region_aggregates": delta[names[0]],
            "per_pair_per_second": delta[names[0]] / pairs / spanned,
            "cross_region_comments": delta[names[1]],
            "aggregates_emitted": delta[names[2]],
            "totals_per_region": dict(zip(REGIONS, totals, strict=True)), "accepted": accepted}


async def main(args: argparse.Namespace) -> None:
    base = load_config(ROOT / "regions.yaml")
    # Lift the users' buckets: the run measures counting, not refusing.
    reactions = dataclasses.replace(base.reactions, user_rate_per_s=1e9, user_burst=10**9)
    config: Config = dataclasses.replace(relocate(base), reactions=reactions,
                                         run_dir=Path(tempfile.mkdtemp(prefix="chorus-bench-")))
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    seconds = 5.0 if args.quick else 10.0
    async with LocalCluster(config, find_binaries()) as cluster, aiohttp.ClientSession() as http:
        rates = (2000, 5000) if args.quick else (5000, 10000, 15000, 20000, 25000, 30000)
        print(f"\none gateway, react frames from 32 WebSockets at a steady rate, "
              f"{seconds:.0f} s per rate:")
        for step in await per_core(cluster, http, connections=32, rates=rates,
                                   seconds=seconds):
            verdict = "kept up" if step["kept_up"] else "did NOT keep up"
            print(f"  {step['rate']:>6,.0f}/s offered: counted {step['per_s']:>7,.0f}/s, gateway "
                  f"CPU {step['cpu_s'] / (seconds + 1):.2f} cores, {step['per_core_s']:>7,.0f} "
                  f"reactions per CPU second, refused {step['refused']:.0f}: {verdict}")
        rate = 2000.0 if args.quick else 10000.0
        result = await burst(cluster, http, rate=rate, seconds=seconds)
        print(f"\n{rate:,.0f} reactions/s offered on one stream for {result['seconds']:.0f} s, "
              "over every gateway of every region, watched in every region:")
        print(f"  counted {result['accepted_per_s']:,.0f}/s over {result['spanned']} wall "
              f"seconds; aggregates emitted: {result['aggregates_emitted']:.0f} (3 regions); "
              f"cross-region messages: {result['cross_region_aggregates']:.0f} aggregates "
              f"({result['cross_region_aggregates'] / result['seconds']:.1f}/s, "
              f"{result['per_pair_per_second']:.2f} per region pair per second) and "
              f"{result['cross_region_comments']:.0f} comments")
        print(f"  totals shown per region: {result['totals_per_region']} "
              f"(counted: {result['accepted']})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args()))
