"""Running a drill of the catalogue (chaos/catalogue.py) against a cluster, start to verdict.

    hypothesis   the steady state holds (chaos/steady.py); if not, no fault is injected
    traffic      viewers in every region watch a fresh stream; every region posts, and
                 `STEADY_POSTS` posts of every region must reach every viewer before the
                 fault (a condition, waited for up to `STEADY_S`: not a time)
    injection    the drill's fault, observed for its duration (progress every second)
    rollback     the fault undone, whatever happened meanwhile
    recovery     posts made after the rollback flow end to end again, and the steady state
                 holds again: time to recover
    convergence  every viewer must hold every acknowledged comment
    verdict      chaos/verdict.py: counts and bounds; the report (chaos/report.py)

`run_drill` is the entry point (`chorus drill NAME`, the tests); `run_all` runs the catalogue
(`chorus drill all`). Faults come from a `Faults` (chaos/faults.py): the local cluster's, or a
deployment's hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chaos import steady, storm
from chaos.catalogue import CATALOGUE, STORM, Context, Drill
from chaos.faults import ControlFaults, DrillError, Faults, HookFaults
from chaos.report import DrillReport
from chaos.verdict import judge
from chaos.workload import Workload
from chorus.cluster.health import outboxes
from chorus.cluster.plan import RunLayout
from chorus.config import Config

# Before the fault, and again after the rollback, this many posts of every region must be
# acknowledged and reach every viewer: the traffic is flowing end to end, whatever the
# machine's load (on an idle machine it takes about a second).
STEADY_POSTS = 4
STEADY_S = 90.0     # ... waited for this long at most (generous: a condition, not a pace)
SETTLE_S = 90.0     # how long viewers may take to hold everything after the traffic stops


@dataclass(frozen=True)
class Options:
    """How big a drill is. `SHORT` is CI's form; `FULL` what an SRE runs."""

    viewers_per_region: int
    rate: float             # comments per second, over all regions
    storm_clients: int
    short: bool


FULL = Options(viewers_per_region=4, rate=30.0, storm_clients=2000, short=False)
SHORT = Options(viewers_per_region=2, rate=12.0, storm_clients=300, short=True)


def _print(msg: str) -> None:
    print(f"drill: {msg}", flush=True)


async def run_drill(config: Config, faults: Faults | None = None, *, drill: str, region: str,
                    seconds: float | None = None, options: Options = FULL,
                    target: str = "local cluster", has_cassandra: bool = False,
                    progress: Callable[[str], None] = _print,
                    out_dir: Path | None = None) -> DrillReport:
    """Runs one drill of the catalogue on ``region``; writes the JSON and PNG reports into
    ``out_dir`` when given. ``faults`` None: the `chorus up` running from ``config``'s run
    directory. `DrillError` when it cannot be run as asked."""
    config.region(region)  # a ConfigError names an unknown region
    if faults is None:
        faults = ControlFaults(config, RunLayout(config.run_dir).control)
    if drill == STORM:
        return await storm.run(config, faults, region=region,
                               clients=options.storm_clients, progress=progress,
                               out_dir=out_dir, target=target)
    spec = CATALOGUE.get(drill)
    if spec is None:
        raise DrillError(f"no drill {drill!r} (known: {', '.join(CATALOGUE)}, {STORM})")
    if spec.needs_cassandra and not has_cassandra:
        raise DrillError(f"{drill} needs Cassandra (chorus up --with-cassandra)")
    if isinstance(faults, HookFaults) and (missing := faults.missing(set(spec.hooks))):
        raise DrillError(f"{drill} needs the hooks {missing} in the hooks file")
    duration = seconds if seconds is not None else (spec.short_s if options.short
                                                    else spec.full_s)
    workload = Workload.new(config, viewers_per_region=options.viewers_per_region,
                            rate=options.rate, drill=drill)
    ctx = Context(faults=faults, region=region, seconds=duration, clock=workload.now,
                  progress=progress)
    try:
        return await _run(spec, ctx, workload, target, progress, out_dir)
    finally:
        with contextlib.suppress(Exception):
            await spec.rollback(ctx)  # idempotent: a drill interrupted midway leaves nothing
        await workload.close()


async def _run(spec: Drill, ctx: Context, workload: Workload, target: str,
               progress: Callable[[str], None], out_dir: Path | None) -> DrillReport:
    config = workload.config
    progress(f"{spec.name} on {ctx.region}: {spec.summary}; {ctx.seconds:g} s")
    progress(f"starting {len(config.regions) * workload.viewers_per_region} viewers on "
             f"stream {workload.stream}")
    await workload.start()
    # Generous: the cluster may still be recovering from what ran before (another drill).
    before = await steady.check(config, workload, within_s=steady.RECOVERY_S)
    recovered_s: float | None = None
    after_notes: list[str] = []
    if before.ok:
        workload.start_posting()
        flow = await workload.flowing(STEADY_POSTS, STEADY_S)
        if not flow.ok:
            before.ok = False
            before.notes.append(flow.note)
        else:
            progress(f"traffic flows: {STEADY_POSTS} posts of every region at every viewer "
                     f"after {flow.took_s:.1f} s")
    progress(f"steady state before: {'holds' if before.ok else before.notes}")
    if before.ok:
        workload.fault_at = workload.now()
        reporter = asyncio.create_task(_report_progress(workload, progress))
        try:
            await spec.inject(ctx)
        finally:
            try:
                await spec.rollback(ctx)
            finally:
                reporter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reporter
        rolled_back = time.monotonic()
        progress("rolled back; waiting for the steady state")
        flow = await workload.flowing(STEADY_POSTS, steady.RECOVERY_S)
        await workload.stop_posting()
        if flow.ok:
            progress(f"traffic flows again after {flow.took_s:.1f} s")
            after = await steady.check(config, workload, within_s=steady.RECOVERY_S)
            after_notes = after.notes
        else:
            after_notes = [flow.note]
        if not after_notes:
            recovered_s = time.monotonic() - rolled_back
        progress(f"steady state after: {after_notes or 'holds'}")
    converged_s = await workload.converge(SETTLE_S) if before.ok else None
    notes = []
    drained = await _outboxes_drained(config, SETTLE_S) if before.ok else None
    if drained is False:
        notes.append("the outboxes did not drain")
        after_notes.append("outboxes not drained")
    elif drained is None:
        notes.append("outbox depths unknown (the regions' NATS is not reachable from here)")
    verdict = judge(workload.posts, workload.ends(), workload.arrivals, spec.bounds(ctx),
                    steady_before=before.ok, steady_after=before.ok and not after_notes)
    report = DrillReport(drill=spec.name, region=ctx.region, seconds=ctx.seconds,
                         stream=workload.stream, target=target, verdict=verdict,
                         steady_before=before.notes, steady_after=after_notes,
                         recovered_s=recovered_s, converged_s=converged_s,
                         windows=ctx.windows, notes=notes)
    if out_dir is not None:
        homes = {w.name: w.home for w in workload.watchers}
        for path in report.write(out_dir, workload.arrivals, homes):
            progress(f"wrote {path}")
    return report


async def _report_progress(workload: Workload, progress: Callable[[str], None]) -> None:
    while True:
        await asyncio.sleep(1.0)  # the progress line's period
        acked = sum(p.outcome == "acked" for p in workload.posts)
        where = ", ".join(f"{r} {n}" for r, n in sorted(workload.connected_by_region().items()))
        progress(f"t={workload.now():5.1f} s  posted {len(workload.posts)} (acked {acked})  "
                 f"delivered {len(workload.arrivals)}  viewers on: {where}")


async def _outboxes_drained(config: Config, timeout_s: float) -> bool | None:
    """True once every outbox of every region is empty; None: no region's NATS answers from
    here (a deployment whose NATS is private)."""
    deadline = time.monotonic() + timeout_s
    while True:
        depths = await asyncio.gather(*(outboxes(config, r.name) for r in config.regions))
        values = [d for region in depths for d in region.values()]
        if all(d is None for d in values):
            return None
        if all(d == 0 for d in values):
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.5)  # polling the consumers


async def run_all(config: Config, faults: Faults, *, region: str, options: Options = FULL,
                  target: str = "local cluster", has_cassandra: bool = False,
                  progress: Callable[[str], None] = _print,
                  out_dir: Path | None = None) -> list[DrillReport]:
    """Every drill of the catalogue in turn (cassandra-down only with Cassandra)."""
    reports = []
    for name in (*CATALOGUE, STORM):
        if CATALOGUE.get(name) is not None and CATALOGUE[name].needs_cassandra \
                and not has_cassandra:
            progress(f"skipping {name}: the cluster runs without Cassandra")
            continue
        reports.append(await run_drill(config, faults, drill=name, region=region,
                                       options=options, target=target,
                                       has_cassandra=has_cassandra, progress=progress,
                                       out_dir=out_dir))
    return reports
