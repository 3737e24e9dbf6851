"""One Cassandra node per region: its process spec, a readiness check, and the keyspace.

Locally every region is a datacenter of one node on its own loopback address (127.0.0.2,
.3, ...), so all nodes share the native and storage port numbers. There is no Cassandra
tarball: the jars come from Maven Central (scripts/setup.sh), and this module supplies what
the tarball's ``conf/`` and ``bin/`` would have: cassandra.yaml and cassandra-rackdc.properties
(rendered by chorus.cassandra_conf, as for the cloud datacenters of iac/), logback.xml, and
the JVM options of ``conf/jvm-server.options`` / ``conf/jvm17-server.options`` of the 5.0
branch.

JMX stays off: Cassandra 5.0 starts its JMX server only when ``cassandra.jmx.local.port`` or
``cassandra.jmx.remote.port`` is set (CassandraDaemon.maybeInitJmx), and a local JMX server
binds 127.0.0.1, where three nodes would clash on one port number. ``nodetool`` therefore does
not work against these nodes; CQL does everything the cluster needs.

Nodes must be started one at a time: start the first region's node (the seed), `wait_ready`,
then the next; after the last, `wait_converged` until every node knows every other. Then
`keyspace_cql` can name every region's datacenter. `node_config`, `node_spec` and
`keyspace_cql` are pure.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import WhiteListRoundRobinPolicy

from chorus.cassandra_conf import (
    CassandraNode,
    Footprint,
    GroupCommit,
    InitialToken,
    render_rackdc,
    render_yaml,
)
from chorus.cluster.binaries import CASSANDRA_VERSION
from chorus.cluster.process import Child, ProcessSpec
from chorus.config import Config, Region
from chorus.errors import ClusterError

# The agent Cassandra measures object sizes with: jamm.version of the cassandra-parent 5.0.7 pom.
JAMM_JAR = "jamm-0.4.0.jar"

RACK = "rack1"
MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"

# Murmur3Partitioner's tokens are the signed 64-bit integers; its minimum is reserved.
_TOKEN_MIN = -(2**63)
_TOKEN_SPAN = 2**64

# conf/jvm17-server.options (5.0): the JPMS openings Cassandra needs on JDK 17, verbatim.
_JVM17_MODULE_OPTIONS: tuple[str, ...] = (
    "-Djdk.attach.allowAttachSelf=true",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports", "java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports", "java.sql/java.sql=ALL-UNNAMED",
    "--add-exports", "java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports", "jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports", "jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports", "jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    # Without it Netty cannot create direct buffers through Unsafe and falls back to
    # ByteBuffer.allocateDirect, which is slower and can exceed MaxDirectMemorySize.
    "-Dio.netty.tryReflectionSetAccessible=true",
    # Cassandra reverts the smaller pool defaults of Netty 4.1.75.
    "-Dio.netty.allocator.useCacheForAllThreads=true",
    "-Dio.netty.allocator.maxOrder=11",
)

# conf/jvm-server.options and jvm17-server.options, minus what hurts a small local node:
# -XX:+AlwaysPreTouch (faults in the whole heap before start: slower, and RSS = -Xms at once),
# -XX:G1HeapRegionSize=16m (sized for multi-GB heaps; a sub-GB heap would get a few dozen
# regions), -XX:+HeapDumpOnOutOfMemoryError (a heap-sized file per crash).
_JVM_SERVER_OPTIONS: tuple[str, ...] = (
    "-ea",
    "-da:net.openhft...",
    "-XX:+UseThreadPriorities",
    "-Xss256k",
    "-XX:+UseTLAB",
    "-XX:+ResizeTLAB",
    "-XX:+PerfDisableSharedMem",
    "-Djava.net.preferIPv4Stack=true",
    "-XX:+UseG1GC",
    "-XX:+ParallelRefProcEnabled",
    "-XX:MaxTenuringThreshold=1",
    "-XX:G1RSetUpdatingPauseTimePercent=5",
    "-XX:MaxGCPauseMillis=300",
    "-XX:InitiatingHeapOccupancyPercent=70",
    # A node that ran out of heap is in an unknown state: exit, and let the cluster report it.
    "-XX:+ExitOnOutOfMemoryError",
    # C1 only: halves the CPU a node burns to start (about 8 s -> 4 s of CPU, measured), which
    # is what three nodes on two cores wait on. A local cluster's load never pays back the
    # compile time of C2's faster code.
    "-XX:TieredStopAtLevel=1",
)

# CassandraDaemon calls mlockall(MCL_CURRENT) unconditionally at startup; wherever that
# succeeds (root, or a large RLIMIT_MEMLOCK) it pins whatever heap is committed by then. With
# -Xms equal to -Xmx every node would hold its whole heap in RAM from the first second (RSS
# about 1.3 GB at -Xmx768m against 0.6 GB, measured), and faulting it in delays startup. So
# the heap starts small and grows up to ``heap_mb``.
_INITIAL_HEAP_MB = 64

# Startup shortcuts that are safe for nodes created with auto_bootstrap: false, one at a time:
# nothing streams, so there is no gossip to wait for and no ring to settle.
_FAST_START_PROPERTIES: tuple[str, ...] = (
    "-Dcassandra.skip_wait_for_gossip_to_settle=0",
    "-Dcassandra.ring_delay_ms=1000",
    "-Dcassandra.superuser_setup_delay_ms=0",
    # Ring state is loaded (the default): a restarted node must know its peers from its
    # first write, or the rows it coordinates before gossip reaches them would get neither
    # a replica nor a hint in the other datacenters. A fresh node has none to load anyway.
    # How long a stopping node sleeps after telling its peers; on loopback they hear at once.
    "-Dcassandra.shutdown_announce_in_ms=500",
    # The skip-list memtable otherwise measures its per-row overhead at startup by building
    # 100,000 rows (over a second of CPU); 180 bytes is what it measures on JDK 17 with
    # compressed oops. It only feeds memtable size accounting.
    "-Dcassandra.memtable.row_overhead_size=180",
)

_LOGBACK_XML = """\
<configuration scan="false">
  <!-- Cassandra flushes and stops logback itself at the end of its shutdown. -->
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder>
      <pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="STDOUT" />
  </root>
</configuration>
"""


def initial_token(index: int, count: int) -> int:
    """The token of node ``index`` of ``count``: the middle of its equal slice of the ring.

    Middles rather than slice starts keep the first node off the partitioner's reserved
    minimum token.
    """
    if not 0 <= index < count:
        raise ValueError(f"node index {index} is outside 0..{count - 1}")
    return _TOKEN_MIN + (2 * index + 1) * _TOKEN_SPAN // (2 * count)


def _region_index(config: Config, region: Region) -> int:
    for i, r in enumerate(config.regions):
        if r.name == region.name:
            return i
    raise ValueError(f"region {region.name!r} is not in the config")


# Memtables, caches and commit log segments default to sizes meant for servers with heaps of
# many GB, thread pools to a machine of the node's own; these let three nodes share a laptop
# or a CI runner (two cores shared by three nodes and the rest of the cluster).
_SHARED_MACHINE = Footprint(
    commitlog_segment_mib=8,
    commitlog_total_mib=128,
    memtable_heap_mib=64,
    memtable_offheap_mib=64,
    memtable_flush_writers=1,
    key_cache_mib=8,
    row_cache_mib=0,
    counter_cache_mib=0,
    prepared_statements_cache_mib=8,
    file_cache_mib=32,
    networking_cache_mib=16,
    index_summary_mib=8,
    concurrent_reads=4,
    # With group commit a write's thread waits for its group's fsync, so this bounds writes
    # per group: 32 per 10 ms window is ~3,000/s a node (4 measured 240/s).
    concurrent_writes=32,
    concurrent_counter_writes=2,
    concurrent_materialized_view_writes=2,
    concurrent_compactors=1,
    # A coordinator's request thread also waits for the write's acknowledgement.
    native_transport_max_threads=64,
)


def node_config(config: Config, region: Region, *, data_dir: Path) -> CassandraNode:
    """What `chorus.cassandra_conf` renders for ``region``'s node."""
    cass = config.cassandra
    return CassandraNode(
        cluster_name=cass.cluster_name,
        address=region.cassandra.address,
        # The first region's node is the seed: nodes start one at a time, the seed first.
        seeds=(config.regions[0].cassandra.address,),
        native_port=cass.native_port,
        storage_port=cass.storage_port,
        data_dir=str(data_dir),
        tokens=InitialToken(initial_token(_region_index(config, region), len(config.regions))),
        # A write is acknowledged after the fsync of its group. The default, periodic,
        # acknowledges before: its replay after a kill -9 stops at the last sync marker
        # (measured: a write acknowledged 0.1 s before the kill was gone), and with one
        # replica per datacenter nothing else in the region holds it.
        commitlog=GroupCommit(window_ms=10),
        # Nodes join an empty cluster, each as its datacenter's only replica: there is
        # nothing to stream from peers before serving.
        auto_bootstrap=False,
        # Tests drop and truncate tables often; a snapshot (and flush) per drop is wasted I/O.
        auto_snapshot=False,
        footprint=_SHARED_MACHINE,
    )


def render_logback() -> str:
    """logback.xml: INFO to stdout, which `Child` writes to the node's log file."""
    return _LOGBACK_XML


def _file_url(path: Path) -> str:
    return path.absolute().as_uri()


def node_spec(config: Config, region: Region, *, java: Path, lib: Path, data_dir: Path,
              log_dir: Path) -> ProcessSpec:
    """The process of ``region``'s node: CassandraDaemon in the foreground.

    Config files are written under ``data_dir/conf``, data under ``data_dir``; the process's
    output goes to ``log_dir/<region>.cassandra.log``.
    """
    data_dir = data_dir.absolute()
    log_dir = log_dir.absolute()
    lib = lib.absolute()
    conf = data_dir / "conf"
    yaml_path = conf / "cassandra.yaml"
    rackdc_path = conf / "cassandra-rackdc.properties"
    logback_path = conf / "logback.xml"
    heap_mb = config.cassandra.heap_mb
    argv = (
        str(java),
        f"-Xms{min(heap_mb, _INITIAL_HEAP_MB)}m",
        f"-Xmx{heap_mb}m",
        *_JVM_SERVER_OPTIONS,
        *_JVM17_MODULE_OPTIONS,
        f"-javaagent:{lib / JAMM_JAR}",
        f"-Dcassandra.config={_file_url(yaml_path)}",
        f"-Dcassandra-rackdc.properties={_file_url(rackdc_path)}",
        f"-Dlogback.configurationFile={_file_url(logback_path)}",
        f"-Dcassandra.storagedir={data_dir}",
        f"-Dcassandra.logdir={log_dir}",
        # No triggers are used; pointing at an existing directory without jars only saves a
        # "Trigger directory doesn't exist" warning at every start.
        f"-Dcassandra.triggers_dir={conf}",
        # Keeps stdout open: that is where the log goes.
        "-Dcassandra-foreground=yes",
        *_FAST_START_PROPERTIES,
        # The launcher expands "dir/*" to every jar in it.
        "-cp", f"{lib}/*",
        MAIN_CLASS,
    )
    return ProcessSpec(
        name=f"{region.name}/cassandra",
        argv=argv,
        log=log_dir / f"{region.name}.cassandra.log",
        # hs_err files and anything else the JVM drops in its working directory stay here.
        cwd=data_dir,
        files={
            yaml_path: render_yaml(node_config(config, region, data_dir=data_dir)),
            rackdc_path: render_rackdc(region.name, RACK),
            logback_path: render_logback(),
        },
        # A drain flushes memtables; on two busy cores that can take a while.
        stop_timeout_s=30.0,
    )


def keyspace_cql(config: Config) -> str:
    """CREATE KEYSPACE for ``config.cassandra.keyspace``: ``archive.replication_factor``
    replicas in every region's DC (the archive's schema owns it: chorus/archive_schema.py)."""
    from chorus import archive_schema

    return archive_schema.keyspace_cql(config)


# Each probe is bounded by these driver timeouts; a refused connection fails at once.
_PROBE_TIMEOUT_S = 3.0
_POLL_INTERVAL_S = 0.25

# A probe that finds the node not up yet is expected: its driver warnings (a traceback per
# refused connection) would bury the real errors of everything else that uses the driver.
_probing = threading.local()


class _QuietWhileProbing(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_probing, "active", False)


for _name in ("cassandra.cluster", "cassandra.connection", "cassandra.pool"):
    logging.getLogger(_name).addFilter(_QuietWhileProbing())


def _query(address: str, port: int, cql: str, timeout_s: float) -> list[Any]:
    """The rows of ``cql`` run on the node at ``address`` alone. Blocking."""
    # Only this node: the driver would otherwise also open pools to the peers it discovers.
    profile = ExecutionProfile(load_balancing_policy=WhiteListRoundRobinPolicy([address]),
                               request_timeout=timeout_s)
    # Schema and token metadata are not needed to answer one query, and a node that has just
    # joined disagrees on the schema until it has pulled it from its peers: by default the
    # driver would wait up to 10 s for that agreement inside connect().
    cluster = Cluster(contact_points=[address], port=port, protocol_version=5,
                      execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                      connect_timeout=timeout_s, control_connection_timeout=timeout_s,
                      schema_metadata_enabled=False, token_metadata_enabled=False,
                      max_schema_agreement_wait=0)
    _probing.active = True
    try:
        return list(cluster.connect().execute(cql))
    finally:
        cluster.shutdown()
        _probing.active = False


async def _poll(check: Callable[[float], bool], *, what: str, timeout_s: float,
                children: Sequence[Child]) -> None:
    """Run the blocking ``check(timeout_s)`` in a thread until it returns True.

    A check that raises counts as "not yet". Raises `ClusterError` when a child exits or the
    deadline passes, with the end of the children's logs.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last = "not checked yet"
    while True:
        for child in children:
            if not child.alive:
                raise ClusterError(
                    f"{child.spec.name} exited with code {child.proc.returncode} while waiting "
                    f"for {what} (log: {child.spec.log}):\n{child.log_tail()}")
        remaining = deadline - loop.time()
        if remaining <= 0:
            tails = "".join(f"\n--- {c.spec.name} ({c.spec.log}):\n{c.log_tail()}"
                            for c in children)
            raise ClusterError(f"Cassandra {CASSANDRA_VERSION}: no {what} within "
                               f"{timeout_s:g} s (last: {last}){tails}")
        try:
            if await asyncio.to_thread(check, min(_PROBE_TIMEOUT_S, remaining)):
                return
            last = "not yet"
        except Exception as exc:  # any driver error means "not yet"; the deadline bounds it
            last = f"{type(exc).__name__}: {exc}"
        await asyncio.sleep(min(_POLL_INTERVAL_S, max(0.0, deadline - loop.time())))


async def wait_ready(address: str, port: int, *, timeout_s: float,
                     child: Child | None = None) -> None:
    """Return once the node at ``address:port`` answers a CQL query.

    Raises `ClusterError`, with the end of the node's log, when ``child`` exits first or
    ``timeout_s`` passes.
    """

    def answers(probe_timeout_s: float) -> bool:
        _query(address, port, "SELECT release_version FROM system.local", probe_timeout_s)
        return True

    await _poll(answers, what=f"CQL on {address}:{port}", timeout_s=timeout_s,
                children=[child] if child is not None else [])


async def wait_converged(config: Config, *, timeout_s: float,
                         children: Sequence[Child] = ()) -> None:
    """Return once every region's node lists every other one as a peer in its datacenter.

    A node serves CQL before gossip has told the others about it; until they know it, a
    keyspace naming its datacenter is refused and writes do not replicate to it. Call this
    after the last `wait_ready`.
    """
    port = config.cassandra.native_port
    nodes = {r.cassandra.address: r.name for r in config.regions}

    def converged(probe_timeout_s: float) -> bool:
        for address in nodes:
            rows = _query(address, port, "SELECT peer, data_center, tokens FROM system.peers_v2",
                          probe_timeout_s)
            peers = {str(row.peer): row.data_center for row in rows if row.tokens}
            if peers != {a: dc for a, dc in nodes.items() if a != address}:
                return False
        return True

    await _poll(converged, what=f"agreement of all {len(nodes)} nodes on the ring",
                timeout_s=timeout_s, children=children)
