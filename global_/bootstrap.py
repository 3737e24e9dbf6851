"""Late-join bootstrap: a region's first viewer of a stream gets the stream's recent comments
from every other region, so a late joiner never sees an empty or gapped timeline.

`Bootstrap` is the asking side. While a region has no viewers of a stream the others' outboxes
skip the stream's comments for it; when it gets its first viewer it asks every other region
(`RecentRequest`) for the comments of the stream that region originated in the last
``bootstrap_max_age_s``, and appends them to its own log, deduplicated by comment id (the
log's ``Nats-Msg-Id`` window). It does so twice: at once, and again once every cached "no
viewers" answer elsewhere has expired, so a comment an outbox skipped just before it heard of
the new viewer is fetched too. A region that does not answer (its link is cut, it is down)
is asked again with the shared `Backoff` until it answers or the window has passed: what it
skipped is in its log, and only this copy brings it here.

`RecentResponder` is the answering side: one gateway of the region (queue group ``recent``)
answers each request from the region's log with at most `RECENT_LIMIT` of its own comments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg

from chorus.backoff import Backoff
from chorus.config import Limits
from chorus.drivers import driver_errors
from chorus.metrics import Metrics
from chorus.model import Comment
from chorus.names import RECENT_QUEUE, recent_subject
from global_.hub import HubMessageError, RecentReply, RecentRequest, Rejections
from region.log import CommentLog, Entry, LogUnavailable

log = logging.getLogger(__name__)

RECENT_LIMIT = 500          # comments per region per answer (the newest ones)
READ_FACTOR = 4             # entries read per answer, per comment answered: the log also
                            # holds comments forwarded to the region, which are not answered
REQUEST_TIMEOUT_S = 3.0     # one request over the slowest link, with margin
RETRY_FIRST_S = 0.5         # backoff between requests to a region that did not answer
RETRY_MAX_S = 5.0


def second_copy_after_s(limits: Limits) -> float:
    """When the second copy starts, in seconds after the first: once every answer cached
    elsewhere before the announcement has expired (or timed out), with a margin."""
    return (limits.presence_cache_ms + limits.presence_query_timeout_ms) / 1000 + 0.5


def own_recent(entries: Iterable[Entry], region: str, limit: int) -> tuple[Entry, ...]:
    """The newest ``limit`` entries of ``entries`` (oldest first) whose comment ``region``
    originated: a comment forwarded to it is its origin's to give."""
    own = [e for e in entries if e.comment.region == region]
    return tuple(own[-limit:]) if limit > 0 else ()


def reply_of(region: str, entries: Sequence[Entry]) -> RecentReply:
    """The answer carrying ``entries``, saying which of them a hot partition holds."""
    return RecentReply(region=region, comments=tuple(e.comment for e in entries),
                       hot=frozenset(e.comment.id for e in entries if e.part))


async def store(into: CommentLog, comments: Sequence[Comment],
                hot: frozenset[str] = frozenset()) -> int:
    """Appends ``comments`` in id order, each under its id (a copy already there is a
    duplicate, not a second comment), those in ``hot`` to the log's hot partition of the id
    (where the outbox forwards them too); returns how many were new. Stops at the first
    `LogUnavailable`: the second copy, or the next late join, brings the rest."""
    added = 0
    for comment in sorted(comments, key=lambda c: c.id):
        try:
            appended = await into.append(comment, msg_id=comment.id, hot=comment.id in hot)
        except LogUnavailable as exc:
            log.warning("bootstrap of %s stopped: %s", comment.stream, exc)
            break
        added += not appended.duplicate
    return added


class Bootstrap:
    """Copies streams' recent comments from ``others`` into this region's log."""

    def __init__(self, nc: Nats, *, region: str, others: Sequence[str], log: CommentLog,
                 limits: Limits, metrics: Metrics, rejections: Rejections) -> None:
        self.nc = nc
        self.region = region
        self.others = tuple(others)
        self.log = log
        self.limits = limits
        self.metrics = metrics
        self.rejections = rejections

    async def late_join(self, stream: str) -> int:
        """Both copies for this region's first viewer of ``stream``; how many were new."""
        async def later() -> int:
            await asyncio.sleep(second_copy_after_s(self.limits))  # a deadline, not a sync
            return await self.copy(stream)

        return sum(await asyncio.gather(self.copy(stream), later()))

    async def copy(self, stream: str) -> int:
        """One copy from every other region at once; how many comments were new here."""
        self.metrics.bootstraps.inc()
        max_age_s = self.limits.bootstrap_max_age_s
        request = RecentRequest(stream=stream,
                                since_ms=max(0, int(time.time() * 1000) - max_age_s * 1000))
        give_up = time.monotonic() + max_age_s
        added = await asyncio.gather(*(self._copy_from(r, request, give_up)
                                       for r in self.others))
        return sum(added)

    async def _copy_from(self, region: str, request: RecentRequest, give_up: float) -> int:
        backoff = Backoff(RETRY_FIRST_S, RETRY_MAX_S)
        while (reply := await self._ask(region, request)) is None:
            delay = backoff.next()
            if time.monotonic() + delay > give_up:
                log.warning("bootstrap of %s: %s never answered", request.stream, region)
                return 0
            await asyncio.sleep(delay)  # pacing the retries, not synchronisation
        return await store(self.log, reply.comments, reply.hot)

    async def _ask(self, region: str, request: RecentRequest) -> RecentReply | None:
        """``region``'s reply; None when it did not answer or answered nonsense."""
        subject = recent_subject(region)
        try:
            msg = await self.nc.request(subject, request.encode(), timeout=REQUEST_TIMEOUT_S)
        except driver_errors("nats"):
            return None
        try:
            reply = RecentReply.decode(msg.data)
            if not reply.answers(region, request):
                raise HubMessageError("recent_reply", f"{reply.region!r} answered with "
                                      "comments of another region or stream")
        except HubMessageError as err:
            self.rejections(err, subject)
            return None
        return reply


class RecentResponder:
    """Answers other regions' `RecentRequest`s from this region's log."""

    def __init__(self, nc: Nats, *, region: str, log: CommentLog,
                 rejections: Rejections) -> None:
        self.nc = nc
        self.region = region
        self.log = log
        self.rejections = rejections

    async def run(self) -> None:
        """Answers until cancelled; one gateway of the region answers each request."""
        sub = await self.nc.subscribe(recent_subject(self.region), queue=RECENT_QUEUE)
        try:
            async for msg in sub.messages:
                await self._answer(msg)
        finally:
            with contextlib.suppress(*driver_errors("nats")):  # a closed connection ended it
                await sub.unsubscribe()

    async def _answer(self, msg: Msg) -> None:
        try:
            request = RecentRequest.decode(msg.data)
        except HubMessageError as err:
            self.rejections(err, msg.subject)
            return
        try:
            entries = await self.log.read_since(request.stream, request.since_ms,
                                                RECENT_LIMIT * READ_FACTOR)
        except LogUnavailable as exc:
            log.warning("recent comments of %s not answered: %s", request.stream, exc)
            return  # the asker asks again
        except ValueError as exc:
            log.error("recent comments of %s not answered: the log holds a message that is "
                      "not a comment (%s)", request.stream, exc)
            return
        reply = reply_of(self.region, own_recent(entries, self.region, RECENT_LIMIT))
        with contextlib.suppress(*driver_errors("nats")):
            # No reply subject, or the connection went: the asker asks again.
            await msg.respond(reply.encode())
