"""The drills: each one a fault, how long it lasts, how it is undone, and what must hold.

Every drill runs the same way (chaos/drill.py): the steady-state hypothesis is checked, the
workload runs, the fault is injected and observed for ``seconds``, rolled back, the workload
runs on, and the steady state must come back; then chaos/verdict.py counts. A drill here only
says what differs: its `inject` (which ends when the fault has lasted its time: a flapping
link flaps for the whole of it), its `rollback` (run whatever happened, and safe to run
twice), the faults a deployment must supply as hooks, and the bounds it adds to G1-G3.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chaos.faults import Faults
from chaos.verdict import REORDER_WINDOW_MS, Bounds

FLAP_PERIOD_S = 2.0   # link-flap: cut for half of it, healed for the other half


@dataclass
class Context:
    """What a drill's steps get: the faults, the target region, the fault's duration, and
    where to note each fault window (shaded in the report's timeline)."""

    faults: Faults
    region: str
    seconds: float
    clock: Callable[[], float]              # seconds since the drill began
    windows: list[tuple[float, float, str]] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    progress: Callable[[str], None] = lambda _msg: None

    def mark(self, began: float, label: str) -> None:
        self.windows.append((began, self.clock(), label))


Step = Callable[[Context], Awaitable[None]]


@dataclass(frozen=True)
class Drill:
    name: str
    summary: str
    hypothesis: str
    inject: Step
    rollback: Step
    hooks: frozenset[str]                 # what a deployment's hooks file must define
    full_s: float                         # the fault's duration in a full drill
    short_s: float                        # ... in CI's short form
    bounds: Callable[[Context], Bounds] = lambda _ctx: Bounds()
    needs_cassandra: bool = False


async def _hold(ctx: Context, seconds: float | None = None) -> None:
    await asyncio.sleep(ctx.seconds if seconds is None else seconds)  # the fault's length


# -- region-down ---------------------------------------------------------------------------------


async def _region_down(ctx: Context) -> None:
    parts = await ctx.faults.parts(ctx.region)
    began = ctx.clock()
    # Gateways first, then the servers, within a few ms: from outside, the region vanishes.
    for part in sorted(parts, key=lambda p: "/gateway-" not in p):
        await ctx.faults.kill(part)
        ctx.killed.append(part)
    ctx.progress(f"killed {', '.join(ctx.killed)}")
    await _hold(ctx)
    ctx.mark(began, f"{ctx.region} down")


async def _start_killed(ctx: Context) -> None:
    # Servers before gateways (`parts` order): a gateway needs its NATS and Redis.
    for part in sorted(ctx.killed, key=lambda p: "/gateway-" in p):
        await ctx.faults.start(part)
    ctx.killed.clear()


async def _isolated_then_down(ctx: Context) -> None:
    # The region is cut off first: its viewers keep getting its own comments and nobody
    # else's. Then it dies while cut off, and they fail over holding its newest comments.
    began = ctx.clock()
    await ctx.faults.link(ctx.region, enabled=False)
    ctx.progress(f"cut {ctx.region}'s link")
    await _hold(ctx, ctx.seconds / 2)
    ctx.mark(began, "link cut")
    await _region_down(Context(faults=ctx.faults, region=ctx.region, seconds=ctx.seconds / 2,
                               clock=ctx.clock, windows=ctx.windows, killed=ctx.killed,
                               progress=ctx.progress))


async def _restore_isolated(ctx: Context) -> None:
    await _start_killed(ctx)
    await ctx.faults.link(ctx.region, enabled=True)


# -- one process ---------------------------------------------------------------------------------


def _kill_part(suffix: str, label: str) -> Step:
    async def inject(ctx: Context) -> None:
        part = f"{ctx.region}/{suffix}"
        began = ctx.clock()
        await ctx.faults.kill(part)
        ctx.killed.append(part)
        ctx.progress(f"killed {part} (SIGKILL)")
        await _hold(ctx)
        ctx.mark(began, f"{part} {label}")
    return inject


async def _nats_freeze(ctx: Context) -> None:
    part = f"{ctx.region}/nats"
    began = ctx.clock()
    await ctx.faults.freeze(part)
    ctx.progress(f"froze {part} (SIGSTOP)")
    try:
        await _hold(ctx)
    finally:
        await ctx.faults.thaw(part)
        ctx.mark(began, f"{part} frozen")


async def _thaw_nats(ctx: Context) -> None:
    await ctx.faults.thaw(f"{ctx.region}/nats")


async def _redis_loss(ctx: Context) -> None:
    began = ctx.clock()
    await ctx.faults.flush_redis(ctx.region)
    ctx.progress(f"FLUSHALL on {ctx.region}'s Redis")
    await _hold(ctx, ctx.seconds / 2)
    ctx.mark(began, "FLUSHALL")
    part = f"{ctx.region}/redis"
    began = ctx.clock()
    await ctx.faults.kill(part)
    ctx.killed.append(part)
    ctx.progress(f"killed {part} (SIGKILL); restarting it empty")
    await _hold(ctx, min(2.0, ctx.seconds / 4))
    await _start_killed(ctx)
    await _hold(ctx, ctx.seconds / 4)
    ctx.mark(began, "Redis killed")


# -- links ---------------------------------------------------------------------------------------


async def _link_flap(ctx: Context) -> None:
    end = time.monotonic() + ctx.seconds
    while time.monotonic() < end:
        began = ctx.clock()
        await ctx.faults.link(ctx.region, enabled=False)
        try:
            await _hold(ctx, FLAP_PERIOD_S / 2)
        finally:
            await ctx.faults.link(ctx.region, enabled=True)
        ctx.mark(began, "cut")
        await _hold(ctx, FLAP_PERIOD_S / 2)


async def _link_cut(ctx: Context) -> None:
    began = ctx.clock()
    await ctx.faults.link(ctx.region, enabled=False)
    ctx.progress(f"cut {ctx.region}'s link")
    try:
        await _hold(ctx)
    finally:
        await ctx.faults.link(ctx.region, enabled=True)
        ctx.mark(began, "link cut")


def _link_slow(extra_ms: int) -> Step:
    async def inject(ctx: Context) -> None:
        began = ctx.clock()
        await ctx.faults.link(ctx.region, latency_ms=extra_ms)
        ctx.progress(f"{ctx.region}'s link slowed to {extra_ms} ms one way")
        await _hold(ctx)
        ctx.mark(began, "link slow")
    return inject


async def _heal_link(ctx: Context) -> None:
    await ctx.faults.link(ctx.region, enabled=True)


def _flap_bounds(ctx: Context) -> Bounds:
    # A link healed for a second at a time is hardly usable: the leaf link takes about a
    # second to reconnect, so comments may wait for the flapping to end, then drain in order
    # within seconds. Disorder beyond the client's reorder window would show as comments
    # jumping back in every timeline: that is what must not happen.
    return Bounds(max_late_ms=(ctx.seconds + 10.0) * 1000, max_disorder_ms=REORDER_WINDOW_MS)


CATALOGUE: dict[str, Drill] = {d.name: d for d in (
    Drill("region-down", "every server of one region killed (evacuation), then restarted",
          "its viewers fail over (99 % within 10 s) and fail back; no acknowledged comment "
          "missing, none rendered twice, no gap; the other regions never stop; what it "
          "acknowledged before dying reaches every viewer once it is back",
          _region_down, _start_killed, frozenset({"parts", "kill", "start"}),
          full_s=20.0, short_s=8.0,
          bounds=lambda ctx: Bounds(viewers_fail_over_from=ctx.region)),
    Drill("region-isolated", "one region's link cut, then every server of it killed while "
          "cut off; later restarted and healed",
          "its viewers fail over and fill from history everything the cut kept from them: "
          "no gap, nothing missing, nothing twice",
          _isolated_then_down, _restore_isolated,
          frozenset({"parts", "kill", "start", "cut_link", "heal_link"}),
          full_s=30.0, short_s=12.0),
    Drill("gateway-kill", "one gateway of the region killed with SIGKILL, then restarted",
          "its viewers resume on the region's other gateway: nobody leaves the region for "
          "good, nothing missing or doubled",
          _kill_part("gateway-0", "killed"), _start_killed, frozenset({"kill", "start"}),
          full_s=10.0, short_s=4.0, bounds=lambda _ctx: Bounds(viewers_stay_home=True)),
    Drill("nats-restart", "the region's NATS killed with SIGKILL and restarted",
          "posts there fail fast (503) and are retried; nothing acknowledged is lost",
          _kill_part("nats", "down"), _start_killed, frozenset({"kill", "start"}),
          full_s=10.0, short_s=3.0),
    Drill("nats-freeze", "the region's NATS frozen (SIGSTOP), then resumed",
          "posts time out with an unknown outcome and are retried in the same region only: "
          "no post rendered twice",
          _nats_freeze, _thaw_nats, frozenset({"freeze", "thaw"}), full_s=12.0, short_s=7.0),
    Drill("redis-loss", "the region's Redis flushed (FLUSHALL), later killed and restarted "
          "empty", "presence counts as unknown until rebuilt: no comment skipped for the "
          "region's connected viewers",
          _redis_loss, _start_killed, frozenset({"flush_redis", "kill", "start"}),
          full_s=20.0, short_s=8.0),
    Drill("cassandra-down", "the region's Cassandra node killed, then restarted",
          "live delivery goes on; the archive catches up once it is back",
          _kill_part("cassandra", "down"), _start_killed, frozenset({"kill", "start"}),
          full_s=30.0, short_s=10.0, needs_cassandra=True),
    Drill("link-flap", f"the region's link cut and healed every {FLAP_PERIOD_S:g} s",
          "nothing lost; lateness bounded by the cut, order within the reorder window",
          _link_flap, _heal_link, frozenset({"cut_link", "heal_link"}),
          full_s=30.0, short_s=10.0, bounds=_flap_bounds),
    Drill("link-cut", "the region's link cut, then healed",
          "the region keeps serving its viewers; the outboxes drain in order after the heal",
          _link_cut, _heal_link, frozenset({"cut_link", "heal_link"}),
          full_s=10.0, short_s=3.0),
    Drill("link-slow", "500 ms one way added to the region's link",
          "nothing lost; cross-region comments arrive later, never doubled",
          _link_slow(500), _heal_link, frozenset({"slow_link", "heal_link"}),
          full_s=10.0, short_s=3.0),
)}

# reconnect-storm is a drill of its own shape (chaos/storm.py): thousands of bare
# connections rather than the SDK workload.
STORM = "reconnect-storm"
NAMES = (*CATALOGUE, STORM)
