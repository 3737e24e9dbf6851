"""Every metric a gateway process exports, registered in one place (prometheus-client).

A gateway builds one `Metrics` (its own registry, so that several gateways in one process,
as in a benchmark, never share counters) and hands each component the object; components
only increment or observe. The gateway's operator listener (region/operator.py) renders the
registry on ``/metrics``; the client port does not serve it. Labels are bounded: region,
gateway, a region of the config (``dest``, ``origin``, ``peer``), a fixed kind, an error
code; never a stream or a user id. A region name that is not in the config (a stray
message) is counted as ``other``.

Latencies are histograms in seconds (docs/operations.md lists every series, the Grafana
dashboard and the alert rules in ops/ read them):

- ``chorus_post_stored_seconds``: a post taken (admission, id, store) until the region's
  JetStream acknowledged it;
- ``chorus_delivery_seconds{origin}``: from a comment's ``ts`` (set by its origin region just
  before storing it) until it was written on a viewer's socket here, for comments delivered
  live (a comment replayed on resume measures the client's absence, not the path, and is not
  observed); ``origin`` equal to ``region`` is the same-region path;
- ``chorus_forward_seconds{dest}``: from a comment's ``ts`` until ``dest``'s log acknowledged
  its forward (so it includes the outbox's wait after a cut link);
- ``chorus_presence_query_seconds{dest}``: one presence question to ``dest`` over the hub
  (an unanswered one is observed at its timeout and counted in
  ``chorus_presence_unanswered_total``; one answered "unknown", while ``dest`` rebuilds its
  presence, is counted in ``chorus_presence_unknown_total`` too);
- ``chorus_history_page_seconds{source}``: one history page, from the log or the archive;
- ``chorus_archive_write_seconds``: one batch written to the archive.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from chorus.model import Comment

# The `_created` series double every counter for no use of ours.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST

OTHER = "other"  # the label value of a region that is not in the config
TRANSPORTS = ("websocket", "sse", "poll")
HISTORY_SOURCES = ("log", "archive")
TIERS = ("push", "sampled", "snapshot")
# The region's sampling stage (region/stage*.py): which subject a message went on (the
# stream's stage subject, or an author's own), what became of it, and a gateway's part in a
# stream's stage.
STAGE_KINDS = ("shared", "own")
STAGE_OUTCOMES = ("published", "dropped", "received", "rejected")
STAGE_ROLES = ("keeper", "follower", "fallback")

# Buckets (seconds). A local step (a store, a Redis or Cassandra round trip) is sub-ms to tens
# of ms; a delivery crosses links of up to a few hundred ms, and after a cut link it may be
# late by minutes, which the top buckets keep visible instead of folding into +Inf.
STEP_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                  5.0)
PATH_BUCKETS_S = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
                  1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class HotSeries:
    """One label set of a `HotHistogram`: per-bucket counts (not cumulative) and a sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)   # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, seconds: float, times: int = 1) -> None:
        """``times`` observations of the same value (one batch written to many viewers)."""
        self.counts[bisect_left(self.bounds, seconds)] += times
        self.sum += seconds * times


class HotHistogram(Collector):
    """A labelled histogram for a path taken per delivery: exported exactly as a prometheus
    ``Histogram`` (``_bucket``, ``_count``, ``_sum``), but an observation is one bisect and
    two additions instead of three locked increments. At 100,000 deliveries/s on one gateway
    the prometheus ``Histogram`` took 17 % of its CPU (py-spy, docs/benchmarks.md). The event
    loop is its only writer; a scrape reads the counts as they are at that moment."""

    def __init__(self, name: str, doc: str, labelnames: tuple[str, ...],
                 buckets: tuple[float, ...], registry: CollectorRegistry) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = labelnames
        self.bounds = tuple(sorted(buckets))
        self._series: dict[tuple[str, ...], HotSeries] = {}
        registry.register(self)

    def labels(self, *values: str) -> HotSeries:
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = HotSeries(self.bounds)
        return series

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
        les = [floatToGoString(b)  # type: ignore[no-untyped-call]
               for b in (*self.bounds, math.inf)]
        for values, series in list(self._series.items()):
            cumulative = 0
            buckets = []
            for le, n in zip(les, list(series.counts), strict=True):
                cumulative += n
                buckets.append((le, float(cumulative)))
            family.add_metric(list(values), buckets, series.sum)
        yield family


class Metrics:
    """This gateway's metrics. ``region`` and ``gateway`` label every series."""

    def __init__(self, region: str, gateway: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        base = ("region", "gateway")
        ids = (region, gateway)
        r = self.registry
        self.region = region
        # CPU seconds and resident memory of this process (`chorus load` reads them from a
        # deployment's gateways).
        ProcessCollector(registry=r)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, base, registry=r)

        self._connections = Gauge("chorus_connections", "Open viewer connections.", base,
                                  registry=r)
        self._connections_ids = ids
        self.slow_consumers = counter(
            "chorus_slow_consumers", "Connections cut because their send queue overflowed."
        ).labels(*ids)
        self.entries_delivered = counter(
            "chorus_entries_delivered", "Live log entries offered to this gateway's sessions."
        ).labels(*ids)
        self.presence_queries = counter(
            "chorus_presence_queries", "Presence questions sent to other regions."
        ).labels(*ids)
        self.bootstraps = counter(
            "chorus_bootstraps", "Late-join bootstraps of a stream from other regions."
        ).labels(*ids)
        per_dest = (*base, "dest")
        self._forwarded = Counter("chorus_forwarded", "Comments stored by a destination "
                                  "region's log.", per_dest, registry=r)
        self._skipped = Counter("chorus_forward_skipped_no_viewers", "Comments not forwarded: "
                                "the destination had no viewers of the stream.", per_dest,
                                registry=r)
        self._forward_failures = Counter("chorus_forward_failures", "Outbox batches that a "
                                         "destination did not take (retried).", per_dest,
                                         registry=r)
        self.archive_written = counter(
            "chorus_archive_written", "Comments this gateway wrote to the archive.").labels(*ids)
        self.archive_failures = counter(
            "chorus_archive_failures", "Archive writes that failed (retried).").labels(*ids)
        self.archive_bad = counter(
            "chorus_archive_bad", "Log messages that were not comments (dropped).").labels(*ids)
        self._hub_rejected = Counter("chorus_hub_messages_rejected", "Hub messages that could "
                                     "not be decoded, by kind (logged, never read as an "
                                     "answer).", (*base, "kind"), registry=r)
        self._ids = ids
        self._regions: frozenset[str] = frozenset({region})

        # -- latencies -----------------------------------------------------------------------
        self._post_stored = Histogram(
            "chorus_post_stored_seconds", "A post from admission until the region's log "
            "acknowledged it.", base, buckets=STEP_BUCKETS_S, registry=r).labels(*ids)
        self._delivery = HotHistogram(
            "chorus_delivery_seconds", "From a comment's ts (its origin, just before storing) "
            "until a viewer's socket here took it; live deliveries only.", (*base, "origin"),
            buckets=PATH_BUCKETS_S, registry=r)
        self._delivery_of: dict[str, HotSeries] = {}
        # Observed from inside the garbage collector (region/gcwatch.py): a `HotHistogram`,
        # which takes no lock, as a collection may start while a lock is held.
        self._gc_pause = HotHistogram(
            "chorus_gc_pause_seconds", "Pauses of this process's garbage collector, by "
            "generation (2: a collection of the whole heap).", (*base, "generation"),
            buckets=STEP_BUCKETS_S, registry=r)
        self._gc_pause_of = tuple(self._gc_pause.labels(*ids, str(g)) for g in range(3))
        self._forward_latency = Histogram(
            "chorus_forward_seconds", "From a comment's ts until the destination region's log "
            "acknowledged its forward.", per_dest, buckets=PATH_BUCKETS_S, registry=r)
        self._presence_latency = Histogram(
            "chorus_presence_query_seconds", "One presence question to another region (an "
            "unanswered one at its timeout).", per_dest, buckets=STEP_BUCKETS_S, registry=r)
        self._presence_unanswered = Counter(
            "chorus_presence_unanswered", "Presence questions another region did not answer "
            "in time or answered malformed (counted as having viewers).", per_dest,
            registry=r)
        # Its own series rather than a label of the one above: that one's series stay as
        # they were, and an answer that came is not an unanswered question.
        self._presence_unknown = Counter(
            "chorus_presence_unknown", "Presence questions another region answered "
            "\"unknown\": its presence index is away or being rebuilt (counted as having "
            "viewers).", per_dest, registry=r)
        self._history = Histogram(
            "chorus_history_page_seconds", "One history page, by where it was read.",
            (*base, "source"), buckets=STEP_BUCKETS_S, registry=r)
        self._archive_write = Histogram(
            "chorus_archive_write_seconds", "One batch of comments written to the archive.",
            base, buckets=STEP_BUCKETS_S, registry=r).labels(*ids)

        # -- connections, errors ---------------------------------------------------------------
        self._opened = Counter("chorus_connections_opened", "Viewer connections opened, by "
                               "transport (each long-poll request counts once).",
                               (*base, "transport"), registry=r)
        self._errors = Counter("chorus_errors", "Requests and frames refused, by the error "
                               "code clients see (docs/protocol.md).", (*base, "code"),
                               registry=r)

        # -- backlogs and health (sampled: region/backlog.py, the registry) ---------------------
        self._outbox_depth = Gauge("chorus_outbox_depth", "Comments of this region waiting "
                                   "for a destination region (NaN: unknown).", per_dest,
                                   registry=r)
        self._archive_lag = Gauge("chorus_archive_lag", "Comments of this region's log not "
                                  "yet archived (NaN: unknown or no archive).", base,
                                  registry=r)
        self._region_healthy = Gauge("chorus_region_healthy", "1 when this gateway hears a "
                                     "healthy heartbeat from the peer region, else 0.",
                                     (*base, "peer"), registry=r)
        self._region_gateways = Gauge("chorus_region_gateways_healthy", "The peer region's "
                                      "healthy gateways, as this gateway last heard them.",
                                      (*base, "peer"), registry=r)
        # What the alert rules compare with, from regions.yaml (the one source of truth).
        self._objective = Gauge("chorus_delivery_objective_seconds", "The p99 objective of "
                                "delivery from an origin region to this region: 50 ms plus "
                                "both regions' one-way link latency.", (*base, "origin"),
                                registry=r)
        self._outbox_alert = Gauge("chorus_outbox_alert_depth", "An outbox deeper than this "
                                   "is backlogged (limits.outbox_alert_pending).", base,
                                   registry=r)

        # -- moderation (global_/moderation.py, region/moderation_service.py, classifier) ----
        self.moderation_applied = counter(
            "chorus_moderation_applied", "Moderation decisions (any region's) this gateway "
            "applied.").labels(*ids)
        self.moderation_catchups = counter(
            "chorus_moderation_catchups", "Catch-ups that read missed decisions from their "
            "origin region directly (a link healed, or the replica lagged).").labels(*ids)
        self.moderation_blocked = counter(
            "chorus_moderation_blocked", "Posts the prefilter refused (a blocked term)."
        ).labels(*ids)
        self.classifier_flagged = counter(
            "chorus_classifier_flagged", "Comments the classifier flagged (retracted or held "
            "by the stream's policy).").labels(*ids)
        self.classifier_scored = counter(
            "chorus_classifier_scored", "Comments the classifier scored.").labels(*ids)

        # -- reactions (region/reactions*.py, global_/reactions.py) ---------------------------
        self._reactions_accepted = counter(
            "chorus_reactions_accepted", "Reactions this gateway counted.").labels(*ids)
        self._reactions_refused = Counter(
            "chorus_reactions_refused", "Reactions this gateway refused, by reason (invalid, "
            "rate_limited, overloaded, unavailable).", (*base, "reason"), registry=r)
        self._aggregates_emitted = counter(
            "chorus_reaction_aggregates_emitted", "Per-second reaction aggregates this gateway "
            "stored in its region's reaction log.").labels(*ids)
        self._aggregates_bad = counter(
            "chorus_reaction_aggregates_bad", "Live reaction messages that were not aggregates "
            "(dropped).").labels(*ids)
        self._rx_forwarded = Counter(
            "chorus_reaction_aggregates_forwarded", "Reaction aggregates stored by a "
            "destination region's reaction log.", per_dest, registry=r)
        self._rx_skipped = Counter(
            "chorus_reaction_forward_skipped_no_viewers", "Reaction aggregates not forwarded: "
            "the destination had no viewers of the stream.", per_dest, registry=r)
        self._rx_forward_failures = Counter(
            "chorus_reaction_forward_failures", "Reaction outbox batches that a destination "
            "did not take (retried).", per_dest, registry=r)

        # -- hot streams (region/tiers*.py, region/sampling.py, global_/tiers.py) ------------
        self._tier_changes = Counter(
            "chorus_tier_changes", "Streams this gateway started delivering in a tier, by tier "
            "(push, sampled, snapshot).", (*base, "tier"), registry=r)
        self._streams_by_tier = Gauge(
            "chorus_streams", "Streams this gateway has viewers of, by the tier it delivers "
            "them in.", (*base, "tier"), registry=r)
        self._sampled_out = counter(
            "chorus_sampled_out", "Comments of sampled or snapshot streams that no viewer of "
            "this gateway but their author was sent (all of them are stored).").labels(*ids)
        self._snapshots_rendered = counter(
            "chorus_snapshots_rendered", "Snapshot documents this gateway rendered (as its "
            "region's keeper of the stream) that differed from the previous one.").labels(*ids)
        self._tier_notices = Counter(
            "chorus_tier_notices", "Tier notices over the hub, by direction (sent, received).",
            (*base, "direction"), registry=r)
        self._priority_expedited = Counter(
            "chorus_priority_expedited", "Priority comments of hot streams this gateway sent "
            "straight to a destination region's log, ahead of the outbox (global_/priority.py).",
            per_dest, registry=r)
        for tier in TIERS:
            self._tier_changes.labels(*ids, tier)
        for direction in ("sent", "received"):
            self._tier_notices.labels(*ids, direction)

        # -- the region's sampling stage (region/stage*.py) ------------------------------------
        self._stage_messages = Counter(
            "chorus_stage_messages", "Sampling-stage messages, by subject (shared: the "
            "stream's stage subject; own: an author's) and outcome (published, dropped: "
            "never published; received, rejected: heard and refused).",
            (*base, "kind", "outcome"), registry=r)
        # Children bound once: an own item is published per comment a keeper leaves out.
        self._stage_message_of = {
            (kind, outcome): self._stage_messages.labels(*ids, kind, outcome)
            for kind in STAGE_KINDS for outcome in STAGE_OUTCOMES}
        self._stage_streams = Gauge(
            "chorus_stage_streams", "Streams this gateway delivers above push, by its part in "
            "their region's sampling stage (keeper: it is the stage; follower: it follows one; "
            "fallback: it samples its live feed itself).", (*base, "role"), registry=r)

    # -- set-up --------------------------------------------------------------------------------

    def declare_regions(self, regions: Iterable[str]) -> None:
        """The config's regions: the values ``origin``, ``dest`` and ``peer`` may take (any
        other name is counted as ``other``). Makes the delivery series exist from the
        start."""
        self._regions = frozenset((*regions, self.region))
        for origin in self._regions:
            self._delivery_child(origin)
        for transport in TRANSPORTS:
            self._opened.labels(*self._ids, transport)
        for source in HISTORY_SOURCES:
            self._history.labels(*self._ids, source)

    def set_objectives(self, delivery_s: dict[str, float], outbox_alert_depth: int) -> None:
        """``delivery_s``: the p99 delivery objective from each origin region (seconds)."""
        for origin, seconds in delivery_s.items():
            self._objective.labels(*self._ids, self._known(origin)).set(seconds)
        self._outbox_alert.labels(*self._ids).set(outbox_alert_depth)

    def track_connections(self, count: Callable[[], int]) -> None:
        """The connections gauge reads ``count()`` at each scrape."""
        self._connections.labels(*self._connections_ids).set_function(count)

    def track_regions(self, peers: Iterable[str], healthy: Callable[[str], tuple[bool, int]]
                      ) -> None:
        """The peer-health gauges read ``healthy(peer)`` ((healthy, healthy gateways)) at
        each scrape."""
        for peer in peers:
            self._region_healthy.labels(*self._ids, peer).set_function(
                lambda p=peer: float(healthy(p)[0]))  # type: ignore[misc]
            self._region_gateways.labels(*self._ids, peer).set_function(
                lambda p=peer: float(healthy(p)[1]))  # type: ignore[misc]

    def _known(self, region: str) -> str:
        return region if region in self._regions else OTHER

    # -- the forward path ----------------------------------------------------------------------

    def forwarded(self, dest: str, n: int = 1) -> None:
        self._forwarded.labels(*self._ids, dest).inc(n)

    def skipped_no_viewers(self, dest: str, n: int = 1) -> None:
        self._skipped.labels(*self._ids, dest).inc(n)

    def forward_failed(self, dest: str) -> None:
        self._forward_failures.labels(*self._ids, dest).inc()

    def forward_latency(self, dest: str, seconds: float) -> None:
        self._forward_latency.labels(*self._ids, self._known(dest)).observe(seconds)

    def declare_destinations(self, dests: tuple[str, ...]) -> None:
        """Makes every destination's series exist at zero from the start."""
        for dest in dests:
            for family in (self._forwarded, self._skipped, self._forward_failures,
                           self._forward_latency, self._presence_latency,
                           self._presence_unanswered, self._presence_unknown):
                family.labels(*self._ids, dest)

    def outbox_depth(self, dest: str, depth: int | None) -> None:
        self._outbox_depth.labels(*self._ids, self._known(dest)).set(
            math.nan if depth is None else depth)

    def presence_query(self, dest: str, seconds: float, *, answered: bool,
                       unknown: bool = False) -> None:
        """One question to ``dest``; ``unknown``: it answered that its counts are incomplete."""
        dest = self._known(dest)
        self._presence_latency.labels(*self._ids, dest).observe(seconds)
        if not answered:
            self._presence_unanswered.labels(*self._ids, dest).inc()
        elif unknown:
            self._presence_unknown.labels(*self._ids, dest).inc()

    # -- the local path ------------------------------------------------------------------------

    def post_stored(self, seconds: float) -> None:
        self._post_stored.observe(seconds)

    def _delivery_child(self, origin: str) -> HotSeries:
        child = self._delivery_of.get(origin)
        if child is None:
            child = self._delivery.labels(*self._ids, origin)
            self._delivery_of[origin] = child
        return child

    def gc_pause(self, generation: int, seconds: float) -> None:
        """One collection of ``generation`` (0-2) that paused the process ``seconds``."""
        self._gc_pause_of[generation].observe(seconds)

    def delivered(self, origin: str, seconds: float) -> None:
        """One comment written live on one viewer's socket (hot path: a dict lookup and an
        observation)."""
        child = self._delivery_of.get(origin) or self._delivery_child(self._known(origin))
        child.observe(seconds)

    def comments_written(self, comments: Iterable[Comment], viewers: int = 1) -> None:
        """Comments just written live on the sockets of ``viewers`` viewers (a stream's batch
        shared by many: region/broadcast.py): each one's delivery latency, from its ts (the
        origin's wall clock; a clock behind ours counts as 0), once per viewer."""
        now_ms = time.time() * 1000
        series = self._delivery_of
        for comment in comments:  # `delivered`, inlined: once per comment per write
            child = series.get(comment.region) or self._delivery_child(
                self._known(comment.region))
            child.observe(max(0.0, now_ms - comment.ts) / 1000, viewers)

    def connection_opened(self, transport: str) -> None:
        self._opened.labels(*self._ids, transport).inc()

    def error(self, code: str) -> None:
        """A refusal with this wire error code (region/errors.py `ErrorCode`)."""
        self._errors.labels(*self._ids, code).inc()

    def history_page(self, source: str, seconds: float) -> None:
        self._history.labels(*self._ids, source).observe(seconds)

    def archive_write(self, seconds: float) -> None:
        self._archive_write.observe(seconds)

    def archive_lag(self, lag: int | None) -> None:
        self._archive_lag.labels(*self._ids).set(math.nan if lag is None else lag)

    def hub_rejected(self, kind: str) -> None:
        self._hub_rejected.labels(*self._ids, kind).inc()

    # -- reactions -----------------------------------------------------------------------------

    def reactions_accepted(self, n: int = 1) -> None:
        self._reactions_accepted.inc(n)

    def reactions_refused(self, reason: str, n: int = 1) -> None:
        """``reason``: invalid, rate_limited, overloaded or unavailable."""
        self._reactions_refused.labels(*self._ids, reason).inc(n)

    def reaction_aggregates_emitted(self, n: int = 1) -> None:
        self._aggregates_emitted.inc(n)

    def reaction_aggregates_bad(self, n: int = 1) -> None:
        self._aggregates_bad.inc(n)

    def declare_reaction_destinations(self, dests: tuple[str, ...]) -> None:
        """Makes every destination's reaction series exist at zero from the start."""
        for dest in dests:
            for family in (self._rx_forwarded, self._rx_skipped, self._rx_forward_failures):
                family.labels(*self._ids, dest)

    def reaction_forwarded(self, dest: str, n: int = 1) -> None:
        self._rx_forwarded.labels(*self._ids, self._known(dest)).inc(n)

    def reaction_skipped_no_viewers(self, dest: str, n: int = 1) -> None:
        self._rx_skipped.labels(*self._ids, self._known(dest)).inc(n)

    def reaction_forward_failed(self, dest: str) -> None:
        self._rx_forward_failures.labels(*self._ids, self._known(dest)).inc()

    # -- hot streams ---------------------------------------------------------------------------

    def tier_changed(self, tier: str) -> None:
        self._tier_changes.labels(*self._ids, tier).inc()

    def track_tiers(self, counts: Callable[[], dict[str, int]]) -> None:
        """The streams-by-tier gauge reads ``counts()`` (tier -> streams) at each scrape."""
        for tier in TIERS:
            self._streams_by_tier.labels(*self._ids, tier).set_function(
                lambda t=tier: float(counts().get(t, 0)))  # type: ignore[misc]

    def sampled_out(self, n: int = 1) -> None:
        self._sampled_out.inc(n)

    def snapshot_rendered(self) -> None:
        self._snapshots_rendered.inc()

    def priority_expedited(self, dest: str) -> None:
        self._priority_expedited.labels(*self._ids, self._known(dest)).inc()

    def tier_notice(self, direction: str) -> None:
        """``direction``: sent or received."""
        self._tier_notices.labels(*self._ids, direction).inc()

    # -- the region's sampling stage -------------------------------------------------------------

    def stage_messages(self, kind: str, outcome: str, n: int = 1) -> None:
        """``kind``: shared or own (`STAGE_KINDS`); ``outcome``: published, dropped, received
        or rejected (`STAGE_OUTCOMES`)."""
        self._stage_message_of[(kind, outcome)].inc(n)

    def track_stage(self, roles: Callable[[], dict[str, int]]) -> None:
        """The stage-streams gauge reads ``roles()`` (role -> streams) at each scrape."""
        for role in STAGE_ROLES:
            self._stage_streams.labels(*self._ids, role).set_function(
                lambda r=role: float(roles().get(r, 0)))  # type: ignore[misc]

    def render(self) -> bytes:
        return generate_latest(self.registry)
