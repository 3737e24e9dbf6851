"""A small client for toxiproxy-server's HTTP API, with timeouts.

Every cross-region leaf link of the local cluster runs through one proxy, named by
`leaf_proxy_name` (so does a deployment's link during a drill: docs/operations.md). Latency
is set as two `latency` toxics (upstream and downstream) so that the value is one-way and a
round trip pays it twice, as regions.yaml documents.

(toxiproxy-python keeps its API address in class-level globals and sends requests without a
timeout; a hung API would hang `chorus link`. This client is a few calls over urllib.)
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from chorus.errors import ClusterError

_DIRECTIONS = ("upstream", "downstream")


def leaf_proxy_name(region: str) -> str:
    """The proxy that carries the leaf link between ``region`` (a region's name) and the
    hub. `chorus up` creates it; `chorus link`, `chorus status` and the drills find it by
    this name, and so do operators who set one up for a deployment."""
    return f"leaf-{region}"


@dataclass(frozen=True)
class ProxyState:
    name: str
    listen: str
    upstream: str
    enabled: bool
    latency_ms: int
    jitter_ms: int


class Toxiproxy:
    """Talks to one toxiproxy-server at ``http://host:port``; each call waits at most
    ``timeout_s`` seconds and raises `ClusterError` when the API fails."""

    def __init__(self, host: str, port: int, *, timeout_s: float = 3.0) -> None:
        self.base = f"http://{host}:{port}"
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace").strip()
            raise ClusterError(f"toxiproxy {method} {path}: HTTP {exc.code} {detail}") from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ClusterError(f"toxiproxy at {self.base} is not reachable: {exc}") from exc
        return json.loads(raw) if raw else None

    def version(self) -> str:
        req = urllib.request.Request(self.base + "/version")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return str(resp.read().decode().strip())
        except (urllib.error.URLError, OSError) as exc:
            raise ClusterError(f"toxiproxy at {self.base} is not reachable: {exc}") from exc

    def create(self, name: str, listen: str, upstream: str) -> None:
        """Create (or re-create) a proxy; an existing one of that name is replaced."""
        proxies = self._call("GET", "/proxies")
        if name in proxies:
            self._call("DELETE", f"/proxies/{name}")
        self._call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream,
                                        "enabled": True})

    def set_enabled(self, name: str, enabled: bool) -> None:
        """False cuts the link: open connections are closed and new ones refused."""
        self._call("POST", f"/proxies/{name}", {"enabled": enabled})

    def set_latency(self, name: str, latency_ms: int, jitter_ms: int = 0) -> None:
        """One-way latency on both directions; 0 removes the toxics."""
        if latency_ms < 0 or jitter_ms < 0:
            raise ValueError("latency and jitter must not be negative")
        existing = {t["name"] for t in self._call("GET", f"/proxies/{name}/toxics")}
        for stream in _DIRECTIONS:
            toxic = f"latency_{stream}"
            if toxic in existing:
                self._call("DELETE", f"/proxies/{name}/toxics/{toxic}")
            if latency_ms or jitter_ms:
                self._call("POST", f"/proxies/{name}/toxics", {
                    "name": toxic, "type": "latency", "stream": stream, "toxicity": 1.0,
                    "attributes": {"latency": latency_ms, "jitter": jitter_ms},
                })

    def state(self, name: str) -> ProxyState:
        proxy = self._call("GET", f"/proxies/{name}")
        latency = jitter = 0
        for toxic in proxy.get("toxics") or []:
            if toxic.get("name") == "latency_downstream":
                latency = int(toxic["attributes"].get("latency", 0))
                jitter = int(toxic["attributes"].get("jitter", 0))
        return ProxyState(name=proxy["name"], listen=proxy["listen"],
                          upstream=proxy["upstream"], enabled=bool(proxy["enabled"]),
                          latency_ms=latency, jitter_ms=jitter)
