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
from collections import Counter, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp

from chorus.backoff import Backoff
from chorus.config import Config
from chorus.errors import ClusterError
from region.auth import issue_token
from region.classifier import RATE_WINDOW_S, WINDOW_S, HeuristicClassifier, fingerprint

log = logging.getLogger(__name__)

MAX_VIEWERS = 60          # WebSocket viewers in all regions together
MAX_RATE = 20.0           # comments a second in all regions together
MAX_REACTIONS = 50.0      # reactions a second in all regions together
REPLY_SHARE = 0.2         # of comments that answer an earlier one
TOKEN_TTL_S = 600        # each token is made for one connection or post
DRAWS = 30               # tries to find a line that does not read as a flood

USERS = (("demo-ana", "Ana"), ("demo-bo", "Bo"), ("demo-chen", "Chen"), ("demo-dara", "Dara"),
         ("demo-eli", "Eli"), ("demo-fatou", "Fatou"), ("demo-goran", "Goran"),
         ("demo-hiro", "Hiro"), ("demo-ines", "Inês"), ("demo-jay", "Jay"),
         ("demo-kofi", "Kofi"), ("demo-lena", "Lena"), ("demo-mateo", "Mateo"),
         ("demo-nadia", "Nadia"), ("demo-oskar", "Oskar"), ("demo-priya", "Priya"),
         ("demo-quinn", "Quinn"), ("demo-rosa", "Rosa"), ("demo-sami", "Sami"),
         ("demo-tomas", "Tomás"), ("demo-uma", "Uma"), ("demo-vik", "Vik"),
         ("demo-wen", "Wen"), ("demo-xavi", "Xavi"), ("demo-yara", "Yara"),
         ("demo-zoe", "Zoë"), ("demo-amir", "Amir"), ("demo-bea", "Bea"),
         ("demo-cyril", "Cyril"), ("demo-dmitri", "Dmitri"), ("demo-eva", "Eva"),
         ("demo-femi", "Femi"), ("demo-gus", "Gus"), ("demo-hana", "Hana"),
         ("demo-ivo", "Ivo"), ("demo-jun", "Jun"), ("demo-kira", "Kira"),
         ("demo-leo", "Leo"), ("demo-mina", "Mina"), ("demo-noor", "Noor"))
PLAYERS = ("Adeyemi", "Bellamy", "Costa", "Dubois", "Eriksen", "Ferreira", "Guzmán",
           "Haaland", "Ito", "Jansen", "Kovač", "Lindqvist", "Mbeki", "Novak", "Okafor",
           "Pires", "Quaresma", "Rashford", "Salah", "Tielemans", "Umtiti", "Vidal", "Walker",
           "Xhaka", "Yamal", "Zidane", "Alaba", "Brandt", "Cancelo", "Dembélé", "Endrick",
           "Foden")
LINES = ("what a goal by {player}!", "did you see {player} there?", "GOOOOL",
         "that was offside, surely", "hello from {region} 👋", "the keeper had no chance",
         "replay it please", "{player} is having the game of the season", "🔥🔥🔥",
         "who is commentating today?", "anyone else watching from {region}?",
         "{player} looks tired already", "VAR is checking…", "unbelievable", "ref!!",
         "that pass from {player} 😍", "two lines\nin one comment", "half time already?",
         "{player} with the save of the night", "we need {player} on the pitch",
         "the defence left {player} alone", "what a comeback this would be",
         "greetings from {region}, it is late here", "{player} should have passed",
         "corner kick, come on {player}", "such a clean tackle by {player}",
         "extra time incoming", "give the ball to {player}!", "{player} again, of course",
         "my heart can't take this", "{player} is everywhere tonight",
         "booked? {player} barely touched him")
ANSWERS = ("agreed", "no way", "haha exactly", "+1", "not sure about {player}", "same here",
           "{player} though?", "exactly what I said about {player}")


@dataclass(frozen=True)
class DemoPlan:
    """What the demo does; `check` bounds it."""

    streams: tuple[str, ...] = ("demo",)
    viewers_per_region: int = 4
    comments_per_s: float = 2.0
    reactions_per_s: float = 4.0

    def check(self, regions: int) -> None:
        if not self.streams:
            raise ClusterError("the demo needs at least one stream")
        if not 0 <= self.viewers_per_region * regions * len(self.streams) <= MAX_VIEWERS:
            raise ClusterError(f"the demo holds at most {MAX_VIEWERS} viewers in all")
        if not 0 < self.comments_per_s <= MAX_RATE:
            raise ClusterError(f"the demo posts 0 to {MAX_RATE:g} comments a second")
        if not 0 <= self.reactions_per_s <= MAX_REACTIONS:
            raise ClusterError(f"the demo sends 0 to {MAX_REACTIONS:g} reactions a second")


@dataclass(frozen=True)
class Line:
    """One comment the demo will post."""

    user: str
    name: str
    text: str
    region: str
    stream: str
    reply: bool


@dataclass
class Chatter:
    """What the demo said in the last `WINDOW_S`, so that it reads as a chat and not as a
    flood: users drawing from a few dozen lines at random say the same line from four users
    within a minute every few seconds, and the region's classifier (region/classifier.py,
    the same thresholds) would rightly retract four in ten of them."""

    flood_users: int = HeuristicClassifier.flood_users
    repeats: int = HeuristicClassifier.repeats
    rate: int = HeuristicClassifier.rate
    _said: deque[tuple[float, str, str]] = field(default_factory=deque)  # (t, text, user)
    _by_text: dict[str, Counter[str]] = field(default_factory=dict)
    _posts: dict[str, deque[float]] = field(default_factory=dict)  # user -> recent times

    def fits(self, user: str, text: str, now_s: float) -> bool:
        """Whether ``user`` saying ``text`` now stays under the flood and rate signals."""
        self._expire(now_s)
        posts = self._posts.get(user, ())
        if sum(t >= now_s - RATE_WINDOW_S for t in posts) + 1 >= self.rate:
            return False
        users = self._by_text.get(fingerprint(text))
        if not users:
            return True
        others = len(users) - (user in users)
        return others + 1 < self.flood_users and users[user] + 1 < self.repeats

    def say(self, user: str, text: str, now_s: float) -> None:
        fp = fingerprint(text)
        self._said.append((now_s, fp, user))
        self._by_text.setdefault(fp, Counter())[user] += 1
        self._posts.setdefault(user, deque()).append(now_s)

    def _expire(self, now_s: float) -> None:
        while self._said and self._said[0][0] < now_s - WINDOW_S:
            _, fp, user = self._said.popleft()
            users = self._by_text[fp]
            users[user] -= 1
            if users[user] <= 0:
                del users[user]
            if not users:
                del self._by_text[fp]
            posts = self._posts[user]
            posts.popleft()
            if not posts:
                del self._posts[user]


def next_line(rng: random.Random, n: int, regions: tuple[str, ...],
              streams: tuple[str, ...], chatter: Chatter | None = None,
              now_s: float = 0.0) -> Line:
    """The ``n``-th comment: regions in turn, users and lines at random, redrawn (a few
    times at most) while ``chatter`` says the line would read as a flood. Pure."""
    region = regions[n % len(regions)]
    reply = n > 0 and rng.random() < REPLY_SHARE
    for _ in range(DRAWS):
        user, name = rng.choice(USERS)
        text = rng.choice(ANSWERS if reply else LINES).format(region=region,
                                                              player=rng.choice(PLAYERS))
        if chatter is None or chatter.fits(user, text, now_s):
            break
    if chatter is not None:
        chatter.say(user, text, now_s)
    return Line(user=user, name=name, text=text, region=region,
                stream=streams[n % len(streams)], reply=reply)


def next_reaction(rng: random.Random, n: int, regions: tuple[str, ...],
                  kinds: tuple[str, ...]) -> tuple[tuple[str, str], str, str]:
    """The ``n``-th reaction as ((user, name), region, kind): regions in turn, the first
    kinds (the common ones: like, heart) more often than the rest. Pure."""
    weights = [len(kinds) - i for i in range(len(kinds))]
    kind = rng.choices(kinds, weights=weights)[0]
    return rng.choice(USERS), regions[n % len(regions)], kind


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
        self.reacted = 0
        self.viewers_connected = 0

    def _token(self, user: str, name: str) -> str:
        """A fresh dev token for each connection and post, so a demo outlives any token."""
        return issue_token(self.config.auth.dev_secret, user, name=name, ttl_s=TOKEN_TTL_S)

    async def run(self) -> None:
        """Viewers, commenters and reactions until cancelled; every task is this one's."""
        timeout = aiohttp.ClientTimeout(total=10, sock_connect=3)
        async with aiohttp.ClientSession(timeout=timeout) as http, asyncio.TaskGroup() as tg:
            for region in self.config.regions:
                for i in range(self.plan.viewers_per_region):
                    for stream in self.plan.streams:
                        url = region.gateway_urls[i % len(region.gateway_urls)]
                        tg.create_task(self._viewer(http, url, stream),
                                       name=f"demo viewer {region.name} {stream} {i}")
            tg.create_task(self._commenter(http), name="demo commenter")
            if self.plan.reactions_per_s > 0:
                tg.create_task(self._reactor(http), name="demo reactor")

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
        chatter = Chatter()
        interval = 1.0 / self.plan.comments_per_s
        loop = asyncio.get_running_loop()
        began = loop.time()
        n = 0
        while True:
            line = next_line(self.rng, n, regions, self.plan.streams, chatter,
                             loop.time())
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

    async def _reactor(self, http: aiohttp.ClientSession) -> None:
        regions = tuple(r.name for r in self.config.regions)
        kinds = self.config.reactions.kinds
        interval = 1.0 / self.plan.reactions_per_s
        loop = asyncio.get_running_loop()
        began = loop.time()
        n = 0
        while True:
            (user, name), region, kind = next_reaction(self.rng, n, regions, kinds)
            stream = self.plan.streams[n % len(self.plan.streams)]
            n += 1
            url = self.rng.choice(self.config.region(region).gateway_urls)
            try:
                async with http.post(f"{url}/v1/streams/{stream}/reactions",
                                     json={"kind": kind},
                                     headers={"Authorization":
                                              f"Bearer {self._token(user, name)}"}) as resp:
                    if resp.status == 202:
                        self.reacted += 1
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass  # a region down: the commenter's log says so; reactions are best effort
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
