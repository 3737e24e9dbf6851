"""`chorus load`: drives a cluster's regions with viewers and posters and measures them.

The run follows its plan (chorus/load/plan.py): a controller keeps each region's viewers at
the profile's count (opening and closing connections, at most `OPEN_PER_TICK` per region per
tick), posters post at the profile's rate, and a progress line says where the run is. Viewers
are minimal clients of the public protocol over WebSocket, SSE and long-poll; each records
the post numbers it received (every comment's text carries its number) and resumes with its
cursor when its connection ends, as a real client would. At the end the run waits for the
last comments (``drain_s``), then reports latency percentiles per region pair, loss and
duplicates from the viewers' timelines (chorus/load/stats.py), server CPU and memory per
region, and PNG plots over time.

Latency is measured from just before a post's request to the moment a viewer parsed the
comment, in this process: on one machine the load generator shares the CPU with the servers.
Every connection goes to a gateway of the regions.yaml given (`plan.check_target`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from chorus.config import Config
from chorus.load import plan, stats
from chorus.load.plan import LoadError, LoadSpec
from chorus.phrases import phrase

TICK_S = 0.1
OPEN_PER_TICK = 20          # new connections per region per tick (a herd is a profile too)
RECONNECTS_MAX = 20         # per viewer
CONNECT_TIMEOUT_S = 10.0
POLL_TIMEOUT_S = 5
RESOURCE_INTERVAL_S = 1.0
WAITING_MAX = 50            # posts queued per poster before more are dropped as "busy"
POST_TIMEOUT_S = 10.0       # a post's request; and how long the run waits for the last ones
MAX_CUT_KINDS = 50          # kinds of connection ends counted apart (the report's "cuts")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def machine() -> str:
    import platform

    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}")


@dataclass
class Counters:
    posted: int = 0
    acked: int = 0
    refused: dict[int, int] = field(default_factory=dict)   # by HTTP status (0: no answer)
    delivered: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    cuts: dict[str, int] = field(default_factory=dict)  # connections ended, by how
    gaps: int = 0             # times a viewer was told of a gap (recovered: false)


class Run:
    """One load run against ``config``'s regions (``pids``: the local cluster's processes by
    name, for CPU and memory; None: read them from each gateway's operator /metrics)."""

    def __init__(self, config: Config, spec: LoadSpec, *, allow_remote: bool = False,
                 pids: Callable[[], dict[str, int]] | None = None,
                 progress: Callable[[str], None] | None = None,
                 seed: int | None = None) -> None:
        spec.check()
        self.config = config
        self.spec = spec
        self.allowed = plan.allowed_targets(config)
        self.allow_remote = allow_remote
        for region in config.regions:
            for url in (*region.gateway_urls, *region.operator_urls):
                plan.check_target(url, self.allowed, allow_remote=allow_remote)
        self.pids = pids
        self.progress = progress or (lambda _line: None)
        self.rng = random.Random(seed)
        self.run_id = uuid.uuid4().hex[:8]
        self.streams = [f"load-{self.run_id}-{i}" for i in range(spec.streams)]
        self.counters = Counters()
        self.posts: dict[int, stats.Post] = {}
        self.timelines: list[stats.Timeline] = []
        self.latencies = stats.Latencies()
        self.started = 0.0
        self.per_second: dict[str, list[tuple[float, float]]] = {}
        self.resources: dict[str, list[tuple[float, float, float]]] = {}   # cpu %, rss MiB
        self._viewers: dict[str, list[_Viewer]] = {r.name: [] for r in config.regions}
        self._opened = {r.name: 0 for r in config.regions}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._next_post = 0
        self._posting_done = False
        self._posts_open = 0      # posts spawned whose answer has not come (or failed)
        self.stopped_at: float | None = None
        self._failed: set[int] = set()
        self._waiting = {r.name: 0 for r in config.regions}
        self._turns = {r.name: 0 for r in config.regions}
        self.post_latency: list[float] = []
        self.http: aiohttp.ClientSession | None = None
        from region.auth import issue_token

        secret = config.auth.dev_secret
        users = plan.users_needed(spec, config.limits.user_rate_per_s)
        self._post_tokens = {r.name: [issue_token(secret, f"load-{self.run_id}-{r.name}-p{i}")
                                      for i in range(users)] for r in config.regions}
        # Every viewer is a user of its own, as in a real audience: one user for all of them
        # met the per-user connection cap of a gateway (limits.max_connections_per_user), and
        # churn's refusals (4429) and reconnections were charged to the system.
        self._secret = secret

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        """Runs the whole plan, bounded by its duration plus drain; returns the report."""
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            self.http = http
            self.started = time.monotonic()
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._control())
                    tg.create_task(self._post_loop())
                    tg.create_task(self._report_progress())
                    tg.create_task(self._sample_resources())
                    tg.create_task(self._finish())
            finally:
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
        return self.report()

    async def _finish(self) -> None:
        await asyncio.sleep(self.spec.duration_s)
        self._posting_done = True
        # Posts still waiting for their answer are owed too, once acknowledged: wait for
        # them all, those not started yet included (a post spawned in the last tick has not
        # even taken its number), or the drain below would find nothing owed and stop while
        # they are on their way.
        until = time.monotonic() + POST_TIMEOUT_S
        while time.monotonic() < until and self._posts_open:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.1)
        # The last comments may still be on their way, the farthest region last.
        deadline = time.monotonic() + self.spec.drain_s
        while time.monotonic() < deadline and not self._all_delivered():
            with contextlib.suppress(TimeoutError):  # a check a second, not a busy loop
                await asyncio.wait_for(self._stop.wait(), 1.0)
        # Whoever still watches stops watching now: a comment acknowledged in the last
        # `settle_s` (only when the drain ran out) was on its way, not lost.
        self.stopped_at = time.monotonic()
        self._stop.set()

    def _all_delivered(self) -> bool:
        acc = stats.account((v.timeline for vs in self._viewers.values() for v in vs),
                            list(self.posts.values()), self.spec.settle_s)
        return acc.missing == 0

    def _http(self) -> aiohttp.ClientSession:
        assert self.http is not None, "only while the run runs"
        return self.http

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- viewers -------------------------------------------------------------------------------

    async def _control(self) -> None:
        """Keeps each region's viewers of each stream at the profile's count."""
        while not self._stop.is_set():
            t = self.elapsed()
            target = plan.viewers_at(self.spec, min(t, self.spec.duration_s))
            for region in self.config.regions:
                alive = [v for v in self._viewers[region.name] if not v.done]
                opened = 0
                for stream, want in target.items():
                    mine = [v for v in alive if v.stream == stream]
                    expired = [v for v in mine if v.expires is not None and v.expires <= t]
                    for v in expired:
                        v.leave()
                    have = len(mine) - len(expired)
                    for v in mine[want:] if have > want else ():
                        v.leave()
                    while have < want and opened < OPEN_PER_TICK:
                        self._open(region.name, stream)
                        have += 1
                        opened += 1
            await asyncio.sleep(TICK_S)

    def _open(self, region: str, stream: int) -> None:
        index = self._opened[region]
        self._opened[region] += 1
        urls = self.config.region(region).gateway_urls
        life = plan.lifetime_s(self.spec, self.rng)
        viewer = _Viewer(self, region=region, stream=stream, url=urls[index % len(urls)],
                         transport=plan.transport_of(index, self.spec.mix),
                         expires=None if life is None else self.elapsed() + life,
                         token=self._viewer_token(region, index))
        self._viewers[region].append(viewer)
        self._spawn(viewer.run())

    def _viewer_token(self, region: str, index: int) -> str:
        from region.auth import issue_token

        return issue_token(self._secret, f"load-{self.run_id}-{region}-v{index}")

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def received(self, viewer: _Viewer, items: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        second = int(now - self.started)
        for item in items:
            text = item.get("text", "")
            parts = text.split(" ") if isinstance(text, str) else []
            if len(parts) < 4 or parts[0] != "load" or parts[1] != self.run_id:
                continue
            try:
                n = int(parts[2])
            except ValueError:
                continue
            if not viewer.timeline.receive(n):
                continue
            self.counters.delivered += 1
            post = self.posts.get(n)
            if post is not None and viewer.live:
                self.latencies.add(post.region, viewer.region, second, now - post.began)

    # -- posters -------------------------------------------------------------------------------

    async def _post_loop(self) -> None:
        """Posts at the profile's rate from every region (a region's posters take turns)."""
        # Staggered, so that streams of one rate do not all post in the same tick.
        credit = {(r.name, s): s / self.spec.streams for r in self.config.regions
                  for s in range(self.spec.streams)}
        # A region's posters: at most this many of its posts in flight at once.
        posters = {r.name: asyncio.Semaphore(self.spec.posters) for r in self.config.regions}
        last = time.monotonic()
        while not self._posting_done and not self._stop.is_set():
            await asyncio.sleep(0.01)
            if self._posting_done:
                break
            now = time.monotonic()
            dt, last = now - last, now
            rates = plan.rates_at(self.spec, min(now - self.started, self.spec.duration_s))
            for (region, stream) in credit:
                credit[(region, stream)] += rates[stream] * dt
                while credit[(region, stream)] >= 1.0:
                    credit[(region, stream)] -= 1.0
                    if self._waiting[region] >= WAITING_MAX * self.spec.posters:
                        self.counters.refused[-1] = self.counters.refused.get(-1, 0) + 1
                        continue  # the region's posters are far behind: drop, and say so
                    self._posts_open += 1
                    self._spawn(self._post(region, stream, posters[region]))

    async def _post(self, region: str, stream: int, poster: asyncio.Semaphore) -> None:
        try:
            await self._post_once(region, stream, poster)
        finally:
            self._posts_open -= 1

    async def _post_once(self, region: str, stream: int, poster: asyncio.Semaphore) -> None:
        self._waiting[region] += 1
        try:
            await poster.acquire()
        finally:
            self._waiting[region] -= 1
        n = self._next_post
        self._next_post += 1
        urls = self.config.region(region).gateway_urls
        tokens = self._post_tokens[region]
        turn = self._turns[region]  # the region's own count: its users take turns evenly
        self._turns[region] += 1
        began = time.monotonic()
        self.posts[n] = stats.Post(n=n, region=region, stream=stream, began=began)
        self.counters.posted += 1
        status = 0
        try:
            async with self._http().post(
                    f"{urls[turn % len(urls)]}/v1/streams/{self.streams[stream]}/comments",
                    # The number names the post; the phrase keeps the texts apart for the
                    # moderation classifier, which folds digits away: "load <run> <n>" from
                    # six posters was one text from many users, a flood, and every copy was
                    # retracted (the other regions' viewers then never saw them).
                    json={"text": f"load {self.run_id} {n} {phrase(n)}"},
                    headers={"Authorization": f"Bearer {tokens[turn % len(tokens)]}"},
                    timeout=aiohttp.ClientTimeout(total=POST_TIMEOUT_S)) as resp:
                status = resp.status
                await resp.read()
        except (aiohttp.ClientError, TimeoutError):
            status = 0
        finally:
            poster.release()
        if status in (200, 201):
            acked = time.monotonic()
            self.posts[n] = stats.Post(n=n, region=region, stream=stream, began=began,
                                       acked=acked)
            self.counters.acked += 1
            if len(self.post_latency) < stats.MAX_SAMPLES:
                self.post_latency.append(acked - began)
        else:
            self._failed.add(n)
            self.counters.refused[status] = self.counters.refused.get(status, 0) + 1

    # -- progress and resources ------------------------------------------------------------------

    async def _report_progress(self) -> None:
        tty = sys.stdout.isatty()
        every = 1.0 if tty else 5.0
        last = (0, 0, time.monotonic())
        while not self._stop.is_set():
            await asyncio.sleep(every)
            now = time.monotonic()
            acked, delivered = self.counters.acked, self.counters.delivered
            dt = max(1e-3, now - last[2])
            post_rate, delivery_rate = (acked - last[0]) / dt, (delivered - last[1]) / dt
            last = (acked, delivered, now)
            t = now - self.started
            self.per_second.setdefault("posts/s", []).append((t, post_rate))
            self.per_second.setdefault("deliveries/s", []).append((t, delivery_rate))
            viewers = {r: sum(1 for v in vs if v.connected) for r, vs in self._viewers.items()}
            for region, count in viewers.items():
                self.per_second.setdefault(f"viewers {region}", []).append((t, count))
            recent = [x for pair in self.latencies.by_second.values()
                      for s, xs in pair.items() if s >= int(t) - 5 for x in xs]
            p99 = stats.percentile(sorted(recent), 99) * 1000 if recent else math.nan
            refused = sum(self.counters.refused.values())
            phase = "draining" if self._posting_done else f"{t:5.0f}/{self.spec.duration_s:.0f} s"
            self.progress(
                f"{phase}  viewers {' '.join(f'{r} {n}' for r, n in viewers.items())}  "
                f"posts {post_rate:6.1f}/s (acked {acked}, refused {refused})  "
                f"deliveries {delivery_rate:8.0f}/s  p99 {p99:6.1f} ms (last 5 s)")

    async def _sample_resources(self) -> None:
        previous: dict[str, float] = {}
        last = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            cpu_s, rss = await self._usage()
            dt = max(1e-3, now - last)
            last = now
            t = now - self.started
            for region in cpu_s:
                if region in previous:
                    pct = max(0.0, (cpu_s[region] - previous[region]) / dt * 100)
                    self.resources.setdefault(region, []).append(
                        (t, pct, rss.get(region, math.nan) / 2**20))
            previous = cpu_s
            await asyncio.sleep(RESOURCE_INTERVAL_S)

    async def _usage(self) -> tuple[dict[str, float], dict[str, float]]:
        """CPU seconds and resident bytes per region (all its processes locally; its gateways
        through their operator /metrics otherwise)."""
        cpu: dict[str, float] = {}
        rss: dict[str, float] = {}
        if self.pids is not None:
            for name, pid in self.pids().items():
                region = name.split("/", 1)[0] if "/" in name else "global"
                used = _proc_usage(pid)
                if used is not None:
                    cpu[region] = cpu.get(region, 0.0) + used[0]
                    rss[region] = rss.get(region, 0.0) + used[1]
            return cpu, rss
        for cell in self.config.regions:
            for url in cell.operator_urls:
                values = await self._scrape(url)
                if values:
                    cpu[cell.name] = cpu.get(cell.name, 0.0) + values.get(
                        "process_cpu_seconds_total", 0.0)
                    rss[cell.name] = rss.get(cell.name, 0.0) + values.get(
                        "process_resident_memory_bytes", 0.0)
        return cpu, rss

    async def _scrape(self, url: str) -> dict[str, float]:
        plan.check_target(url, self.allowed, allow_remote=self.allow_remote)
        try:
            async with self._http().get(f"{url}/metrics",
                                     timeout=aiohttp.ClientTimeout(total=2)) as resp:
                text = await resp.text()
        except (aiohttp.ClientError, TimeoutError):
            return {}
        out = {}
        for line in text.splitlines():
            if line.startswith(("process_cpu_seconds_total ", "process_resident_memory_bytes ")):
                name, value = line.split(" ", 1)
                out[name] = float(value)
        return out

    # -- report ----------------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        timelines = [v.timeline for vs in self._viewers.values() for v in vs]
        acc = stats.account(timelines, list(self.posts.values()), self.spec.settle_s)
        pairs = {f"{o} -> {r}": {k: (v * 1000 if k != "n" else int(v)) for k, v in row.items()}
                 for (o, r), row in self.latencies.summary().items()}
        usage = {region: {"cpu_percent_mean": _mean(p for _, p, _ in rows),
                          "cpu_percent_max": max((p for _, p, _ in rows), default=math.nan),
                          "rss_mib_max": max((m for _, _, m in rows), default=math.nan)}
                 for region, rows in sorted(self.resources.items())}
        return {
            "run": self.run_id, "machine": machine(), "spec": {
                "profile": self.spec.profile, "viewers_per_region": self.spec.viewers,
                "posters_per_region": self.spec.posters, "rate_per_region": self.spec.rate,
                "duration_s": self.spec.duration_s, "streams": self.spec.streams,
                "mix": dict(self.spec.mix)},
            "regions": list(self.config.region_names),
            "posts": {"sent": self.counters.posted, "acked": self.counters.acked,
                      "refused": {str(k): v for k, v in sorted(self.counters.refused.items())}},
            "viewers": {"opened": sum(self._opened.values()), "timelines": len(timelines),
                        "reconnects": self.counters.reconnects,
                        "connect_failures": self.counters.connect_failures,
                        "cuts": dict(sorted(self.counters.cuts.items()))},
            "deliveries": self.counters.delivered,
            "post_ms": {f"p{p:g}": stats.percentile(sorted(self.post_latency), p) * 1000
                        for p in stats.PERCENTILES},
            "latency_ms": pairs, "latency_samples_dropped": self.latencies.dropped,
            "loss": {"expected": acc.expected, "missing": acc.missing,
                     "duplicates": acc.duplicates, "viewers_with_loss": acc.viewers_with_loss,
                     "missing_by_transport": acc.missing_by_transport,
                     "missing_by_path": {f"{o} -> {r}": n
                                         for (o, r), n in acc.missing_by_path.items()},
                     "gapped": acc.gapped, "gaps_said": self.counters.gaps,
                     "by_region": {r: dataclasses.asdict(row)
                                   for r, row in acc.by_region.items()}},
            "server": usage,
        }


def _mean(values: Any) -> float:
    items = list(values)
    return sum(items) / len(items) if items else math.nan


def _proc_usage(pid: int) -> tuple[float, float] | None:
    """(CPU seconds, resident bytes) of a process, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/statm") as fh:
            pages = int(fh.read().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, pages * PAGE


class _Viewer:
    """One viewer: connects over its transport, resumes with its cursor when cut, and hands
    what it receives to the run. ``live`` is False while it reads back after a resume (those
    comments' ages measure the gap, not the path)."""

    def __init__(self, run: Run, *, region: str, stream: int, url: str, transport: str,
                 expires: float | None, token: str) -> None:
        self.owner = run
        self.token = token
        self.region = region
        self.stream = stream
        self.url = url
        self.transport = transport
        self.expires = expires
        self.timeline = stats.Timeline(region=region, stream=stream, transport=transport,
                                       joined=math.inf)
        self.cursor: str | None = None
        self.connected = False
        self.done = False
        self.live = True
        self._leave = asyncio.Event()
        # When the cursor last moved (hello or comments): a gap said after it starts there.
        self._moved_at = math.inf
        self._resumed = False     # this connection was opened with a cursor
        self._watched_until = math.inf  # when its last connection that said hello ended

    def leave(self) -> None:
        self._leave.set()

    async def run_once(self) -> None:
        name = self.owner.streams[self.stream]
        base = f"{self.url}/v1/streams/{name}"
        params = {"access_token": self.token}
        match self.transport:
            case "ws":
                await self._websocket(base, params)
            case "sse":
                await self._sse(base, params)
            case _:
                await self._poll(base, params)

    async def run(self) -> None:
        try:
            attempts = 0
            while not self._leave.is_set() and not self.owner._stop.is_set():
                self._resumed = self.cursor is not None
                try:
                    await self._until_leave(self.run_once())
                except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                    self.owner.counters.connect_failures += 1
                    self._cut(str(exc) if isinstance(exc, ValueError) else type(exc).__name__)
                if self.connected:
                    self._watched_until = time.monotonic()
                self.connected = False
                if self._leave.is_set() or self.owner._stop.is_set():
                    break
                attempts += 1
                if attempts > RECONNECTS_MAX:
                    break
                self.owner.counters.reconnects += 1
                self.live = False  # a resume reads back first
                await asyncio.sleep(0.2)
        finally:
            self.connected = False
            self.done = True
            if self.timeline.joined != math.inf:
                self.timeline.left = self._left()

    def _left(self) -> float:
        owner = self.owner
        return stats.left_at(
            time.monotonic(),
            run_ended=owner.stopped_at if owner._stop.is_set() else None,
            planned=None if self.expires is None else owner.started + self.expires,
            gave_up_after=None if self._leave.is_set() else self._watched_until)

    def _cut(self, how: str) -> None:
        key = f"{self.transport} {how}"
        cuts = self.owner.counters.cuts
        if key in cuts or len(cuts) < MAX_CUT_KINDS:
            cuts[key] = cuts.get(key, 0) + 1

    async def _until_leave(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        leave = asyncio.ensure_future(self._leave.wait())
        stop = asyncio.ensure_future(self.owner._stop.wait())
        try:
            await asyncio.wait({task, leave, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (task, leave, stop):
                t.cancel()
            await asyncio.gather(task, leave, stop, return_exceptions=True)
            error = task.exception() if task.done() and not task.cancelled() else None
            if error is not None:
                raise error

    def _frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "hello":
            self.connected = True
            now = time.monotonic()
            if self.timeline.joined == math.inf:
                self.timeline.joined = now
            elif not self._resumed:
                # Back without a cursor: it starts at the stream's newest comment, and what
                # came while it was away is not owed live.
                self._said_gap(now)
            self._moved_at = now
            self.cursor = self.cursor or frame.get("cursor")
        elif kind == "recovered":
            self.live = True
            if frame.get("recovered") is False:
                self._said_gap(time.monotonic())
            self.cursor = frame.get("cursor") or self.cursor
        elif kind == "comments":
            self.owner.received(self, frame.get("items", []))
            self._moved_at = time.monotonic()
            self.cursor = frame.get("cursor") or self.cursor
        elif kind == "bye":
            self.cursor = frame.get("cursor") or self.cursor

    def _said_gap(self, now: float) -> None:
        """The server said (or the reconnection means) that what came after the cursor up to
        now may be missing: from the last move of the cursor, less what was still on its way
        then, to now."""
        self.timeline.gap(min(self._moved_at, now) - self.owner.spec.settle_s, now)
        self.owner.counters.gaps += 1

    async def _websocket(self, base: str, params: dict[str, str]) -> None:
        if self.cursor:
            params = {**params, "cursor": self.cursor}
        async with self.owner._http().ws_connect(f"{base}/live", params=params,
                                            heartbeat=30) as ws:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    self._frame(json.loads(msg.data))
            self._cut(f"closed {ws.close_code}")

    async def _sse(self, base: str, params: dict[str, str]) -> None:
        headers = {"Last-Event-ID": self.cursor} if self.cursor else {}
        async with self.owner._http().get(f"{base}/events", params=params, headers=headers) as resp:
            if resp.status != 200:
                raise ValueError(f"SSE answered {resp.status}")
            data = ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if not line:
                    if data:
                        self._frame(json.loads(data))
                    data = ""
                elif line.startswith("data:"):
                    data = line[5:].lstrip(" ")

    async def _poll(self, base: str, params: dict[str, str]) -> None:
        first = self.cursor is None
        while True:
            query = {**params, "timeout": "0" if first else str(POLL_TIMEOUT_S)}
            if self.cursor:
                query["cursor"] = self.cursor
            async with self.owner._http().get(f"{base}/poll", params=query) as resp:
                if resp.status != 200:
                    raise ValueError(f"long-poll answered {resp.status}")
                body = await resp.json()
            if first:
                self._frame({"type": "hello", "cursor": body.get("cursor")})
                first = False
            elif body.get("recovered") is False:
                self._said_gap(time.monotonic())
            self.live = True
            items = body.get("items", [])
            if items:
                self.owner.received(self, items)
                self._moved_at = time.monotonic()
            self.cursor = body.get("cursor") or self.cursor


def write_report(report: dict[str, Any], run: Run, out: Path) -> list[Path]:
    """report.json, report.txt and the PNG plots in ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "report.json", out / "report.txt"]
    files[0].write_text(json.dumps(report, indent=2, default=_json_default) + "\n")
    files[1].write_text(text(report) + "\n")
    from chorus.load import plots

    files += plots.draw(run, out)
    return files


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return str(value)


def text(report: dict[str, Any]) -> str:
    spec = report["spec"]
    lines = [f"chorus load: profile {spec['profile']}, {spec['viewers_per_region']} viewers "
             f"and {spec['posters_per_region']} posters per region, "
             f"{spec['rate_per_region']:g} posts/s per region, {spec['duration_s']:g} s, "
             f"{spec['streams']} streams, transports "
             + ", ".join(f"{k} {v:.0%}" for k, v in spec["mix"].items()),
             f"machine: {report['machine']}", ""]
    posts = report["posts"]
    refused = ", ".join(f"{n} x {'no answer' if k == '0' else 'busy' if k == '-1' else k}"
                        for k, n in posts["refused"].items()) or "none"
    lines.append(f"posts: {posts['sent']} sent, {posts['acked']} acknowledged; refused: "
                 f"{refused}")
    lines.append("post -> 201: " + ", ".join(f"{k} {v:.1f} ms"
                                             for k, v in report["post_ms"].items()))
    v = report["viewers"]
    lines.append(f"viewers: {v['opened']} opened, {v['reconnects']} resumed after a cut, "
                 f"{v['connect_failures']} failed connections; {report['deliveries']} "
                 "deliveries")
    if v["cuts"]:
        lines.append("connections ended by the server or failed: " + ", ".join(
            f"{how} x {n}" for how, n in v["cuts"].items()))
    loss = report["loss"]
    lines.append(f"timelines: {loss['expected']} deliveries owed, {loss['missing']} missing, "
                 f"{loss['duplicates']} duplicates ({loss['viewers_with_loss']} viewers with "
                 f"a loss); {loss['gapped']} not owed live, in the {loss['gaps_said']} gaps "
                 "said to viewers")
    for region, row in loss["by_region"].items():
        lines.append(f"  viewers in {region}: {row['expected']} owed, {row['missing']} "
                     f"missing, {row['gapped']} in gaps said "
                     f"({row['viewers_with_loss']} viewers with a loss)")
    if loss["missing_by_path"]:
        lines.append("  missing by origin -> viewer region: " + ", ".join(
            f"{path} {n}" for path, n in loss["missing_by_path"].items()))
    lines += ["", f"{'origin -> viewer region':<26} {'n':>7} {'p50':>8} {'p90':>8} {'p99':>8} "
              f"{'p99.9':>8} {'max':>8}  (ms)"]
    for pair, row in report["latency_ms"].items():
        lines.append(f"{pair:<26} {row['n']:>7} {row['p50']:>8.1f} {row['p90']:>8.1f} "
                     f"{row['p99']:>8.1f} {row['p99.9']:>8.1f} {row['max']:>8.1f}")
    if report["server"]:
        lines += ["", f"{'server':<10} {'CPU mean':>9} {'CPU max':>9} {'RSS max':>10}"]
        for region, row in report["server"].items():
            lines.append(f"{region:<10} {row['cpu_percent_mean']:>8.0f}% "
                         f"{row['cpu_percent_max']:>8.0f}% {row['rss_mib_max']:>7.0f} MiB")
    return "\n".join(lines)


__all__ = ["LoadError", "LoadSpec", "Run", "text", "write_report"]
