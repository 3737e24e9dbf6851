"""Synthetic traffic for `chorus up --demo`: viewers and commenters in every region, so that
the viewer pages and the ops dashboard show life as soon as the cluster is up.

Bounded and local on purpose: at most `MAX_VIEWERS` WebSocket viewers and `MAX_RATE`
comments a second in all, only to gateways on loopback addresses (`Demo` refuses any other),
posted under the users ``demo-*`` with dev tokens of the cluster's own secret. Commenters
post through every region in turn, now and then as a reply to an earlier comment; viewers
hold a WebSocket in each region (reading and dropping what they get, reconnecting with
backoff), so each region counts viewers and the global plane forwards everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from chorus.backoff import Backoff
from chorus.config import Config
from chorus.errors import ClusterError
from region.auth import issue_token

log = logging.getLogger(__name__)

MAX_VIEWERS = 60          # WebSocket viewers in all regions together
MAX_RATE = 20.0           # comments a second in all regions together
REPLY_SHARE = 0.2         # of comments that answer an earlier one
TOKEN_TTL_S = 600        # each token is made for one connection or post

USERS = (("demo-ana", "Ana"), ("demo-bo", "Bo"), ("demo-chen", "Chen"), ("demo-dara", "Dara"),
         ("demo-eli", "Eli"), ("demo-fatou", "Fatou"), ("demo-goran", "Goran"),
         ("demo-hiro", "Hiro"), ("demo-ines", "Inês"), ("demo-jay", "Jay"))
LINES = ("what a goal!", "did you see that?", "GOOOOL", "that was offside, surely",
         "hello from {region} 👋", "the keeper had no chance", "replay it please",
         "best match of the season", "🔥🔥🔥", "who is commentating today?",
         "anyone else watching from {region}?", "the crowd is loud tonight",
         "VAR is checking…", "unbelievable", "ref!!", "that pass 😍",
         "two lines\nin one comment", "half time already?")
ANSWERS = ("agreed", "no way", "haha exactly", "+1", "not sure about that", "same here")


@dataclass(frozen=True)
class DemoPlan:
    """What the demo does; `check` bounds it."""

    streams: tuple[str, ...] = ("demo",)
    viewers_per_region: int = 4
    comments_per_s: float = 2.0

    def check(self, regions: int) -> None:
        if not self.streams:
            raise ClusterError("the demo needs at least one stream")
        if not 0 <= self.viewers_per_region * regions * len(self.streams) <= MAX_VIEWERS:
            raise ClusterError(f"the demo holds at most {MAX_VIEWERS} viewers in all")
        if not 0 < self.comments_per_s <= MAX_RATE:
            raise ClusterError(f"the demo posts 0 to {MAX_RATE:g} comments a second")


@dataclass(frozen=True)
class Line:
    """One comment the demo will post."""

    user: str
    name: str
    text: str
    region: str
    stream: str
    reply: bool


def next_line(rng: random.Random, n: int, regions: tuple[str, ...],
              streams: tuple[str, ...]) -> Line:
    """The ``n``-th comment: regions in turn, users and lines at random. Pure."""
    user, name = rng.choice(USERS)
    region = regions[n % len(regions)]
    reply = n > 0 and rng.random() < REPLY_SHARE
    text = rng.choice(ANSWERS) if reply else rng.choice(LINES).format(region=region)
    return Line(user=user, name=name, text=text, region=region,
                stream=streams[n % len(streams)], reply=reply)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Demo:
    """Runs the plan against the cluster of ``config`` until `run` is cancelled."""

    def __init__(self, config: Config, plan: DemoPlan | None = None, *,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.plan = plan or DemoPlan()
        self.plan.check(len(config.regions))
        far = [u for r in config.regions for u in r.gateway_urls if not is_loopback(u)]
        if far:
            raise ClusterError(f"the demo runs on the local cluster only, not on {far[0]}")
        self.rng = rng or random.Random()
        self.posted = 0
        self.refused = 0
        self.viewers_connected = 0

    def _token(self, user: str, name: str) -> str:
        """A fresh dev token for each connection and post, so a demo outlives any token."""
        return issue_token(self.config.auth.dev_secret, user, name=name, ttl_s=TOKEN_TTL_S)

    async def run(self) -> None:
        """Viewers and commenters until cancelled; every task is this one's."""
        timeout = aiohttp.ClientTimeout(total=10, sock_connect=3)
        async with aiohttp.ClientSession(timeout=timeout) as http, asyncio.TaskGroup() as tg:
            for region in self.config.regions:
                for i in range(self.plan.viewers_per_region):
                    for stream in self.plan.streams:
                        url = region.gateway_urls[i % len(region.gateway_urls)]
                        tg.create_task(self._viewer(http, url, stream),
                                       name=f"demo viewer {region.name} {stream} {i}")
            tg.create_task(self._commenter(http), name="demo commenter")

    async def _viewer(self, http: aiohttp.ClientSession, url: str, stream: str) -> None:
        backoff = Backoff(first_s=0.5, max_s=10.0, rng=self.rng)
        while True:
            try:
                async with http.ws_connect(f"{url}/v1/streams/{stream}/live",
                                           params={"access_token": self._token(
                                               "demo-viewer", "Demo viewer")},
                                           heartbeat=30, timeout=aiohttp.ClientWSTimeout(
                                               ws_close=3)) as ws:
                    self.viewers_connected += 1
                    backoff.reset()
                    try:
                        async for _ in ws:
                            pass  # a viewer that reads everything and shows nothing
                    finally:
                        self.viewers_connected -= 1
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass  # a region that is down (a drill, a kill): come back later
            await backoff.wait()

    async def _commenter(self, http: aiohttp.ClientSession) -> None:
        regions = tuple(r.name for r in self.config.regions)
        recent: dict[str, list[str]] = {s: [] for s in self.plan.streams}
        interval = 1.0 / self.plan.comments_per_s
        loop = asyncio.get_running_loop()
        began = loop.time()
        n = 0
        while True:
            line = next_line(self.rng, n, regions, self.plan.streams)
            n += 1
            body = {"text": line.text, "client_key": uuid.uuid4().hex}
            earlier = recent[line.stream]
            if line.reply and earlier:
                body["reply_to"] = self.rng.choice(earlier)
            url = self.rng.choice(self.config.region(line.region).gateway_urls)
            comment_id = await self._post(http, url, line, body)
            if comment_id is not None:
                earlier.append(comment_id)
                del earlier[:-20]
            # Paced on the clock, so a slow post does not slow the rate, and never faster.
            await asyncio.sleep(max(interval / 2, began + n * interval - loop.time()))

    async def _post(self, http: aiohttp.ClientSession, url: str, line: Line,
                    body: dict[str, str]) -> str | None:
        try:
            async with http.post(f"{url}/v1/streams/{line.stream}/comments", json=body,
                                 headers={"Authorization":
                                          f"Bearer {self._token(line.user, line.name)}"}
                                 ) as resp:
                if resp.status in (200, 201):
                    self.posted += 1
                    doc = await resp.json()
                    return str(doc["id"])
                self.refused += 1
                if self.refused % 50 == 1:
                    log.info("demo: %s refused a post with %s", url, resp.status)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError, KeyError):
            self.refused += 1
        return None


@contextlib.asynccontextmanager
async def running(config: Config, plan: DemoPlan | None = None) -> AsyncIterator[Demo]:
    """The demo runs for the block; it is cancelled and awaited when the block ends, and a
    crash of it is logged without taking the cluster down."""
    demo = Demo(config, plan)
    task = asyncio.create_task(demo.run(), name="demo")

    def report(t: asyncio.Task[None]) -> None:
        if not t.cancelled() and t.exception() is not None:
            log.error("the demo stopped: %s", t.exception(), exc_info=t.exception())

    task.add_done_callback(report)
    try:
        yield demo
    finally:
        if not task.done():  # one that ended by itself was logged by `report`
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
