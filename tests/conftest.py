"""Fixtures shared by every level of tests.

Integration tests get one local cluster per test run (`cluster`), started by the same code as
`chorus up` on free ports under a temporary run directory; each test uses its own unique names
(streams, subjects, keys) so tests never see each other's data.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from chorus.cluster.binaries import Binaries, find_binaries
from chorus.cluster.local import LocalCluster
from chorus.cluster.ports import relocate
from chorus.config import Config, load_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_config() -> Config:
    return load_config(ROOT / "regions.yaml")


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    return find_binaries()


@pytest.fixture(scope="session")
def cluster_config(repo_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Config:
    # The load test posts 10,000 comments to one stream at once: lift the per-stream bucket
    # (its own test checks it with a small bucket directly against Redis).
    limits = dataclasses.replace(repo_config.limits, stream_rate_per_s=100000.0,
                                 stream_burst=100000)
    return dataclasses.replace(relocate(repo_config), limits=limits,
                               run_dir=tmp_path_factory.mktemp("cluster"))


@pytest_asyncio.fixture(scope="session")
async def cluster(cluster_config: Config, binaries: Binaries) -> AsyncIterator[LocalCluster]:
    async with LocalCluster(cluster_config, binaries) as running:
        yield running


@pytest.fixture(scope="session")
def archive_config(cluster_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Config:
    """A second cluster's topology, with Cassandra: a datacenter per region."""
    return dataclasses.replace(relocate(cluster_config),
                               run_dir=tmp_path_factory.mktemp("archive-cluster"))


@pytest_asyncio.fixture(scope="session")
async def archive_cluster(archive_config: Config,
                          binaries: Binaries) -> AsyncIterator[LocalCluster]:
    """The whole cluster as `chorus up --with-cassandra` starts it (slow: start it only for
    tests marked `cassandra`)."""
    async with LocalCluster(archive_config, binaries, with_cassandra=True) as running:
        yield running


@pytest.fixture
def unique() -> Iterator[str]:
    """A prefix no other test uses: for stream names, subjects and Redis keys."""
    yield "t" + uuid.uuid4().hex[:12]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A full chaos drill (marked ``drill``, minutes long) runs only when asked for by
    marker: ``./dev test -m drill``. CI runs the short forms, which are not marked."""
    if "drill" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="a full drill runs alone: ./dev test -m drill")
    for item in items:
        if item.get_closest_marker("drill") is not None:
            item.add_marker(skip)
