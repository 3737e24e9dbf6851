"""A lease in a region's NATS: one holder at a time for a name, for as long as it renews it.

The outbox (global_/outbox.py) forwards a region's comments to a destination from one
gateway at a time under a lease, so that the region's order reaches the destination whatever
the link does (docs/design.md, G4): gateways that share a durable consumer share no order.

A lease is a key of a JetStream key-value bucket whose entries expire ``ttl_s`` after they
were written. Acquiring is creating the key (it fails while someone holds it); renewing is
updating it at the revision the holder last wrote (it fails if someone else took it over);
a holder that dies simply stops renewing and the key expires. A holder that could not renew
for `LAPSE_FRACTION` of the lease stops its work before the server can let anyone else in.
`lapsed` is that decision, pure; `Lease` is the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.client import Client as Nats
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from chorus.backoff import Backoff
from chorus.drivers import describe, driver_errors

log = logging.getLogger(__name__)

RENEWALS_PER_TTL = 5     # a holder renews this many times per lease lifetime
LAPSE_FRACTION = 0.75    # a holder that renewed nothing for this share of ttl_s stops its work
RELEASE_TIMEOUT_S = 1.0  # giving the lease back on shutdown: best effort, this long at most


@dataclass(frozen=True)
class LeaseSpec:
    """One lease: the key ``key`` of bucket ``bucket`` (every contender builds the same)."""

    bucket: str
    key: str
    ttl_s: float             # a holder that stops renewing loses it this long after
    acquire_every_s: float = 1.0   # how often a contender tries to take it (jittered)

    @property
    def renew_every_s(self) -> float:
        return self.ttl_s / RENEWALS_PER_TTL

    def config(self) -> KeyValueConfig:
        return KeyValueConfig(bucket=self.bucket, ttl=self.ttl_s, history=1,
                              storage=StorageType.FILE)


def lapsed(renewed_at: float, now: float, ttl_s: float) -> bool:
    """Whether a holder whose last successful renewal was sent at ``renewed_at`` (monotonic
    seconds) must stop: the server counts the lease's life from when it stored the renewal,
    which is later than the send, so stopping `LAPSE_FRACTION` into it leaves a margin."""
    return now - renewed_at >= ttl_s * LAPSE_FRACTION


class LeaseLost(Exception):
    """Someone else holds the lease now, or it may have expired: stop the work."""


class Lease:
    """Runs a piece of work only while this process holds ``spec``'s lease (`run`)."""

    def __init__(self, nc: Nats, spec: LeaseSpec, holder: str, *, name: str) -> None:
        self.nc = nc
        self.spec = spec
        self.holder = holder      # written as the key's value: who holds it, for operators
        self.name = name          # for logs
        self.held = False
        self._revision = 0        # of the key as this holder last wrote it
        self._renewed_at = 0.0    # monotonic time the last successful write was sent

    @property
    def revision(self) -> int:
        """The key's revision as this holder last wrote it (0: never held)."""
        return self._revision

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Until cancelled: takes the lease when it is free, runs ``work`` while holding it,
        cancels it when the lease is lost. ``work`` raising ends `run` with its error (a bug);
        ``work`` returning ends it too. NATS errors are waited out, never raised."""
        while True:
            kv, self._revision = await self._acquire()
            self.held = True
            log.info("%s: lease taken (%s)", self.name, self.holder)
            try:
                if await self._hold(kv, work):
                    return
            except asyncio.CancelledError:
                await self._release(kv)
                raise
            finally:
                self.held = False
            log.warning("%s: lease lost; waiting to take it again", self.name)

    async def _acquire(self) -> tuple[KeyValue, int]:
        backoff = Backoff(self.spec.acquire_every_s, self.spec.acquire_every_s)
        kv: KeyValue | None = None
        while True:
            try:
                if kv is None:
                    kv = await self.nc.jetstream().create_key_value(self.spec.config())
                self._renewed_at = time.monotonic()
                return kv, await kv.create(self.spec.key, self.holder.encode())
            except KeyWrongLastSequenceError:
                pass                      # held by someone else
            except driver_errors("nats") as exc:
                log.debug("%s: lease not taken (%s)", self.name, describe(exc))
                kv = None                 # the bucket may be gone (a JetStream reset)
            await backoff.wait()

    async def _hold(self, kv: KeyValue, work: Callable[[], Awaitable[None]]) -> bool:
        """Runs ``work`` until the lease is lost (False) or ``work`` ends (True)."""
        worker = asyncio.ensure_future(work())
        renewer = asyncio.ensure_future(self._renew(kv))
        try:
            await asyncio.wait({worker, renewer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (worker, renewer):
                task.cancel()
            await asyncio.gather(worker, renewer, return_exceptions=True)
        if worker.done() and not worker.cancelled():
            worker.result()               # a bug in the work surfaces here
            return True
        if renewer.done() and not renewer.cancelled() and renewer.exception() is not None:
            log.warning("%s: %s", self.name, renewer.exception())
        return False

    async def _renew(self, kv: KeyValue) -> None:
        """Renews until the lease is lost; raises `LeaseLost` then."""
        renewed_at = self._renewed_at
        while True:
            await asyncio.sleep(self.spec.renew_every_s)
            sent_at = time.monotonic()
            try:
                self._revision = await kv.update(self.spec.key, self.holder.encode(),
                                                 last=self._revision)
                renewed_at = sent_at
            except KeyWrongLastSequenceError as exc:
                raise LeaseLost("taken over by another holder") from exc
            except driver_errors("nats") as exc:
                log.warning("%s: lease not renewed (%s)", self.name, describe(exc))
            if lapsed(renewed_at, time.monotonic(), self.spec.ttl_s):
                raise LeaseLost(f"not renewed for {time.monotonic() - renewed_at:.1f} s")

    async def _release(self, kv: KeyValue) -> None:
        """Gives the lease back on shutdown, so another process takes over at once."""
        try:
            await asyncio.wait_for(kv.delete(self.spec.key, last=self._revision),
                                   RELEASE_TIMEOUT_S)
        except driver_errors("nats"):
            pass   # it expires by itself
