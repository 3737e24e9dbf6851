"""A gateway's delivery of its hot streams: the sampled and snapshot tiers on the live path.

The fanout (region/fanout.py) hands every live entry of a followed stream to `TierFeeds.take`.
A stream in the push tier costs one rate count there and goes on to every session as before.
A stream above push has a `StreamFeed` on this gateway, which decides each entry once for all
the gateway's viewers of the stream (region/sampling.py) and hands out only what they are
shown: the second's sample and the priority lane to every session (sampled tier), and each
comment to its author's own sessions. A viewer therefore costs a bounded number of items a
second whatever the stream's rate; the gateway pays one decision per comment.

Cursors. A session accepts an item when its ``prev`` is at or below the session's cursor
(region/session.py). The feed chains what every viewer gets (``shared``): each shown entry's
``prev`` is the previous shown one, and once a second a `Skip` moves every cursor up to the
last entry the feed decided (``accounted``), telling the client what the second stood for
("showing n of m": the ``sample`` of the ``comments`` frame it falls in). An author's own
comment is chained to ``shared`` too, so it fits between the shared items; the session takes
it even once a shared item after it has moved its cursor past (`Session.offer_own`: a
follower hears the two on different subscriptions, in either order). When the gateway's
live feed itself has a hole (NATS dropped a message), the next shared item is chained to the
hole's far side: every session then catches up from the log, thinned the same way.

A hot stream's partitions. Above push, comments outside the priority lane are stored in the
log's partitions (region/log.py `Entry.part`), whose sequences are no cursor. The feed decides
and counts such an entry like any other (the rate the tiers are agreed on, the sample's
"n of m", the snapshot's rings), but chains nothing to it: what is shown of it goes to every
session out of the chain (`Session.offer_loose`), to its author's if hidden, and the ticks
move cursors over the chained log alone (the priority lane and what came in push), which is
what a resume replays.

Tier changes. Entering a tier above push starts the chain at the last entry the gateway
delivered in push; leaving it ends with a `Skip` to ``accounted``, so the next pushed entry
(whose ``prev`` is the stream's previous entry) follows every cursor. Each session gets a
``tier`` frame in order with its comments, carrying its cursor: a tier change costs no
cursor, duplicates nothing, and is announced rather than looking like a gap.

Snapshots. While a stream is in the snapshot tier, viewers get its document as a
``snapshot`` frame every ``snapshot_interval_s`` (and their own comments live). The region's
keeper of the stream (region/tiers.py) renders the document from its feed and leaves it in
the `SnapshotStore` (and, deployed, the `SnapshotPublisher`); the other gateways read it from
there once per interval for all their viewers. Until the region's first render, a request
for the document at a gateway that delivers the stream renders it there and then
(`TierFeeds.document`): a client told "snapshot tier, here is snapshot_url" gets a document.

The region's sampling stage (region/stage.py). A feed on the stream's keeper also hands
what it decided to the stage's `StageOut` (every shared item, every author's own item, a
tick a second), which publishes it for the region's other gateways. A feed elsewhere follows
that stage as soon as it hears it: it takes the stage's items instead of deciding the live
feed (which the fanout then stops reading, `StagePlan`), offers them to its sessions
unchanged, and says what the region's last second stood for. When the stage falls silent for
`SILENT_S`, the feed samples the live feed itself again until it hears a stage; either way the
first item after the switch is chained past what this feed did not see, and each session
reads that stretch from the log, thinned: no gap, no duplicate.

Between sessions. A long-poll viewer is a new session at each poll, and a viewer that
reconnects is a new session too: a stream whose last session leaves stays followed for
`LINGER_S` (its rate, its feed and its sample go on), so that the next poll finds the tier
and what the last second stood for instead of starting again in push. At most
`MAX_LINGERING` streams linger; beyond, the longest idle is dropped first. A stream a gateway
starts to follow is delivered at once in the tier the regions agreed (``agreed``), not from
the agreement's next round: a poller's first answer already says it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from chorus.config import Tiers
from chorus.metrics import Metrics
from chorus.model import Comment
from region.log import Entry
from region.protocol import Sample, ServerFrame, Snapshot
from region.protocol import Tier as TierFrame
from region.sampling import ReplayThinner, Sampler, Verdict, priority
from region.session import Session, Skip
from region.snapshot import (
    KEEP_INTERVALS,
    PRIORITY_KEEP_S,
    SNAPSHOT_COMMENTS,
    Rendered,
    SnapshotDoc,
    SnapshotPublisher,
    SnapshotStore,
    SnapshotUnavailable,
    cache_control,
    render,
)
from region.stage import StageItem, StageMessage, StageOut, StageTick, StageWatch
from region.tiers import RateMeter, Reading, Tier

log = logging.getLogger(__name__)

TICK_S = 1.0   # a Skip (and the second's counts) to every viewer of a hot stream this often
# A stream with no session left stays followed this long: a long-poll's next poll comes
# within a poll's round trip in a hot tier (answers come every second), so a few of them fit,
# and so does the fanout's presence lease of a poller (limits.presence_ttl_s, 10 s by default).
LINGER_S = 10.0
MAX_LINGERING = 1_000   # streams followed with no session at once; the longest idle go first


@dataclass
class Followed:
    """A stream this gateway has viewers of: its sessions (by user too), its comment rate,
    and the last entry the gateway delivered in the push tier."""

    members: set[Session] = field(default_factory=set)
    by_user: dict[str, set[Session]] = field(default_factory=dict)
    meter: RateMeter = field(default_factory=RateMeter)
    last: int = 0

    def add(self, session: Session) -> None:
        self.members.add(session)
        if session.user is not None:
            self.by_user.setdefault(session.user, set()).add(session)

    def discard(self, session: Session) -> None:
        self.members.discard(session)
        if session.user is not None:
            mine = self.by_user.get(session.user)
            if mine is not None:
                mine.discard(session)
                if not mine:
                    del self.by_user[session.user]


class StreamFeed:
    """One stream above the push tier on this gateway; also the sessions' `View` of it."""

    def __init__(self, stream: str, tier: Tier, followed: Followed, *, tiers: Tiers,
                 snapshot_url: str, expected: float, clock: Callable[[], float],
                 rng: random.Random | None = None) -> None:
        self.stream = stream
        self.tier = tier
        self.followed = followed
        self.tiers = tiers
        self.snapshot_url = snapshot_url
        self.clock = clock
        self.sampler = Sampler(tiers.sampled_per_viewer_per_s, expected=expected, rng=rng)
        self.accounted = followed.last   # the last entry of the stream this feed decided
        self.shared = followed.last      # the last item every viewer got (or was moved to)
        self.keeper = False
        self.reading: Reading | None = None
        self.sample_ring: deque[Comment] = deque(maxlen=SNAPSHOT_COMMENTS)
        self.priority_ring: deque[tuple[float, Comment]] = deque(maxlen=SNAPSHOT_COMMENTS)
        self.posted = 0            # entries decided since the last snapshot render
        self.hidden = 0            # entries no viewer but their author got
        self.doc: SnapshotDoc | None = None
        self.rendered: Rendered | None = None
        self.pushed_etag = ""      # the document this gateway's viewers got last
        self.rendered_at = -math.inf
        # Requests for the document before the region's first render wait here for one
        # render (`TierFeeds.document`).
        self.first_render = asyncio.Lock()
        self._described: tuple[int, Sample] | None = None
        # The region's sampling stage: ``out`` while this gateway is it (the keeper), and
        # which stage this feed follows otherwise; what the followed stage's last tick said.
        self.out: StageOut | None = None
        self.source = ""   # this gateway, as a stage's messages name it
        self.watch = StageWatch()
        self.stage_sample: Sample | None = None

    @property
    def following(self) -> bool:
        """Whether the region's stage decides for this feed (the live feed is not read)."""
        return self.watch.following

    # -- the live path -----------------------------------------------------------------------

    def offer(self, entry: Entry, now: float) -> None:
        """An entry of the stream's live feed, in the log's order. An entry of a hot
        partition (``part`` > 0) is decided and counted like any other, but it is out of the
        chain: it moves neither ``accounted`` nor ``shared`` (its sequence is the
        partition's), and what is shown of it goes out of the chain (`_loose`)."""
        if self.watch.following:
            return  # the stage decides (the live feed is on its way out)
        if entry.part:
            self._loose(entry, now)
            return
        if entry.seq <= self.accounted:
            return  # delivered twice by the live feed
        if entry.prev > self.accounted:
            # The live feed skipped entries of the stream: no viewer may take the next shared
            # item for granted, so it is chained past the hole and every session reads the
            # hole from the log (thinned as live).
            self.shared = max(self.shared, entry.prev)
        self.accounted = entry.seq
        comment = entry.comment
        if self._shown(comment, now):
            item = Entry(seq=entry.seq, prev=self.shared, comment=comment)
            if self.out is not None:
                self.out.shared(self.stream, StageItem(source=self.source, seq=item.seq,
                                                       prev=item.prev, comment=comment))
            self.shared = entry.seq
            for session in tuple(self.followed.members):
                session.offer(item)
            return
        self.hidden += 1
        if self.out is not None:
            # Whoever holds the author's sessions in the region, not only this gateway.
            self.out.own(self.stream, comment.user, StageItem(
                source=self.source, seq=entry.seq, prev=self.shared, comment=comment))
        authors = self.followed.by_user.get(comment.user)
        if authors:
            own = Entry(seq=entry.seq, prev=self.shared, comment=comment)
            for session in tuple(authors):
                session.offer_own(own)

    def _shown(self, comment: Comment, now: float) -> bool:
        """Decides a comment of the stream once for every viewer: counts it, keeps it for the
        snapshot when sampled or in the lane, and says whether every viewer is shown it."""
        self.posted += 1
        verdict = self.sampler.offer(comment, now)
        if verdict is Verdict.PRIORITY:
            self.priority_ring.append((now, comment))
        elif verdict is Verdict.SAMPLED:
            self.sample_ring.append(comment)
        return verdict is not Verdict.HIDDEN and self.tier == "sampled"

    def _loose(self, entry: Entry, now: float) -> None:
        """A partition's entry (`offer`): the same decision, the same counts (the stream's
        rate and the second's "n of m" include it), but no place in the chain. A duplicate
        of the live feed is not recognised here (its sequence says nothing of the stream's
        order); each session writes a comment once."""
        comment = entry.comment
        item = StageItem(source=self.source, seq=entry.seq, prev=entry.prev, comment=comment,
                         part=entry.part)
        if self._shown(comment, now):
            if self.out is not None:
                self.out.shared(self.stream, item)
            for session in tuple(self.followed.members):
                session.offer_loose(entry)
            return
        self.hidden += 1
        if self.out is not None:
            self.out.own(self.stream, comment.user, item)
        for session in tuple(self.followed.by_user.get(comment.user, ())):
            session.offer_loose(entry)

    def tick(self) -> None:
        """Moves every viewer's cursor to the last entry decided (once a second, and before
        a tier change). The stage ticks whether or not anything was decided: its followers
        tell a quiet stage from a dead one by it."""
        if self.watch.following:
            return  # the stage's ticks move this feed's viewers
        if self.out is not None:
            stats = self.sampler.stats(self.clock())
            self.out.shared(self.stream, StageTick(
                source=self.source, prev=self.shared, seq=max(self.shared, self.accounted),
                shown=stats.shown, posted=stats.posted))
        if self.accounted <= self.shared:
            return
        skip = Skip(prev=self.shared, seq=self.accounted)
        self.shared = self.accounted
        for session in tuple(self.followed.members):
            session.offer(skip)

    # -- following the region's stage -----------------------------------------------------------

    def heard(self, message: StageMessage, now: float) -> None:
        """A message on the stream's stage subject. Taken from the stage this feed follows
        (or starts to follow), and handed to every session unchanged: it is chained already."""
        if self.out is not None or message.source == self.source:
            return  # this gateway is the stage
        if not self.watch.hear(message.source, now):
            return  # another stage, while the followed one still speaks
        item: Entry | Skip
        match message:
            case StageItem(seq=seq, prev=prev, comment=comment, part=part) if part:
                # A partition's entry: out of the chain, so no cursor moves by it.
                if self.tier == "sampled":
                    loose = Entry(seq=seq, prev=prev, comment=comment, part=part)
                    for session in tuple(self.followed.members):
                        session.offer_loose(loose)
                return
            case StageItem(seq=seq, prev=prev, comment=comment):
                self.accounted = max(self.accounted, seq)
                if self.tier != "sampled":
                    return  # a snapshot tier's viewers get the document instead
                item = Entry(seq=seq, prev=prev, comment=comment)
            case StageTick(prev=prev, seq=seq, shown=shown, posted=posted):
                self.accounted = max(self.accounted, seq)
                self.stage_sample = Sample(shown=shown, posted=posted)
                self.followed.meter.observe(now, posted)
                if seq <= prev:
                    return  # a heartbeat
                item = Skip(prev=prev, seq=seq)
        self.shared = max(self.shared, message.seq)
        for session in tuple(self.followed.members):
            session.offer(item)

    def heard_own(self, user: str, item: StageItem) -> None:
        """An item of the followed stage for ``user`` alone (out of the chain when it is a
        partition's: `Session.offer_own`)."""
        if not self.watch.accepts(item.source):
            return  # the live feed hands authors their comments while it is read here
        authors = self.followed.by_user.get(user)
        if authors:
            own = Entry(seq=item.seq, prev=item.prev, comment=item.comment, part=item.part)
            for session in tuple(authors):
                session.offer_own(own)

    def lead(self, out: StageOut | None) -> None:
        """This gateway is the region's stage for the stream (``out``), or no longer is."""
        self.out = out
        if out is not None:
            self.watch.drop()

    # -- View (region/session.py) -------------------------------------------------------------

    def replay_filter(self, viewer: str | None) -> Callable[[Comment], bool]:
        if self.tier == "sampled":
            return ReplayThinner(viewer, self.tiers.sampled_per_viewer_per_s,
                                 expected=self.followed.meter.rate(self.clock())).shows

        def own_or_priority(comment: Comment) -> bool:
            # Snapshot tier: the document stands for the rest.
            return (viewer is not None and comment.user == viewer) or (
                priority(comment) and not comment.shadow)
        return own_or_priority

    def describe(self) -> Sample | None:
        if self.watch.following:
            return self.stage_sample   # the region's second, as the stage counted it
        now = self.clock()
        second = math.floor(now)
        if self._described is None or self._described[0] != second:
            stats = self.sampler.stats(now)
            self._described = (second, Sample(shown=stats.shown, posted=stats.posted))
        return self._described[1]

    def announce(self, cursor: str) -> ServerFrame:
        return self.frame(cursor)

    def frame(self, cursor: str) -> TierFrame:
        if self.tier == "snapshot":
            return TierFrame(tier="snapshot", cursor=cursor, snapshot_url=self.snapshot_url,
                             interval_s=self.tiers.snapshot_interval_s)
        return TierFrame(tier=self.tier, cursor=cursor,
                         per_viewer_per_s=self.tiers.sampled_per_viewer_per_s)

    # -- the snapshot document ------------------------------------------------------------------

    def render(self, region: str, now: float, wall_ms: int,
               hidden: Callable[[Comment], bool] | None) -> tuple[Rendered, bool]:
        """The document now, from what this gateway's feed saw (the keeper's), and whether
        it changed since the last render."""
        keep = [(at, c) for at, c in self.priority_ring if now - at <= PRIORITY_KEEP_S]
        sample = [c for c in self.sample_ring if hidden is None or not hidden(c)]
        lane = [c for _, c in keep if hidden is None or not hidden(c)]
        reading = self.reading or Reading(viewers=0, rate_per_s=0.0)
        doc = render(self.stream, region, now_ms=wall_ms,
                     interval_s=self.tiers.snapshot_interval_s, viewers=reading.viewers,
                     rate_per_s=reading.rate_per_s, posted=self.posted, sample=sample,
                     priority=lane, previous=self.doc)
        self.posted = 0
        self.rendered_at = now
        changed = doc is not self.doc or self.rendered is None
        if changed:
            self.doc, self.rendered = doc, Rendered.of(doc)
        assert self.rendered is not None
        return self.rendered, changed


@dataclass(frozen=True)
class StagePlan:
    """What a gateway subscribes to for the region's stages (`TierFeeds.plan`): ``stages``'
    subjects, the ``own`` subject of each (stream, user), and ``quiet``: streams whose live
    feed it does not read."""

    stages: frozenset[str]
    own: frozenset[tuple[str, str]]
    quiet: frozenset[str]


class TierFeeds:
    """This gateway's hot streams. The fanout calls `joined`, `left` and `take`; the tier
    agreement (global_/tiers.py, through the fanout's `TierHost` side) calls `followed` and
    `apply`; `run` ticks the feeds and moves the snapshots for the gateway's life.

    ``snapshot_url(stream)``: where clients poll a stream's document. ``store`` holds the
    region's documents; ``publisher`` (deployed cells) is the CDN's origin. ``hidden``: a
    comment no one may be shown any more (moderation), left out of documents. ``agreed(stream,
    now)``: the stream's tier as the regions agreed it (region/tiers.py's `TierBoard.tier`, on
    ``clock``), for a stream this gateway starts to follow.

    ``stage``: where this gateway publishes as the region's sampling stage of the streams it
    keeps (None: no stage, every gateway samples its live feed); ``gateway`` names it in the
    stage's messages. ``on_plan``: told when `plan` may have changed (region/stage_nats.py
    then subscribes and unsubscribes)."""

    def __init__(self, *, region: str, tiers: Tiers, metrics: Metrics,
                 store: SnapshotStore | None, snapshot_url: Callable[[str], str],
                 publisher: SnapshotPublisher | None = None,
                 hidden: Callable[[Comment], bool] | None = None,
                 agreed: Callable[[str, float], Tier] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 rng: random.Random | None = None,
                 linger_s: float = LINGER_S, max_lingering: int = MAX_LINGERING,
                 gateway: str = "", stage: StageOut | None = None,
                 on_plan: Callable[[], None] | None = None) -> None:
        self.region = region
        self.gateway = gateway
        self.stage = stage
        self.on_plan = on_plan
        self.tiers = tiers
        self.metrics = metrics
        self.store = store
        self.publisher = publisher
        self.snapshot_url = snapshot_url
        self.hidden = hidden
        self.clock = clock
        self.wall = wall
        self.rng = rng
        self.agreed = agreed
        self.linger_s = linger_s
        self.max_lingering = max_lingering
        self.streams: dict[str, Followed] = {}
        self.feeds: dict[str, StreamFeed] = {}
        self.idle: dict[str, float] = {}   # streams with no session, since when; oldest first

    # -- the fanout's side ---------------------------------------------------------------------

    def joined(self, session: Session) -> None:
        """A session of this gateway, before it starts (it announces its tier after hello)."""
        stream = session.stream
        self.idle.pop(stream, None)
        followed = self.streams.setdefault(stream, Followed())
        followed.add(session)
        feed = self.feeds.get(stream)
        if feed is not None:
            session.set_view(feed)
            if feed.out is None and session.user is not None:
                self._replan()   # the user's own items, from the region's stage
            return
        if self.agreed is not None:
            tier = self.agreed(stream, self.clock())
            if tier != "push":
                # The agreement's next round would say so within half a second, but a long
                # poll may well be answered before.
                self._start(stream, tier, followed, keeper=False, reading=None)

    def left(self, session: Session) -> None:
        followed = self.streams.get(session.stream)
        if followed is None:
            return
        followed.discard(session)
        if session.user is not None and session.user not in followed.by_user and (
                session.stream in self.feeds):
            self._replan()
        if followed.members:
            return
        self.idle.pop(session.stream, None)   # the newest idle last
        self.idle[session.stream] = self.clock()
        while len(self.idle) > self.max_lingering:
            self._drop(next(iter(self.idle)))

    def _drop(self, stream: str) -> None:
        """Forgets a stream no session of this gateway has followed for a while."""
        self.idle.pop(stream, None)
        self.streams.pop(stream, None)
        if self.feeds.pop(stream, None) is not None:
            self._replan()

    def take(self, entry: Entry) -> bool:
        """Counts a live entry; True when a hot stream's feed delivered it (False: the
        fanout delivers it to every session, the push tier; a partition's entry out of the
        chain)."""
        stream = entry.comment.stream
        followed = self.streams.get(stream)
        if followed is None:
            return False
        feed = self.feeds.get(stream)
        if feed is not None and feed.following:
            return True   # the region's stage delivers it (and counts the rate)
        now = self.clock()
        followed.meter.observe(now)   # a partition's entry too: it is the stream's rate
        if feed is None:
            if not entry.part:
                followed.last = entry.seq   # the chain's (a partition's is no cursor)
            return False
        feed.offer(entry, now)
        return True

    def tier(self, stream: str) -> Tier:
        feed = self.feeds.get(stream)
        return feed.tier if feed is not None else "push"

    # -- the agreement's side -------------------------------------------------------------------

    def followed(self) -> dict[str, float]:
        now = self.clock()
        return {stream: f.meter.rate(now) for stream, f in self.streams.items()}

    def apply(self, stream: str, tier: Tier, *, keeper: bool, reading: Reading | None) -> None:
        followed = self.streams.get(stream)
        if followed is None:
            return
        feed = self.feeds.get(stream)
        current: Tier = feed.tier if feed is not None else "push"
        if feed is not None:
            feed.keeper = keeper
            feed.reading = reading or feed.reading
            self._lead(feed, keeper and tier != "push")
        if tier == current:
            return
        if feed is None:  # push -> sampled or snapshot
            self._start(stream, tier, followed, keeper=keeper, reading=reading)
            return
        self.metrics.tier_changed(tier)
        log.info("stream %s: %s -> %s tier on this gateway", stream, current, tier)
        feed.tick()
        if tier == "push":
            del self.feeds[stream]
            feed.lead(None)
            feed.watch.drop()
            self._replan()   # the live feed again, at once
            followed.last = feed.accounted
            for session in tuple(followed.members):
                session.set_view(None, TierFrame(
                    tier="push", cursor=session.encode_cursor(session.cursor)))
            return
        feed.tier = tier  # sampled <-> snapshot
        feed.pushed_etag = ""
        for session in tuple(followed.members):
            session.set_view(feed, feed.frame(session.encode_cursor(session.cursor)))

    def _start(self, stream: str, tier: Tier, followed: Followed, *, keeper: bool,
               reading: Reading | None) -> None:
        """push -> sampled or snapshot."""
        self.metrics.tier_changed(tier)
        log.info("stream %s: push -> %s tier on this gateway", stream, tier)
        feed = StreamFeed(stream, tier, followed, tiers=self.tiers,
                          snapshot_url=self.snapshot_url(stream),
                          expected=followed.meter.rate(self.clock()), clock=self.clock,
                          rng=self.rng)
        feed.keeper, feed.reading = keeper, reading
        feed.source = self.gateway
        self.feeds[stream] = feed
        self._lead(feed, keeper)
        self._replan()
        for session in tuple(followed.members):
            session.set_view(feed, feed.frame(session.encode_cursor(session.cursor)))

    # -- the region's sampling stage (region/stage.py) -------------------------------------------

    def _lead(self, feed: StreamFeed, keeper: bool) -> None:
        """The keeper's feed is the region's stage (when there is one to publish through)."""
        out = self.stage if keeper else None
        if out is feed.out:
            return
        feed.lead(out)
        self._replan()

    def _replan(self) -> None:
        if self.on_plan is not None:
            self.on_plan()

    def heard(self, stream: str, message: StageMessage) -> None:
        """A message on ``stream``'s stage subject (region/stage_nats.py)."""
        feed = self.feeds.get(stream)
        if feed is None:
            return
        was = feed.following
        feed.heard(message, self.clock())
        if feed.following != was:
            log.info("stream %s: following the region's stage %s", stream, feed.watch.source)
            self._replan()   # the live feed is not read any more

    def heard_own(self, stream: str, user: str, item: StageItem) -> None:
        feed = self.feeds.get(stream)
        if feed is not None:
            feed.heard_own(user, item)

    def plan(self) -> StagePlan:
        """What this gateway must hear: each stream it follows above push and does not
        stage itself (its stage subject, and the own subject of each user it holds a session
        of); and the streams whose live feed it need not read (a stage decides them)."""
        stages: set[str] = set()
        own: set[tuple[str, str]] = set()
        quiet: set[str] = set()
        for stream, feed in self.feeds.items():
            if feed.out is not None:
                continue
            stages.add(stream)
            own.update((stream, user) for user in feed.followed.by_user)
            if feed.following:
                quiet.add(stream)
        return StagePlan(stages=frozenset(stages), own=frozenset(own), quiet=frozenset(quiet))

    def wants_own(self, stream: str, user: str) -> bool:
        """Whether `plan` asks for ``user``'s own subject of ``stream`` (region/stage_nats.py
        makes it ready before the user's session starts): a session of theirs is here, and
        this gateway delivers the stream above push without being its stage."""
        feed = self.feeds.get(stream)
        return feed is not None and feed.out is None and user in feed.followed.by_user

    def stage_roles(self) -> dict[str, int]:
        """Streams this gateway delivers above push, by its part in the region's sampling
        stage: ``keeper`` (it is the stream's stage), ``follower`` (a stage decides for it) or
        ``fallback`` (it samples its live feed itself: no stage heard, or the one it followed
        fell silent)."""
        out = {"keeper": 0, "follower": 0, "fallback": 0}
        for feed in self.feeds.values():
            role = "keeper" if feed.out is not None else (
                "follower" if feed.following else "fallback")
            out[role] += 1
        return out

    def counts(self) -> dict[str, int]:
        """Streams this gateway follows, by tier."""
        out = {"push": 0, "sampled": 0, "snapshot": 0}
        for stream in self.streams:
            out[self.tier(stream)] += 1
        return out

    # -- the clock -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Ticks every hot stream's feed and moves its snapshots; until cancelled."""
        tick_s = min(TICK_S, self.tiers.snapshot_interval_s)
        try:
            while True:
                await asyncio.sleep(tick_s)  # the feeds' period, not a synchronisation
                await self.step()
        finally:
            if self.publisher is not None:
                await self.publisher.close()

    async def step(self) -> None:
        """One tick: streams that lingered long enough are forgotten; a Skip to every viewer
        of each hot stream; documents that are due."""
        now = self.clock()
        for stream, since in list(self.idle.items()):
            if now - since < self.linger_s:
                break  # oldest first
            self._drop(stream)
        for stream, feed in list(self.feeds.items()):
            if feed.watch.lapsed(now):
                log.warning("stream %s: the region's stage is silent; sampling here", stream)
                self._replan()   # the live feed again
            feed.tick()
            if feed.hidden:
                self.metrics.sampled_out(feed.hidden)
                feed.hidden = 0
            if feed.tier != "snapshot":
                continue
            if now - feed.rendered_at < self.tiers.snapshot_interval_s - 0.05:
                continue
            try:
                await self._snapshot(stream, feed, now)
            except SnapshotUnavailable as exc:
                log.warning("snapshot of %s not moved: %s", stream, exc)

    # -- the document, asked for ---------------------------------------------------------------

    async def document(self, stream: str, reading: Reading | None = None) -> Rendered | None:
        """The region's document of ``stream`` (region/snapshot_api.py). When the region has
        none yet (the stream has just entered the snapshot tier) and this gateway delivers the
        stream in that tier, it renders one now from its own feed, once for every request
        that asks meanwhile, and leaves it for the region's other gateways; ``reading`` (the
        leader's) counts the viewers when this gateway has no reading of its own. None: the
        stream is in no snapshot tier here. Raises `SnapshotUnavailable` (the store)."""
        stored = await self.store.get(stream) if self.store is not None else None
        feed = self.feeds.get(stream)
        if stored is not None or feed is None or feed.tier != "snapshot":
            return stored
        async with feed.first_render:
            if self.store is not None:
                stored = await self.store.get(stream)
                if stored is not None:
                    return stored   # rendered while this request waited
            now = self.clock()
            fresh = now - feed.rendered_at < self.tiers.snapshot_interval_s
            if feed.rendered is not None and fresh:
                return feed.rendered   # rendered here lately, not stored (Redis failed)
            if feed.keeper:
                await self._snapshot(stream, feed, now)   # the keeper's render, a bit early
            else:
                feed.reading = feed.reading or reading
                await self._first(stream, feed, now)
            return feed.rendered

    async def _first(self, stream: str, feed: StreamFeed, now: float) -> None:
        """A render by a gateway that does not keep the stream, before the keeper's first:
        the keeper's next render replaces it."""
        rendered, _ = feed.render(self.region, now, int(self.wall() * 1000), self.hidden)
        if self.store is None:
            return
        try:
            await self.store.put(stream, rendered,
                                 self.tiers.snapshot_interval_s * KEEP_INTERVALS)
        except SnapshotUnavailable as exc:
            # The requester gets this render anyway; the next request asks again.
            log.warning("snapshot of %s rendered on demand, not stored: %s", stream, exc)

    async def _snapshot(self, stream: str, feed: StreamFeed, now: float) -> None:
        feed.rendered_at = now
        rendered: Rendered | None
        interval = self.tiers.snapshot_interval_s
        if feed.keeper:
            rendered, changed = feed.render(self.region, now, int(self.wall() * 1000),
                                            self.hidden)
            if self.store is not None:
                # Every interval, changed or not: the stored copy outlives the keeper by
                # KEEP_INTERVALS intervals only.
                await self.store.put(stream, rendered, interval * KEEP_INTERVALS)
            if changed:
                self.metrics.snapshot_rendered()
                if self.publisher is not None:
                    await self.publisher.publish(stream, rendered, cache_control(interval))
        elif self.store is not None:
            rendered = await self.store.get(stream)
        else:
            rendered = None
        if rendered is None or rendered.etag == feed.pushed_etag:
            return
        feed.pushed_etag = rendered.etag
        frame = Snapshot(rendered)
        for session in tuple(feed.followed.members):
            session.push(frame)

