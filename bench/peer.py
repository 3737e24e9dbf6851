"""Chorus beside a peer server, Centrifugo v6.9.1, in one run: the same Go load client
(bench/goload) drives each with the same load, and the figures are printed side by side.

    GOBIN=~/.cache/chorus/bin go install github.com/centrifugal/centrifugo/v6@v6.9.1
    bench/goload/build.sh
    .venv/bin/python bench/peer.py                  # Chorus, then Centrifugo
    .venv/bin/python bench/peer.py --peer-only      # Centrifugo alone
    .venv/bin/python bench/peer.py --ladder 1000x100 --seconds 6

Chorus runs as bench/ingest.py and bench/fanout.py run it (``--client go``, in their own
processes, on a fresh local cluster each). Centrifugo runs as one process on a free port with
the memory engine, history (100 per channel, 300 s) and recovery on, no other process beside
it; its figures are the same columns:

- ingest: 64 concurrent posters (closed loop), then 1,000 posts/s (open loop), publishing
  into 200 channels through its HTTP API (a publication answered 200 is in the channel's
  history, as a comment answered 201 is in Chorus's log). Centrifugo has no counterpart of
  the WebSocket ``comment`` frame with an acknowledgement: that phase is Chorus's alone;
- fanout: the ladder of viewers x comments/s of one channel, comments published through the
  API, ``t<ns>`` in each text, latency read by 100 sampled viewers;
- memory per idle WebSocket (RSS growth of the process over ``--idle`` connections).

"server CPU/post" and "CPU/delivery" are Centrifugo's process's CPU over the phase.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fanout import DEFAULT_LADDER, POSTERS
from fanout import show as show_step
from goload.figures import fanout_figures, ingest_figures, viewers
from goload.process import GoLoad, binary
from ingest import STREAMS, TEXT
from rawclient import (
    BROWSER_EXTENSIONS,
    GO_CLIENT,
    CpuMeter,
    client_cpu,
    load_average,
    machine,
    rss_kib,
)

from chorus.cluster.health import wait_until
from chorus.cluster.ports import free_port

VERSION = "v6.9.1"
PEER = "centrifugo"
BENCH = Path(__file__).resolve().parent


def hs256(secret: str, claims: dict[str, Any]) -> str:
    """A JWT signed HS256, as Centrifugo's client.token.hmac_secret_key verifies."""
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    signing = (f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}."
               f"{b64(json.dumps(claims).encode())}")
    mac = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(mac)}"


def peer_config(port: int, secret: str, api_key: str, engine: str) -> dict[str, Any]:
    return {
        "http_server": {"address": "127.0.0.1", "port": port},
        "log": {"level": "error"},
        "engine": {"type": engine},
        "client": {"token": {"hmac_secret_key": secret}, "allowed_origins": ["*"]},
        "channel": {"without_namespace": {
            "history_size": 100, "history_ttl": "300s", "force_recovery": True,
            "allow_subscribe_for_client": True}},
        "http_api": {"key": api_key},
        "health": {"enabled": True},
    }


class Peer:
    """Centrifugo as one child process on a free port, stopped on exit."""

    def __init__(self, path: Path, engine: str) -> None:
        self.path = path
        self.engine = engine
        self.secret = secrets.token_hex(16)
        self.api_key = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.dir = Path(tempfile.mkdtemp(prefix="chorus-peer-"))
        self.stderr = (self.dir / "stderr.txt").open("wb")

    async def __aenter__(self) -> Peer:
        config = self.dir / "config.json"
        config.write_text(json.dumps(peer_config(self.port, self.secret, self.api_key,
                                                 self.engine)))
        self.proc = await asyncio.create_subprocess_exec(
            str(self.path), "--config", str(config), stdout=asyncio.subprocess.DEVNULL,
            stderr=self.stderr)

        async def healthy() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise RuntimeError(f"{PEER} exited: {(self.dir / 'stderr.txt').read_text()}")
            try:
                await asyncio.to_thread(urllib.request.urlopen, f"{self.url}/health", None, 1)
            except OSError:
                return False
            return True
        await wait_until(healthy, what=f"{PEER} to answer /health", timeout_s=30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.stderr.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def token(self, user: str) -> str:
        return hs256(self.secret, {"sub": user, "exp": int(time.time()) + 3600})


async def peer_ingest(peer: Peer, go: GoLoad, args: argparse.Namespace) -> list[dict[str, Any]]:
    await go.call("ingest_setup", urls=[peer.url], tokens=["-"], streams=STREAMS, text=TEXT)
    await go.call("http_connect", n=args.concurrency)
    await go.call("ingest_run", transport="http", mode="closed", seconds=2.0, rate=args.rate)
    results = []
    for name, mode in ((f"HTTP closed x{args.concurrency}", "closed"),
                       (f"HTTP open {args.rate}/s", "open")):
        meter = CpuMeter({PEER: peer.pid, GO_CLIENT: go.pid})
        meter.start()
        began = time.perf_counter()
        f = ingest_figures(await go.call("ingest_run", transport="http", mode=mode,
                                         seconds=args.seconds, rate=args.rate))
        seconds = time.perf_counter() - began
        used = meter.stop()
        r = {"phase": name, "stored": f.stored, "posts_per_s": f.stored / seconds,
             **f.latency.as_dict(),
             "cpu_ms_per_post": used[PEER] / max(1, f.stored) * 1000,
             "cluster_cpu_ms_per_post": used[PEER] / max(1, f.stored) * 1000,
             "server_cores": used[PEER] / seconds,
             "client_cores": client_cpu(used) / seconds, "errors": dict(f.errors),
             "cpu_by_process": {k: round(v / seconds, 3) for k, v in used.items()
                                if v / seconds > 0.01}}
        print(f"  {r['phase']:<22} {r['posts_per_s']:>7,.0f} posts/s  p50 {r['p50_ms']:6.1f} ms"
              f"  p99 {r['p99_ms']:6.1f} ms  max {r['max_ms']:6.1f} ms   server CPU/post "
              f"{r['cpu_ms_per_post']:.3f} ms  cores: {PEER} {r['server_cores']:.2f}, client "
              f"{r['client_cores']:.2f}" + (f"  errors {r['errors']}" if r["errors"] else ""))
        results.append(r)
    await go.call("http_close")
    return results


async def peer_step(peer: Peer, go: GoLoad, viewers_n: int, rate: int,
                    args: argparse.Namespace) -> dict[str, Any]:
    channel = f"fan{viewers_n}x{rate}{int(time.time() * 1000) % 10**8}"
    opened = viewers(await go.call(
        "fanout_open", url=peer.url, stream=channel,
        tokens=[peer.token(f"v{i}") for i in range(viewers_n)], sampled=args.sampled,
        extensions=BROWSER_EXTENSIONS if args.browser else "", post_url=peer.url,
        posters=POSTERS))
    meter = CpuMeter({PEER: peer.pid, GO_CLIENT: go.pid})
    meter.start()
    f = fanout_figures(await go.call("fanout_run", rate=rate, seconds=args.seconds,
                                     poster_tokens=["-"], drain_s=5.0))
    used = meter.stop()
    await go.call("fanout_close")
    return {"phase": f"{viewers_n} viewers x {rate}/s{' (browser)' if args.browser else ''}",
            "viewers": viewers_n, "rate": rate, "posted": f.posted,
            "post_failures": f.post_failures,
            "deliveries_per_s": f.delivered / f.posting_s, **f.latency.as_dict(),
            "missing": f.missing, "cut": f.cut, "opened": opened.opened,
            "deflate_negotiated": opened.deflate_negotiated,
            "gateway_cores": used[PEER] / f.posting_s,
            "client_cores": client_cpu(used) / f.posting_s,
            "cpu_us_per_delivery": used[PEER] / max(1, f.delivered) * 1e6,
            **f.post.as_dict("post_"), **f.after_201.as_dict("after_201_")}


async def peer_idle(peer: Peer, go: GoLoad, n: int, browser: bool) -> dict[str, Any]:
    before = rss_kib(peer.pid)
    opened = viewers(await go.call(
        "fanout_open", url=peer.url, stream=f"idle{int(browser)}",
        tokens=[peer.token(f"i{i}") for i in range(n)], sampled=0,
        extensions=BROWSER_EXTENSIONS if browser else "", post_url=peer.url, posters=0))
    await asyncio.sleep(2)  # settle: what a connection keeps, not what its opening used
    after = rss_kib(peer.pid)
    await go.call("fanout_close")
    return {"phase": f"idle WebSocket{' (browser)' if browser else ''}",
            "kib_per_connection": (after - before) / n,
            "deflate_negotiated": opened.deflate_negotiated}


async def run_peer(path: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    async with Peer(path, args.engine) as peer:
        print(f"\n{PEER} {VERSION} ({args.engine} engine, history and recovery on), "
              f"{args.seconds:.0f} s per phase, go load client, load average "
              f"{load_average()}:")
        async with await GoLoad.start("-server", PEER, "-api-key", peer.api_key) as go:
            if "ingest" in args.parts:
                results += await peer_ingest(peer, go, args)
            if "fanout" in args.parts:
                for step in args.ladder.split(","):
                    viewers_n, rate = (int(x) for x in step.split("x"))
                    r = await peer_step(peer, go, viewers_n, rate, args)
                    show_step(r)
                    results.append(r)
            if args.idle:
                for browser in (False, True):
                    r = await peer_idle(peer, go, args.idle, browser)
                    show_step(r)
                    results.append(r)
    return results


def run_chorus(args: argparse.Namespace, out: Path) -> dict[str, list[dict[str, Any]]]:
    """bench/ingest.py and bench/fanout.py with the Go client, each in its own process."""
    found = {}
    common = ["--client", "go", "--seconds", str(args.seconds)]
    runs = {"ingest": [*common, "--concurrency", str(args.concurrency), "--rate",
                       str(args.rate), "--idle", "0"],
            "fanout": [*common, "--ladder", args.ladder, "--sampled", str(args.sampled),
                       "--idle", str(args.idle), *(["--browser"] if args.browser else [])]}
    for part, extra in runs.items():
        if part not in args.parts:
            continue
        print(f"\nChorus: bench/{part}.py {' '.join(extra)}", flush=True)
        subprocess.run([sys.executable, str(BENCH / f"{part}.py"), *extra, "--json",
                        str(out / f"{part}.json")], check=True)
        found[part] = json.loads((out / f"{part}.json").read_text())
    return found


def side_by_side(chorus: list[dict[str, Any]], peer: list[dict[str, Any]]) -> None:
    """One line per phase both ran: Chorus's figures, then the peer's."""
    theirs = {r["phase"]: r for r in peer}
    print(f"\nside by side (Chorus | {PEER}):")
    for r in chorus:
        p = theirs.get(r["phase"])
        if p is None:
            continue
        if "posts_per_s" in r:
            cols = [("posts/s", "posts_per_s", ",.0f"), ("p50 ms", "p50_ms", ".1f"),
                    ("p99 ms", "p99_ms", ".1f"), ("CPU ms/post", "cpu_ms_per_post", ".3f")]
        elif "deliveries_per_s" in r:
            cols = [("deliveries/s", "deliveries_per_s", ",.0f"), ("p50 ms", "p50_ms", ".1f"),
                    ("p99 ms", "p99_ms", ".1f"), ("cut", "cut", "d"),
                    ("CPU us/delivery", "cpu_us_per_delivery", ".2f")]
        else:
            cols = [("KiB/connection", "kib_per_connection", ".1f")]
        print(f"  {r['phase']:<30} " + "  ".join(
            f"{label} {r[key]:{fmt}} | {p[key]:{fmt}}" for label, key, fmt in cols))


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    path = args.centrifugo or binary().parent / PEER
    if not path.exists():
        raise SystemExit(f"no {PEER} at {path}: GOBIN={path.parent} go install "
                         f"github.com/centrifugal/centrifugo/v6@{VERSION}")
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"load average before: {load_average()}")
    chorus: dict[str, list[dict[str, Any]]] = {}
    if not args.peer_only:
        chorus = await asyncio.to_thread(run_chorus, args,
                                         Path(tempfile.mkdtemp(prefix="chorus-peer-")))
    peer = await run_peer(path, args)
    if chorus:
        side_by_side([r for part in chorus.values() for r in part], peer)
    print(f"load average after: {load_average()}")
    return [{"server": "chorus", **r} for part in chorus.values() for r in part] + [
        {"server": PEER, **r} for r in peer]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer-only", action="store_true", help="Centrifugo alone")
    parser.add_argument("--parts", default="ingest,fanout", help="ingest, fanout or both")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=int, default=1000, help="posts/s of the open loop")
    parser.add_argument("--ladder", default=DEFAULT_LADDER, help="viewersxrate fanout steps")
    parser.add_argument("--sampled", type=int, default=100)
    parser.add_argument("--browser", action="store_true",
                        help="viewers offer permessage-deflate as browsers do")
    parser.add_argument("--idle", type=int, default=1000,
                        help="idle connections for the memory figure (0: skip)")
    parser.add_argument("--engine", default="memory", help="Centrifugo's engine (memory)")
    parser.add_argument("--centrifugo", type=Path, help="the binary (default: beside goload)")
    parser.add_argument("--json", help="also write the results here")
    arguments = parser.parse_args()
    arguments.parts = set(arguments.parts.split(","))
    measured = asyncio.run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(measured, indent=1))
