"""`SnapshotPublisher` for a deployed cell: the document goes to the cell's S3 bucket, which
CloudFront serves (iac/snapshots.py provisions both; the gateways' task role may put objects
in the bucket, and nothing else may).

A stream's document is the object ``v1/streams/<stream>/snapshot`` (the same path the
gateways serve it on), put with ``Content-Type: application/json`` and the
``Cache-Control`` the gateways send, which the distribution's cache policy honours; S3 gives
it an ETag of its own, and CloudFront answers ``If-None-Match`` with 304. Clients get the
URL (``CHORUS_SNAPSHOT_URL`` + that path) in the ``tier`` frame.

One PUT per interval per stream in the snapshot tier, from the stream's keeper in the region
only. Requests are signed with AWS Signature Version 4 (`sign`, pure, checked against AWS's
published examples) with the task role's temporary credentials, which ECS serves on its
credentials endpoint; they are fetched again before they expire.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from region.snapshot import Rendered, SnapshotUnavailable

REQUEST_TIMEOUT_S = 5.0
REFRESH_BEFORE_S = 300.0   # credentials are fetched again this long before they expire


@dataclass(frozen=True)
class SnapshotTarget:
    """Where a deployed cell's documents go: ``bucket`` in ``aws_region``, read by clients at
    ``public_url`` (the CloudFront distribution's), signed with the credentials served at
    ``credentials_url`` (the ECS task role's)."""

    bucket: str
    public_url: str
    aws_region: str
    credentials_url: str


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None
    expires_at: float = float("inf")   # time.time() seconds


def object_key(stream: str) -> str:
    return f"v1/streams/{stream}/snapshot"


def sign(method: str, host: str, path: str, headers: Mapping[str, str], payload_sha256: str,
         creds: Credentials, region: str, now: datetime.datetime,
         service: str = "s3") -> dict[str, str]:
    """The headers to add to a request (``x-amz-date``, ``x-amz-content-sha256``, the session
    token if any, and ``Authorization``) for SigV4. ``path`` is the URI-encoded path;
    ``headers`` are the request's other headers, all signed (``host`` is added)."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    added = {"x-amz-date": amz_date, "x-amz-content-sha256": payload_sha256}
    if creds.token:
        added["x-amz-security-token"] = creds.token
    signed = {k.lower(): " ".join(v.strip().split()) for k, v in
              {**headers, **added, "host": host}.items()}
    names = sorted(signed)
    canonical = "\n".join([method, path, "", *(f"{n}:{signed[n]}" for n in names), "",
                           ";".join(names), payload_sha256])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{creds.secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    added["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                              f"SignedHeaders={';'.join(names)}, Signature={signature}")
    return added


class S3SnapshotPublisher:
    """Puts documents in the cell's bucket. `close` when the gateway stops."""

    def __init__(self, target: SnapshotTarget) -> None:
        self.target = target
        self.host = f"{target.bucket}.s3.{target.aws_region}.amazonaws.com"
        self._http: aiohttp.ClientSession | None = None
        self._creds: Credentials | None = None

    def url(self, stream: str) -> str:
        return f"{self.target.public_url.rstrip('/')}/{object_key(stream)}"

    async def publish(self, stream: str, rendered: Rendered, cache_control: str) -> None:
        http = self._session()
        try:
            creds = await self._credentials(http)
            path = "/" + quote(object_key(stream), safe="/")
            headers = {"content-type": "application/json", "cache-control": cache_control}
            signed = sign("PUT", self.host, path, headers,
                          hashlib.sha256(rendered.body).hexdigest(), creds,
                          self.target.aws_region, datetime.datetime.now(datetime.UTC))
            async with http.put(f"https://{self.host}{path}", data=rendered.body,
                                headers={**headers, **signed}) as resp:
                if resp.status >= 300:
                    raise SnapshotUnavailable(f"S3 refused the snapshot of {stream}: "
                                              f"{resp.status} {(await resp.text())[:200]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise SnapshotUnavailable(f"putting the snapshot of {stream} in S3: {exc}") from exc

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))
        return self._http

    async def _credentials(self, http: aiohttp.ClientSession) -> Credentials:
        if self._creds is not None and self._creds.expires_at - time.time() > REFRESH_BEFORE_S:
            return self._creds
        async with http.get(self.target.credentials_url) as resp:
            if resp.status != 200:
                raise SnapshotUnavailable(f"the credentials endpoint answered {resp.status}")
            doc = json.loads(await resp.text())
        try:
            expires = datetime.datetime.fromisoformat(doc["Expiration"].replace("Z", "+00:00"))
            self._creds = Credentials(access_key=doc["AccessKeyId"],
                                      secret_key=doc["SecretAccessKey"],
                                      token=doc.get("Token"), expires_at=expires.timestamp())
        except (KeyError, ValueError, AttributeError) as exc:
            raise SnapshotUnavailable(f"the credentials endpoint's answer: {exc}") from exc
        return self._creds

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
