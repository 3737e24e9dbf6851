"""One moderation state for all regions: every region's decisions, replicated to every region.

Why JetStream streams with sources (and not a hub request per post, nor a KV bucket):

- Each region stores its own decisions in its stream ``MODERATION`` (subject
  ``mod.<region>``, in its own domain). A gateway publishes with
  ``Nats-Expected-Last-Sequence``, so the stream numbers a region's decisions 1, 2, 3... with no
  hole, and each decision carries its number (``seq``): "have I applied everything of
  us-east?" is one comparison.
- Each region's stream ``MODERATION_ALL`` sources its own ``MODERATION`` and every other
  region's (``external`` API ``$JS.<region>.API``, over the hub). JetStream copies each
  decision once per region, durably, in its origin's order, and a source resumes by itself
  where it stopped when a cut link heals: a region holds every decision it has ever received
  on its own disk, and a gateway (re)starting while its region is cut off still enforces
  them. Decisions are about users and streams, so copying everything everywhere is exactly
  right; they are few (people and the classifier make them, not viewers).
- Each gateway keeps the state in memory (`region.moderation.ModerationState`) and checks
  posts against it: no round trip on the post path. It reads its region's ``MODERATION_ALL``
  by Direct Get from where it got to, at start (until it has everything: before that, posts
  wait) and then every `POLL_S`.

Faster than the sources, and the guard against missing something:

- Every gateway announces, every ``moderation_head_interval_ms`` and at once after it applied
  something, how far it has applied each origin (`ModerationHead` over the hub). A gateway
  that hears an origin's own gateways ahead of what it holds is *behind*: it reads the missing
  decisions from the origin's ``MODERATION`` by Direct Get over the hub (one round trip) and
  applies them; the source's copy arrives later and is recognised as applied. A decision
  reaches every reachable region in about one link round trip.
- `ready` (called before every post) returns at once unless the gateway is behind or still
  loading; then the post waits for the catch-up, at most ``moderation_catchup_wait_ms``, and
  is refused with 503 (retryable) if it did not finish: a region whose link has just healed
  applies what it missed before it admits posts again. Which users a missed decision concerns
  is unknown until it is read, so every post waits, for one round trip. While a link is cut
  the other side cannot know of decisions made there; it admits posts (a cell keeps serving
  its own viewers) and catches up when the first head arrives after the heal, which is at most
  one head interval after the link is back.
- A moderator's request (`decide`) returns once every gateway heard from within
  `REACH_WINDOW_S` (every reachable region) has applied the decision, or after
  ``moderation_apply_timeout_ms``, naming the regions that have not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.js.api import DiscardPolicy, ExternalStream, StorageType, StreamConfig, StreamSource
from nats.js.errors import APIError
from nats.js.errors import Error as JsError

from chorus.backoff import Backoff
from chorus.config import Config, Region
from chorus.drivers import describe, driver_errors, translated
from chorus.ids import IdGenerator
from chorus.metrics import Metrics
from chorus.names import (
    MODERATION_ALL_DIRECT_GET,
    MODERATION_ALL_STREAM,
    MODERATION_DIRECT_GET,
    MODERATION_HEADS,
    MODERATION_STREAM,
    moderation_api,
    moderation_direct_get,
    moderation_head,
    moderation_subject,
)
from global_.hub import HubMessageError, LogThrottle, ModerationHead, Rejections
from region.moderation import (
    Action,
    Decision,
    DecisionError,
    ModerationState,
    ModerationUnavailable,
    Outcome,
)

log = logging.getLogger(__name__)

POLL_S = 1.0              # the local replica is read this often (and at once when nudged)
BATCH = 256               # decisions per Direct Get
REQUEST_TIMEOUT_S = 5.0
REACH_WINDOW_S = 2.0      # a gateway heard from within this counts as reachable
PUBLISH_TRIES = 50        # expected-sequence conflicts (gateways deciding at once) retried
DUPLICATE_WINDOW_S = 600  # a decision re-sent with its id within this is stored once
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for Nats-Expected-Last-Sequence


def own_config(region: str) -> StreamConfig:
    """The region's own decisions: kept for ever (a ban has no natural end)."""
    return StreamConfig(name=MODERATION_STREAM, subjects=[moderation_subject(region)],
                        storage=StorageType.FILE, allow_direct=True,
                        duplicate_window=DUPLICATE_WINDOW_S, discard=DiscardPolicy.NEW)


def replica_config(region: str, others: tuple[str, ...]) -> StreamConfig:
    """Every region's decisions, in this region: its own stream and each other region's."""
    sources = [StreamSource(name=MODERATION_STREAM)] + [
        StreamSource(name=MODERATION_STREAM, filter_subject=moderation_subject(other),
                     external=ExternalStream(api=moderation_api(other)))
        for other in others]
    return StreamConfig(name=MODERATION_ALL_STREAM, storage=StorageType.FILE,
                        allow_direct=True, sources=sources, discard=DiscardPolicy.NEW)


@dataclass
class _Heard:
    applied: dict[str, int]
    at: float


class ModerationReplica:
    """This gateway's copy of every region's decisions, and its way to add one (the cell's
    `region.moderation.DecisionLog`). ``on_applied`` is called with each new decision, in
    each origin's order, after the state has it (live retraction and pin frames)."""

    def __init__(self, nc: Nats, *, config: Config, region: Region, gateway: str,
                 state: ModerationState, metrics: Metrics,
                 on_applied: Callable[[Decision], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.nc = nc
        self.region = region.name
        self.others = tuple(r.name for r in config.regions if r.name != region.name)
        self.gateway = gateway
        self.state = state
        self.metrics = metrics
        self.on_applied = on_applied
        self.clock = clock
        limits = config.limits
        self.head_interval_s = limits.moderation_head_interval_ms / 1000
        self.apply_timeout_s = limits.moderation_apply_timeout_ms / 1000
        self.catchup_wait_s = limits.moderation_catchup_wait_ms / 1000
        self.js = nc.jetstream(timeout=REQUEST_TIMEOUT_S)
        self.ids = IdGenerator(gateway)
        self.rejections = Rejections(metrics)
        self._heads: dict[tuple[str, str], _Heard] = {}
        self._next_local = 1                 # next sequence of MODERATION_ALL to read
        self._loaded = asyncio.Event()       # the start replay is done
        self._changed = asyncio.Event()      # something applied, or a head heard
        self._nudge = asyncio.Event()        # read the replica now
        self._announce = asyncio.Event()     # announce the head now
        self._catch_up = asyncio.Event()     # some origin is ahead of us
        self._quiet = LogThrottle(10.0)

    # -- setup -------------------------------------------------------------------------------

    async def ensure(self) -> None:
        """Creates or updates both streams (every gateway calls this; same config: no-op)."""
        for config in (own_config(self.region), replica_config(self.region, self.others)):
            with translated(ModerationUnavailable, f"creating stream {config.name}"):
                try:
                    await self.js.add_stream(config)
                except JsError as exc:
                    if "already in use" not in str(exc):
                        raise
                    await self.js.update_stream(config)

    # -- deciding ----------------------------------------------------------------------------

    async def decide(self, action: Action, *, by: str, reason: str,
                     wait: bool = True) -> Outcome:
        decision = await self._store(action, by=by, reason=reason)
        # Applied in order: another gateway of the region may have stored one just before
        # ours, which this gateway has not read yet (a decision is applied once per origin
        # sequence, so skipping over one would lose it).
        try:
            await self._fetch_from(self.region)
        except ModerationUnavailable:
            self._nudge.set()  # the replica read applies it soon; the wait below says when
        self._announce.set()
        if wait:
            await self._await_applied(decision)
        applied, pending = self._regions_applied(decision)
        return Outcome(decision=decision, applied=applied, pending=pending)

    async def _store(self, action: Action, *, by: str, reason: str) -> Decision:
        decision_id = self.ids.next()
        subject = moderation_subject(self.region)
        for _ in range(PUBLISH_TRIES):
            with translated(ModerationUnavailable, "storing a moderation decision"):
                info = await self.js.stream_info(MODERATION_STREAM)
                last = int(info.state.last_seq or 0)
                decision = Decision(id=decision_id, origin=self.region, seq=last + 1,
                                    ts_ms=time.time_ns() // 1_000_000, by=by, reason=reason,
                                    action=action)
                try:
                    ack = await self.js.publish(subject, decision.encode(), headers={
                        "Nats-Expected-Last-Sequence": str(last), "Nats-Msg-Id": decision_id})
                except APIError as exc:
                    if exc.err_code == WRONG_LAST_SEQUENCE:
                        continue  # another gateway decided at the same moment: renumber
                    raise
            if ack.duplicate:
                # Our own earlier try got through (its answer was lost): that is the decision.
                return await self._stored(ack.seq)
            return decision
        raise ModerationUnavailable(f"storing a moderation decision: {PUBLISH_TRIES} "
                                    "conflicting tries; too many decisions at once")

    async def _stored(self, seq: int) -> Decision:
        msgs = await self._direct(MODERATION_DIRECT_GET, {"seq": seq})
        if not msgs:
            raise ModerationUnavailable(f"decision {seq} is not in the stream")
        return Decision.decode(msgs[0].data)

    async def _await_applied(self, decision: Decision) -> None:
        deadline = self.clock() + self.apply_timeout_s
        while self._regions_applied(decision)[1]:
            left = deadline - self.clock()
            if left <= 0:
                return
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, self.head_interval_s))

    def _regions_applied(self, decision: Decision) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(regions whose every reachable gateway has applied ``decision``, the others)."""
        now = self.clock()
        heard: dict[str, bool] = {}
        for (region, _), head in self._heads.items():
            if now - head.at > REACH_WINDOW_S:
                continue
            done = head.applied.get(decision.origin, 0) >= decision.seq
            heard[region] = heard.get(region, True) and done
        heard[self.region] = heard.get(self.region, True) and (
            self.state.applied.get(decision.origin, 0) >= decision.seq)
        every = (self.region, *self.others)
        applied = tuple(r for r in every if heard.get(r, False))
        return applied, tuple(r for r in every if r not in applied)

    # -- the post path's guard ---------------------------------------------------------------

    def behind(self) -> list[str]:
        """The origins whose own gateways said they hold decisions this gateway has not
        applied (recently heard only: a cut-off origin cannot say)."""
        now = self.clock()
        out = set()
        for (region, _), head in self._heads.items():
            if now - head.at <= REACH_WINDOW_S and (
                    head.applied.get(region, 0) > self.state.applied.get(region, 0)):
                out.add(region)
        return sorted(out)

    async def ready(self) -> None:
        if self._loaded.is_set() and not self.behind():
            return
        deadline = self.clock() + self.catchup_wait_s
        while not self._loaded.is_set() or self.behind():
            left = deadline - self.clock()
            if left <= 0:
                what = (f"decisions of {', '.join(self.behind())}" if self._loaded.is_set()
                        else "the moderation state")
                raise ModerationUnavailable(f"this gateway is still applying {what}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Reads, announces, listens and catches up until cancelled."""
        sub = await self.nc.subscribe(MODERATION_HEADS, cb=self._on_head)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._read_loop(), name="moderation replica")
                tg.create_task(self._announce_loop(), name="moderation heads")
                tg.create_task(self._catch_up_loop(), name="moderation catch-up")
        finally:
            with contextlib.suppress(*driver_errors("nats")):
                await sub.unsubscribe()

    async def _read_loop(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                await self._read_replica()
                backoff.reset()
            except ModerationUnavailable as exc:
                self._log("replica", "reading the moderation replica failed: %s", exc)
                await backoff.wait()
                continue
            self._loaded.set()
            self._changed.set()
            self._nudge.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudge.wait(), POLL_S)

    async def _read_replica(self) -> None:
        """Applies everything of the local replica after what was read so far."""
        while True:
            msgs = await self._direct(MODERATION_ALL_DIRECT_GET,
                                      {"seq": self._next_local, "batch": BATCH})
            for msg in msgs:
                self._next_local = int((msg.headers or {})["Nats-Sequence"]) + 1
                self._apply_msg(msg)
            if len(msgs) < BATCH:
                return

    async def _catch_up_loop(self) -> None:
        backoff = Backoff(0.1, 2.0)
        while True:
            await self._catch_up.wait()
            self._catch_up.clear()
            failed = False
            for origin in self.behind():
                try:
                    await self._fetch_from(origin)
                except ModerationUnavailable as exc:
                    failed = True
                    self._log(f"catch-up {origin}", "catching up with %s failed: %s",
                              origin, exc)
            if failed or self.behind():
                self._catch_up.set()
                await backoff.wait()
            else:
                backoff.reset()

    async def _fetch_from(self, origin: str) -> None:
        """Reads ``origin``'s decisions after the last applied, from its own stream."""
        self.metrics.moderation_catchups.inc()
        while True:
            start = self.state.applied.get(origin, 0) + 1
            msgs = await self._direct(moderation_direct_get(origin),
                                      {"seq": start, "batch": BATCH})
            for msg in msgs:
                self._apply_msg(msg, origin=origin)
            if len(msgs) < BATCH:
                return

    async def _announce_loop(self) -> None:
        while True:
            head = ModerationHead(region=self.region, gateway=self.gateway,
                                  applied=dict(self.state.applied))
            with contextlib.suppress(*driver_errors("nats")):
                await self.nc.publish(moderation_head(self.region), head.encode())
            self._announce.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._announce.wait(), self.head_interval_s)

    async def _on_head(self, msg: Msg) -> None:
        try:
            head = ModerationHead.decode(msg.data)
        except HubMessageError as exc:
            self.rejections(exc, msg.subject)
            return
        if msg.subject != moderation_head(head.region):
            return  # a head names the region it is published for; anything else is a stray
        if head.region == self.region and head.gateway == self.gateway:
            return
        self._heads[(head.region, head.gateway)] = _Heard(head.applied, self.clock())
        if len(self._heads) > 4096:
            self._forget_old_heads()
        if head.applied.get(head.region, 0) > self.state.applied.get(head.region, 0):
            self._catch_up.set()
            self._nudge.set()
        self._changed.set()

    def _forget_old_heads(self) -> None:
        now = self.clock()
        for key, head in list(self._heads.items()):
            if now - head.at > REACH_WINDOW_S:
                del self._heads[key]

    # -- applying ----------------------------------------------------------------------------

    def _apply_msg(self, msg: Msg, *, origin: str | None = None) -> None:
        try:
            decision = Decision.decode(msg.data)
        except DecisionError as exc:
            self.metrics.hub_rejected("moderation_decision")
            self._log("bad", "a moderation decision that is not one on %r: %s", msg.subject,
                      exc)
            return
        if origin is not None and decision.origin != origin:
            self._log("bad", "%s's stream holds a decision of %s; ignored", origin,
                      decision.origin)
            return
        self._apply(decision)

    def _apply(self, decision: Decision) -> None:
        if not self.state.apply(decision):
            return
        self.metrics.moderation_applied.inc()
        self._announce.set()
        self._changed.set()
        try:
            self.on_applied(decision)
        except Exception:  # a bug in a listener must not stop replication
            log.exception("a listener failed on moderation decision %s", decision.id)

    # -- Direct Get --------------------------------------------------------------------------

    async def _direct(self, subject: str, body: dict[str, Any]) -> list[Msg]:
        """A Direct Get (a batch ends with an EOB status message; a single one does not)."""
        batch = "batch" in body
        out: list[Msg] = []
        with translated(ModerationUnavailable, f"reading decisions ({subject})"):
            inbox = self.nc.new_inbox()
            sub = await self.nc.subscribe(inbox)
            try:
                await self.nc.publish(subject, json.dumps(body).encode(), reply=inbox)
                while True:
                    msg = await sub.next_msg(timeout=REQUEST_TIMEOUT_S)
                    status = (msg.headers or {}).get("Status")
                    if status:
                        if status in ("204", "404"):
                            return out
                        raise ModerationUnavailable(
                            f"direct get on {subject} failed: {status} "
                            f"{(msg.headers or {}).get('Description', '')}")
                    out.append(msg)
                    if not batch:
                        return out
            finally:
                with contextlib.suppress(*driver_errors("nats")):
                    await sub.unsubscribe()

    def _log(self, key: str, fmt: str, *args: object) -> None:
        held = self._quiet.admit(key)
        if held is not None:
            log.warning(fmt + (f" ({held} more)" if held else ""),
                        *(describe(a) if isinstance(a, BaseException) else a for a in args))
