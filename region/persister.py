"""The persister: every comment a region originated goes from its JetStream log into the
archive.

It is the archive's handler on the durable-consumer worker (chorus/durable.py): every gateway
of the region runs one `Persister`, all of them on the durable consumer
`chorus.names.archive_durable(region)` of the region's log, so each message is handled by one
gateway and a gateway that dies leaves its unacknowledged batch to the others (JetStream redelivers
it after `ACK_WAIT_S`). A batch is acknowledged only after the archive accepted every write
in it (LOCAL_QUORUM, see archive_cassandra.py): a crash at any point loses nothing, it only
redelivers, and a redelivered comment is written to the same row again (its key derives
from the comment id alone), so it is stored once. Comments forwarded from other regions are
acknowledged without a write: their origin archives them.

When the archive is down the worker keeps the batch "in progress" and offers it again with
the shared backoff; nothing else waits on it, so the live path goes on at full speed while
the backlog builds up in JetStream (its lag: `lag`, ``chorus status``) and drains once the
archive is back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from nats.aio.client import Client as Nats

from chorus.durable import (
    ConsumerSpec,
    Delivery,
    DurableWorker,
    WorkerStats,
    part_name,
    pending,
    pending_all,
)
from chorus.durable_migration import adopt_until_done
from chorus.metrics import Metrics
from chorus.names import (
    LEGACY_ARCHIVE_DURABLE,
    hot_archive_durable,
    log_stream,
    log_subjects,
)
from region.archive import Archive

BATCH_MAX = 256           # messages per fetch: one round of concurrent writes
ACK_WAIT_S = 30.0         # JetStream redelivers a batch not acknowledged within this
MAX_ACK_PENDING = 4096    # unacknowledged messages over all gateways: bounds their memory
BACKOFF_FIRST_S = 0.2     # first wait after a failed write...
BACKOFF_MAX_S = 10.0      # ...doubling up to this; under ACK_WAIT_S / 2, so a batch stays ours


def consumer_spec(region: str, *, part: int = 0, batch_max: int = BATCH_MAX,
                  durable: str | None = None, filter_subject: str | None = None
                  ) -> ConsumerSpec:
    """The archive's consumer on ``region``'s log (``part`` 0: the chained log; 1 to P: a hot
    partition); the defaults are what every gateway uses (JetStream refuses a second config
    for one durable name)."""
    return ConsumerSpec(durable=durable or hot_archive_durable(region, part),
                        filter_subject=filter_subject or log_subjects(region, part),
                        ack_wait_s=ACK_WAIT_S, max_ack_pending=MAX_ACK_PENDING,
                        batch=batch_max, stream=log_stream(part))


class Persister:
    """Run `run` as a task owned by the gateway; cancel it to stop (an unacknowledged batch
    is then redelivered to another gateway after `ACK_WAIT_S`).

    ``part``: the log's part it archives (0: the chained log; 1 to P: a hot partition; a
    gateway runs one of each, `persisters`). ``batch_max``, ``durable`` and
    ``filter_subject`` exist for bench/archive.py, which measures a persister of its own on
    one stream; the gateways use the defaults. Counts go to ``metrics``
    (``archive_written``, ``archive_failures``, ``archive_bad``).
    """

    def __init__(self, nc: Nats, region: str, archive: Archive, metrics: Metrics, *,
                 part: int = 0, batch_max: int = BATCH_MAX, durable: str | None = None,
                 filter_subject: str | None = None) -> None:
        self.archive = archive
        self.metrics = metrics
        self.part = part
        spec = consumer_spec(region, part=part, batch_max=batch_max, durable=durable,
                             filter_subject=filter_subject)
        self.worker = DurableWorker(
            nc, spec, region, self._write,
            name=part_name("archive persister", part),
            backoff_first_s=BACKOFF_FIRST_S, backoff_max_s=BACKOFF_MAX_S,
            on_retry=metrics.archive_failures.inc, on_bad=metrics.archive_bad.inc)

    @property
    def stats(self) -> WorkerStats:
        """What this persister did since it started (``handled``: comments archived)."""
        return self.worker.stats

    async def run(self) -> None:
        """Archives until cancelled; survives NATS restarts and archive outages."""
        if not self.part:
            # An older deployment's consumer was "archive" in every region: start after it.
            # (The partitions are newer than that name.)
            await adopt_until_done(self.worker.nc, self.worker.spec, LEGACY_ARCHIVE_DURABLE,
                                   self.worker.name)
        await self.worker.run()

    async def _write(self, deliveries: Sequence[Delivery]) -> Sequence[Delivery]:
        # All or nothing: the archive's writes are idempotent, so a batch that failed part
        # way is simply written again whole.
        comments = [d.comment for d in deliveries]
        began = time.perf_counter()
        await self.archive.write(comments)  # raises ArchiveUnavailable: the worker retries
        self.metrics.archive_write(time.perf_counter() - began)
        self.metrics.archive_written.inc(len(comments))
        return ()


def persisters(nc: Nats, region: str, archive: Archive, metrics: Metrics, *,
               partitions: int) -> tuple[Persister, ...]:
    """A gateway's persisters: the chained log's and one per hot partition (1 to
    ``partitions``), writing to the one archive."""
    return tuple(Persister(nc, region, archive, metrics, part=part)
                 for part in range(partitions + 1))


async def lag(nc: Nats, region: str, durable: str | None = None, *,
              partitions: int = 0) -> int | None:
    """Messages the region's persisters have not archived yet (pending + unacknowledged),
    over the chained log and its ``partitions`` hot partitions; None when a consumer does
    not exist (no gateway with the archive started yet) or JetStream does not answer.
    ``durable``: one consumer of the chained log instead (bench/archive.py's own)."""
    if durable is not None:
        return await pending(nc, durable)
    return await pending_all(nc, ((hot_archive_durable(region, part), log_stream(part))
                                  for part in range(partitions + 1)))
