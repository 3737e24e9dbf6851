"""The lease against a region's real NATS: one holder at a time, and a successor when the
holder stops or dies (chorus/lease.py; the outbox forwards under it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import nats
import pytest

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.lease import RENEWALS_PER_TTL, Lease, LeaseSpec

pytestmark = pytest.mark.integration

TTL_S = 2.0


def holds(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    """``check`` as the asynchronous condition `wait_until` takes."""
    async def checked() -> bool:
        return check()
    return checked


class Work:
    """Records which holders are working, and whether two ever were at once."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.overlapped = False
        self.started: list[str] = []

    def of(self, holder: str) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            self.overlapped |= bool(self.running)
            self.running.add(holder)
            self.started.append(holder)
            try:
                await asyncio.Event().wait()     # until cancelled
            finally:
                self.running.discard(holder)
        return work


async def test_one_holder_at_a_time_and_a_successor_when_it_stops(
        cluster: LocalCluster, unique: str) -> None:
    nc = await nats.connect(cluster.config.region("us-east").nats_url)
    spec = LeaseSpec(bucket=f"lease-{unique}", key="eu-west", ttl_s=TTL_S,
                     acquire_every_s=0.2)
    work = Work()
    leases = {name: Lease(nc, spec, name, name=f"lease {name}") for name in ("a", "b", "c")}
    tasks = {name: asyncio.create_task(lease.run(work.of(name)))
             for name, lease in leases.items()}
    try:
        await wait_until(holds(lambda: len(work.running) == 1), what="one holder", timeout_s=10)
        first = next(iter(work.running))
        # The others keep trying; none gets in while the holder renews (over two lifetimes).
        await wait_until(holds(lambda: len(work.started) > 1
                         or leases[first].revision > 2 * RENEWALS_PER_TTL + 1),
                         what="renewals", timeout_s=20)
        assert work.started == [first]
        # A holder that stops gives the lease back: another takes it over at once.
        tasks.pop(first).cancel()
        await wait_until(holds(lambda: len(work.running) == 1 and first not in work.running),
                         what="a successor", timeout_s=10)
        second = next(iter(work.running))
        # A holder whose key someone else wrote (it was presumed dead) stops its work.
        kv = await nc.jetstream().key_value(spec.bucket)
        await kv.put(spec.key, b"someone else")
        await wait_until(holds(lambda: second not in work.running),
                         what="the usurped holder stops", timeout_s=10)
        assert not work.overlapped
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_key_value(spec.bucket)
        await nc.close()


async def test_a_dead_holders_lease_expires(cluster: LocalCluster, unique: str) -> None:
    nc = await nats.connect(cluster.config.region("us-east").nats_url)
    spec = LeaseSpec(bucket=f"lease-{unique}", key="ap-south", ttl_s=TTL_S,
                     acquire_every_s=0.2)
    try:
        # A holder that died without a word: its key is there, and nobody renews it.
        kv = await nc.jetstream().create_key_value(spec.config())
        await kv.create(spec.key, b"dead")
        work = Work()
        task = asyncio.create_task(Lease(nc, spec, "heir", name="heir").run(work.of("heir")))
        try:
            await wait_until(holds(lambda: "heir" in work.running), what="the lease expired",
                             timeout_s=TTL_S + 10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_key_value(spec.bucket)
        await nc.close()
