"""A gateway's side of local fanout: one NATS subscription per stream it has viewers of.

JetStream re-publishes every stored comment on ``live.<region>.<stream>`` with its sequence
and its predecessor's; each gateway holding viewers of the stream receives it once and offers
it to each of its sessions (which order, deduplicate and repair gaps themselves). The fanout
also keeps the region's presence (its per-stream viewer counts, reported to Redis), tells
viewers the count, and takes the region's share of the live feed: one gateway of the region
per comment, through one queue group, writes it to the Redis replay cache and hands it to
whatever else must see each comment once per region (`share_live`: the thread index).

Push-tier entries reach the sessions in batches: a stream's entries are gathered and flushed
at most once per tick (at once when the stream is quiet), and a session that is in step takes
the whole batch as one frame encoded once for every viewer (region/broadcast.py).

A hot stream's partitions re-publish on the same live subject (region/log.py `Entry.part`,
from the ``Nats-Stream`` header). Their entries' sequences are the partitions', never a
cursor: they are counted in the stream's rate like any other, but never written to the
replay cache, never batched, and reach the sessions out of the chain (`Session.offer_loose`;
a hot stream's feed decides which, region/tiers_feed.py).

Viewer counts (the ``viewers`` frame): once every `COUNTS_INTERVAL_S` the gateway reports its
counts if they changed, and for each stream it has viewers of reads the region's count
(presence) and the other regions' (`RegionCounts`: the global plane's presence directory,
cached), once per stream, and pushes the frame to the stream's viewers when it changed. A
viewer that comes gets the last one at once (`greet`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from chorus.config import Limits
from chorus.metrics import Metrics
from chorus.model import Comment
from chorus.names import LIVE_SHARE_QUEUE, hot_part_of, live_subject, live_subjects
from region.broadcast import StreamBatch, flush_at, stream_tick
from region.log import Entry
from region.presence import Presence, PresenceUnavailable, PresenceUnknown
from region.protocol import ServerFrame, Viewers
from region.replay import CacheUnavailable, ReplayCache
from region.session import Session
from region.tiers import Reading, Tier
from region.tiers_feed import TierFeeds
from region.writer import MAX_BATCH

log = logging.getLogger(__name__)


class ViewerHooks(Protocol):
    """What the global plane wants to hear of this gateway's viewers."""

    async def first_local_viewer(self, stream: str, region_had_viewers: bool) -> None: ...

    async def last_local_viewer(self, stream: str) -> None: ...


class ViewerHookChain:
    """Several `ViewerHooks` told in turn (the global plane, the reaction feed)."""

    def __init__(self, *hooks: ViewerHooks) -> None:
        self.hooks = hooks

    async def first_local_viewer(self, stream: str, region_had_viewers: bool) -> None:
        for hook in self.hooks:
            await hook.first_local_viewer(stream, region_had_viewers)

    async def last_local_viewer(self, stream: str) -> None:
        for hook in self.hooks:
            await hook.last_local_viewer(stream)


class RegionCounts(Protocol):
    """The other regions' viewers of a stream (global_/counts.py)."""

    async def counts_of(self, streams: Sequence[str]) -> Mapping[str, Mapping[str, int]]:
        """For each of ``streams``, each other region's count as last heard (a region not
        heard from is left out). Never raises."""
        ...


class OwnItems(Protocol):
    """The region's sampling stage's subscriptions on this gateway (region/stage_nats.py)."""

    async def own_ready(self, stream: str, user: str) -> None:
        """Returns once the stage's items for ``user`` alone reach this gateway (at once
        when it follows ``stream`` through no stage). Never raises."""
        ...


COUNTS_INTERVAL_S = 1.0   # how often viewer counts are reported (when changed) and told
COUNTS_AT_ONCE = 100      # streams whose counts are read at once


def entry_of(msg: Msg) -> Entry:
    """The log entry a re-published message carries, with the log's part it comes from
    (``Nats-Stream``: the chained log, or a hot partition; none: the chained log). ValueError
    when it carries none, or names a stream that is no part of the log."""
    headers = msg.headers or {}
    try:
        seq = int(headers["Nats-Sequence"])
        prev = int(headers.get("Nats-Last-Sequence", "0"))
    except (KeyError, ValueError) as exc:
        raise ValueError(f"not a re-published log entry: {exc}") from None
    name = headers.get("Nats-Stream")
    part = hot_part_of(name) if name is not None else 0
    return Entry(seq=seq, prev=prev, comment=Comment.decode(msg.data), part=part)


class Fanout:
    def __init__(self, nc: Nats, *, region: str, gateway: str, limits: Limits,
                 presence: Presence, cache: ReplayCache, hooks: ViewerHooks,
                 metrics: Metrics, others: RegionCounts | None = None,
                 feeds: TierFeeds | None = None, stage: OwnItems | None = None) -> None:
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
        self._quiet: set[str] = set()   # streams the region's sampling stage delivers here
        self._joining: dict[str, asyncio.Lock] = {}
        self._leases: dict[str, dict[str, float]] = {}   # long-poll users between polls
        self._reported: set[str] = set()
        self._cache_buffer: list[Entry] = []
        self._cache_filled = asyncio.Event()   # the buffer holds something to write
        self._cache_sub: Subscription | None = None
        self._sharers: list[Callable[[Entry], None]] = []   # `share_live`
        # Viewer counts: ``others`` None counts this region alone.
        self.others = others
        self._told: dict[str, Viewers] = {}        # the last counts each stream's viewers got
        self._reported_counts: dict[str, int] = {}
        self._count_now = asyncio.Event()
        # Hot streams (region/tiers_feed.py): None delivers every stream in the push tier.
        self.feeds = feeds
        # Per stream, the second and how many partition entries went out in push in it
        # (`_loose_shown`); forgotten with the stream's last session.
        self._loose_second: dict[str, tuple[int, int]] = {}
        self.stage = stage
        # The push tier's batches (region/broadcast.py): each stream's waiting entries, the
        # loop's handle of its next flush, and when it last flushed (loop time).
        self._batches: dict[str, StreamBatch] = {}
        self._flushes: dict[str, asyncio.Handle] = {}
        self._flushed_at: dict[str, float] = {}

    # -- sessions ----------------------------------------------------------------------------

    async def join(self, session: Session) -> None:
        """Registers a session; returns once live entries of its stream reach it."""
        stream = session.stream
        lock = self._joining.setdefault(stream, asyncio.Lock())
        async with lock:
            first = not self.sessions.get(stream) and not self._leases.get(stream)
            self.sessions.setdefault(stream, set()).add(session)
            if self.feeds is not None:
                self.feeds.joined(session)
            if stream not in self._subs and stream not in self._quiet:
                self._subs[stream] = await self.nc.subscribe(
                    live_subject(self.region, stream), cb=self._on_live)
                # The server has the subscription once flush returns: from here on nothing
                # published to the stream can pass this gateway by.
                await self.nc.flush()
            if first:
                await self._first_viewer(stream)
        if self.stage is not None and session.user is not None:
            # A stream followed through the region's sampling stage hands its authors their
            # comments on a subscription of each author's own, made when a session of theirs
            # comes: up at the server before the session starts, or a comment posted at once
            # passes this gateway by (and shows on resume only). Outside the stream's lock,
            # which the stage's own rounds take (`set_live`).
            await self.stage.own_ready(stream, session.user)

    async def leave(self, session: Session) -> None:
        stream = session.stream
        members = self.sessions.get(stream)
        if members is None:
            return
        members.discard(session)
        if self.feeds is not None:
            self.feeds.left(session)
        if not members and not self._leases.get(stream):
            del self.sessions[stream]
            self._told.pop(stream, None)
            self._loose_second.pop(stream, None)
            self._drop_batch(stream)
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
        self._count_now.set()  # its viewers get their counts now, not at the next round

    def lease(self, stream: str, user: str) -> None:
        """A long-poll viewer counts as present for ``presence_ttl_s`` after each poll."""
        self._leases.setdefault(stream, {})[user] = (time.monotonic()
                                                      + self.limits.presence_ttl_s)

    def counts(self) -> dict[str, int]:
        """Viewers per stream on this gateway: distinct users, so that one user's extra
        connections (tabs, devices, a script opening hundreds) count once. Across gateways
        and regions the counts are summed: a user watching through two gateways counts
        twice, which the per-user connection cap bounds (docs/security.md)."""
        now = time.monotonic()
        out: dict[str, int] = {}
        for stream, leases in list(self._leases.items()):
            for key, until in list(leases.items()):
                if until < now:
                    del leases[key]
            if not leases:
                del self._leases[stream]
        for stream in set(self.sessions) | set(self._leases):
            users = {s.user for s in self.sessions.get(stream, ())}
            users.update(self._leases.get(stream, {}))
            count = len(users)
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
        feeds = self.feeds
        if feeds is not None:
            if entry.comment.stream in self._batches and feeds.tier(
                    entry.comment.stream) != "push":
                # The stream just left the push tier: what it had waiting goes out before
                # the feed's first item, or every viewer would see a gap and read the log.
                self._flush(entry.comment.stream)
            if feeds.take(entry):
                # A hot stream's feed delivers it itself (region/tiers_feed.py).
                self.metrics.entries_delivered.inc()
                return
        if entry.part:
            self._loose(entry)
        else:
            self._batch(entry)
        self.metrics.entries_delivered.inc()

    def _loose(self, entry: Entry) -> None:
        """A hot partition's entry of a stream this gateway delivers in push (it has not
        heard of the stream's new tier yet, has just left it, or lost the regions' word on it
        for a while): out of the chain, never in a batch (whose frame's cursor would be the
        partition's sequence). The stream's waiting batch goes first, so viewers get the
        comments in the order this gateway heard them. Such entries exist only because the
        regions put the stream above push, where a viewer gets at most
        ``sampled_per_viewer_per_s`` a second: so every session gets no more of them here
        (the first of each second), and an author its own. Each goes through every viewer's
        queue, not a shared frame: a flood of them pushed whole (a gateway that missed the
        tiers' notices while frozen, then read its backlog) would cut every viewer."""
        stream = entry.comment.stream
        sessions = self.sessions.get(stream)
        if not sessions:
            return
        self._flush(stream)
        if self._loose_shown(stream):
            for session in tuple(sessions):
                session.offer_loose(entry)
            return
        for session in tuple(sessions):
            if session.user == entry.comment.user:
                session.offer_loose(entry)

    def _loose_shown(self, stream: str) -> bool:
        """Whether this second still has room for a partition's entry of ``stream`` in push."""
        if self.feeds is None:
            return True
        second = int(self.feeds.clock())
        at, shown = self._loose_second.get(stream, (second, 0))
        if at != second:
            shown = 0
        if shown >= self.feeds.tiers.sampled_per_viewer_per_s:
            return False
        self._loose_second[stream] = (second, shown + 1)
        return True

    def _batch(self, entry: Entry) -> None:
        """Adds a push-tier entry to its stream's batch, and schedules the batch's flush when
        it is the first: at once for a quiet stream, a tick after the last flush for a busy
        one (`flush_at`). An entry that does not follow the batch (or finds it full) flushes
        it first."""
        stream = entry.comment.stream
        if not self.sessions.get(stream):
            return
        batch = self._batches.get(stream)
        if batch is not None:
            if batch.add(entry):
                return
            self._flush(stream)
        batch = self._batches[stream] = StreamBatch(MAX_BATCH)
        batch.add(entry)
        loop = asyncio.get_running_loop()
        now = loop.time()
        at = flush_at(now, self._flushed_at.get(stream),
                      stream_tick(self.limits.tick_ms / 1000, len(self.sessions[stream])))
        self._flushes[stream] = (loop.call_soon(self._flush, stream) if at <= now
                                 else loop.call_at(at, self._flush, stream))

    def _flush(self, stream: str) -> None:
        """Offers the stream's batch to each of its sessions; those in step take it as one
        shared frame, and their deliveries are observed once for all of them."""
        handle = self._flushes.pop(stream, None)
        if handle is not None:
            handle.cancel()
        batch = self._batches.pop(stream, None)
        if batch is None:
            return
        self._flushed_at[stream] = asyncio.get_running_loop().time()
        shared = 0
        for session in tuple(self.sessions.get(stream, ())):
            shared += session.offer_batch(batch)
        if shared:
            self.metrics.comments_written(batch.comments, viewers=shared)

    def _drop_batch(self, stream: str) -> None:
        """The stream's last viewer here left: its waiting entries go nowhere."""
        handle = self._flushes.pop(stream, None)
        if handle is not None:
            handle.cancel()
        self._batches.pop(stream, None)
        self._flushed_at.pop(stream, None)

    # -- tiers: region/tiers.py's `TierHost`, for the agreement (global_/tiers.py) ------------

    def followed(self) -> dict[str, float]:
        """Streams with viewers here, with their comments per second."""
        return self.feeds.followed() if self.feeds is not None else {}

    def apply_tier(self, stream: str, tier: Tier, *, keeper: bool,
                   reading: Reading | None) -> None:
        if self.feeds is not None:
            self.feeds.apply(stream, tier, keeper=keeper, reading=reading)

    async def set_live(self, stream: str, on: bool) -> None:
        """Whether this gateway reads ``stream``'s live feed: not while the region's sampling
        stage delivers it here (region/stage_nats.py), so that following a hot stream costs
        what the stage sends, not the stream's rate."""
        async with self._joining.setdefault(stream, asyncio.Lock()):
            if not on:
                self._quiet.add(stream)
                sub = self._subs.pop(stream, None)
                if sub is not None:
                    with contextlib.suppress(NatsError):
                        await sub.unsubscribe()
                return
            self._quiet.discard(stream)
            if self.sessions.get(stream) and stream not in self._subs:
                self._subs[stream] = await self.nc.subscribe(
                    live_subject(self.region, stream), cb=self._on_live)
                await self.nc.flush()

    def share_live(self, take: Callable[[Entry], None]) -> None:
        """Hands ``take`` each comment of the region's share of the live feed that reaches
        this gateway (every comment of the region, at one of its gateways), decoded once for
        the replay cache and it: one delivery per comment to the region's gateways instead of
        one per consumer. ``take`` must not block or raise, and is handed a hot partition's
        entries too (``part`` > 0: a sequence of the partition's). Call before `run`."""
        self._sharers.append(take)

    async def _on_cache(self, msg: Msg) -> None:
        try:
            entry = entry_of(msg)
        except ValueError:
            return
        if not entry.part:
            # The replay cache is the chained log's (a resume reads it by sequence): a
            # partition's entry, whose sequence is the partition's, is never replayed.
            self._cache_buffer.append(entry)
            self._cache_filled.set()
        for take in self._sharers:
            take(entry)

    # -- background work (owned by the gateway's cleanup context) ------------------------------

    async def run(self) -> None:
        self._cache_sub = await self.nc.subscribe(live_subjects(self.region),
                                                  queue=LIVE_SHARE_QUEUE,
                                                  cb=self._on_cache)
        try:
            await asyncio.gather(self._cache_loop(), self._presence_loop(),
                                 self._counts_loop())
        finally:
            for stream in tuple(self._flushes):
                self._drop_batch(stream)
            with contextlib.suppress(NatsError):
                await self._cache_sub.unsubscribe()

    async def _cache_loop(self) -> None:
        tick_s = self.limits.tick_ms / 1000
        while True:
            # Asleep while the region is quiet (no wake-up per tick); from the first entry on,
            # one tick gathers what else comes into one write.
            await self._cache_filled.wait()
            await asyncio.sleep(tick_s)
            self._cache_filled.clear()
            batch, self._cache_buffer = self._cache_buffer, []
            try:
                await self.cache.add(batch)
            except CacheUnavailable as exc:
                # Readers find the hole through the prev chain and read the log instead.
                log.warning("replay cache write failed (%s entries): %s", len(batch), exc)

    async def _presence_loop(self) -> None:
        while True:
            await self.report_presence()
            await asyncio.sleep(self.limits.presence_heartbeat_s)

    async def report_presence(self) -> None:
        counts = self.counts()
        gone = self._reported - set(counts)
        try:
            await self.presence.report(self.gateway, counts, gone)
            self._reported = set(counts)
            self._reported_counts = counts
        except PresenceUnavailable as exc:
            log.warning("presence report failed: %s", exc)

    # -- viewer counts -------------------------------------------------------------------------

    async def _counts_loop(self) -> None:
        while True:
            # Pacing (or a stream's first viewer here), not synchronisation.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._count_now.wait(), COUNTS_INTERVAL_S)
            self._count_now.clear()
            if self.counts() != self._reported_counts:
                await self.report_presence()  # others read it within a second, not three
            await self._tell_viewers(tuple(self.sessions))

    async def _tell_viewers(self, streams: Sequence[str]) -> None:
        """Each stream's counts, read once for all its viewers here (and for up to
        `COUNTS_AT_ONCE` streams in one read of the region's presence and one question to
        each other region); pushed when changed."""
        for at in range(0, len(streams), COUNTS_AT_ONCE):
            chunk = streams[at:at + COUNTS_AT_ONCE]
            try:
                counted = await self.viewer_counts_of(chunk)
            except PresenceUnavailable:
                continue  # told again once the region's presence answers
            for stream, viewers in counted.items():
                if stream in self.sessions and self._told.get(stream) != viewers:
                    self._told[stream] = viewers
                    self.broadcast(stream, viewers)

    async def viewer_counts(self, stream: str) -> Viewers:
        """``stream``'s viewers here and in every region. Raises `PresenceUnavailable` when
        this region's presence does not answer."""
        return (await self.viewer_counts_of([stream]))[stream]

    async def viewer_counts_of(self, streams: Sequence[str]) -> dict[str, Viewers]:
        """`viewer_counts` of each of ``streams``."""
        if self.others is None:
            return {s: Viewers(count=n) for s, n in (await self._region_counts(streams)).items()}
        local, others = await asyncio.gather(self._region_counts(streams),
                                             self.others.counts_of(streams))
        out = {}
        for stream in streams:
            regions = {**others.get(stream, {}), self.region: local[stream]}
            out[stream] = Viewers(count=local[stream], total=sum(regions.values()),
                                  regions=tuple(sorted(regions.items())))
        return out

    async def _region_counts(self, streams: Sequence[str]) -> dict[str, int]:
        try:
            return await self.presence.counts(streams)
        except PresenceUnknown:
            # Presence is being rebuilt after a loss (for one presence TTL): what the viewers
            # were last told stands, or at least this gateway's own viewers.
            own = self.counts()
            return {s: told.count if (told := self._told.get(s)) is not None
                    else own.get(s, 0) for s in streams}

    def greet(self, session: Session) -> None:
        """A viewer just came (or came back): it gets the stream's counts at once, or with
        the next round when none are known here yet."""
        told = self._told.get(session.stream)
        if told is not None:
            session.push(told)
        else:
            self._count_now.set()

    def broadcast(self, stream: str, frame: ServerFrame) -> None:
        """Pushes ``frame`` to every viewer of ``stream`` on this gateway."""
        for session in tuple(self.sessions.get(stream, ())):
            session.push(frame)

    def streams(self) -> set[str]:
        """The streams this gateway has viewers of (connected, or long-polling)."""
        return set(self.sessions) | set(self._leases)

    async def withdraw(self) -> None:
        with contextlib.suppress(PresenceUnavailable):
            await self.presence.withdraw(self.gateway, self._reported | set(self.counts()))
