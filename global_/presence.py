"""Read globally: which regions have viewers of a stream; and this region's answers to that.

`PresenceDirectory` is the asking side. A posting region's outboxes ask every other region
for its viewer count of a stream (`PresenceQuery` over the hub, all regions at once, each
answer bounded by ``presence_query_timeout_ms``). Answers are cached per (stream, region) for
``presence_cache_ms`` in a `PresenceCache` (pure), and dropped early when that region
announces a `PresenceChange` of the stream. A region that does not answer in time, or whose
answer is malformed, counts as having viewers: a wasted forward is cheap, a lost comment is
not.

`PresenceResponder` is this region's side: one gateway of the region (queue group
``presence``) answers each query from the region's presence index, and every gateway
announces when its region's count of a stream goes 0 -> n or n -> 0.

The messages are global_/hub.py's; the subjects chorus/names.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from chorus.drivers import driver_errors
from chorus.metrics import Metrics
from chorus.model import STREAM_ID
from chorus.names import PRESENCE_CHANGE, PRESENCE_QUEUE, presence_query
from global_.hub import (
    HubMessageError,
    PresenceAnswer,
    PresenceChange,
    PresenceQuery,
    Rejections,
)
from global_.tasks import OwnedTasks
from region.presence import Presence, PresenceUnavailable

log = logging.getLogger(__name__)

MAX_REFRESHES = 1000      # answers renewed ahead of expiry at once; beyond, they just expire
CHANGE_FLUSH_TIMEOUT_S = 2  # nats-py takes whole seconds


@dataclass(frozen=True)
class Answer:
    region: str
    viewers: int | None   # None: the region did not answer (counted as having viewers)

    @property
    def has_viewers(self) -> bool:
        return self.viewers is None or self.viewers > 0


@dataclass
class PresenceCache:
    """Answers by (stream, region), each valid for ``ttl_s`` seconds of ``clock``. Pure.

    Bounded by ``max_entries``: when full, expired answers go first, then the oldest half."""

    ttl_s: float
    clock: Callable[[], float] = time.monotonic
    _entries: dict[tuple[str, str], tuple[float, Answer]] = field(default_factory=dict)
    max_entries: int = 100_000

    def get(self, stream: str, region: str) -> Answer | None:
        hit = self.get_aged(stream, region)
        return None if hit is None else hit[0]

    def get_aged(self, stream: str, region: str) -> tuple[Answer, float] | None:
        """The answer and its age in seconds, while it is valid."""
        hit = self._entries.get((stream, region))
        if hit is None:
            return None
        at, answer = hit
        age = self.clock() - at
        if age > self.ttl_s:
            del self._entries[(stream, region)]
            return None
        return answer, age

    def put(self, stream: str, answer: Answer) -> None:
        if answer.viewers is None:
            return  # an unanswered question is asked again next time
        if len(self._entries) >= self.max_entries:
            self._evict()
        self._entries[(stream, answer.region)] = (self.clock(), answer)

    def invalidate(self, stream: str, region: str) -> None:
        self._entries.pop((stream, region), None)

    def _evict(self) -> None:
        now = self.clock()
        for key, (at, _) in list(self._entries.items()):
            if now - at > self.ttl_s:
                del self._entries[key]
        if len(self._entries) >= self.max_entries:  # all fresh: drop the oldest half
            for key, _ in sorted(self._entries.items(), key=lambda kv: kv[1][0])[
                    : self.max_entries // 2]:
                del self._entries[key]


class PresenceDirectory:
    """Asks the other regions (over the hub) and caches their answers. `run` listens to
    every region's presence changes and owns the refreshes; run it for the gateway's life."""

    def __init__(self, nc: Nats, *, regions: Iterable[str], cache_ms: int, timeout_ms: int,
                 metrics: Metrics, rejections: Rejections) -> None:
        self.nc = nc
        self.regions = tuple(regions)
        self.cache = PresenceCache(ttl_s=cache_ms / 1000)
        self.timeout_s = timeout_ms / 1000
        self.metrics = metrics
        self.rejections = rejections
        self._refreshes = OwnedTasks(MAX_REFRESHES)
        self._refreshing: set[tuple[str, str]] = set()
        # Questions on their way, shared by every caller that needs the same answer; at most
        # one per (stream, region), each ending within the query timeout.
        self._asking: dict[tuple[str, str], asyncio.Future[Answer]] = {}

    async def run(self) -> None:
        sub = await self.nc.subscribe(PRESENCE_CHANGE)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._listen(sub), name="presence changes")
                tg.create_task(self._refreshes.watch(), name="presence refreshes")
        finally:
            await self._refreshes.close()
            with contextlib.suppress(*driver_errors("nats")):  # a closed connection ended it
                await sub.unsubscribe()

    async def _listen(self, sub: Subscription) -> None:
        async for msg in sub.messages:
            try:
                change = PresenceChange.decode(msg.data)
            except HubMessageError as err:
                self.rejections(err, msg.subject)
                continue
            self.cache.invalidate(change.stream, change.region)

    async def viewers(self, stream: str, region: str) -> Answer:
        """``region``'s viewers of ``stream``, cached; never raises (no answer: None)."""
        hit = self.cache.get_aged(stream, region)
        if hit is not None:
            answer, age = hit
            # Refresh ahead: past half its life an answer is renewed in the background, so a
            # busy stream's forwards never wait a round trip for a fresh one.
            key = (stream, region)
            if age > self.cache.ttl_s / 2 and key not in self._refreshing:
                if self._refreshes.spawn(self._refresh(stream, region),
                                         name=f"presence refresh {region}"):
                    self._refreshing.add(key)
            return answer
        # One question at a time per (stream, region): the outbox keeps many batches in
        # flight, and each would otherwise ask the same uncached question again.
        key = (stream, region)
        asking = self._asking.get(key)
        if asking is not None:
            return await asyncio.shield(asking)
        asking = asyncio.ensure_future(self._ask(stream, region))
        self._asking[key] = asking
        asking.add_done_callback(lambda _: self._asking.pop(key, None))
        answer = await asyncio.shield(asking)  # a cancelled caller leaves it to the others
        self.cache.put(stream, answer)
        return answer

    async def _refresh(self, stream: str, region: str) -> None:
        try:
            self.cache.put(stream, await self._ask(stream, region))
        finally:
            self._refreshing.discard((stream, region))

    async def regions_with_viewers(self, stream: str) -> set[str]:
        answers = await asyncio.gather(*(self.viewers(stream, r) for r in self.regions))
        return {a.region for a in answers if a.has_viewers}

    async def _ask(self, stream: str, region: str) -> Answer:
        if not STREAM_ID.fullmatch(stream):
            # No region answers for what is not a stream id: skip the round trip, fail open.
            return Answer(region=region, viewers=None)
        self.metrics.presence_queries.inc()
        began = time.perf_counter()
        answer = await self._request(stream, region)
        self.metrics.presence_query(region, time.perf_counter() - began,
                                    answered=answer.viewers is not None)
        return answer

    async def _request(self, stream: str, region: str) -> Answer:
        query = PresenceQuery(stream)
        subject = presence_query(region)
        try:
            reply = await self.nc.request(subject, query.encode(), timeout=self.timeout_s)
        except driver_errors("nats"):
            return Answer(region=region, viewers=None)
        try:
            answer = PresenceAnswer.decode(reply.data)
            if not answer.answers(region, query):
                raise HubMessageError("presence_answer", f"{answer.region!r} answered of "
                                      f"{answer.stream!r}")
        except HubMessageError as err:
            self.rejections(err, subject)
            return Answer(region=region, viewers=None)
        return Answer(region=region, viewers=answer.viewers)


class PresenceResponder:
    """This region's side of presence over the hub."""

    def __init__(self, nc: Nats, *, region: str, presence: Presence,
                 rejections: Rejections) -> None:
        self.nc = nc
        self.region = region
        self.presence = presence
        self.rejections = rejections

    async def run(self) -> None:
        """Answers queries until cancelled; one gateway of the region answers each."""
        sub = await self.nc.subscribe(presence_query(self.region), queue=PRESENCE_QUEUE)
        try:
            async for msg in sub.messages:
                await self._answer(msg)
        finally:
            with contextlib.suppress(*driver_errors("nats")):  # a closed connection ended it
                await sub.unsubscribe()

    async def _answer(self, msg: Msg) -> None:
        try:
            query = PresenceQuery.decode(msg.data)
        except HubMessageError as err:
            self.rejections(err, msg.subject)
            return
        try:
            viewers = await self.presence.count(query.stream)
        except PresenceUnavailable:
            # No answer (Redis is away, or rebuilding after a loss: PresenceUnknown): the
            # asker counts us as having viewers, as it must while our counts may be too low.
            return
        answer = PresenceAnswer(region=self.region, stream=query.stream, viewers=viewers)
        with contextlib.suppress(*driver_errors("nats")):
            # No reply subject, or the connection went: the asker times out and fails open.
            await msg.respond(answer.encode())

    async def announce(self, stream: str, viewers: int) -> None:
        """Tells every region that this region's count of ``stream`` changed (best effort:
        the others' cached answers expire by themselves within ``presence_cache_ms``)."""
        change = PresenceChange(region=self.region, stream=stream, viewers=viewers)
        with contextlib.suppress(*driver_errors("nats")):
            await self.nc.publish(PRESENCE_CHANGE, change.encode())
            await self.nc.flush(timeout=CHANGE_FLUSH_TIMEOUT_S)
