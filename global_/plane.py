"""A region's part in the global plane, run inside each gateway process.

- answers other regions' presence queries (``chorus.presence.q.<region>``) from this region's
  presence, and their requests for recent comments (``chorus.recent.<region>``) from its log;
- listens to presence changes of every region (drops cached answers);
- forwards this region's comments through one outbox per other region (relay.py);
- when this region gets its first viewer of a stream, announces it and bootstraps the
  stream's recent comments from every other region into its own log (late join).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from chorus.config import Config, Region
from chorus.model import Comment
from global_.presence import CHANGE_SUBJECT, PresenceDirectory, change_event, query_subject
from global_.relay import Forwarder, RelayStats
from region.log import LogUnavailable
from region.log_jetstream import JetStreamLog
from region.presence import Presence, PresenceUnavailable

log = logging.getLogger(__name__)

BOOTSTRAP_LIMIT = 500           # comments per region per bootstrap answer
BOOTSTRAP_TIMEOUT_S = 3.0


def recent_subject(region: str) -> str:
    return f"chorus.recent.{region}"


class GlobalPlane:
    def __init__(self, nc: Nats, *, config: Config, region: Region, log_: JetStreamLog,
                 presence: Presence) -> None:
        self.nc = nc
        self.config = config
        self.region = region
        self.log = log_
        self.presence = presence
        self.others = tuple(r.name for r in config.regions if r.name != region.name)
        limits = config.limits
        self.directory = PresenceDirectory(nc, regions=self.others,
                                           cache_ms=limits.presence_cache_ms,
                                           timeout_ms=limits.presence_query_timeout_ms)
        self.stats = RelayStats()
        self.bootstraps = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- run (owned by the gateway's cleanup context) ------------------------------------------

    async def run(self) -> None:
        name = self.region.name
        subs = [
            await self.nc.subscribe(query_subject(name), queue="presence", cb=self._on_query),
            await self.nc.subscribe(recent_subject(name), queue="recent", cb=self._on_recent),
            await self.nc.subscribe(CHANGE_SUBJECT, cb=self._on_change),
        ]
        forwarders = [Forwarder(self.nc, region=name, dest=d, directory=self.directory,
                                stats=self.stats) for d in self.others]
        try:
            await asyncio.gather(*(f.run() for f in forwarders))
        finally:
            await self.directory.close()
            for sub in subs:
                with contextlib.suppress(NatsError):
                    await sub.unsubscribe()
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- answering other regions -------------------------------------------------------------

    async def _on_query(self, msg: Msg) -> None:
        try:
            stream = str(json.loads(msg.data)["stream"])
            viewers = await self.presence.count(stream)
        except (ValueError, KeyError, TypeError):
            return
        except PresenceUnavailable:
            return  # no answer: the asker counts us as having viewers
        await msg.respond(json.dumps({"region": self.region.name, "stream": stream,
                                      "viewers": viewers}).encode())

    async def _on_recent(self, msg: Msg) -> None:
        try:
            doc: Any = json.loads(msg.data)
            stream, since_ms = str(doc["stream"]), int(doc["since_ms"])
            entries = await self.log.read_since(stream, since_ms, BOOTSTRAP_LIMIT * 4)
        except (ValueError, KeyError, TypeError):
            return
        except LogUnavailable:
            return
        own = [e.comment.to_json() for e in entries if e.comment.region == self.region.name]
        await msg.respond(json.dumps({"region": self.region.name,
                                      "comments": own[-BOOTSTRAP_LIMIT:]}).encode())

    async def _on_change(self, msg: Msg) -> None:
        self.directory.on_change(msg.data)

    # -- this region's viewers come and go ------------------------------------------------------

    async def first_local_viewer(self, stream: str, region_had_viewers: bool) -> None:
        """Called by the fanout when this gateway gets its first viewer of ``stream``, after
        its presence was reported. Announces it; bootstraps if the region had none."""
        await self._announce(stream, 1)
        if region_had_viewers:
            return
        # Twice: now, and once every cached "no viewers" answer elsewhere has expired, so a
        # comment that a forwarder skipped just before it heard of us is fetched too.
        self._spawn(self.bootstrap(stream))
        self._spawn(self._bootstrap_later(stream))

    async def last_local_viewer(self, stream: str) -> None:
        await self._announce(stream, 0)

    async def _announce(self, stream: str, viewers: int) -> None:
        with contextlib.suppress(NatsError, NatsTimeout):
            await self.nc.publish(CHANGE_SUBJECT, change_event(self.region.name, stream, viewers))
            await self.nc.flush(timeout=2)

    async def _bootstrap_later(self, stream: str) -> None:
        limits = self.config.limits
        await asyncio.sleep((limits.presence_cache_ms + limits.presence_query_timeout_ms)
                            / 1000 + 0.5)
        await self.bootstrap(stream)

    async def bootstrap(self, stream: str) -> int:
        """Copies the stream's recent comments from every other region into this region's
        log (deduplicated by comment id); returns how many were new here.

        A region that does not answer (its link is cut, it is down) is asked again, with
        backoff, until it answers or the bootstrap window has passed: what it skipped while
        we had no viewers is in its log, and only this copy brings it here."""
        self.bootstraps += 1
        since_ms = int(time.time() * 1000) - self.config.limits.bootstrap_max_age_s * 1000
        body = json.dumps({"stream": stream, "since_ms": since_ms}).encode()
        give_up = time.monotonic() + self.config.limits.bootstrap_max_age_s

        async def copy_from(region: str) -> int:
            delay = 0.5
            while True:
                try:
                    reply = await self.nc.request(recent_subject(region), body,
                                                  timeout=BOOTSTRAP_TIMEOUT_S)
                    comments = [Comment.from_json(c)
                                for c in json.loads(reply.data)["comments"]]
                    break
                except (NatsTimeout, NoRespondersError, NatsError, ValueError, KeyError):
                    if time.monotonic() + delay > give_up:
                        log.warning("bootstrap of %s: %s never answered", stream, region)
                        return 0
                    await asyncio.sleep(delay)  # backoff between attempts, not a sync
                    delay = min(5.0, delay * 2)
            added = 0
            for comment in sorted(comments, key=lambda c: c.id):
                try:
                    appended = await self.log.append(comment, msg_id=comment.id)
                except LogUnavailable as exc:
                    log.warning("bootstrap of %s stopped: %s", stream, exc)
                    break
                added += not appended.duplicate
            return added

        return sum(await asyncio.gather(*(copy_from(r) for r in self.others)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("global plane task failed", exc_info=task.exception())
