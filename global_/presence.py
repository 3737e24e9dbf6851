"""Read globally: which regions have viewers of a stream; and this region's answers to that.

`PresenceDirectory` is the asking side. A posting region's outboxes ask every other region
for its viewer counts: one `PresenceBatchQuery` per outbox batch for every uncached stream of
it (a region on older code has no responder for that: it is asked a `PresenceQuery` per
stream), each answer bounded by ``presence_query_timeout_ms``. Answers are cached per
(stream, region) for ``presence_cache_ms`` in a `PresenceCache` (pure), and dropped early when
that region announces a `PresenceChange` of the stream. A region that does not answer in time,
or whose answer is malformed, counts as having viewers: a wasted forward is cheap, a lost
comment is not. With one exception: an overloaded region answers late, and counting each late
answer as "viewers" forwarded every comment of a 500 posts/s run to regions where nobody
watched (372 in one run), adding forwards to the overload. So a region's last answer that it
has no viewers of a stream, up to `STALE_FACTOR` cache lifetimes old (10 s by default) and not
contradicted by a `PresenceChange` since, stands in for an answer that did not come. A viewer
who joins there meanwhile is announced by that change (which drops the old answer) and gets
what came before by the late-join bootstrap; only a change lost together with the answers can
delay that region's live comments, by at most that window.

A region whose presence index is away or being rebuilt after a loss (region/presence.py
`PresenceUnknown`, for one presence TTL) answers "unknown" (hub.py: ``"viewers": null``) at
once: it counts as having viewers without the wait for the timeout, and a recent "no
viewers" of it never stands in for it, as it may have viewers it does not know of yet.

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
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError

from chorus.drivers import driver_errors
from chorus.metrics import Metrics
from chorus.model import STREAM_ID
from chorus.names import (
    PRESENCE_CHANGE,
    PRESENCE_QUEUE,
    presence_batch_query,
    presence_query,
)
from global_.hub import (
    MAX_PRESENCE_STREAMS,
    HubMessageError,
    PresenceAnswer,
    PresenceBatchAnswer,
    PresenceBatchQuery,
    PresenceChange,
    PresenceQuery,
    Rejections,
    received,
    subscribed,
)
from global_.tasks import OwnedTasks
from region.presence import Presence, PresenceUnavailable

log = logging.getLogger(__name__)

MAX_REFRESHES = 1000      # answers renewed ahead of expiry at once; beyond, they just expire
STALE_FACTOR = 5          # a last "no viewers" stands in for a missing answer this many TTLs
LEGACY_RECHECK_S = 60.0   # a region without batched answers is asked per stream this long
UNKNOWN_TTL_S = 1.0       # how long an "unknown" answer is kept (the class says why)
CHANGE_FLUSH_TIMEOUT_S = 2  # nats-py takes whole seconds


@dataclass(frozen=True)
class Answer:
    region: str
    # None: the region did not answer, or answered that it does not know (``unknown``);
    # either way it counts as having viewers.
    viewers: int | None
    # The region answered that its counts are incomplete (its presence index is away or being
    # rebuilt), rather than not answering: never replaced by its last "no viewers".
    unknown: bool = False

    def __post_init__(self) -> None:
        if self.unknown and self.viewers is not None:
            raise ValueError("an unknown answer has no count")

    @property
    def has_viewers(self) -> bool:
        return self.viewers is None or self.viewers > 0


@dataclass
class PresenceCache:
    """Answers by (stream, region), each valid for ``ttl_s`` seconds of ``clock``. Pure.

    Bounded by ``max_entries``: when full, expired answers go first, then the oldest half.

    A change event (`invalidate`) also outranks every answer to a question asked before it:
    a refresh asked just before a viewer's presence was written can come back "0" after the
    change cleared the old answer, and stored as fresh it would stand in for the new viewer's
    region for a whole cache lifetime (and as `last_known` past it), skipping its forwards.
    `put` with ``asked_at`` (the clock when the question went out) refuses such an answer.

    An "unknown" answer (`Answer.unknown`) is kept too, for ``unknown_ttl_s`` only: kept, so
    that a busy outbox does not ask a rebuilding region again for every batch, and so that it
    replaces that region's older "no viewers", which must no longer stand in for it
    (`last_known`); briefly, so that a region whose presence is back is believed soon (a
    rebuild takes one presence TTL, 10 s; meanwhile every comment is forwarded to it)."""

    ttl_s: float
    clock: Callable[[], float] = time.monotonic
    _entries: dict[tuple[str, str], tuple[float, Answer]] = field(default_factory=dict)
    max_entries: int = 100_000
    # Kept past ``ttl_s`` up to this age, only for `last_known` (an unanswered question).
    stale_s: float | None = None
    # When each (stream, region) last changed; kept as long as an answer could be in flight.
    _changed: dict[tuple[str, str], float] = field(default_factory=dict)
    unknown_ttl_s: float = UNKNOWN_TTL_S

    def ttl_of(self, answer: Answer) -> float:
        """How long ``answer`` is valid."""
        return min(self.unknown_ttl_s, self.ttl_s) if answer.unknown else self.ttl_s

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
        if age > self.ttl_of(answer):
            if age > self._keep_s:
                del self._entries[(stream, region)]
            return None
        return answer, age

    def last_known(self, stream: str, region: str) -> Answer | None:
        """The last answer, even expired, while it is under ``stale_s`` old (and no change
        dropped it): what stands in for a question ``region`` did not answer."""
        hit = self._entries.get((stream, region))
        if hit is None or self.clock() - hit[0] > self._keep_s:
            return None
        return hit[1]

    @property
    def _keep_s(self) -> float:
        return self.ttl_s if self.stale_s is None else max(self.ttl_s, self.stale_s)

    def put(self, stream: str, answer: Answer, asked_at: float | None = None) -> None:
        if answer.viewers is None and not answer.unknown:
            return  # an unanswered question is asked again next time
        if asked_at is not None:
            changed = self._changed.get((stream, answer.region))
            if changed is not None and changed >= asked_at:
                return  # the region changed after the question: the answer is older news
        if len(self._entries) >= self.max_entries:
            self._evict()
        self._entries[(stream, answer.region)] = (self.clock(), answer)

    def invalidate(self, stream: str, region: str) -> None:
        self._entries.pop((stream, region), None)
        now = self.clock()
        if len(self._changed) >= self.max_entries:
            # A question is answered or given up within its timeout, far under ``ttl_s``.
            self._changed = {k: at for k, at in self._changed.items()
                             if now - at <= self.ttl_s}
            if len(self._changed) >= self.max_entries:
                self._changed.clear()  # then answers are kept as before, for at most a TTL
        self._changed[(stream, region)] = now

    def _evict(self) -> None:
        now = self.clock()
        for key, (at, _) in list(self._entries.items()):
            if now - at > self._keep_s:
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
        self.cache = PresenceCache(ttl_s=cache_ms / 1000,
                                   stale_s=STALE_FACTOR * cache_ms / 1000)
        self.timeout_s = timeout_ms / 1000
        self.metrics = metrics
        self.rejections = rejections
        self._refreshes = OwnedTasks(MAX_REFRESHES)
        self._refreshing: set[tuple[str, str]] = set()
        # Questions on their way, shared by every caller that needs the same answer; at most
        # one per (stream, region), each ending within the query timeout.
        self._asking: dict[tuple[str, str], asyncio.Future[Answer]] = {}
        self._batches: set[asyncio.Future[dict[str, Answer]]] = set()  # questions asked
        # Regions that had no responder for batched questions (older code), and since when.
        self._legacy: dict[str, float] = {}

    async def run(self) -> None:
        async with subscribed(self.nc, PRESENCE_CHANGE) as sub:
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self._listen(sub), name="presence changes")
                    tg.create_task(self._refreshes.watch(), name="presence refreshes")
            finally:
                await self._refreshes.close()

    async def _listen(self, sub: Subscription) -> None:
        async for change in received(sub, PresenceChange.decode, self.rejections):
            self.cache.invalidate(change.stream, change.region)

    async def viewers(self, stream: str, region: str) -> Answer:
        """``region``'s viewers of ``stream``, cached; never raises (no answer: None)."""
        hit = self.cache.get_aged(stream, region)
        if hit is not None:
            answer, age = hit
            # Refresh ahead: past half its life an answer is renewed in the background, so a
            # busy stream's forwards never wait a round trip for a fresh one.
            key = (stream, region)
            if age > self.cache.ttl_of(answer) / 2 and key not in self._refreshing:
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
        asked_at = self.cache.clock()
        asking = asyncio.ensure_future(self._ask(stream, region))
        self._asking[key] = asking
        asking.add_done_callback(lambda _: self._asking.pop(key, None))
        answer = await asyncio.shield(asking)  # a cancelled caller leaves it to the others
        self.cache.put(stream, answer, asked_at)
        return answer

    async def _refresh(self, stream: str, region: str) -> None:
        try:
            asked_at = self.cache.clock()
            self.cache.put(stream, await self._ask(stream, region), asked_at)
        finally:
            self._refreshing.discard((stream, region))

    async def viewers_of(self, streams: Iterable[str], region: str) -> dict[str, Answer]:
        """`viewers` of each of ``streams`` in ``region``, with one question for all that are
        neither cached nor already being asked; never raises."""
        out: dict[str, Answer] = {}
        renew: list[str] = []
        waiting: dict[str, asyncio.Future[Answer]] = {}
        new: list[str] = []
        for stream in dict.fromkeys(streams):
            hit = self.cache.get_aged(stream, region)
            if hit is not None:
                out[stream] = hit[0]
                if (hit[1] > self.cache.ttl_of(hit[0]) / 2
                        and (stream, region) not in self._refreshing):
                    renew.append(stream)
            elif (asking := self._asking.get((stream, region))) is not None:
                waiting[stream] = asking
            else:
                new.append(stream)
        if renew and self._refreshes.spawn(self._refresh_many(renew, region),
                                           name=f"presence refresh {region}"):
            self._refreshing.update((s, region) for s in renew)
        if new:
            waiting.update(self._ask_shared(new, region))
        for stream, asking in waiting.items():
            out[stream] = await asyncio.shield(asking)  # a cancelled caller leaves it
        return out

    def _ask_shared(self, streams: list[str], region: str
                    ) -> dict[str, asyncio.Future[Answer]]:
        """One question about ``streams``, each stream's answer a future others share."""
        loop = asyncio.get_running_loop()
        futures = {s: loop.create_future() for s in streams}
        for stream, future in futures.items():
            self._asking[(stream, region)] = future
            future.add_done_callback(self._forget((stream, region)))

        def settle(batch: asyncio.Future[dict[str, Answer]]) -> None:
            for stream, future in futures.items():
                if future.done():
                    continue
                if batch.cancelled():
                    future.cancel()
                elif (exc := batch.exception()) is not None:
                    future.set_exception(exc)
                else:
                    future.set_result(batch.result()[stream])
        batch = asyncio.ensure_future(self._ask_many(streams, region))
        # Owned here until it ends (within the query timeout), whoever still waits for it.
        self._batches.add(batch)
        batch.add_done_callback(self._batches.discard)
        batch.add_done_callback(settle)
        return futures

    def _forget(self, key: tuple[str, str]) -> Callable[[object], None]:
        def forget(_: object) -> None:
            self._asking.pop(key, None)
        return forget

    async def _refresh_many(self, streams: list[str], region: str) -> None:
        try:
            await self._ask_many(streams, region)
        finally:
            self._refreshing.difference_update((s, region) for s in streams)

    async def _ask_many(self, streams: list[str], region: str) -> dict[str, Answer]:
        """Asks, caches what was answered (an "unknown" too), and stands a recent "no
        viewers" in for what was not (the module says why)."""
        asked = [s for s in streams if STREAM_ID.fullmatch(s)]
        asked_at = self.cache.clock()
        answers = {s: Answer(region=region, viewers=None) for s in streams}
        for start in range(0, len(asked), MAX_PRESENCE_STREAMS):
            answers.update(await self._ask_batch(asked[start:start + MAX_PRESENCE_STREAMS],
                                                 region))
        for stream, answer in answers.items():
            if answer.viewers is not None or answer.unknown:
                self.cache.put(stream, answer, asked_at)
            elif (last := self.cache.last_known(stream, region)) is not None \
                    and not last.has_viewers:
                answers[stream] = last
        return answers

    async def _ask_batch(self, streams: list[str], region: str) -> dict[str, Answer]:
        if not streams:
            return {}
        legacy_since = self._legacy.get(region)
        if legacy_since is not None and time.monotonic() - legacy_since < LEGACY_RECHECK_S:
            return await self._ask_each(streams, region)
        self.metrics.presence_queries.inc()
        began = time.perf_counter()
        query = PresenceBatchQuery(tuple(streams))
        subject = presence_batch_query(region)
        unanswered = {s: Answer(region=region, viewers=None) for s in streams}
        try:
            reply = await self.nc.request(subject, query.encode(), timeout=self.timeout_s)
        except NoRespondersError:
            # Nobody there answers batches: older code, or a cut link (nobody answers
            # anything). One question about one stream tells them apart: only older code
            # answers it. Taken for older code, a cut link would have its region asked one
            # stream at a time for `LEGACY_RECHECK_S` once it is back (thousands of questions
            # while an outbox drains the backlog into many streams).
            first = await self._ask(streams[0], region)
            if first.viewers is None and not first.unknown:
                self.metrics.presence_query(region, time.perf_counter() - began,
                                            answered=False)
                return unanswered
            self._legacy[region] = time.monotonic()
            return {streams[0]: first, **await self._ask_each(streams[1:], region)}
        except driver_errors("nats"):
            self.metrics.presence_query(region, time.perf_counter() - began, answered=False)
            return unanswered
        self._legacy.pop(region, None)
        try:
            answer = PresenceBatchAnswer.decode(reply.data)
            if not answer.answers(region, query):
                raise HubMessageError("presence_batch_answer",
                                      f"{answer.region!r} answered of other streams")
        except HubMessageError as err:
            self.rejections(err, subject)
            self.metrics.presence_query(region, time.perf_counter() - began, answered=False)
            return unanswered
        self.metrics.presence_query(region, time.perf_counter() - began, answered=True,
                                    unknown=answer.viewers is None)
        if answer.viewers is None:
            return {s: Answer(region=region, viewers=None, unknown=True) for s in streams}
        return {s: Answer(region=region, viewers=answer.viewers[s]) for s in streams}

    async def _ask_each(self, streams: list[str], region: str) -> dict[str, Answer]:
        answers = await asyncio.gather(*(self._ask(s, region) for s in streams))
        return dict(zip(streams, answers, strict=True))

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
                                    answered=answer.viewers is not None or answer.unknown,
                                    unknown=answer.unknown)
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
        return Answer(region=region, viewers=answer.viewers, unknown=answer.viewers is None)


class PresenceResponder:
    """This region's side of presence over the hub."""

    def __init__(self, nc: Nats, *, region: str, presence: Presence,
                 rejections: Rejections) -> None:
        self.nc = nc
        self.region = region
        self.presence = presence
        self.rejections = rejections

    async def run(self) -> None:
        """Answers queries until cancelled; one gateway of the region answers each. Both
        kinds: batched, and one stream at a time (what older regions ask)."""
        single = await self.nc.subscribe(presence_query(self.region), queue=PRESENCE_QUEUE)
        batch = await self.nc.subscribe(presence_batch_query(self.region),
                                        queue=PRESENCE_QUEUE)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._serve(single, self._answer), name="presence answers")
                tg.create_task(self._serve(batch, self._answer_batch),
                               name="batched presence answers")
        finally:
            for sub in (single, batch):
                with contextlib.suppress(*driver_errors("nats")):  # a closed connection
                    await sub.unsubscribe()

    @staticmethod
    async def _serve(sub: Subscription, answer: Callable[[Msg], Awaitable[None]]) -> None:
        async for msg in sub.messages:
            await answer(msg)

    async def _answer_batch(self, msg: Msg) -> None:
        try:
            query = PresenceBatchQuery.decode(msg.data)
        except HubMessageError as err:
            self.rejections(err, msg.subject)
            return
        try:
            viewers: dict[str, int] | None = await self.presence.counts(query.streams)
        except PresenceUnavailable:
            viewers = None  # "unknown" for every stream asked (as in `_answer`)
        answer = PresenceBatchAnswer(region=self.region, viewers=viewers)
        with contextlib.suppress(*driver_errors("nats")):
            await msg.respond(answer.encode())

    async def _answer(self, msg: Msg) -> None:
        try:
            query = PresenceQuery.decode(msg.data)
        except HubMessageError as err:
            self.rejections(err, msg.subject)
            return
        try:
            viewers: int | None = await self.presence.count(query.stream)
        except PresenceUnavailable:
            # Redis is away, or rebuilding after a loss (PresenceUnknown): our counts may be
            # too low. "Unknown", said at once: the asker counts us as having viewers, as it
            # must, without waiting out its timeout (silence cost every forward to us that).
            viewers = None
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
