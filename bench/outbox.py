"""The outbox's forwarding ceiling: how many comments a second one gateway, holding a
destination's lease, forwards from a backlog to that destination, and the CPU it spends on each.

    .venv/bin/python bench/outbox.py                     # 30,000 comments, 2 rounds, 2 layouts
    .venv/bin/python bench/outbox.py --to eu-west        # one destination (ap-south unwatched)
    .venv/bin/python bench/outbox.py --backlog 10000 --rounds 1 --json out.json

The whole local cluster runs (three regions, the hub, toxiproxy), with the user and stream
rate limits raised so that nothing is refused. The regions of ``--to`` (eu-west and ap-south)
each have a WebSocket viewer of every stream posted to, so presence says "viewers" and every
us-east comment is forwarded to them (a region left out has no viewers: its outbox skips
every comment). Each round, for each layout (one hot stream "s0", then ``--streams`` streams
s0..s199):

1. us-east's leaf link is cut (toxiproxy), so its outboxes cannot forward;
2. the Go load client (bench/goload, built by bench/goload/build.sh) posts ``--backlog``
   comments into us-east through both its gateways, all answered 201; the benchmark waits
   until us-east's classifier has read them (it would otherwise compete with the drain) and
   until each outbox holds exactly the backlog;
3. the link is restored and the drain is measured: every 0.1 s, each outbox's depth (its
   durable consumer's pending count, what ``chorus_outbox_depth{dest}`` shows), how many of
   those a gateway holds unacknowledged (in flight), and what each destination's log has
   stored since, until every outbox is empty. A comment leaves the depth when its
   destination acknowledged it. The CPU of every process is metered over the whole drain and
   over its steady part: from `CALM_S` after the first comment left (after an outage the
   outbox keeps one batch in flight for `CALM_S`, global_/outbox.py) to the end.

The lease holder of each destination is the us-east gateway whose ``chorus_forwarded_total``
grew; its CPU per comment is its CPU over the steady part divided by the comments that left
the outboxes it holds meanwhile (to both destinations when it holds both leases, as it
usually does). How long its event loop waited for a core (the main thread's run-queue time,
/proc/PID/schedstat) says whether it was starved: its cores plus that share near 1.0 mean the
loop always had work. The other gateway of us-east does no forwarding: its cores are what a
gateway spends anyway.

Afterwards each destination's log is read back and compared with us-east's: the same
comments in the same order, none missing, none twice; what differs is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import nats.errors
from nats.aio.client import Client as Nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from goload.figures import ingest_figures
from goload.process import GoLoad
from hot import Counter, open_viewer
from ingest import presence_answered
from rawclient import (
    GO_CLIENT,
    UNLIMITED,
    UNLIMITED_TIERS,
    CpuMeter,
    bench_config,
    cluster,
    load_average,
    machine,
)

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.durable import pending
from chorus.model import Comment
from chorus.names import (
    COMMENTS_STREAM,
    classifier_durable,
    comment_subjects,
    outbox_durable,
    presence_query,
)
from global_.outbox import BATCH, CALM_S, IN_FLIGHT
from region.auth import issue_token

ORIGIN = "us-east"
DESTS = ("eu-west", "ap-south")
USERS = 2000
CONNECTIONS = 64          # the Go client's keep-alive connections, half on each gateway
POLL_S = 0.1              # how often the drain is sampled
HOT = "s0"                # the Go client's first stream: the hot layout's one stream


# -- what the region's logs and gateways say -----------------------------------------------------


class Logs:
    """A NATS connection to each region's server, for its log and its consumers."""

    def __init__(self, conns: dict[str, Nats]) -> None:
        self.conns = conns

    @classmethod
    async def open(cls, c: LocalCluster) -> Logs:
        return cls({r: await nats.connect(c.config.region(r).nats_url)
                    for r in c.config.region_names})

    async def close(self) -> None:
        for nc in self.conns.values():
            await nc.close()

    async def last_seq(self, region: str) -> int:
        info = await self.conns[region].jetstream(timeout=5).stream_info(COMMENTS_STREAM)
        return int(info.state.last_seq)

    async def depth(self, dest: str) -> int | None:
        """us-east's comments waiting for ``dest`` (what ``chorus_outbox_depth`` shows)."""
        return await pending(self.conns[ORIGIN], outbox_durable(ORIGIN, dest))

    async def outbox(self, dest: str) -> tuple[int, int]:
        """us-east's outbox towards ``dest``: comments waiting (not acknowledged), and of
        those how many a gateway holds (handed over, not yet acknowledged: in flight)."""
        info = await self.conns[ORIGIN].jetstream(timeout=5).consumer_info(
            COMMENTS_STREAM, outbox_durable(ORIGIN, dest))
        held = int(info.num_ack_pending or 0)
        return int(info.num_pending or 0) + held, held

    async def ids(self, region: str, after_seq: int, until_seq: int
                  ) -> list[tuple[str, str]]:
        """us-east's comments (id, stream) in ``region``'s log after ``after_seq`` up to
        ``until_seq``, in the log's order."""
        js = self.conns[region].jetstream(timeout=10)
        sub = await js.pull_subscribe(
            comment_subjects(region), stream=COMMENTS_STREAM, config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after_seq + 1,
                ack_policy=AckPolicy.NONE, inactive_threshold=30.0))
        out: list[tuple[str, str]] = []
        seq = after_seq
        try:
            while seq < until_seq:
                for msg in await sub.fetch(1000, timeout=10):
                    seq = msg.metadata.sequence.stream
                    if seq > until_seq:
                        break
                    comment = Comment.decode(msg.data)
                    if comment.region == ORIGIN:
                        out.append((comment.id, comment.stream))
        finally:
            await sub.unsubscribe()
        return out


def runqueue_s(pid: int) -> float:
    """Seconds the process's main thread (the gateway's event loop) has spent runnable but
    waiting for a core (the scheduler's run queue: /proc/PID/schedstat, second field)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


_DEST = re.compile(r'dest="([^"]+)"')


def _scrape(urls: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Per gateway (its index), per counter, per destination."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for i, base in enumerate(urls):
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        mine = out.setdefault(f"{ORIGIN}/gateway-{i}", {"forwarded": {}, "skipped": {},
                                                        "retries": {}, "questions": {}})
        for line in text.splitlines():
            name = line.partition("{")[0]
            key = {"chorus_forwarded_total": "forwarded",
                   "chorus_forward_skipped_no_viewers_total": "skipped",
                   "chorus_forward_failures_total": "retries"}.get(name)
            if name == "chorus_presence_queries_total":
                mine["questions"] = {"*": float(line.rsplit(" ", 1)[1])}
            dest = _DEST.search(line)
            if key and dest:
                mine[key][dest.group(1)] = float(line.rsplit(" ", 1)[1])
    return out


async def forwards(c: LocalCluster) -> dict[str, dict[str, dict[str, float]]]:
    return await asyncio.to_thread(_scrape, c.config.region(ORIGIN).operator_urls)


def grown(before: dict[str, dict[str, dict[str, float]]],
          after: dict[str, dict[str, dict[str, float]]], key: str) -> dict[str, dict[str, float]]:
    """Per gateway, per destination: how much counter ``key`` grew."""
    return {gw: {d: v - before[gw][key].get(d, 0.0) for d, v in counters[key].items()}
            for gw, counters in after.items()}


# -- one round of one layout -----------------------------------------------------------------------


@dataclass
class Drain:
    """What the drain of one backlog measured; times in seconds after the link's restore.
    A comment has left the outbox when the destination acknowledged it (or it was skipped)."""

    backlog: int
    base: dict[str, int]                                      # dest: last sequence before
    first: dict[str, float] = field(default_factory=dict)    # dest: first comment left
    empty: dict[str, float] = field(default_factory=dict)    # dest: outbox empty
    steady_from: float | None = None
    left_at_steady: dict[str, int] = field(default_factory=dict)
    waited: dict[str, float] = field(default_factory=dict)    # gateway: run-queue s, steady
    # (t, per dest: waiting, in flight, stored by the destination since the restore)
    samples: list[tuple[float, dict[str, tuple[int, int, int]]]] = field(
        default_factory=list)

    def in_flight(self) -> dict[str, int]:
        """Per destination, the most comments a gateway held at once over the steady part."""
        steady = [s for t, s in self.samples if self.steady_from is not None
                  and t >= self.steady_from]
        return {d: max((s[d][1] for s in steady), default=0) for d in DESTS}


async def cut_confirmed(nc: Nats) -> None:
    """Until us-east's questions to the other regions go unanswered: the link is down."""
    async def unanswered() -> bool:
        try:
            await nc.request(presence_query(DESTS[0]), json.dumps(
                {"stream": "bench-cut"}).encode(), timeout=0.5)
        except (nats.errors.Error, TimeoutError):
            return True
        return False
    await wait_until(unanswered, what="us-east's link to be down", timeout_s=30)


async def viewers_known(nc: Nats, streams: int, dests: Sequence[str]) -> None:
    """Until each of ``dests`` answers us-east that it has a viewer of every stream."""
    for dest in dests:
        async def seen(dest: str = dest) -> bool:
            for s in range(streams):
                try:
                    reply = await nc.request(presence_query(dest), json.dumps(
                        {"stream": f"s{s}"}).encode(), timeout=2)
                except (nats.errors.Error, TimeoutError):
                    return False
                if not json.loads(reply.data).get("viewers"):
                    return False
            return True
        await wait_until(seen, what=f"{dest}'s viewers of every stream", timeout_s=60,
                         interval_s=0.5)


async def outboxes_at(logs: Logs, expected: int, what: str, timeout_s: float,
                      dests: Sequence[str] = DESTS) -> None:
    async def there() -> bool:
        return all([await logs.depth(d) == expected for d in dests])
    await wait_until(there, what=what, timeout_s=timeout_s, interval_s=0.2)


async def classifier_done(logs: Logs, timeout_s: float) -> None:
    async def done() -> bool:
        return not await pending(logs.conns[ORIGIN], classifier_durable(ORIGIN))
    await wait_until(done, what="us-east's classifier to read the backlog",
                     timeout_s=timeout_s, interval_s=0.2)


async def measure_drain(c: LocalCluster, logs: Logs, backlog: int, pids: dict[str, int],
                        timeout_s: float) -> tuple[Drain, dict[str, float], dict[str, float],
                                                   float, float]:
    """Restores the link and samples the drain until both outboxes are empty. Returns the
    drain, the CPU (seconds, per process) over all of it and over its steady part, and the
    lengths of both."""
    base = {d: await logs.last_seq(d) for d in DESTS}
    drain = Drain(backlog, base)
    whole, steady = CpuMeter(pids), CpuMeter(pids)
    gateways = {k: v for k, v in pids.items() if k.startswith(f"{ORIGIN}/gateway")}
    c.set_link(ORIGIN, enabled=True)
    whole.start()
    began = time.perf_counter()
    steady_began = 0.0
    while True:
        now = time.perf_counter() - began
        sample = {d: (*await logs.outbox(d), await logs.last_seq(d) - base[d]) for d in DESTS}
        drain.samples.append((round(now, 3), sample))
        for d, (waiting, _, _) in sample.items():
            if waiting < backlog:
                drain.first.setdefault(d, now)
            if waiting == 0:
                drain.empty.setdefault(d, now)
        if drain.steady_from is None and drain.first and \
                now >= min(drain.first.values()) + CALM_S:
            steady.start()
            drain.waited = {k: -runqueue_s(pid) for k, pid in gateways.items()}
            steady_began = time.perf_counter()
            drain.steady_from = now
            drain.left_at_steady = {d: backlog - v[0] for d, v in sample.items()}
        if len(drain.empty) == len(DESTS):
            break
        if now > timeout_s:
            raise RuntimeError(f"the drain did not finish within {timeout_s:.0f} s: "
                               f"(waiting, in flight, stored) {sample} of {backlog}")
        await asyncio.sleep(POLL_S)   # the sampling interval, not a synchronisation
    ended = time.perf_counter()
    if drain.steady_from is not None:
        drain.waited = {k: v + runqueue_s(gateways[k]) for k, v in drain.waited.items()}
    used = whole.stop()
    used_steady = steady.stop() if drain.steady_from is not None else {}
    return (drain, used, used_steady, ended - began,
            ended - steady_began if drain.steady_from is not None else 0.0)


async def post_backlog(go: GoLoad, c: LocalCluster, streams: int, n: int) -> tuple[int, Any]:
    """``n`` comments into us-east over ``streams`` streams, every one answered; returns
    how many were stored and the client's figures."""
    cfg = c.config
    tokens = [issue_token(cfg.auth, f"poster{i}") for i in range(USERS)]
    await go.call("ingest_setup", urls=list(cfg.region(ORIGIN).gateway_urls), tokens=tokens,
                  streams=streams, text="comment ")
    await go.call("http_connect", n=CONNECTIONS)
    # An open loop scheduling all n at once: each post waits for a free connection, so the
    # region takes them as fast as it stores them, and exactly n are posted.
    figures = ingest_figures(await go.call("ingest_run", transport="http", mode="open",
                                           seconds=1.0, rate=float(n)))
    await go.call("http_close")
    return figures.stored, figures


async def one_run(c: LocalCluster, logs: Logs, go: GoLoad, viewers: dict[str, list[Counter]],
                  layout: str, streams: int, rnd: int, args: argparse.Namespace
                  ) -> list[dict[str, Any]]:
    await outboxes_at(logs, 0, "us-east's outboxes empty before the round", 120)
    origin_from = await logs.last_seq(ORIGIN)
    c.set_link(ORIGIN, enabled=False)
    try:
        await cut_confirmed(logs.conns[ORIGIN])
        post_began = time.perf_counter()
        stored, figures = await post_backlog(go, c, streams, args.backlog)
        posted_s = time.perf_counter() - post_began
        print(f"  round {rnd} {layout}: {stored:,} of {args.backlog:,} stored in {posted_s:.1f} s"
              + (f", errors {dict(figures.errors)}" if figures.errors else ""), flush=True)
        await classifier_done(logs, 300)
        origin_until = await logs.last_seq(ORIGIN)
        # Every comment stored waits in the outbox of each region with viewers (the one batch
        # each keeps retrying against the cut link counts: it is not acknowledged). A
        # region without viewers is skipped even while cut off: presence's last "no
        # viewers" stands in for the missing answer (global_/presence.py, STALE_FACTOR).
        await outboxes_at(logs, stored, "the outboxes to hold the backlog", 60, args.to)
    except BaseException:
        c.set_link(ORIGIN, enabled=True)
        raise
    pids = {name: child.pid for name, child in c.children.items()} | {GO_CLIENT: go.pid}
    got_before = {d: sum(v.count for v in viewers.get(d, ())) for d in DESTS}
    counted = await forwards(c)
    load = load_average()
    drain, used, used_steady, drain_s, steady_s = await measure_drain(
        c, logs, stored, pids, timeout_s=max(300.0, stored / 100))
    counted_after = await forwards(c)
    fwd = grown(counted, counted_after, "forwarded")
    skipped = grown(counted, counted_after, "skipped")
    retries = grown(counted, counted_after, "retries")
    questions = grown(counted, counted_after, "questions")
    handled = {gw: {d: fwd[gw].get(d, 0.0) + skipped[gw].get(d, 0.0) for d in DESTS}
               for gw in fwd}
    holders = {d: holder_of(handled, d) for d in DESTS}
    # Read back: each destination with viewers holds us-east's comments of the round once
    # each, in us-east's order.
    expected = await logs.ids(ORIGIN, origin_from, origin_until)
    verdicts = {d: compare(expected, await logs.ids(d, drain.base[d], await logs.last_seq(d)))
                for d in args.to}
    got_after = {d: sum(v.count for v in viewers.get(d, ())) for d in DESTS}
    in_flight = drain.in_flight()
    steady = drain.steady_from is not None
    window = steady_s if steady else drain_s
    cpu = used_steady if steady else used
    rows = []
    for d in args.to:
        holder = holders[d]
        held = [x for x in args.to if holders[x] == holder]
        # The holder's work over the window: every comment that left the outboxes it holds.
        left = sum(stored - drain.left_at_steady.get(x, 0) if steady else stored for x in held)
        first, empty = drain.first.get(d, float("nan")), drain.empty[d]
        assert drain.steady_from is not None or not steady
        rate_steady = ((stored - drain.left_at_steady[d]) / (empty - drain.steady_from)
                       if drain.steady_from is not None and empty > drain.steady_from + 0.5
                       else None)
        rows.append({
            "round": rnd, "layout": layout, "streams": streams, "backlog": stored,
            "dest": d, "holder": holder, "holds": held,
            "first_s": round(first, 2), "drain_s": round(empty, 2),
            "per_s_whole": round(stored / empty),
            "per_s_steady": None if rate_steady is None else round(rate_steady),
            "steady_s": round(window, 2), "max_in_flight": in_flight[d],
            "holder_cores": round(cpu.get(holder, 0.0) / window, 3),
            "holder_us_per_comment": round(cpu.get(holder, 0.0) / max(1, left) * 1e6, 1),
            "holder_runqueue": round(drain.waited.get(holder, float("nan")) / window, 3),
            "other_gateway_cores": round(sum(cpu.get(g, 0.0) for g in fwd if g != holder)
                                         / window, 3),
            "forwarded": sum(v.get(d, 0.0) for v in fwd.values()),
            "skipped": sum(v.get(d, 0.0) for v in skipped.values()),
            # Batches the destination did not take, each attempt (a retry restarts the calm).
            "retries": sum(v.get(d, 0.0) for v in retries.values()),
            # Presence questions the holder asked over the drain (to every destination): a
            # batch whose streams' answers expired waits for one.
            "presence_questions": questions[holder].get("*", 0.0),
            "skipped_elsewhere": {x: sum(v.get(x, 0.0) for v in skipped.values())
                                  for x in DESTS if x not in args.to},
            "verdict": verdicts.get(d),
            "viewers_received": got_after[d] - got_before[d],
            "viewers_cut": sum(1 for v in viewers.get(d, ()) if v.cut),
            "cores_by_process": {k: round(v / window, 3) for k, v in cpu.items()
                                 if v / window > 0.01},
            "cores_all": round(sum(cpu.values()) / window, 2),
            "load": load, "load_after": load_average(), "posted_s": round(posted_s, 1),
        })
    # The drain's timeline, once per layout and round.
    rows[0]["samples"] = drain.samples
    return rows


def holder_of(fwd: dict[str, dict[str, float]], dest: str) -> str:
    """The gateway that forwarded (most of) the comments to ``dest``: its lease holder."""
    return max(fwd, key=lambda gw: fwd[gw].get(dest, 0.0))


def compare(expected: list[tuple[str, str]], got: list[tuple[str, str]]) -> dict[str, Any]:
    """What a destination's log holds against the origin's: comments missing, stored twice,
    not the origin's; and its order, per stream (what a viewer sees) and over the whole log.
    ``lag``: how many of the stream's comments, at most, one came after that it should have
    come before (0: in order)."""
    position = {cid: i for i, (cid, _) in enumerate(expected)}
    have = [cid for cid, _ in got]
    seen = set(have)
    out: dict[str, Any] = {
        "ok": got == expected,
        "missing": sum(1 for cid, _ in expected if cid not in seen),
        "twice": len(have) - len(seen),
        "unexpected": sum(1 for cid in seen if cid not in position),
    }
    by_stream: dict[str, list[int]] = {}
    for cid, stream in got:
        if cid in position:
            by_stream.setdefault(stream, []).append(position[cid])
    rank = {s: {p: r for r, p in enumerate(sorted(ps))} for s, ps in by_stream.items()}
    late = 0
    lag = 0
    disordered = 0
    for stream, ps in by_stream.items():
        top = -1
        any_late = False
        for p in ps:
            if p < top:
                late += 1
                any_late = True
                lag = max(lag, rank[stream][top] - rank[stream][p])
            top = max(top, p)
        disordered += any_late
    whole_late, top = 0, -1
    for cid in have:
        p = position.get(cid, -1)
        whole_late += p < top
        top = max(top, p)
    out |= {"streams_out_of_order": disordered, "late_in_stream": late, "max_lag": lag,
            "late_in_log": whole_late}
    return out


def verdict(v: dict[str, Any]) -> str:
    if v["ok"]:
        return "same comments, same order"
    return (f"missing {v['missing']}, twice {v['twice']}, unexpected {v['unexpected']}; "
            f"{v['late_in_stream']} after a later comment of their stream in "
            f"{v['streams_out_of_order']} streams (at most {v['max_lag']} places), "
            f"{v['late_in_log']} after a later one in the log")


# -- the run -------------------------------------------------------------------------------------


def show(rows: list[dict[str, Any]]) -> None:
    for r in rows:
        what = f"read back: {verdict(r['verdict'])}"
        print(f"    -> {r['dest']:<8} held by {r['holder']} (holds {', '.join(r['holds'])}): "
              f"first after {r['first_s']:.1f} s, empty after {r['drain_s']:.1f} s; "
              f"{r['per_s_whole']:,}/s over the drain, {r['per_s_steady'] or 0:,}/s steady "
              f"(at most {r['max_in_flight']:,} in flight); holder {r['holder_cores']:.2f} "
              f"cores, {r['holder_us_per_comment']:.0f} us a comment, its loop waiting for a "
              f"core {r['holder_runqueue']:.2f} of the time; other gateway "
              f"{r['other_gateway_cores']:.2f} cores; all {r['cores_all']:.2f} cores; "
              f"forwarded {r['forwarded']:,.0f}, skipped {r['skipped']:,.0f}, retried "
              f"{r['retries']:.0f} times, {r['presence_questions']:.0f} presence questions; "
              "viewers got "
              f"{r['viewers_received']:,} (cut {r['viewers_cut']}); {what}")
    busiest = sorted(rows[0]["cores_by_process"].items(), key=lambda kv: -kv[1])
    print("       cores (steady part): " + ", ".join(f"{k} {v:.2f}" for k, v in busiest),
          flush=True)


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| layout | round | destination | drain (s) | comments/s over the drain | "
            "comments/s steady | most in flight | holder's cores | its loop waiting for a core "
            "| holder's CPU per comment | other gateway's cores | all processes' cores | "
            "load |\n" + "| --- " * 13 + "|")
    lines = [head]
    for r in rows:
        dest = f"{r['dest']} (holder forwards to {' and '.join(r['holds'])})"
        lines.append(
            f"| {r['layout']} | {r['round']} | {dest} | {r['drain_s']:.1f} | "
            f"{r['per_s_whole']:,} | {r['per_s_steady'] or 0:,} | {r['max_in_flight']:,} | "
            f"{r['holder_cores']:.2f} | {r['holder_runqueue']:.2f} | "
            f"{r['holder_us_per_comment']:.0f} us | {r['other_gateway_cores']:.2f} | "
            f"{r['cores_all']:.2f} | {r['load']} |")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    print(f"machine: {machine()}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"outbox: batch {BATCH}, {IN_FLIGHT} batches in flight, {CALM_S:.0f} s of one batch "
          "in flight after an outage")
    config = bench_config(tiers=UNLIMITED_TIERS, max_connections_per_ip=0, **UNLIMITED)
    layouts = [("1 stream", 1), (f"{args.streams} streams", args.streams)]
    rows: list[dict[str, Any]] = []
    async with cluster(config) as c:
        cfg = c.config
        viewers: dict[str, list[Counter]] = {}
        for dest in args.to:
            urls = cfg.region(dest).gateway_urls
            viewers[dest] = [await open_viewer(Counter(), urls[s % len(urls)], f"s{s}",
                                               issue_token(cfg.auth, f"viewer-{dest}-{s}"))
                             for s in range(args.streams)]
        logs = await Logs.open(c)
        try:
            await presence_answered(c)
            await viewers_known(logs.conns[ORIGIN], args.streams, args.to)
            async with await GoLoad.start() as go:
                if args.warmup:
                    await post_backlog(go, c, args.streams, args.warmup)
                print(f"load average before: {load_average()}", flush=True)
                for rnd in range(1, args.rounds + 1):
                    for layout, streams in layouts:
                        done = await one_run(c, logs, go, viewers, layout, streams, rnd, args)
                        show(done)
                        rows += done
        finally:
            await logs.close()
            for vs in viewers.values():
                for v in vs:
                    if v.ws is not None:
                        v.ws.close()
    print(f"load average after: {load_average()}\n")
    print(table(rows))
    return rows


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=30_000,
                        help="comments posted while the link is cut, per layout and round")
    parser.add_argument("--streams", type=int, default=200,
                        help="streams of the spread layout (the other is one hot stream)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2_000,
                        help="comments posted and forwarded first, unmeasured (0: none)")
    parser.add_argument("--to", default=",".join(DESTS),
                        help="the regions with viewers, which the outbox forwards to (the "
                             "others' outboxes skip every comment)")
    parser.add_argument("--json", help="also write the rows here")
    arguments = parser.parse_args()
    arguments.to = [d for d in arguments.to.split(",") if d]
    if not set(arguments.to) <= set(DESTS):
        parser.error(f"--to: some of {', '.join(DESTS)}")
    measured = asyncio.run(main(arguments))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(measured, indent=1))
