"""What the ingest and fanout benchmarks share: cheap load clients, the cluster they start,
CPU accounting of its processes, and percentiles.

The clients are plain `asyncio.Protocol`s, not aiohttp: at thousands of posts or hundreds of
thousands of deliveries per second the load client shares the machine's cores with the
servers it measures, and a client that spends 100 us per request would measure itself.

- `HttpConnection`: one keep-alive HTTP/1.1 connection, one request at a time.
- `WsClient`: one WebSocket; it may offer permessage-deflate the way a browser does (and then
  inflates what the server compressed), sends text frames, and hands each received text
  frame to a callback with its arrival time.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import platform
import struct
import sys
import tempfile
import time
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chorus.cluster.binaries import find_binaries
from chorus.cluster.local import LocalCluster
from chorus.cluster.ports import relocate
from chorus.config import Config, load_config

# What Chrome and Firefox send when they open a WebSocket.
BROWSER_EXTENSIONS = "permessage-deflate; client_max_window_bits"


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


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary_ms(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of latencies given in seconds, in ms."""
    return {"p50_ms": pct(values, 50) * 1000, "p99_ms": pct(values, 99) * 1000,
            "max_ms": (max(values) if values else float("nan")) * 1000}


def bench_config(*, tiers: dict[str, Any] | None = None, **limits: Any) -> Config:
    """regions.yaml on free ports in a fresh run directory, with ``limits`` (and ``tiers``)
    overridden. Keys that a tree's config does not have are skipped: bench/ab.py runs one
    benchmark against older and newer trees."""
    base = load_config(ROOT / "regions.yaml")
    limits = {k: v for k, v in limits.items() if hasattr(base.limits, k)}
    config = dataclasses.replace(relocate(base), limits=dataclasses.replace(base.limits, **limits),
                                 run_dir=Path(tempfile.mkdtemp(prefix="chorus-bench-")))
    base_tiers = getattr(base, "tiers", None)
    if tiers and base_tiers is not None:
        tiers = {k: v for k, v in tiers.items() if hasattr(base_tiers, k)}
        config = dataclasses.replace(config, tiers=dataclasses.replace(base_tiers, **tiers))
    return config


# Limits raised so that the admission script runs for every post but never refuses, and the
# stream's bucket of the hot tiers no lower (the loader requires it).
UNLIMITED = {"user_rate_per_s": 1e6, "user_burst": 1_000_000, "stream_rate_per_s": 1e6,
             "stream_burst": 1_000_000}
UNLIMITED_TIERS = {"hot_stream_rate_per_s": 1e6, "hot_stream_burst": 1_000_000}


def cluster(config: Config) -> LocalCluster:
    return LocalCluster(config, find_binaries())


# -- CPU of the cluster's processes ----------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its waited-for children, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# What CpuMeter calls this process, and the Go load client's process when a benchmark runs it
# (`--client go`): both are the load client, never the servers measured.
PYTHON_CLIENT = "load client"
GO_CLIENT = "load client (go)"
CLIENTS = frozenset({PYTHON_CLIENT, GO_CLIENT})


def client_cpu(used: dict[str, float]) -> float:
    """The load client's CPU seconds in a `CpuMeter`'s figures: this process and the Go one."""
    return sum(v for k, v in used.items() if k in CLIENTS)


class CpuMeter:
    """CPU seconds spent by named processes (and by this one) between `start` and `stop`."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._began: dict[str, float] = {}
        self.used: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        own = os.times()
        out[PYTHON_CLIENT] = own.user + own.system
        return out

    def start(self) -> None:
        self._began = self._now()

    def stop(self) -> dict[str, float]:
        now = self._now()
        self.used = {name: now[name] - self._began[name] for name in now}
        return self.used


def region_pids(c: LocalCluster, region: str) -> dict[str, int]:
    """The processes of one region: its gateways, NATS and Redis."""
    return {name: child.pid for name, child in c.children.items()
            if name.startswith(f"{region}/")}


# -- what the gateways counted ------------------------------------------------------------------

# Counters a phase's deltas are reported of (summed over every gateway of a region and label).
FORWARD_COUNTERS = {
    "forwarded": "chorus_forwarded_total",
    "skipped_no_viewers": "chorus_forward_skipped_no_viewers_total",
    "presence_questions": "chorus_presence_queries_total",
    "presence_unanswered": "chorus_presence_unanswered_total",
}


def _scrape(urls: tuple[str, ...]) -> dict[str, float]:
    totals = dict.fromkeys(FORWARD_COUNTERS, 0.0)
    for base in urls:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        for line in text.splitlines():
            name, _, rest = line.partition("{")
            for key, metric in FORWARD_COUNTERS.items():
                if name == metric:
                    totals[key] += float(rest.rsplit(" ", 1)[1])
    return totals


async def forward_counts(c: LocalCluster, region: str) -> dict[str, float]:
    """``region``'s forwards (sent, skipped for want of viewers) and presence questions (asked,
    unanswered) so far, from its gateways' /metrics; {} if a tree has no operator listener."""
    urls = getattr(c.config.region(region), "operator_urls", ())
    try:
        return await asyncio.to_thread(_scrape, tuple(urls))
    except (OSError, ValueError, IndexError):
        return {}


# -- HTTP --------------------------------------------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; `request` sends one request and returns
    (status, body). Only what a Chorus gateway answers is parsed (Content-Length bodies)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.lost = False

    @classmethod
    async def open(cls, host: str, port: int) -> HttpConnection:
        _, conn = await asyncio.get_running_loop().create_connection(cls, host, port)
        return conn

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"content-length:")
        length = int(head[at + 15:head.find(b"\r\n", at) if b"\r\n" in head[at:] else None]
                     ) if at >= 0 else 0
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4:end + 4 + length])
        del self.buffer[:end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(head[9:12]), body))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self.waiter is None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def post_request(host: str, stream: str, token: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    return (f"POST /v1/streams/{stream}/comments HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


def split_url(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].split(":")
    return host, int(port)


# -- WebSocket ---------------------------------------------------------------------------------


class WsClient(asyncio.Protocol):
    """A WebSocket client. ``on_text(payload, arrived)`` hears every text frame (inflated when
    the server compressed it); ``arrived`` is `time.perf_counter()` at its read."""

    def __init__(self, on_text: Callable[[bytes, float], None]) -> None:
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.deflate = False         # the server accepted permessage-deflate
        self._inflate: Any = None
        self.close_code: int | None = None
        self.lost = asyncio.get_running_loop().create_future()
        self.frames = 0

    @classmethod
    async def open(cls, url: str, path: str, on_text: Callable[[bytes, float], None], *,
                   extensions: str | None = None) -> WsClient:
        host, port = split_url(url)
        loop = asyncio.get_running_loop()
        _, ws = await loop.create_connection(lambda: cls(on_text), host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        ext = f"Sec-WebSocket-Extensions: {extensions}\r\n" if extensions else ""
        assert ws.transport is not None
        ws.transport.write((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                            f"{ext}\r\n").encode())
        if not await asyncio.wait_for(ws.upgraded, 30):
            raise RuntimeError("WebSocket upgrade refused")
        return ws

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_result(False)
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        arrived = time.perf_counter()
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            del self.buffer[:end + 4]
            self.deflate = b"permessage-deflate" in head
            if self.deflate:
                self._inflate = zlib.decompressobj(-15)
            self.upgraded.set_result(b" 101 " in head.split(b"\r\n")[0])
        self._frames(arrived)

    def _frames(self, arrived: float) -> None:
        buf = self.buffer
        at = 0
        while len(buf) - at >= 2:
            b0, b1 = buf[at], buf[at + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if len(buf) - at < 4:
                    break
                length = struct.unpack_from("!H", buf, at + 2)[0]
                head = 4
            elif length == 127:
                if len(buf) - at < 10:
                    break
                length = struct.unpack_from("!Q", buf, at + 2)[0]
                head = 10
            if len(buf) - at < head + length:
                break
            payload = bytes(buf[at + head:at + head + length])
            at += head + length
            opcode = b0 & 0x0F
            if b0 & 0x40 and self._inflate is not None:  # RSV1: a compressed message
                payload = self._inflate.decompress(payload + b"\x00\x00\xff\xff")
            self.frames += 1
            if opcode == 1:
                self.on_text(payload, arrived)
            elif opcode == 8:
                self.close_code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 \
                    else 1005
            elif opcode == 9:
                self._send(0xA, payload)
        del buf[:at]

    def _send(self, opcode: int, payload: bytes) -> None:
        # A client must mask; a zero key leaves the payload as it is (cheap, and valid).
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head + b"\x00\x00\x00\x00" + payload)

    def send_text(self, payload: bytes) -> None:
        self._send(0x1, payload)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def live_path(stream: str, token: str) -> str:
    return f"/v1/streams/{stream}/live?access_token={token}"


# -- profiles ------------------------------------------------------------------------------------


class Profiler:
    """py-spy (PyPI; installed in the venv) sampling some processes into raw collapsed-stack
    files, one per process: ``py-spy record --format raw``. Read them with bench/profile.py."""

    def __init__(self, directory: Path | None, label: str, pids: dict[str, int]) -> None:
        self.directory = directory
        self.label = label
        self.pids = pids
        self._spies: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> Profiler:
        if self.directory is None:
            return self
        spy = str(Path(sys.executable).parent / "py-spy")
        for name, pid in self.pids.items():
            out = self.directory / f"{self.label}-{name.replace('/', '-')}.txt".replace(" ", "_")
            self._spies.append(await asyncio.create_subprocess_exec(
                spy, "record", "--format", "raw", "--nonblocking", "-r", "200", "-o", str(out),
                "-p", str(pid), stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for spy in self._spies:
            spy.send_signal(2)  # SIGINT: py-spy writes its samples and exits
            try:
                await asyncio.wait_for(spy.wait(), 30)
            except TimeoutError:
                spy.kill()
