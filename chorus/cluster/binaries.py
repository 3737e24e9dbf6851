"""Where the servers that the setup step installed live.

scripts/setup.sh installs pinned versions into the cache directory (``$CHORUS_CACHE``, default
``~/.cache/chorus``) so a fresh clone does not download them again. `find_binaries` is the one
place that reads that variable; the result is passed to whoever starts processes.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from chorus.errors import SetupError

NATS_VERSION = "v2.12.15"
TOXIPROXY_VERSION = "v2.12.0"
CASSANDRA_VERSION = "5.0.7"


@dataclass(frozen=True)
class Binaries:
    nats_server: Path
    redis_server: Path
    toxiproxy_server: Path
    java: Path | None
    cassandra_lib: Path | None
    prometheus: Path | None = None   # Debian's package; only `chorus up --with-prometheus`

    def require_cassandra(self) -> tuple[Path, Path]:
        if self.java is None or self.cassandra_lib is None:
            raise SetupError("Cassandra is not installed: run scripts/setup.sh "
                             f"(it fetches Cassandra {CASSANDRA_VERSION} from Maven Central)")
        return self.java, self.cassandra_lib


def cache_dir() -> Path:
    return Path(os.environ.get("CHORUS_CACHE", Path.home() / ".cache" / "chorus"))


def find_binaries(cache: Path | None = None) -> Binaries:
    """Locate every server; raises `SetupError` naming what is missing and how to get it."""
    cache = cache or cache_dir()
    bin_dir = cache / "bin"

    def need(name: str, how: str) -> Path:
        path = bin_dir / name
        if path.exists():
            return path
        found = shutil.which(name)
        if found:
            return Path(found)
        raise SetupError(f"{name} not found in {bin_dir} or on PATH: run scripts/setup.sh ({how})")

    java = shutil.which("java")
    lib = cache / f"cassandra-{CASSANDRA_VERSION}" / "lib"
    return Binaries(
        nats_server=need("nats-server", f"go install of nats-server {NATS_VERSION}"),
        redis_server=need("redis-server", "Debian package redis-server"),
        toxiproxy_server=need("toxiproxy-server", f"go install of toxiproxy {TOXIPROXY_VERSION}"),
        java=Path(java) if java else None,
        cassandra_lib=lib if (lib / f"cassandra-all-{CASSANDRA_VERSION}.jar").exists() else None,
        prometheus=Path(prometheus) if (prometheus := shutil.which("prometheus")) else None,
    )
