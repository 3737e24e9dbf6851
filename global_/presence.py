"""Read globally: which regions have viewers of a stream.

A posting region's forwarders ask every other region for its viewer count of a stream, all
at once over the hub, each answer bounded by ``presence_query_timeout_ms``. Answers are
cached per (stream, region) for ``presence_cache_ms``, and dropped early when that region
announces a presence change for the stream. A region that does not answer in time counts as
having viewers: a wasted forward is cheap, a lost comment is not.

Subjects: ``chorus.presence.q.<region>`` (request ``{"stream"}``, answered by one gateway of
that region) and ``chorus.presence.change`` (``{"region", "stream", "viewers"}``, every
gateway of every region listens).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as Nats
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

CHANGE_SUBJECT = "chorus.presence.change"


def query_subject(region: str) -> str:
    return f"chorus.presence.q.{region}"


@dataclass(frozen=True)
class Answer:
    region: str
    viewers: int | None   # None: the region did not answer (counted as having viewers)

    @property
    def has_viewers(self) -> bool:
        return self.viewers is None or self.viewers > 0


@dataclass
class PresenceCache:
    """Answers by (stream, region), each valid for ``ttl_s`` seconds of ``clock``. Pure."""

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
    """Asks the other regions (over the hub) and caches their answers."""

    def __init__(self, nc: Nats, *, regions: Iterable[str], cache_ms: int,
                 timeout_ms: int) -> None:
        self.nc = nc
        self.regions = tuple(regions)
        self.cache = PresenceCache(ttl_s=cache_ms / 1000)
        self.timeout_s = timeout_ms / 1000
        self.queries = 0  # requests sent, for /metrics and the single-region test
        self._refreshing: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def viewers(self, stream: str, region: str) -> Answer:
        hit = self.cache.get_aged(stream, region)
        if hit is not None:
            answer, age = hit
            # Refresh ahead: past half its life an answer is renewed in the background, so a
            # busy stream's forwards never wait a round trip for a fresh one.
            key = (stream, region)
            if age > self.cache.ttl_s / 2 and key not in self._refreshing:
                task = asyncio.create_task(self._refresh(stream, region))
                self._refreshing[key] = task
                task.add_done_callback(self._refreshed)
            return answer
        answer = await self._ask(stream, region)
        self.cache.put(stream, answer)
        return answer

    async def _refresh(self, stream: str, region: str) -> None:
        self.cache.put(stream, await self._ask(stream, region))

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        for key, running in list(self._refreshing.items()):
            if running is task:
                del self._refreshing[key]

    async def close(self) -> None:
        """Cancels background refreshes (the owner calls this on shutdown)."""
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def regions_with_viewers(self, stream: str) -> set[str]:
        answers = await asyncio.gather(*(self.viewers(stream, r) for r in self.regions))
        return {a.region for a in answers if a.has_viewers}

    async def _ask(self, stream: str, region: str) -> Answer:
        self.queries += 1
        try:
            reply = await self.nc.request(query_subject(region),
                                          json.dumps({"stream": stream}).encode(),
                                          timeout=self.timeout_s)
            doc: Any = json.loads(reply.data)
            return Answer(region=region, viewers=int(doc["viewers"]))
        except (NatsTimeout, NoRespondersError, NatsError, ValueError, KeyError, TypeError):
            return Answer(region=region, viewers=None)

    def on_change(self, data: bytes) -> None:
        """A ``chorus.presence.change`` event: forget what we knew of that region's stream."""
        try:
            doc = json.loads(data)
            self.cache.invalidate(str(doc["stream"]), str(doc["region"]))
        except (ValueError, KeyError, TypeError):
            return


def change_event(region: str, stream: str, viewers: int) -> bytes:
    return json.dumps({"region": region, "stream": stream, "viewers": viewers}).encode()
