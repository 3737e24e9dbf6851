"""Moving a durable consumer to a new name without losing or re-sending what it had done.

Earlier versions named a region's outbox consumers ``fwd-<dest>`` and its archive consumer
``archive``: the same names in every region, whose acknowledgements leaked to the other
regions' consumers of that name (chorus/names.py says why). A JetStream consumer cannot be
renamed, so the first gateway of the new version to start creates the consumer under its new
name with `adopt`, starting just after the old consumer's ack floor:

- nothing is lost: everything above the floor is delivered again by the new consumer;
- little is sent twice: only what the old consumer had acknowledged out of order above its
  floor (at most its ``max_ack_pending``), which a destination drops as a duplicate
  (``Nats-Msg-Id``) and the archive writes idempotently. Starting from the beginning of the
  log instead would re-send up to the log's retention (7 days).

The old consumer stays: during a rolling upgrade, gateways of the earlier version still work
on it, and their forwards are duplicates the destination drops. Once every gateway of every
region runs this version, `retire` deletes the old consumers (docs/operations.md, "Upgrading
to per-region consumer names").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from nats.aio.client import Client as Nats
from nats.js.api import DeliverPolicy
from nats.js.errors import Error as JsError
from nats.js.errors import NotFoundError

from chorus.backoff import Backoff
from chorus.drivers import describe, driver_errors
from chorus.durable import ConsumerSpec
from chorus.names import COMMENTS_STREAM, LEGACY_ARCHIVE_DURABLE, legacy_outbox_durable

log = logging.getLogger(__name__)

API_TIMEOUT_S = 5.0


async def adopt(nc: Nats, spec: ConsumerSpec, legacy: str) -> str:
    """Creates ``spec``'s consumer if it does not exist, starting after ``legacy``'s ack
    floor when ``legacy`` exists (from the start of the log when it does not: a new
    deployment). Returns what it did, in words, for the log. Raises the driver's errors."""
    js = nc.jetstream(timeout=API_TIMEOUT_S)
    try:
        await js.consumer_info(spec.stream, spec.durable)
        return "exists"
    except NotFoundError:
        pass
    try:
        old = await js.consumer_info(spec.stream, legacy)
    except NotFoundError:
        old = None
    config = spec.config()
    done = "created from the start of the log"
    if old is not None:
        floor = int(old.ack_floor.stream_seq or 0) if old.ack_floor is not None else 0
        config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
        config.opt_start_seq = floor + 1
        done = f"created after {legacy}'s ack floor (sequence {floor})"
    try:
        await js.add_consumer(spec.stream, config)
    except JsError:
        # Another gateway created it meanwhile (with a floor a little further on, so a
        # different config, which JetStream refuses): theirs stands.
        await js.consumer_info(spec.stream, spec.durable)
        return "exists"
    return done


async def adopt_until_done(nc: Nats, spec: ConsumerSpec, legacy: str, name: str) -> None:
    """`adopt`, retried with the shared backoff while JetStream does not answer: a worker
    must not create its consumer from the start of the log because NATS was away when the
    gateway started."""
    backoff = Backoff(0.2, 5.0)
    while True:
        try:
            done = await adopt(nc, spec, legacy)
        except driver_errors("nats") as exc:
            delay = backoff.next()
            log.warning("%s: consumer %s not checked yet (%s); retrying in %.1f s", name,
                        spec.durable, describe(exc), delay)
            await asyncio.sleep(delay)  # pacing a retry, not synchronisation
            continue
        if done != "exists":
            log.info("%s: consumer %s %s", name, spec.durable, done)
        return


def legacy_names(dests: Sequence[str]) -> list[str]:
    """Every consumer name of earlier versions in a region whose outboxes go to ``dests``."""
    return [*(legacy_outbox_durable(d) for d in dests), LEGACY_ARCHIVE_DURABLE]


async def retire(nc: Nats, dests: Sequence[str]) -> list[str]:
    """Deletes the consumers of earlier versions from the region ``nc`` is connected to;
    returns the names deleted. Run it once no gateway of the earlier version is left in any
    region: one still running would re-create its consumer from the start of the log."""
    js = nc.jetstream(timeout=API_TIMEOUT_S)
    deleted = []
    for name in legacy_names(dests):
        try:
            await js.delete_consumer(COMMENTS_STREAM, name)
        except NotFoundError:
            continue
        deleted.append(name)
    return deleted
