"""Errors shared by every part of Chorus.

Hierarchy::

    ChorusError                 anything Chorus raises on purpose
    ├── ConfigError             regions.yaml (or a slice of it) is wrong: file, key, reason
    ├── SetupError              a required binary or download is missing
    ├── ClusterError            the local cluster could not start, stop or be reached
    │   └── AlreadyRunning      another `chorus up` holds the run directory
    └── Unavailable             a backend of the data path did not answer; a retry may help
        ├── LogUnavailable          the region's JetStream log (region/log.py)
        ├── PresenceUnavailable     the region's presence index (region/presence.py)
        ├── CacheUnavailable        the replay cache (region/replay.py)
        └── ArchiveUnavailable      the archive (region/archive.py)

Each `Unavailable` is owned by the interface module named beside it. Driver errors (redis,
nats, cassandra) never leave an adapter: chorus/drivers.py holds the one table of what each
driver raises, and adapters translate with ``with translated(LogUnavailable, "..."):``, which
raises ``... from exc`` so the cause stays visible.
"""

from __future__ import annotations


class ChorusError(Exception):
    """Base of every error Chorus raises on purpose."""


class ConfigError(ChorusError):
    """A configuration file is invalid.

    ``file`` is the path as given, ``key`` the dotted path of the offending key
    (``regions.us-east.redis.port``), ``reason`` says what is wrong and how to fix it.
    """

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {reason}")


class SetupError(ChorusError):
    """A binary or artifact that Chorus needs is not installed; run the setup step."""


class ClusterError(ChorusError):
    """The local cluster could not be started, stopped or reached."""


class AlreadyRunning(ClusterError):
    """Another `chorus up` owns the run directory."""


class Unavailable(ChorusError):
    """A backend of the data path (JetStream, Redis, Cassandra) did not answer or refused;
    nothing was half-done, and retrying later may succeed."""
