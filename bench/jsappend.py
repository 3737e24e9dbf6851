"""The region log's append ceiling: how many comments a second one JetStream server appends to
one hot subject, to many subjects of one stream, and to partitions (several streams), and the
server CPU each append costs.

    .venv/bin/python bench/jsappend.py                      # 4 layouts x 2 rounds of 10 s
    .venv/bin/python bench/jsappend.py --layouts 1x1,4x1 --rounds 3 --connections 8

A lone nats-server, configured as a region's (chorus/natsconf.py: JetStream in the region's
domain, file storage, its sync interval), and the log's streams as region/log_jetstream.py
creates ``COMMENTS`` (file storage, the ``Nats-Msg-Id`` dedup window, RePublish to the live
subjects, direct get, discard old, max age): the one-stream layouts are made by its
`JetStreamLog.ensure` itself, the partitions are that stream's configuration read back from
the server with the name, subjects and RePublish changed. The layouts:

- ``1x1``: one stream, one subject (a hot stream today);
- ``1x16``: one stream, 16 subjects (many streams, or a hot stream spread over subjects);
- ``4x1``, ``16x1``: 4 or 16 streams (partitions, ``COMMENTS_<k>``), one subject each.

The load is the Go client's ``jsappend`` (bench/goload/jsappend.go, built by
bench/goload/build.sh): ``--connections`` raw NATS connections, each pipelining appends
with a window of ``--window`` outstanding acks, a fresh ``Nats-Msg-Id`` and a comment's JSON
each, round-robin over the layout's subjects; one more connection reads the RePublish, as a
gateway does, and a run ends when it has heard every append (``--readers 0,1,8``: each
layout runs with that many readers in turn, as several gateways read the live subjects;
``--no-reader``: none). While it runs, Go's profiler samples the server's CPU
(``--no-profile``: not): the share spent in the streams' own goroutines (`STREAM_LOOP`), the
step each stream takes one message at a time, tells what one stream appends a second at most
with a core to itself, whatever else loads the machine. Every layout gets fresh streams,
and the layouts alternate round after round: the machine is shared, so compare within a
round, with the load average beside each figure. The client shares the machine's cores: its
CPU is shown too, and when it nears a core it, not the server, may be the limit (give more
connections or a bigger window).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import nats
from nats.aio.client import Client as Nats
from nats.js.api import RePublish, StreamConfig
from nats.js.errors import NotFoundError

sys.path.insert(0, str(Path(__file__).resolve().parent))

from goload.figures import GoLoadError
from goload.process import GoLoad
from rawclient import GO_CLIENT, PYTHON_CLIENT, CpuMeter, load_average, machine

from chorus.cluster.binaries import find_binaries
from chorus.cluster.health import wait_until
from chorus.cluster.ports import free_port
from chorus.names import COMMENTS_STREAM, comment_subject, live_subject, live_subjects
from chorus.natsconf import JetStream, NatsServer, render
from region.log_jetstream import JetStreamLog

REGION = "us-east"
SERVER = "nats-server"
# A comment's text as a real one might read: the payload comes to about 240 bytes, as
# chorus/model.py `Comment.encode` writes one.
TEXT = "what a goal!!! " * 4
STARTUP_S = 20.0


@dataclasses.dataclass(frozen=True)
class Layout:
    """How a region's appends spread: over ``streams`` streams, each with ``subjects``
    subjects published to."""

    key: str
    streams: int
    subjects: int
    what: str

    def publish_subjects(self) -> list[str]:
        """The subjects the load goes to, round-robin."""
        if self.streams == 1:
            if self.subjects == 1:
                return [comment_subject(REGION, "hot")]
            return [comment_subject(REGION, f"s{i}") for i in range(self.subjects)]
        return [comment_subject(REGION, f"hot{k}") for k in range(self.streams)]

    def partitions(self, base: StreamConfig) -> list[StreamConfig]:
        """The partitions' streams: ``base`` (COMMENTS as the log makes it) with each one's
        name, subject and RePublish; the partitioned log is not built, so its names are
        these (docs/design.md, "Where it stops": ``COMMENTS_0`` ...)."""
        return [dataclasses.replace(
            base, name=f"{COMMENTS_STREAM}_{k}", subjects=[comment_subject(REGION, f"hot{k}")],
            republish=RePublish(src=comment_subject(REGION, f"hot{k}"),
                                dest=live_subject(REGION, f"hot{k}")))
            for k in range(self.streams)]


LAYOUTS = {layout.key: layout for layout in (
    Layout("1x1", 1, 1, "one stream, one subject"),
    Layout("1x16", 1, 16, "one stream, 16 subjects"),
    Layout("4x1", 4, 1, "4 streams, one subject each"),
    Layout("16x1", 16, 1, "16 streams, one subject each"),
)}


@dataclasses.dataclass(frozen=True)
class Appends:
    """A ``jsappend`` answer: appends acked, the time from the first send to the last ack
    (s), failures by what went wrong, ack latency (ms), what the RePublish readers heard
    together and how long after the last ack they had heard every append (s)."""

    appended: int
    seconds: float
    errors: Mapping[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    live: int
    live_lag_s: float

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> Appends:
        def number(key: str, kind: type = float) -> Any:
            value = doc.get(key)
            if value is None and key.endswith("_ms"):
                return math.nan   # nothing was appended
            if isinstance(value, bool) or not isinstance(value, int | float) or (
                    kind is int and not isinstance(value, int)):
                raise GoLoadError(f"jsappend: {key!r} is {value!r}, not a number")
            return kind(value)

        errors = doc.get("errors")
        if not isinstance(errors, dict) or not all(
                isinstance(k, str) and isinstance(v, int) for k, v in errors.items()):
            raise GoLoadError(f"jsappend: 'errors' is {errors!r}, not counts by failure")
        return cls(appended=number("appended", int), seconds=number("seconds"),
                   errors=dict(errors), p50_ms=number("p50_ms"), p99_ms=number("p99_ms"),
                   max_ms=number("max_ms"), live=number("live", int),
                   live_lag_s=number("live_lag_s"))


async def server_version() -> str:
    proc = await asyncio.create_subprocess_exec(
        str(find_binaries().nats_server), "--version", stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    return out.decode().strip()


async def quiet(exc: Exception) -> None:
    """nats-py's error callback: a refused connection while the server starts is expected;
    any other failure surfaces where it is awaited."""


@dataclasses.dataclass(frozen=True)
class Server:
    url: str
    pid: int
    profiles: str   # the server's pprof endpoint (http://host:port/debug/pprof)


@contextlib.asynccontextmanager
async def lone_server(store: Path) -> AsyncIterator[Server]:
    """A nats-server configured as a region's (without its leaf link), with Go's profiler
    on a port of its own."""
    port, monitor, prof = free_port(), free_port(), free_port()
    conf = store / "nats.conf"
    conf.write_text(render(NatsServer(
        server_name="jsappend", host="127.0.0.1", client_port=port, monitor_port=monitor,
        jetstream=JetStream(domain=REGION, store_dir=str(store / "js"))))
        + f"prof_port: {prof}\n")
    proc = await asyncio.create_subprocess_exec(
        str(find_binaries().nats_server), "-c", str(conf),
        stdout=subprocess.DEVNULL, stderr=(store / "nats.log").open("wb"))
    url = f"nats://127.0.0.1:{port}"

    async def up() -> bool:
        if proc.returncode is not None:
            raise RuntimeError(f"nats-server exited ({proc.returncode}): see {store}/nats.log")
        try:
            nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False,
                                    error_cb=quiet)
        except (OSError, nats.errors.Error):
            return False
        try:
            await nc.jetstream().account_info()
            return True
        except nats.errors.Error:
            return False
        finally:
            await nc.close()

    try:
        await wait_until(up, what="the lone nats-server", timeout_s=STARTUP_S)
        yield Server(url, proc.pid, f"http://127.0.0.1:{prof}/debug/pprof")
    finally:
        proc.terminate()
        await proc.wait()


class Streams:
    """Makes each layout's streams afresh, removing whatever the one before left."""

    def __init__(self, nc: Nats) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.base: StreamConfig | None = None

    async def clear(self) -> None:
        for name in await self.js.streams_info():
            await self.js.delete_stream(name.config.name or "")

    async def make(self, layout: Layout) -> list[str]:
        """Creates ``layout``'s streams (none other left); returns their names."""
        await self.clear()
        await JetStreamLog(self.nc, REGION).ensure()
        if self.base is None:
            self.base = (await self.js.stream_info(COMMENTS_STREAM)).config
        if layout.streams == 1:
            return [COMMENTS_STREAM]
        await self.js.delete_stream(COMMENTS_STREAM)
        configs = layout.partitions(self.base)
        for config in configs:
            await self.js.add_stream(config)
        return [c.name or "" for c in configs]

    async def stored(self, names: list[str]) -> int:
        total = 0
        for name in names:
            try:
                total += (await self.js.stream_info(name)).state.messages
            except NotFoundError:
                pass
        return total


# The goroutine of one stream that appends each of its messages in turn: the store's write,
# the dedup window, and handing the ack and the RePublish to their subscribers. Everything
# else (reading clients' sockets, writing theirs, the GC) runs beside it.
STREAM_LOOP = "server.(*stream).internalLoop"
PPROF_TOTAL = re.compile(r"Total samples = ([0-9.]+)ms")


def go_binary() -> str:
    """The go command, as bench/goload/build.sh finds it."""
    return os.environ.get("GO") or shutil.which("go") or "/usr/local/go/bin/go"


def loop_share(top: str) -> float:
    """The stream loops' share of a CPU profile's samples, from ``go tool pprof -top -cum
    -unit=ms``'s text; nan when the profile holds no samples."""
    total = PPROF_TOTAL.search(top)
    if total is None or float(total.group(1)) == 0:
        return math.nan
    for line in top.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[5].endswith(STREAM_LOOP):
            return float(fields[3].removesuffix("ms")) / float(total.group(1))
    return 0.0


async def profile(server: Server, seconds: int, store: Path) -> float:
    """The stream loops' share of the server's CPU over the next ``seconds`` (whole
    seconds: Go's profiler counts in them)."""
    async with aiohttp.ClientSession() as http, http.get(
            f"{server.profiles}/profile", params={"seconds": str(seconds)},
            timeout=aiohttp.ClientTimeout(total=seconds + 30)) as answer:
        answer.raise_for_status()
        data = await answer.read()
    path = store / "cpu.pprof"
    path.write_bytes(data)
    proc = await asyncio.create_subprocess_exec(
        go_binary(), "tool", "pprof", "-top", "-cum", "-unit=ms", "-nodecount=100000",
        str(path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"go tool pprof failed on {path} ({proc.returncode})")
    return loop_share(out.decode())


async def run(args: argparse.Namespace) -> dict[str, Any]:
    layouts = [LAYOUTS[k] for k in args.layouts.split(",")]
    readers = [int(n) for n in args.readers.split(",")] if args.reader else [0]
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    version = await server_version()
    print(f"{version}; load average before: {load_average()}")
    print(f"{args.connections} connections x window {args.window}, {args.seconds:.0f} s a run, "
          f"RePublish readers {', '.join(map(str, readers))}\n")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="jsappend-") as tmp:
        async with lone_server(Path(tmp)) as server, await GoLoad.start() as go:
            nc = await nats.connect(server.url, connect_timeout=5)
            streams = Streams(nc)
            meter = CpuMeter({SERVER: server.pid, GO_CLIENT: go.pid})

            async def append(layout: Layout, seconds: float, readers: int
                             ) -> tuple[Appends, float, int, float]:
                names = await streams.make(layout)
                # The profile spans the run's whole seconds after its first (connecting).
                window = int(seconds) - 1
                profiled = (asyncio.create_task(profile(server, window, Path(tmp)))
                            if args.profile and window >= 1 else None)
                meter.start()
                began = time.monotonic()
                figures = Appends.of(await go.call(
                    "jsappend", url=server.url, subjects=layout.publish_subjects(),
                    connections=args.connections, window=args.window, seconds=seconds,
                    text=TEXT, live=live_subjects(REGION) if readers else "",
                    readers=readers))
                wall = time.monotonic() - began
                meter.stop()
                share = await profiled if profiled is not None else math.nan
                return figures, wall, await streams.stored(names), share

            if args.warmup > 0:
                await append(layouts[0], args.warmup, readers[0])
            for rnd in range(1, args.rounds + 1):
                for layout in layouts:
                    for n in readers:
                        figures, wall, stored, share = await append(layout, args.seconds, n)
                        row = figures_row(layout, n, rnd, figures, wall, stored, meter.used,
                                          share)
                        rows.append(row)
                        show(row)
            await streams.clear()
            await nc.close()
    print()
    table(rows)
    print(f"\nload average after: {load_average()}")
    return {"machine": machine(), "nats_server": version, "connections": args.connections,
            "window": args.window, "seconds": args.seconds, "readers": readers,
            "rows": rows}


def figures_row(layout: Layout, readers: int, rnd: int, f: Appends, wall: float,
                stored: int, used: Mapping[str, float], share: float) -> dict[str, Any]:
    server = used[SERVER]
    per_append = server / f.appended * 1e6 if f.appended else math.nan
    loop_us = share * per_append
    return {
        "layout": layout.key, "what": layout.what, "readers": readers, "round": rnd,
        "appended": f.appended, "stored": stored, "errors": dict(f.errors),
        "appends_per_s": round(f.appended / f.seconds) if f.seconds > 0 else 0,
        "ack_p50_ms": round(f.p50_ms, 2), "ack_p99_ms": round(f.p99_ms, 2),
        "ack_max_ms": round(f.max_ms, 2),
        "server_cores": round(server / wall, 2),
        "server_us_per_append": round(per_append, 1),
        # the stream loops (serial per stream): their share of the server's CPU, their CPU
        # per append, the cores they took (all streams) and what one stream's loop appends
        # a second with a core to itself
        "loop_share": round(share, 3), "loop_us_per_append": round(loop_us, 1),
        "loop_cores": round(share * server / wall, 2),
        "loop_ceiling_per_s": round(1e6 / loop_us) if loop_us > 0 else None,
        "client_cores": round(used[GO_CLIENT] / wall, 2),
        "python_cores": round(used[PYTHON_CLIENT] / wall, 2),
        "live_heard": f.live, "live_expected": f.appended * readers,
        "live_lag_s": round(f.live_lag_s, 2), "load": load_average(),
    }


def show(row: dict[str, Any]) -> None:
    errors = f", errors {row['errors']}" if row["errors"] else ""
    lost = (f", stored {row['stored']:,} of {row['appended']:,}"
            if row["stored"] != row["appended"] else "")
    deaf = (f" of {row['live_expected']:,}" if row["live_heard"] != row["live_expected"]
            else "")
    print(f"  round {row['round']} {row['layout']:>5} x{row['readers']}: "
          f"{row['appends_per_s']:>7,} appends/s, "
          f"ack p50 {row['ack_p50_ms']} p99 {row['ack_p99_ms']} ms; nats-server "
          f"{row['server_cores']} cores, {row['server_us_per_append']} us/append, stream "
          f"loops {row['loop_share']:.0%} of it ({row['loop_us_per_append']} us/append, "
          f"{row['loop_cores']} cores); client "
          f"{row['client_cores']} cores; readers heard {row['live_heard']:,}{deaf} "
          f"(lag {row['live_lag_s']} s); "
          f"load {row['load']}{errors}{lost}", flush=True)


def table(rows: list[dict[str, Any]]) -> None:
    print("| layout | readers | round | appends/s | ack p50 / p99 (ms) | nats-server cores | "
          "us per append | stream loops: us per append (cores) | Go client cores | load |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['what']} | {r['readers']} | {r['round']} | {r['appends_per_s']:,} | "
              f"{r['ack_p50_ms']} / "
              f"{r['ack_p99_ms']} | {r['server_cores']} | {r['server_us_per_append']} | "
              f"{r['loop_us_per_append']} ({r['loop_cores']}) | {r['client_cores']} | "
              f"{r['load']} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--rounds", type=int, default=2, help="turns over the layouts")
    parser.add_argument("--connections", type=int, default=4,
                        help="publishing connections of the Go client")
    parser.add_argument("--window", type=int, default=256,
                        help="outstanding appends per connection")
    parser.add_argument("--layouts", default=",".join(LAYOUTS),
                        help=f"a comma-separated choice of {', '.join(LAYOUTS)}")
    parser.add_argument("--warmup", type=float, default=2.0,
                        help="seconds of load before the first round, not counted")
    parser.add_argument("--readers", default="1",
                        help="subscribers of the RePublish, a comma-separated list: each "
                             "layout runs with each count in turn")
    parser.add_argument("--no-reader", dest="reader", action="store_false",
                        help="no subscriber of the RePublish (--readers 0)")
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="no CPU profile of the server (the stream loops' share)")
    parser.add_argument("--json", help="also write the results here")
    arguments = parser.parse_args()
    if unknown := set(arguments.layouts.split(",")) - set(LAYOUTS):
        parser.error(f"no layout {', '.join(sorted(unknown))}")
    measured = asyncio.run(run(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(measured, indent=1))
