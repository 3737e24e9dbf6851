"""The snapshot tier's document: a stream rendered as one JSON document a CDN can cache. Pure.

For a stream in the snapshot tier, the region's keeper of the stream (region/tiers.py) renders
every ``tiers.snapshot_interval_s`` one `SnapshotDoc`: a sample of its recent comments, its
recent priority comments, and its counts. The document is the same bytes wherever it is read:

- ``GET /v1/streams/{stream}/snapshot`` on any gateway of the region (region/snapshot_api.py)
  answers it with a strong ``ETag``, ``Cache-Control: public, max-age=<interval>``, and 304 to
  a matching ``If-None-Match``; it needs no token, so that a CDN may cache it for everyone
  (it holds nothing a viewer of the stream could not see: no shadow-banned comment);
- a deployed cell also puts it in its S3 bucket behind CloudFront (region/snapshot_s3.py);
- WebSocket and SSE viewers get it as a ``snapshot`` frame (region/protocol.py).

A render whose content did not change keeps the previous document (and its ETag), so that
pollers get 304s while a stream is quiet. `SnapshotStore` is where the keeper leaves the
document for the region's other gateways (region/snapshot_redis.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chorus.errors import Unavailable
from chorus.model import Comment

SNAPSHOT_COMMENTS = 50   # sampled comments a document holds, newest last
SNAPSHOT_PRIORITY = 50   # priority comments a document holds, newest last
PRIORITY_KEEP_S = 30.0   # a priority comment stays in the documents this long
KEEP_INTERVALS = 10      # a stored document outlives this many intervals without a render


@dataclass(frozen=True)
class SnapshotDoc:
    """``viewers``: in every region; ``rate_per_s``: comments a second in every region;
    ``posted``: comments this region's log took in the last interval; ``comments``: a sample of
    recent comments and ``priority``: the recent priority lane, oldest first; ``at_ms``: when
    the content last changed (ms since the epoch)."""

    stream: str
    region: str
    at_ms: int
    interval_s: float
    viewers: int
    rate_per_s: int
    posted: int
    comments: tuple[Comment, ...]
    priority: tuple[Comment, ...]

    def content(self) -> tuple[object, ...]:
        """What a reader sees change (not the time of the render)."""
        return (self.viewers, self.rate_per_s, self.posted,
                tuple(c.id for c in self.comments), tuple(c.id for c in self.priority))

    def to_json(self) -> dict[str, object]:
        return {"stream": self.stream, "region": self.region, "tier": "snapshot",
                "at_ms": self.at_ms, "interval_s": self.interval_s, "viewers": self.viewers,
                "rate_per_s": self.rate_per_s, "posted": self.posted,
                "comments": [c.to_json() for c in self.comments],
                "priority": [c.to_json() for c in self.priority]}


@dataclass(frozen=True)
class Rendered:
    """A document as it is served: its JSON text (UTF-8) and its strong ETag."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, doc: SnapshotDoc) -> Rendered:
        body = json.dumps(doc.to_json(), ensure_ascii=False, separators=(",", ":")).encode()
        return cls(body=body, etag=etag_of(body))


def render(stream: str, region: str, *, now_ms: int, interval_s: float, viewers: int,
           rate_per_s: float, posted: int, sample: Sequence[Comment],
           priority: Sequence[Comment], previous: SnapshotDoc | None = None) -> SnapshotDoc:
    """The document now; ``previous`` when nothing a reader sees has changed. ``sample`` and
    ``priority`` are oldest first; shadow-banned comments are left out of both."""
    doc = SnapshotDoc(
        stream=stream, region=region, at_ms=now_ms, interval_s=interval_s, viewers=viewers,
        rate_per_s=round(rate_per_s), posted=posted,
        comments=tuple(c for c in sample if not c.shadow)[-SNAPSHOT_COMMENTS:],
        priority=tuple(c for c in priority if not c.shadow)[-SNAPSHOT_PRIORITY:])
    if previous is not None and previous.content() == doc.content():
        return previous
    return doc


def etag_of(body: bytes) -> str:
    """A strong validator (RFC 9110 8.8.3): the same bytes give the same tag in every
    gateway, whichever rendered them."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def cache_control(interval_s: float) -> str:
    """A document is rewritten every interval: caches may serve it that long (whole seconds,
    at least one)."""
    return f"public, max-age={max(1, round(interval_s))}"


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether a request's ``If-None-Match`` matches ``etag`` (RFC 9110 13.1.2: a list of
    tags or ``*``, compared weakly)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))


class SnapshotUnavailable(Unavailable):
    """The region's snapshot store did not answer."""


class SnapshotStore(Protocol):
    """The region's latest document of each stream in the snapshot tier."""

    async def put(self, stream: str, rendered: Rendered, ttl_s: float) -> None:
        """Replaces the stream's document; it is dropped ``ttl_s`` after the last put.
        Raises `SnapshotUnavailable`."""
        ...

    async def get(self, stream: str) -> Rendered | None:
        """The stream's document (None: it is not in the snapshot tier here). Raises
        `SnapshotUnavailable`."""
        ...


class SnapshotPublisher(Protocol):
    """Where a deployed cell's CDN reads documents from (region/snapshot_s3.py)."""

    def url(self, stream: str) -> str:
        """The public URL of ``stream``'s document."""
        ...

    async def publish(self, stream: str, rendered: Rendered, cache_control: str) -> None:
        """Raises `SnapshotUnavailable`."""
        ...

    async def close(self) -> None: ...
