"""A gateway's side of local fanout: one NATS subscription per stream it has viewers of.

JetStream re-publishes every stored comment on ``live.<region>.<stream>`` with its sequence
and its predecessor's; each gateway holding viewers of the stream receives it once and offers
it to each of its sessions (which order, deduplicate and repair gaps themselves). The fanout
also keeps the region's presence (its per-stream viewer counts, reported to Redis), tells
viewers the count, and feeds the Redis replay cache: one gateway of the region per message,
through a queue group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from chorus.config import Limits
from chorus.metrics import Metrics
from chorus.model import Comment
from chorus.names import REPLAY_CACHE_QUEUE, live_subject, live_subjects
from region.log import Entry
from region.presence import Presence, PresenceUnavailable
from region.protocol import Viewers
from region.replay import CacheUnavailable, ReplayCache
from region.session import Session

log = logging.getLogger(__name__)


class ViewerHooks(Protocol):
    """What the global plane wants to hear of this gateway's viewers."""

    async def first_local_viewer(self, stream: str, region_had_viewers: bool) -> None: ...

    async def last_local_viewer(self, stream: str) -> None: ...


def entry_of(msg: Msg) -> Entry:
    """The log entry a re-published message carries; ValueError when it carries none."""
    headers = msg.headers or {}
    try:
        seq = int(headers["Nats-Sequence"])
        prev = int(headers.get("Nats-Last-Sequence", "0"))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not a re-published log entry: {exc}") from None
    return Entry(seq=seq, prev=prev, comment=Comment.decode(msg.data))


class Fanout:
    def __init__(self, nc: Nats, *, region: str, gateway: str, limits: Limits,
                 presence: Presence, cache: ReplayCache, hooks: ViewerHooks,
                 metrics: Metrics) -> None:
        self.nc = nc
        self.region = region
        self.gateway = gateway
        self.limits = limits
        self.presence = presence
        self.cache = cache
        self.hooks = hooks
        self.metrics = metrics
        self.sessions: dict[str, set[Session]] = {}
        self._subs: dict[str, Subscription] = {}
        self._joining: dict[str, asyncio.Lock] = {}
        self._leases: dict[str, dict[int, float]] = {}   # long-poll viewers between polls
        self._reported: set[str] = set()
        self._cache_buffer: list[Entry] = []
        self._cache_sub: Subscription | None = None

    # -- sessions ----------------------------------------------------------------------------

    async def join(self, session: Session) -> None:
        """Registers a session; returns once live entries of its stream reach it."""
        stream = session.stream
        lock = self._joining.setdefault(stream, asyncio.Lock())
        async with lock:
            first = not self.sessions.get(stream) and not self._leases.get(stream)
            self.sessions.setdefault(stream, set()).add(session)
            if stream not in self._subs:
                self._subs[stream] = await self.nc.subscribe(
                    live_subject(self.region, stream), cb=self._on_live)
                # The server has the subscription once flush returns: from here on nothing
                # published to the stream can pass this gateway by.
                await self.nc.flush()
            if first:
                await self._first_viewer(stream)

    async def leave(self, session: Session) -> None:
        stream = session.stream
        members = self.sessions.get(stream)
        if members is None:
            return
        members.discard(session)
        if not members and not self._leases.get(stream):
            del self.sessions[stream]
            sub = self._subs.pop(stream, None)
            if sub is not None:
                with contextlib.suppress(NatsError):
                    await sub.unsubscribe()
            await self.report_presence()
            await self.hooks.last_local_viewer(stream)

    async def _first_viewer(self, stream: str) -> None:
        """Presence is written at once (not at the next heartbeat) and then announced, so
        that other regions start forwarding before this viewer can miss anything."""
        try:
            region_had_viewers = await self.presence.count(stream) > 0
        except PresenceUnavailable:
            region_had_viewers = False  # a needless bootstrap is harmless; a missed one is not
        await self.report_presence()
        await self.hooks.first_local_viewer(stream, region_had_viewers)

    def lease(self, stream: str, key: int) -> None:
        """A long-poll viewer counts as present for ``presence_ttl_s`` after each poll."""
        self._leases.setdefault(stream, {})[key] = (time.monotonic()
                                                     + self.limits.presence_ttl_s)

    def counts(self) -> dict[str, int]:
        now = time.monotonic()
        out: dict[str, int] = {}
        for stream, leases in list(self._leases.items()):
            for key, until in list(leases.items()):
                if until < now:
                    del leases[key]
            if not leases:
                del self._leases[stream]
        for stream in set(self.sessions) | set(self._leases):
            count = len(self.sessions.get(stream, ())) + len(self._leases.get(stream, {}))
            if count:
                out[stream] = count
        return out

    # -- live entries --------------------------------------------------------------------------

    async def _on_live(self, msg: Msg) -> None:
        try:
            entry = entry_of(msg)
        except ValueError as exc:
            log.warning("dropping a message on %s: %s", msg.subject, exc)
            return
        for session in tuple(self.sessions.get(entry.comment.stream, ())):
            session.offer(entry)
        self.metrics.entries_delivered.inc()

    async def _on_cache(self, msg: Msg) -> None:
        try:
            self._cache_buffer.append(entry_of(msg))
        except ValueError:
            return

    # -- background work (owned by the gateway's cleanup context) ------------------------------

    async def run(self) -> None:
        self._cache_sub = await self.nc.subscribe(live_subjects(self.region),
                                                  queue=REPLAY_CACHE_QUEUE,
                                                  cb=self._on_cache)
        try:
            await asyncio.gather(self._cache_loop(), self._presence_loop())
        finally:
            with contextlib.suppress(NatsError):
                await self._cache_sub.unsubscribe()

    async def _cache_loop(self) -> None:
        tick_s = self.limits.tick_ms / 1000
        while True:
            await asyncio.sleep(tick_s)
            if not self._cache_buffer:
                continue
            batch, self._cache_buffer = self._cache_buffer, []
            try:
                await self.cache.add(batch)
            except CacheUnavailable as exc:
                # Readers find the hole through the prev chain and read the log instead.
                log.warning("replay cache write failed (%s entries): %s", len(batch), exc)

    async def _presence_loop(self) -> None:
        while True:
            await self.report_presence(tell=True)
            await asyncio.sleep(self.limits.presence_heartbeat_s)

    async def report_presence(self, *, tell: bool = False) -> None:
        counts = self.counts()
        gone = self._reported - set(counts)
        try:
            await self.presence.report(self.gateway, counts, gone)
            self._reported = set(counts)
        except PresenceUnavailable as exc:
            log.warning("presence report failed: %s", exc)
            return
        if tell:
            await self._tell_viewers(tuple(counts))

    async def _tell_viewers(self, streams: Sequence[str]) -> None:
        for stream in streams:
            members = self.sessions.get(stream)
            if not members:
                continue
            try:
                count = await self.presence.count(stream)
            except PresenceUnavailable:
                continue
            for session in tuple(members):
                session.push(Viewers(count=count))

    async def withdraw(self) -> None:
        with contextlib.suppress(PresenceUnavailable):
            await self.presence.withdraw(self.gateway, self._reported | set(self.counts()))
