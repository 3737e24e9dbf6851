"""The traffic a drill keeps up while it faults the system, and what it records.

Every region gets ``viewers`` SDK clients watching one fresh stream (each preferring its home
region, as a real viewer near it would), and every viewer also posts: round robin over the
regions at ``rate`` comments per second in all, every post retried by the SDK with one client
key. A region gets as many viewers as it takes for each of them to post at no more than
`USER_SHARE` of the per-user rate limit (limits.user_rate_per_s): a user posting faster than
its bucket refills is refused (429) and its posts wander to other regions, which is not the
traffic a drill means to fault. Recorded: every post and its outcome, every comment's
arrival at every viewer (time, origin, lateness), and where each viewer is connected, sampled
every `SAMPLE_S` (for failover times). chaos/verdict.py judges it.

`Workload.flowing` is the traffic's part of the steady state, as a condition: posts made from
now on, so many from every region, acknowledged and held by every viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from chaos.verdict import Arrival, Post, ViewerEnd
from chorus.config import Config
from chorus.model import Comment
from chorus.phrases import phrase
from chorus.sdk import ChorusClientError, Client
from region.auth import issue_token

SAMPLE_S = 0.25          # how often viewers' connections are sampled
# Comment texts that no other comment of the drill folds to: chorus/phrases.py says why.
CONNECT_TIMEOUT_S = 20.0
POST_ATTEMPTS = 20       # with the SDK's backoff (up to 2 s here): about half a minute
# Each user posts at most this share of its token bucket's refill rate: the rest is room for
# the retries a fault causes (a refused attempt takes a token too). It also keeps a user under
# the classifier's posting-rate signal most of the time (region/classifier.py: 8 in 10 s;
# that signal alone never flags).
USER_SHARE = 0.5


def viewers_needed(config: Config, *, viewers_per_region: int, rate: float) -> int:
    """Viewers per region: at least ``viewers_per_region``, and enough that each, posting its
    share of ``rate`` comments per second over all regions, stays within `USER_SHARE` of the
    per-user limit."""
    per_region = rate / max(1, len(config.regions))
    per_user = config.limits.user_rate_per_s * USER_SHARE
    return max(viewers_per_region, math.ceil(per_region / per_user - 1e-9))


@dataclass(frozen=True)
class Flow:
    """Whether the traffic flowed end to end (`Workload.flowing`), how long it took to see
    it, and if not, what was missing."""

    ok: bool
    took_s: float
    note: str = ""


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
    # (post number, region, id) of every acknowledged post, in the order they were acked;
    # `_acked_one` is set on each (`flowing` waits on it).
    _acks: list[tuple[int, str, str]] = field(default_factory=list)
    _acked_one: asyncio.Event = field(default_factory=asyncio.Event)
    probes: int = 0      # steady-state probe rounds so far
    # Where this workload's phrases start: drills run one after another within the
    # classifier's window, and must not repeat each other's texts either.
    seed: int = field(default_factory=lambda: random.randrange(1 << 40))

    @classmethod
    def new(cls, config: Config, *, viewers_per_region: int, rate: float,
            drill: str) -> Workload:
        stream = f"drill-{drill}-{uuid.uuid4().hex[:8]}"[:64]
        return cls(config=config, stream=stream,
                   viewers_per_region=viewers_needed(config,
                                                     viewers_per_region=viewers_per_region,
                                                     rate=rate),
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
        """The first viewer of each region: who posts the steady-state probes."""
        seen: set[str] = set()
        out = []
        for w in self.watchers:
            if w.home not in seen:
                seen.add(w.home)
                out.append(w)
        return out

    def rotation(self) -> list[Watcher]:
        """Every viewer, regions interleaved: the order of the steady traffic's posts, so that
        consecutive posts come from different regions and each user's turn comes round
        ``len(watchers)`` posts later."""
        by_region: dict[str, list[Watcher]] = {}
        for w in self.watchers:
            by_region.setdefault(w.home, []).append(w)
        columns = list(by_region.values())
        return [col[i] for i in range(max(map(len, columns), default=0))
                for col in columns if i < len(col)]

    async def _post_steadily(self) -> None:
        posters = self.rotation()
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
        n = self._n
        text = text or f"{phrase(self.seed + n)}, says {poster.home}"
        try:
            comment = await poster.client.post(text, attempts=POST_ATTEMPTS)
        except ChorusClientError as exc:
            post = Post(text=text, region=poster.home,
                        outcome="unknown" if exc.code == "outcome_unknown" else "refused")
        else:
            post = Post(text=text, region=poster.home, outcome="acked", id=comment.id)
            self._acks.append((n, poster.home, comment.id))
            self._acked_one.set()
        self.posts.append(post)
        return post

    # -- the traffic's steady state ------------------------------------------------------------

    def mark(self) -> int:
        """The number of the last post begun so far: `flowing` counts the posts after it."""
        return self._n

    def acked_since(self, mark: int) -> dict[str, list[str]]:
        """Ids of the acknowledged posts begun after ``mark``, by poster's region, in ack
        order."""
        out: dict[str, list[str]] = {r.name: [] for r in self.config.regions}
        for n, region, cid in self._acks:
            if n > mark:
                out.setdefault(region, []).append(cid)
        return out

    async def flowing(self, per_region: int, timeout_s: float, *,
                      since: int | None = None) -> Flow:
        """Waits until ``per_region`` posts from every region, begun after ``since`` (default:
        now), are acknowledged and every viewer holds them: the traffic flows end to end
        again. A condition with a timeout, not a count reached in a fixed time: a loaded
        machine only makes it take longer. Posting must be under way."""
        mark = self.mark() if since is None else since
        began = time.monotonic()
        ids: list[str] = []

        async def acknowledged() -> None:
            nonlocal ids
            while True:
                acked = self.acked_since(mark)
                if all(len(v) >= per_region for v in acked.values()):
                    ids = [i for v in acked.values() for i in v[:per_region]]
                    return
                self._acked_one.clear()
                await self._acked_one.wait()

        async def held() -> None:
            await asyncio.gather(*(w.client.wait_for(lambda t: all(i in t for i in ids),
                                                     timeout_s=timeout_s)
                                   for w in self.watchers))
        try:
            await asyncio.wait_for(acknowledged(), timeout_s)
            await asyncio.wait_for(held(), max(0.0, began + timeout_s - time.monotonic()))
        except TimeoutError:
            acked = self.acked_since(mark)
            if not ids:
                short = {r: len(v) for r, v in acked.items() if len(v) < per_region}
                return Flow(False, time.monotonic() - began,
                            f"{per_region} posts from every region were not acknowledged "
                            f"within {timeout_s:g} s (acknowledged by region: {short})")
            lacking = {w.name: sum(i not in w.client.timeline for i in ids)
                       for w in self.watchers}
            return Flow(False, time.monotonic() - began,
                        f"{len(ids)} acknowledged posts did not reach every viewer within "
                        f"{timeout_s:g} s (lacking: "
                        f"{ {k: v for k, v in lacking.items() if v} })")
        return Flow(True, time.monotonic() - began)

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
