"""The traffic a drill keeps up while it faults the system, and what it records.

Every region gets ``viewers`` SDK clients watching one fresh stream (each preferring its home
region, as a real viewer near it would); the first viewer of each region also posts, round
robin over the regions at ``rate`` comments per second in all, every post retried by the SDK
with one client key. Recorded: every post and its outcome, every comment's arrival at every
viewer (time, origin, lateness), and where each viewer is connected, sampled every
`SAMPLE_S` (for failover times). chaos/verdict.py judges it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from chaos.verdict import Arrival, Post, ViewerEnd
from chorus.config import Config
from chorus.model import Comment
from chorus.sdk import ChorusClientError, Client
from region.auth import issue_token

SAMPLE_S = 0.25          # how often viewers' connections are sampled
# Words for the workload's comments. The moderation classifier (region/classifier.py) takes a
# text it has seen three times from one user, or from four users, for a flood, and it folds
# digits away before comparing: "comment 1", "comment 2"... are one text to it, and a drill
# posting them would be moderated, not delivered. Each comment is a phrase of its own.
WORDS = ("what", "a", "save", "goal", "pass", "shot", "keeper", "crowd", "wow", "nice",
         "clean", "tackle", "corner", "header", "again", "late", "early", "brave", "quick",
         "slow", "left", "right", "wing", "post", "bar", "net", "ball", "run", "press", "break",
         "counter", "chance", "miss", "close", "wide", "high", "low", "long", "short", "cross",
         "volley", "chip", "curl", "power", "touch", "turn", "dribble", "block", "clear",
         "throw", "kick", "free", "foul", "card", "yellow", "red", "referee", "var", "offside",
         "half", "time", "extra", "final", "whistle")


def phrase(n: int) -> str:
    """A text for the ``n``-th comment that no other ``n`` folds to (base-64 in words)."""
    words = []
    while True:
        n, digit = divmod(n, len(WORDS))
        words.append(WORDS[digit])
        if n == 0:
            return " ".join(reversed(words))
CONNECT_TIMEOUT_S = 20.0
POST_ATTEMPTS = 20       # with the SDK's backoff (up to 2 s here): about half a minute


@dataclass
class Watcher:
    """One viewer and what it saw."""

    name: str
    home: str
    client: Client
    moved_at: float | None = None    # seconds since the start when first seen elsewhere


@dataclass
class Workload:
    config: Config
    stream: str
    viewers_per_region: int
    rate: float
    began: float = field(default_factory=time.monotonic)
    watchers: list[Watcher] = field(default_factory=list)
    posts: list[Post] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    samples: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    fault_at: float | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _posting: asyncio.Task[None] | None = None
    _sampling: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _n: int = 0
    probes: int = 0      # steady-state probe rounds so far
    # Where this workload's phrases start: drills run one after another within the
    # classifier's window, and must not repeat each other's texts either.
    seed: int = field(default_factory=lambda: random.randrange(1 << 40))

    @classmethod
    def new(cls, config: Config, *, viewers_per_region: int, rate: float,
            drill: str) -> Workload:
        stream = f"drill-{drill}-{uuid.uuid4().hex[:8]}"[:64]
        return cls(config=config, stream=stream, viewers_per_region=viewers_per_region,
                   rate=rate)

    def now(self) -> float:
        return time.monotonic() - self.began

    # -- viewers -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Every viewer connected (`ChorusClientError` after `CONNECT_TIMEOUT_S`)."""
        secret = self.config.auth.dev_secret
        seeds = [u for r in self.config.regions for u in r.gateway_urls]
        for region in self.config.regions:
            for i in range(self.viewers_per_region):
                name = f"{region.name}-{i}"
                # Users of their own in each drill: the classifier remembers users too.
                client = Client(seeds, token=issue_token(secret, f"drill-{self.seed:x}-{name}"),
                                stream=self.stream, prefer=region.name, backoff_max_s=2.0,
                                on_comment=self._arrived(name))
                self.watchers.append(Watcher(name, region.name, client))
        await asyncio.gather(*(w.client.start() for w in self.watchers))
        try:
            await asyncio.wait_for(asyncio.gather(*(w.client.connected.wait()
                                                    for w in self.watchers)),
                                   CONNECT_TIMEOUT_S)
        except TimeoutError:
            late = [w.name for w in self.watchers if not w.client.connected.is_set()]
            raise ChorusClientError(0, "unavailable", f"viewers {late} did not connect within "
                                    f"{CONNECT_TIMEOUT_S:.0f} s") from None
        self._sampling = asyncio.create_task(self._sample(), name="drill sampling")

    def _arrived(self, viewer: str) -> Callable[[Comment], None]:
        def record(comment: Comment) -> None:
            self.arrivals.append(Arrival(viewer=viewer, at_s=self.now(), id=comment.id,
                                         origin=comment.region,
                                         late_ms=time.time() * 1000 - comment.ts))
        return record

    async def _sample(self) -> None:
        while True:
            at = self.now()
            where: dict[str, int] = {}
            for w in self.watchers:
                region = w.client.region if w.client.connected.is_set() else None
                key = region or "-"
                where[key] = where.get(key, 0) + 1
                if (self.fault_at is not None and w.moved_at is None and region is not None
                        and region != w.home):
                    w.moved_at = at
            self.samples.append((at, where))
            await asyncio.sleep(SAMPLE_S)  # the sampling period, not a sync

    # -- posting -----------------------------------------------------------------------------

    def start_posting(self) -> None:
        self._stop.clear()
        self._posting = asyncio.create_task(self._post_steadily(), name="drill posting")

    async def stop_posting(self) -> None:
        self._stop.set()
        if self._posting is not None:
            await self._posting
            self._posting = None

    def posters(self) -> list[Watcher]:
        seen: set[str] = set()
        out = []
        for w in self.watchers:
            if w.home not in seen:
                seen.add(w.home)
                out.append(w)
        return out

    async def _post_steadily(self) -> None:
        posters = self.posters()
        began = time.monotonic()
        i = 0
        try:
            while not self._stop.is_set():
                self._spawn(self.post_one(posters[i % len(posters)]))
                i += 1
                await asyncio.sleep(max(0.0, began + i / self.rate - time.monotonic()))
        finally:
            await asyncio.gather(*self._tasks)

    def _spawn(self, coro: asyncio.Future[None] | asyncio.Task[None] | object) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def post_one(self, poster: Watcher, text: str | None = None) -> Post:
        self._n += 1
        text = text or f"{phrase(self.seed + self._n)}, says {poster.home}"
        try:
            comment = await poster.client.post(text, attempts=POST_ATTEMPTS)
        except ChorusClientError as exc:
            post = Post(text=text, region=poster.home,
                        outcome="unknown" if exc.code == "outcome_unknown" else "refused")
        else:
            post = Post(text=text, region=poster.home, outcome="acked", id=comment.id)
        self.posts.append(post)
        return post

    # -- the end -----------------------------------------------------------------------------

    def acked(self) -> set[str]:
        return {p.id for p in self.posts if p.outcome == "acked" and p.id is not None}

    async def converge(self, timeout_s: float) -> float | None:
        """Seconds until every viewer holds every acknowledged comment; None: not in time."""
        began = time.monotonic()
        ids = self.acked()
        try:
            await asyncio.gather(*(w.client.wait_for(lambda t: all(i in t for i in ids),
                                                     timeout_s=timeout_s)
                                   for w in self.watchers))
        except TimeoutError:
            return None
        return time.monotonic() - began

    def ends(self) -> list[ViewerEnd]:
        out = []
        for w in self.watchers:
            timeline = tuple((c.id, c.text) for c in w.client.timeline.comments)
            out.append(ViewerEnd(
                name=w.name, home=w.home, region=w.client.region, timeline=timeline,
                gaps=len(w.client.timeline.gaps), failovers=w.client.failovers,
                failbacks=w.client.failbacks, malformed=w.client.malformed_frames,
                failover_s=(w.moved_at - self.fault_at
                            if w.moved_at is not None and self.fault_at is not None
                            else None)))
        return out

    def connected_by_region(self) -> dict[str, int]:
        return self.samples[-1][1] if self.samples else {}

    async def close(self) -> None:
        await self.stop_posting()
        if self._sampling is not None:
            self._sampling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampling
        await asyncio.gather(*(w.client.close() for w in self.watchers),
                             return_exceptions=True)
