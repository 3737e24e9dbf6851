"""`chorus up` as a user runs it: a real process, in the foreground, stopped with Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from chorus.cluster.health import wait_until
from chorus.cluster.ports import relocate
from chorus.config import Config, dump_config

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _chorus(config_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chorus", "--config", str(config_file), *args],
                          capture_output=True, text=True, timeout=60)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead but not yet reaped by its parent.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_up_status_link_and_ctrl_c_leaves_nothing_behind(repo_config: Config,
                                                               tmp_path: Path) -> None:
    config_file = tmp_path / "regions.yaml"
    config_file.write_text(dump_config(relocate(repo_config)))
    out = (tmp_path / "up.out").open("w")
    argv = [sys.executable, "-m", "chorus", "--config", str(config_file), "up"]
    # Starting a process is instant; every wait on it below runs in a thread.
    up = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)  # noqa: ASYNC220
    state_file = tmp_path / ".chorus" / "state.json"
    try:
        async def started() -> bool:
            if up.poll() is not None:
                raise AssertionError((tmp_path / "up.out").read_text())
            return state_file.exists()
        await wait_until(started, what="chorus up", timeout_s=90)
        state = json.loads(state_file.read_text())
        pids = [p["pid"] for p in state["processes"].values()]
        assert len(pids) == 1 + 1 + 3 * (1 + 1 + 2)  # toxiproxy, hub, per region nats+redis+2 gw
        assert all(_alive(pid) for pid in pids)

        second = await asyncio.to_thread(_chorus, config_file, "up")
        assert second.returncode == 2
        assert "already running" in second.stderr and str(up.pid) in second.stderr
        assert state_file.exists(), "a refused second `up` must not touch the first's state"

        status = await asyncio.to_thread(_chorus, config_file, "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        doc = json.loads(status.stdout)
        assert doc["healthy"] and doc["pid"] == up.pid
        assert [r["name"] for r in doc["regions"]] == ["us-east", "eu-west", "ap-south"]
        assert all(len(r["urls"]) == 2 for r in doc["regions"])

        cut = await asyncio.to_thread(_chorus, config_file, "link", "ap-south", "--cut")
        assert cut.returncode == 0 and "CUT" in cut.stdout
        slow = await asyncio.to_thread(_chorus, config_file, "link", "ap-south", "--latency",
                                       "250")
        assert "250 ms" in slow.stdout
        restored = await asyncio.to_thread(_chorus, config_file, "link", "ap-south",
                                           "--restore")
        assert "link up" in restored.stdout and "90 ms" in restored.stdout
        bad = await asyncio.to_thread(_chorus, config_file, "link", "mars", "--cut")
        assert bad.returncode == 2 and "no such region" in bad.stderr
    finally:
        up.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(up.wait, 60)
        out.close()
    assert code == 0, (tmp_path / "up.out").read_text()
    assert not [pid for pid in pids if _alive(pid)]
    assert not state_file.exists()
    after = await asyncio.to_thread(_chorus, config_file, "status")
    assert after.returncode == 2 and "no cluster is running" in after.stderr


def test_up_names_a_port_already_in_use(repo_config: Config, tmp_path: Path) -> None:
    import socket

    config = relocate(repo_config)
    config_file = tmp_path / "regions.yaml"
    config_file.write_text(dump_config(config))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", config.region("eu-west").redis.port))
        squatter.listen()
        result = _chorus(config_file, "up")
    assert result.returncode == 2
    assert f"regions.eu-west.redis.port = {config.region('eu-west').redis.port}" in result.stderr
