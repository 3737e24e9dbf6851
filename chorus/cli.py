"""The `chorus` command.

    chorus up [--with-cassandra] [--with-prometheus] [--fresh] [--demo]
              [--dashboard-port PORT | --no-dashboard]
                                               run the local multi-region cluster
    chorus status [--json]                     health of every part of the running cluster
    chorus link REGION --latency MS | --cut | --restore
                                               change a region's link to the hub
    chorus token --user NAME [--role ROLE]     print a development token
    chorus migrate [--region R]                apply the archive's schema to Cassandra
    chorus watch STREAM [--region R]           print a stream's comments live (failover included)
    chorus post STREAM TEXT [--region R]       post a comment
    chorus drill NAME|all [--region R] [--short] [--hooks FILE]
                                               a chaos drill with a verdict and reports
    chorus load [--profile P] [--viewers N] [--posters M] [--rate R] [--duration S]
                                               a bounded load run with percentiles and plots
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from chorus.cluster import control, health, plan
from chorus.cluster.binaries import find_binaries
from chorus.cluster.local import LocalCluster, already_running, read_state, running_pid
from chorus.cluster.ports import port_free
from chorus.config import Config, load_config
from chorus.errors import ChorusError, ClusterError
from chorus.toxiproxy import Toxiproxy, leaf_proxy_name

DASHBOARD_PORT = 8100  # the ops dashboard of `chorus up` (chorus/cluster/ops.py)


def _version() -> str:
    try:
        return metadata.version("chorus")
    except metadata.PackageNotFoundError:
        return "unknown"


def _running_config(config: Config) -> tuple[Config, dict[str, Any]]:
    """The effective config of the cluster running from ``config``'s run directory."""
    layout = plan.RunLayout(config.run_dir)
    pid = running_pid(layout)
    state = read_state(layout)
    if pid is None or state is None:
        raise ClusterError(f"no cluster is running from {config.run_dir} "
                           "(start one with `chorus up`)")
    return load_config(state["config"]), state


# -- up ------------------------------------------------------------------------------------------


def cmd_up(config: Config, args: argparse.Namespace) -> int:
    layout = plan.RunLayout(config.run_dir)
    pid = running_pid(layout)
    if pid is not None:
        raise already_running(layout, pid)
    bins = find_binaries()
    with_cassandra = args.with_cassandra or config.cassandra.enabled
    dashboard_port: int | None = args.dashboard_port
    if args.no_dashboard:
        dashboard_port = None
    elif dashboard_port is None:
        # The usual port, unless another cluster (or anything) has it: then any, printed.
        dashboard_port = DASHBOARD_PORT if port_free("127.0.0.1", DASHBOARD_PORT) else 0
    elif not port_free("127.0.0.1", dashboard_port):
        raise ClusterError(f"the dashboard's port {dashboard_port} is in use; choose another "
                           "with --dashboard-port, or --no-dashboard")
    return asyncio.run(_up(config, bins, with_cassandra=with_cassandra, fresh=args.fresh,
                           demo=args.demo, dashboard_port=dashboard_port,
                           with_prometheus=args.with_prometheus))


async def _up(config: Config, bins: Any, *, with_cassandra: bool, fresh: bool,
              demo: bool = False, dashboard_port: int | None = None,
              with_prometheus: bool = False) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def progress(msg: str) -> None:
        print(f"chorus: {msg}", flush=True)

    cluster = LocalCluster(config, bins, with_cassandra=with_cassandra, fresh=fresh,
                           with_prometheus=with_prometheus, progress=progress)
    start = asyncio.create_task(cluster.start())
    stopper = asyncio.create_task(stop.wait())
    web = contextlib.AsyncExitStack()
    try:
        done, _ = await asyncio.wait({start, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if start not in done:
            progress("interrupted during start-up; stopping what was started")
            return 130
        start.result()  # raises a start-up failure
        # `chorus drill`, run from another process, kills and restarts servers through it.
        await web.enter_async_context(control.serving(cluster, cluster.layout.control))
        _print_table(config, cluster)
        await _start_web(web, cluster, demo=demo, dashboard_port=dashboard_port)
        print(f"\nup in {cluster.timings['total']:.1f} s; logs in "
              f"{cluster.layout.run_dir / 'logs'}. Ctrl-C stops everything.", flush=True)
        reported: set[str] = set()
        while not stop.is_set():
            for name, child in cluster.children.items():
                if child.alive:
                    reported.discard(name)  # started again (a drill): report its next exit
                elif name not in reported:
                    reported.add(name)
                    progress(f"{name} exited with code {child.proc.returncode}; see "
                             f"{child.spec.log}")
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
        progress("stopping")
        return 0
    finally:
        stopper.cancel()
        start.cancel()
        # A start-up failure was raised above already; here only wait for the task to end.
        await asyncio.gather(start, return_exceptions=True)
        await web.aclose()
        await cluster.stop()
        progress("stopped")


async def _start_web(web: contextlib.AsyncExitStack, cluster: LocalCluster, *, demo: bool,
                     dashboard_port: int | None) -> None:
    """The ops dashboard and (``--demo``) synthetic traffic, for ``web``'s life; prints the
    pages' addresses with dev tokens of this cluster (docs/web.md)."""
    from chorus.cluster import demo as demo_traffic
    from chorus.cluster import ops
    from region.auth import issue_token

    auth = cluster.config.auth
    # A day, or the longest lifetime the cluster accepts if that is shorter.
    secret, day = auth.dev_secret, min(24 * 3600, getattr(auth, "max_token_lifetime_s", 86400))
    dashboard = None
    if dashboard_port is not None:
        _, dashboard = await web.enter_async_context(ops.serve(cluster, port=dashboard_port))
    if demo:
        await web.enter_async_context(demo_traffic.running(cluster.config))
    viewer = issue_token(secret, "you", name="You", ttl_s=day)
    traffic = " (--demo: synthetic viewers and commenters in every region)" if demo else ""
    print(f"\npages{traffic}:")
    for r in cluster.config.regions:
        print(f"  viewer in {r.name:<9} {r.gateway_urls[0]}/watch/demo#token={viewer}")
    if dashboard is not None:
        host = issue_token(secret, "ops", name="Ops", roles=("host",), ttl_s=day)
        print(f"  ops dashboard       {dashboard}/#token={host}")


def _print_table(config: Config, cluster: LocalCluster) -> None:
    print()
    print(f"{'region':<10} {'gateways':<46} {'nats':<24} {'redis':<22} link")
    for r in config.regions:
        gateways = " ".join(r.gateway_urls)
        link = f"{r.link.latency_ms} ms one-way via :{r.link.proxy_port}"
        print(f"{r.name:<10} {gateways:<46} {r.nats_url:<24} {r.redis_url:<22} {link}")
    print(f"{'hub':<10} nats://{config.hub.host}:{config.hub.client_port} "
          f"(leaf :{config.hub.leaf_port}, monitor :{config.hub.monitor_port}); "
          f"toxiproxy API http://127.0.0.1:{config.toxiproxy.api_port}")
    if cluster.with_cassandra:
        nodes = ", ".join(f"{r.name}={r.cassandra.address}:{config.cassandra.native_port}"
                          for r in config.regions)
        print(f"{'cassandra':<10} {nodes}")
    operators = " ".join(f"{r.name}=:{','.join(map(str, r.operator_ports))}"
                         for r in config.regions)
    print(f"{'metrics':<10} /metrics on each gateway's operator port: {operators}")
    if cluster.with_prometheus:
        print(f"{'prometheus':<10} http://127.0.0.1:{config.prometheus.port} (alert rules: "
              "ops/prometheus/alerts.yml; dashboard: ops/grafana/chorus.json)")


# -- status --------------------------------------------------------------------------------------


def cmd_status(config: Config, args: argparse.Namespace) -> int:
    running, state = _running_config(config)
    status = asyncio.run(health.probe(running, with_cassandra=bool(state["with_cassandra"])))
    if args.json:
        doc = status.as_json()
        doc["pid"] = state["pid"]
        doc["uptime_s"] = round(time.time() - float(state["started_at"]), 1)
        for region in doc["regions"]:
            region["urls"] = list(running.region(region["name"]).gateway_urls)
        print(json.dumps(doc, indent=2))
        return 0 if status.healthy else 1

    def mark(ok: bool | None) -> str:
        return "-" if ok is None else ("ok" if ok else "DOWN")

    print(f"cluster pid {state['pid']}: {'healthy' if status.healthy else 'UNHEALTHY'}")
    print(f"hub {mark(status.hub)}   toxiproxy {mark(status.toxiproxy)}")
    print(f"{'region':<10} {'nats':<5} {'leaf':<5} {'redis':<6} {'cassandra':<10} "
          f"{'link':<18} gateways")
    for r in status.regions:
        link = ("cut" if r.link_enabled is False else
                "?" if r.link_enabled is None else f"{r.link_latency_ms} ms")
        gws = " ".join(f"{g.url}={mark(g.healthy)}" for g in r.gateways)
        print(f"{r.name:<10} {mark(r.nats):<5} {mark(r.leaf_link):<5} {mark(r.redis):<6} "
              f"{mark(r.cassandra):<10} {link:<18} {gws}")
    alert = running.limits.outbox_alert_pending
    for r in status.regions:
        depths = r.extra.get("outbox", {})
        shown = ", ".join(f"{dest} {'?' if n is None else n}"
                          + (" BACKLOGGED" if n is not None and n > alert else "")
                          for dest, n in depths.items())
        print(f"outbox {r.name:<10} {shown}")
    if state["with_cassandra"]:
        # Comments in a region's log not yet in the archive; it grows while Cassandra is down
        # and drains once it is back.
        lags = "   ".join(f"{r.name} {r.extra.get('archive_lag', '?')}" for r in status.regions)
        print(f"archive lag (comments not yet archived): {lags}")
    _print_hot(status.hot)
    return 0 if status.healthy else 1


def _print_hot(hot: dict[str, dict[str, Any]]) -> None:
    """Streams above the push tier (docs/design.md, "Hot streams"), as their leader region
    announced them in the last second; a region that disagrees is named (it follows within
    two seconds, or it is cut off from the leader)."""
    if not hot:
        print("hot streams: none (every stream in the push tier)")
        return
    print("hot streams:")
    for stream, s in hot.items():
        lagging = [r for r, tier in s["regions"].items() if tier != s["tier"]]
        note = f"; not yet: {', '.join(lagging)}" if lagging else ""
        print(f"  {stream:<24} {s['tier']:<9} {s['viewers']:>9,} viewers {s['rate_per_s']:>7,}"
              f" comments/s  (leader {s['leader']}{note})")


# -- link ----------------------------------------------------------------------------------------


def cmd_link(config: Config, args: argparse.Namespace) -> int:
    running, _ = _running_config(config)
    region = running.region(args.region)
    toxi = Toxiproxy("127.0.0.1", running.toxiproxy.api_port)
    name = leaf_proxy_name(region.name)
    if args.cut:
        toxi.set_enabled(name, False)
    elif args.restore:
        toxi.set_enabled(name, True)
        toxi.set_latency(name, region.link.latency_ms, region.link.jitter_ms)
    else:
        if args.latency < 0 or args.jitter < 0:
            raise ClusterError("--latency and --jitter must not be negative")
        toxi.set_latency(name, args.latency, args.jitter)
    state = toxi.state(name)
    print(f"{region.name}: link {'up' if state.enabled else 'CUT'}, one-way latency "
          f"{state.latency_ms} ms (jitter {state.jitter_ms} ms)")
    return 0


# -- migrate -------------------------------------------------------------------------------------


def cmd_migrate(config: Config, args: argparse.Namespace) -> int:
    from chorus import archive_schema

    try:
        running, _ = _running_config(config)
    except ClusterError:
        running = config  # a deployment: its nodes are where regions.yaml says
    region = running.region(args.region) if args.region else running.regions[0]
    applied = archive_schema.apply(running, region,
                                   progress=lambda msg: print(f"chorus: {msg}", flush=True))
    print(f"archive schema of keyspace {running.cassandra.keyspace} is at version "
          f"{archive_schema.LATEST}" + (f" (applied now: {applied})" if applied else
                                        " (nothing to do)"))
    return 0


# -- token ---------------------------------------------------------------------------------------


def cmd_token(config: Config, args: argparse.Namespace) -> int:
    from region.auth import issue_token

    try:
        token = issue_token(config.auth, args.user, name=args.name,
                            roles=tuple(args.role or ["viewer"]),
                            ttl_s=args.ttl or config.auth.token_ttl_s)
    except ValueError as exc:
        raise ClusterError(str(exc)) from None
    print(token)
    return 0


# -- watch and post (the SDK) ------------------------------------------------------------------


def _client_args(config: Config, args: argparse.Namespace) -> tuple[list[str], str]:
    try:
        running, _ = _running_config(config)
    except ClusterError:
        running = config  # a deployment's regions.yaml: its gateways are where it says
    if args.region:
        seeds = list(running.region(args.region).gateway_urls)
    else:
        seeds = [u for r in running.regions for u in r.gateway_urls]
    if args.token:
        return seeds, args.token
    from region.auth import issue_token

    return seeds, issue_token(running.auth, args.user, roles=("viewer",))


def cmd_watch(config: Config, args: argparse.Namespace) -> int:
    from chorus.sdk import Client

    seeds, token = _client_args(config, args)

    def show(comment: Any) -> None:
        clock = time.strftime("%H:%M:%S", time.localtime(comment.ts / 1000))
        print(f"{clock} [{comment.region}] {comment.name}: {comment.text}", flush=True)

    async def watch() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        client = Client(seeds, token=token, stream=args.stream, prefer=args.region,
                        on_comment=show)
        async with client:
            await client.connected.wait()
            print(f"-- watching {args.stream} in {client.region} (Ctrl-C stops)", flush=True)
            region = client.region
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
                if client.region != region:
                    print(f"-- failed over to {client.region}", flush=True)
                    region = client.region
                for gap in client.timeline.gaps:
                    print(f"-- comments after {gap.after_id} may be missing", flush=True)
                    client.timeline.fill_gap(gap)

    asyncio.run(watch())
    return 0


def cmd_post(config: Config, args: argparse.Namespace) -> int:
    from chorus.sdk import ChorusClientError, Client

    seeds, token = _client_args(config, args)

    async def post() -> int:
        async with Client(seeds, token=token, stream=args.stream, prefer=args.region) as c:
            try:
                comment = await c.post(args.text)
            except ChorusClientError as exc:
                print(f"chorus: {exc}", file=sys.stderr)
                return 1
            print(json.dumps(comment.to_json()))
            return 0

    return asyncio.run(post())


# -- drill -------------------------------------------------------------------------------------


def cmd_drill(config: Config, args: argparse.Namespace) -> int:
    from chaos import drill as drills
    from chaos.experiment import experiment
    from chaos.faults import ControlFaults, DrillError, Faults, HookFaults

    region = args.region or config.regions[-1].name
    if args.experiment:
        print(json.dumps(experiment(args.drill, region=region, config=args.config,
                                    hooks=args.hooks, short=args.short), indent=2))
        return 0
    try:
        running, state = _running_config(config)
    except ClusterError:
        running, state = config, None  # a deployment's regions.yaml (docs/operations.md)
    faults: Faults
    if args.hooks:
        faults, target = HookFaults.load(Path(args.hooks)), f"deployment ({config.source})"
        has_cassandra = running.cassandra.enabled
    elif state is not None:
        faults = ControlFaults(running, plan.RunLayout(config.run_dir).control)
        target, has_cassandra = "local cluster", bool(state["with_cassandra"])
    else:
        raise DrillError("no local cluster runs from this directory (`chorus up`), and no "
                         "--hooks file says how to fault a deployment (docs/operations.md)")
    options = drills.SHORT if args.short else drills.FULL
    if args.rate or args.viewers:
        options = dataclasses.replace(options, rate=args.rate or options.rate,
                                      viewers_per_region=args.viewers
                                      or options.viewers_per_region)
    out_dir = Path(args.out) if args.out else (
        config.run_dir / "drills" if state is not None else Path("drill-reports"))
    progress = (lambda _msg: None) if args.json else (
        lambda msg: print(f"drill: {msg}", file=sys.stderr, flush=True))

    async def run() -> list[Any]:
        if args.drill == "all":
            return await drills.run_all(running, faults, region=region, options=options,
                                        target=target, has_cassandra=has_cassandra,
                                        progress=progress, out_dir=out_dir)
        return [await drills.run_drill(running, faults, drill=args.drill, region=region,
                                       seconds=args.seconds, options=options, target=target,
                                       has_cassandra=has_cassandra, progress=progress,
                                       out_dir=out_dir)]

    reports = asyncio.run(run())
    if args.json:
        doc = [r.as_json() for r in reports]
        print(json.dumps(doc[0] if len(doc) == 1 else doc, indent=2))
    else:
        print("\n\n".join(r.text() for r in reports))
        if len(reports) > 1:
            print("\n" + "\n".join(f"{r.drill:<16} {'passed' if r.passed else 'FAILED'}"
                                    for r in reports))
    return 0 if all(r.passed for r in reports) else 1


# -- load ----------------------------------------------------------------------------------------


def cmd_load(config: Config, args: argparse.Namespace) -> int:
    """A bounded load run against the running local cluster, a cluster of its own
    (``--own-cluster``), or the deployment that ``--config`` describes."""
    from chorus.load.plan import LoadSpec, parse_mix
    from chorus.load.run import Run, text, write_report

    spec = LoadSpec(profile=args.profile, viewers=args.viewers, posters=args.posters,
                    rate=args.rate, duration_s=args.duration, streams=args.streams,
                    mix=parse_mix(args.mix), drain_s=args.drain)
    spec.check()
    tty = sys.stdout.isatty()

    def progress(line: str) -> None:
        print(f"\r{line[:160]:<160}" if tty else line, end="" if tty else "\n", flush=True)

    async def load() -> tuple[Run, dict[str, Any]]:
        if args.own_cluster:
            import dataclasses
            import tempfile

            from chorus.cluster.ports import relocate

            own = dataclasses.replace(relocate(config), run_dir=Path(
                tempfile.mkdtemp(prefix="chorus-load-")))
            print(f"chorus: starting a cluster of its own from {config.source} (free ports)",
                  flush=True)
            async with LocalCluster(own, find_binaries()) as cluster:
                run = Run(own, spec, pids=lambda: {n: c.pid for n, c in
                                                    cluster.children.items()},
                          progress=progress, seed=args.seed)
                return run, await run.run()
        try:
            running, _ = _running_config(config)
            layout = plan.RunLayout(config.run_dir)

            def pids() -> dict[str, int]:
                state = read_state(layout) or {}
                return {n: int(p["pid"]) for n, p in state.get("processes", {}).items()}
            run = Run(running, spec, allow_remote=args.allow_remote, pids=pids,
                      progress=progress, seed=args.seed)
        except ClusterError:
            # No local cluster: the deployment described by --config.
            run = Run(config, spec, allow_remote=args.allow_remote, progress=progress,
                      seed=args.seed)
        return run, await run.run()

    run, report = asyncio.run(load())
    if tty:
        print()
    out = Path(args.out) if args.out else (config.run_dir / "load"
                                           / time.strftime("%Y%m%d-%H%M%S"))
    files = write_report(report, run, out)
    print(json.dumps(report, indent=2, default=str) if args.json else text(report))
    print(f"\nreport and plots: {', '.join(str(f) for f in files)}")
    return 1 if report["loss"]["missing"] or report["loss"]["duplicates"] else 0


# -- main ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chorus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"chorus {_version()}")
    parser.add_argument("--config", default="regions.yaml",
                        help="the topology file (default: ./regions.yaml)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the local multi-region cluster in the foreground")
    up.add_argument("--with-cassandra", action="store_true",
                    help="also run Cassandra, one datacenter per region")
    up.add_argument("--fresh", action="store_true",
                    help="delete the data of earlier runs (JetStream, Cassandra) first")
    up.add_argument("--demo", action="store_true",
                    help="synthetic viewers and commenters in every region (bounded, loopback)")
    up.add_argument("--dashboard-port", type=int, metavar="PORT",
                    help=f"the ops dashboard's port on 127.0.0.1 (default {DASHBOARD_PORT}, or "
                         "any free port when that one is taken)")
    up.add_argument("--no-dashboard", action="store_true", help="run no ops dashboard")
    up.add_argument("--with-prometheus", action="store_true",
                    help="also run Prometheus (Debian's package) scraping every gateway, with "
                         "the alert rules of ops/prometheus/alerts.yml")
    up.set_defaults(fn=cmd_up)

    status = sub.add_parser("status", help="health of every part of the running cluster")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(fn=cmd_status)

    link = sub.add_parser("link", help="slow, cut or restore a region's link to the hub")
    link.add_argument("region")
    what = link.add_mutually_exclusive_group(required=True)
    what.add_argument("--latency", type=int, metavar="MS", help="one-way latency in ms")
    what.add_argument("--cut", action="store_true", help="cut the link")
    what.add_argument("--restore", action="store_true",
                      help="reconnect the link with regions.yaml's latency")
    link.add_argument("--jitter", type=int, default=0, metavar="MS",
                      help="with --latency: random jitter in ms")
    link.set_defaults(fn=cmd_link)

    token = sub.add_parser("token", help="print a development token (signed with "
                                         "auth.dev_secret)")
    token.add_argument("--user", required=True)
    token.add_argument("--name", help="display name (default: the user id)")
    token.add_argument("--role", action="append",
                       choices=["viewer", "host", "moderator", "verified"],
                       help="repeat for several roles (default: viewer)")
    token.add_argument("--ttl", type=int, metavar="S", help="lifetime in seconds")
    token.set_defaults(fn=cmd_token)

    migrate = sub.add_parser("migrate", help="create or update the archive's schema in "
                                             "Cassandra (idempotent)")
    migrate.add_argument("--region", help="the region whose Cassandra node to go through "
                                          "(default: the first)")
    migrate.set_defaults(fn=cmd_migrate)

    from chaos.experiment import names as drill_names

    drill = sub.add_parser("drill", help="a chaos drill under traffic, with a verdict and "
                                         "reports (docs/operations.md)")
    drill.add_argument("drill", choices=[*drill_names(), "all"])
    drill.add_argument("--region", help="the region faulted (default: the last one)")
    drill.add_argument("--seconds", type=float,
                       help="how long the fault lasts (default: the drill's own)")
    drill.add_argument("--short", action="store_true",
                       help="the short form CI runs (fewer viewers, shorter faults)")
    drill.add_argument("--rate", type=float,
                       help="comments per second over all regions (default 30; short 12)")
    drill.add_argument("--viewers", type=int, help="SDK viewers per region (default 4)")
    drill.add_argument("--hooks", metavar="FILE",
                       help="a deployment: the shell commands that inject each fault")
    drill.add_argument("--out", metavar="DIR",
                       help="where the JSON and PNG reports go (default: <run_dir>/drills, "
                            "or ./drill-reports for a deployment)")
    drill.add_argument("--json", action="store_true", help="print the report as JSON")
    drill.add_argument("--experiment", action="store_true",
                       help="print the drill as a Chaos Toolkit experiment instead")
    drill.set_defaults(fn=cmd_drill)

    load = sub.add_parser("load", help="a bounded load run: viewers and posters per region, "
                                       "latency percentiles, loss, server CPU and plots")
    load.add_argument("--profile", choices=["steady", "ramp", "spike", "churn"],
                      default="steady", help="steady, ramp, spike (a viral stream in the "
                      "middle third) or churn (viewers joining and leaving); default steady")
    load.add_argument("--viewers", type=int, default=20, help="viewers per region (default 20)")
    load.add_argument("--posters", type=int, default=2, help="posters per region (default 2)")
    load.add_argument("--rate", type=float, default=5.0,
                      help="posts per second per region (default 5)")
    load.add_argument("--duration", type=float, default=30.0, metavar="S",
                      help="seconds of load (default 30; at most 900)")
    load.add_argument("--streams", type=int, default=4, help="streams (default 4)")
    load.add_argument("--mix", default="ws=60,sse=30,poll=10",
                      help="viewers' transports and their shares (default ws=60,sse=30,poll=10)")
    load.add_argument("--drain", type=float, default=10.0, metavar="S",
                      help="after the last post, how long comments may still arrive (default 10)")
    load.add_argument("--out", help="where the report and PNG plots go (default "
                                    ".chorus/load/<time>)")
    load.add_argument("--own-cluster", action="store_true",
                      help="start a cluster of its own on free ports for the run")
    load.add_argument("--allow-remote", action="store_true",
                      help="the regions.yaml names a deployment of your own (non-loopback "
                           "addresses); without it only loopback is loaded")
    load.add_argument("--seed", type=int, help="seed of the churn lifetimes")
    load.add_argument("--json", action="store_true", help="print the report as JSON")
    load.set_defaults(fn=cmd_load)

    for name, fn, text in (("watch", cmd_watch, "print a stream's comments as they come"),
                           ("post", cmd_post, "post a comment")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("stream")
        if name == "post":
            cmd.add_argument("text")
        cmd.add_argument("--region", help="the region to use first (default: the nearest)")
        cmd.add_argument("--user", default="cli", help="user of the dev token (default: cli)")
        cmd.add_argument("--token", help="a token instead of a dev token")
        cmd.set_defaults(fn=fn)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(Path(args.config))
        code = args.fn(config, args)
    except ChorusError as exc:
        print(f"chorus: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # `chorus status | head`: the reader left; say nothing more, like other tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)
