"""Showing reactions: a gateway's ``reactions`` frames, its answers about totals and timelines.

A gateway follows the reactions of the streams it has viewers of (it is told by the fanout,
region/fanout.py `ViewerHooks`): it subscribes to the stream's live aggregates in its region
(every origin's, as they are stored in the region's reaction log) and keeps them on a
`Board`. When it starts following a stream it reads every region's running total once: the
newest aggregate of each origin in its own log and, over the hub, each other region's own
(`RemoteReactions`), since while this region had no viewers the others did not forward to it.

Frames go out once a second, at `FRAME_PHASE_S` past each second of the wall clock: every
gateway of every region sends at the same moment, when the aggregates of the second that
ended just before have reached every region over normal links, so viewers in every region
see the same totals at the same time. A frame carries what arrived since the previous one
and the totals; a stream with nothing new gets none. A viewer that comes (or comes back) gets
the totals at once (`greet`). The frame is built once per stream per gateway and pushed to
each viewer: no per-viewer work beyond the push.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from chorus.drivers import driver_errors
from chorus.metrics import Metrics
from chorus.names import reaction_live_subject
from region.protocol import Reactions, ServerFrame
from region.reactions import (
    Aggregate,
    Board,
    Bucket,
    Counts,
    ReactionLog,
    ReactionsUnavailable,
    RemoteReactions,
    View,
    Window,
    bucketed,
    highest,
    merged,
    summed,
)

log = logging.getLogger(__name__)

FRAME_PHASE_S = 0.6          # frames leave at this fraction past each wall-clock second
BOOTSTRAP_WORKERS = 8        # streams whose totals are read at once
MAX_BOOTSTRAPS_WAITING = 10_000  # beyond, a new stream shows what arrives live, no history


def frame_of(view: View) -> Reactions:
    return Reactions(second=view.second, counts=tuple(sorted(view.counts.items())),
                     totals=tuple(sorted(view.totals.items())))


def until_phase(now: float, phase: float = FRAME_PHASE_S) -> float:
    """Seconds from ``now`` (wall clock) to the next frame time. Pure."""
    nxt = math.floor(now) + phase
    if nxt <= now:
        nxt += 1
    return nxt - now


@dataclass(frozen=True)
class TimelinePage:
    """Buckets over every region; ``partial`` names regions that did not answer, whose part
    comes from this region's copy of their aggregates (complete only for the time this region
    had viewers of the stream)."""

    buckets: list[Bucket]
    partial: tuple[str, ...]


def origin_totals(*sources: Mapping[str, Counts | None]) -> dict[str, Counts]:
    """Each origin region's running total from ``sources`` (this region's log, the other
    regions' answers; None: not read), the highest count per kind where two sources give the
    same origin (one may lag: a copy forwarded here before the last aggregates). Pure."""
    out: dict[str, Counts] = {}
    for source in sources:
        for origin, total in source.items():
            if total is not None:
                out[origin] = highest(out.get(origin, {}), total)
    return out


def timeline_page(own: list[Bucket], answers: Mapping[str, list[Bucket] | None],
                  copies: Mapping[str, list[Bucket]]) -> TimelinePage:
    """The page from this region's own buckets, the other regions' ``answers`` (None: no
    answer) and, for those that did not answer, the ``copies`` of their aggregates read
    here. Pure."""
    pages = [own]
    partial = []
    for origin, buckets in answers.items():
        if buckets is None:
            partial.append(origin)
            buckets = copies.get(origin, [])
        pages.append(buckets)
    return TimelinePage(buckets=merged(pages), partial=tuple(sorted(partial)))


class ReactionFeed:
    """``broadcast(stream, frame)`` pushes a frame to every viewer of the stream on this
    gateway; ``watched()`` is the streams it has viewers of (both the fanout's)."""

    def __init__(self, nc: Nats, *, region: str, regions: Collection[str], log: ReactionLog,
                 remote: RemoteReactions, broadcast: Callable[[str, ServerFrame], None],
                 watched: Callable[[], Collection[str]], metrics: Metrics,
                 board: Board | None = None) -> None:
        self.nc = nc
        self.region = region
        self.regions = tuple(regions)
        self.log = log
        self.remote = remote
        self.broadcast = broadcast
        self.watched = watched
        self.metrics = metrics
        self.board = board or Board()
        self._subs: dict[str, Subscription] = {}
        self._bootstraps: asyncio.Queue[str] = asyncio.Queue(MAX_BOOTSTRAPS_WAITING)

    # -- the fanout's ViewerHooks -------------------------------------------------------------

    async def first_local_viewer(self, stream: str, region_had_viewers: bool) -> None:
        """Starts following ``stream``: live aggregates from now on, totals read once."""
        if stream in self.board or not self.board.open(stream):
            return
        with contextlib.suppress(*driver_errors("nats")):
            # A NATS outage: the stream shows totals, and live frames once it resubscribes
            # (nats-py restores subscriptions after a reconnect).
            self._subs[stream] = await self.nc.subscribe(
                reaction_live_subject(self.region, stream), cb=self._on_live)
        try:
            self._bootstraps.put_nowait(stream)
        except asyncio.QueueFull:
            log.warning("reaction totals of %s not read: %d streams wait (the limit); it "
                        "shows what arrives from now on", stream, MAX_BOOTSTRAPS_WAITING)
            self.board.mark_ready(stream)

    async def last_local_viewer(self, stream: str) -> None:
        await self._forget(stream)

    async def _forget(self, stream: str) -> None:
        self.board.close(stream)
        sub = self._subs.pop(stream, None)
        if sub is not None:
            with contextlib.suppress(*driver_errors("nats")):
                await sub.unsubscribe()

    def greet(self, stream: str, push: Callable[[ServerFrame], None]) -> None:
        """A viewer just came (or came back): it gets the totals at once, if there are any
        yet (else with the stream's first frame)."""
        view = self.board.view(stream)
        if view is not None and view.totals:
            push(frame_of(view))

    # -- live ---------------------------------------------------------------------------------

    async def _on_live(self, msg: Msg) -> None:
        try:
            aggregate = Aggregate.decode(msg.data)
        except ValueError as exc:
            self.metrics.reaction_aggregates_bad()
            log.warning("dropping a message on %s: %s", msg.subject, exc)
            return
        self.board.apply(aggregate)

    async def run(self) -> None:
        """Sends the frames and reads new streams' totals until cancelled (owned by the
        gateway)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._frames(), name="reaction frames")
            for i in range(BOOTSTRAP_WORKERS):
                tg.create_task(self._bootstrap_worker(), name=f"reaction totals {i}")

    async def _frames(self) -> None:
        while True:
            # A deadline on the wall clock, not synchronisation.
            await asyncio.sleep(until_phase(time.time()))
            watched = set(self.watched())
            for stream in self.board.streams():
                if stream not in watched:  # a long-poll lease ran out: no one said goodbye
                    await self._forget(stream)
                    continue
                view = self.board.take(stream)
                if view is not None:
                    self.broadcast(stream, frame_of(view))

    async def _bootstrap_worker(self) -> None:
        while True:
            stream = await self._bootstraps.get()
            if stream not in self.board:
                continue  # its viewers left meanwhile
            local, remote = await asyncio.gather(self._local_totals(stream),
                                                 self.remote.totals(stream))
            for origin, total in origin_totals(local, remote).items():
                self.board.seed(stream, origin, total)
            self.board.mark_ready(stream)
            view = self.board.view(stream)
            if view is not None and view.totals:
                self.broadcast(stream, frame_of(view))

    async def _local_totals(self, stream: str) -> dict[str, Counts | None]:
        """Every origin's newest aggregate of ``stream`` in this region's log: this region's
        own, and the others' as last forwarded here."""
        async def last(origin: str) -> Counts | None:
            try:
                stored = await self.log.last(origin, stream)
            except ReactionsUnavailable as exc:
                log.warning("reaction totals of %s from %s not read here: %s", stream, origin,
                            exc)
                return None
            return stored.aggregate.total if stored is not None else None

        totals = await asyncio.gather(*(last(origin) for origin in self.regions))
        return dict(zip(self.regions, totals, strict=True))

    # -- answers for the REST API -------------------------------------------------------------

    async def totals(self, stream: str) -> dict[str, int]:
        """The stream's totals over every region: as shown to its viewers here, or read
        now. Raises `ReactionsUnavailable` when this region's own log does not answer."""
        if self.board.ready(stream):
            return self.board.totals(stream)
        own = await self.log.last(self.region, stream)   # raises: no figure at all then
        local, remote = await asyncio.gather(self._local_totals(stream),
                                             self.remote.totals(stream))
        mine = {self.region: own.aggregate.total if own else {}}
        return summed(origin_totals(mine, local, remote).values())

    async def timeline(self, stream: str, resolution_s: int, window: Window) -> TimelinePage:
        """Every region's reactions to ``stream`` over ``window``. Raises
        `ReactionsUnavailable` when this region's own log does not answer."""
        span = window.before_s - window.after_s

        async def read(origin: str) -> list[Bucket]:
            aggregates = await self.log.read(origin, stream, window.after_s, window.before_s,
                                             limit=span)
            return bucketed(aggregates, resolution_s, window.after_s, window.before_s)

        own, remote = await asyncio.gather(read(self.region),
                                           self.remote.timeline(stream, resolution_s, window))
        copies: dict[str, list[Bucket]] = {}
        for origin, buckets in remote.items():
            if buckets is None:
                with contextlib.suppress(ReactionsUnavailable):  # then none: partial says so
                    copies[origin] = await read(origin)
        return timeline_page(own, remote, copies)
