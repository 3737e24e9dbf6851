"""A gateway started the way a deployed one is (``--from-env``, TLS terminated in the process)
joins the test cluster's region and announces its public URL to every region."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.cluster.ports import free_port
from chorus.cluster.process import Child, ProcessSpec

pytestmark = pytest.mark.integration


def self_signed(tmp: Path) -> tuple[str, str]:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem")],
                   check=True, capture_output=True)
    return (tmp / "cert.pem").read_text(), (tmp / "key.pem").read_text()


async def test_a_gateway_configured_from_the_environment_serves_tls_and_announces_itself(
        cluster: LocalCluster, tmp_path: Path) -> None:
    config = cluster.config
    region = config.region("eu-west")
    cert, key = self_signed(tmp_path)
    port = free_port()
    public = "https://eu-west.chorus.example.test"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_")}
    env.update({
        "CHORUS_REGION": "eu-west", "CHORUS_NATS_URLS": region.nats_url,
        "CHORUS_REDIS_URL": region.redis_url, "CHORUS_AUTH_SECRET": config.auth.dev_secret,
        "CHORUS_PUBLIC_URL": public, "CHORUS_GATEWAY_PORT": str(port),
        "CHORUS_OPERATOR_PORT": str(free_port()),
        "CHORUS_TLS_CERT": cert, "CHORUS_TLS_KEY": key,
    })
    # The deployed gateway reads the cluster's own regions.yaml, as an image would its copy.
    child = Child.start(ProcessSpec(
        name="eu-west/deployed", log=tmp_path / "gateway.log", env=env,
        argv=(sys.executable, "-m", "region.gateway", "--config",
              str(cluster.layout.effective_config), "--from-env")))
    context = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    try:
        async with aiohttp.ClientSession() as http:
            async def serves_tls() -> bool:
                try:
                    async with http.get(f"https://127.0.0.1:{port}/healthz",
                                        ssl=context) as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False
            await wait_until(serves_tls, what="the deployed gateway", timeout_s=30,
                             children=[child])

            async def announced() -> bool:
                other = config.region("ap-south").gateway_urls[0]
                async with http.get(f"{other}/v1/regions") as resp:
                    doc = await resp.json()
                urls = next(r["urls"] for r in doc["regions"] if r["name"] == "eu-west")
                return public in urls
            await wait_until(announced, what="its public URL in ap-south's /v1/regions",
                             timeout_s=15, children=[child])
    finally:
        await child.stop()


def test_a_bad_environment_is_refused_with_the_variable_named(cluster: LocalCluster) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHORUS_")}
    env["CHORUS_REGION"] = "eu-west"
    result = subprocess.run([sys.executable, "-m", "region.gateway", "--config",
                             str(cluster.layout.effective_config), "--from-env"],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert "environment: CHORUS_NATS_URLS: missing" in result.stderr
