"""Taking a comment: admit (bans, rate limits), give it an id, store it durably.

The 201 goes out only after the region's JetStream acknowledged the write. A retry with the
same ``client_key`` (same user and stream) within the log's duplicate window returns the
comment stored the first time, which JetStream reports through ``Nats-Msg-Id``: idempotency
needs no other store, and survives a Redis restart.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from chorus.ids import IdGenerator
from chorus.metrics import Metrics
from chorus.model import Comment
from region.admission import Admission
from region.auth import Claims
from region.errors import ApiError, ErrorCode
from region.log import Appended, CommentLog, LogUnavailable
from region.moderation_service import Moderation
from region.sampling import priority
from region.tiers import StreamBuckets
from region.validation import PostInput


class ReplyCheck(Protocol):
    async def check_parent(self, stream: str, parent_id: str) -> None:
        """Raises ApiError 422 unless ``parent_id`` is a comment of ``stream``."""
        ...


class Ingest:
    def __init__(self, region: str, log: CommentLog, admission: Admission,
                 ids: IdGenerator, *, metrics: Metrics | None = None,
                 moderation: Moderation | None = None,
                 replies: ReplyCheck | None = None,
                 buckets: StreamBuckets | None = None,
                 expedite: Callable[[Comment], None] | None = None) -> None:
        self.region = region
        self.log = log
        self.admission = admission
        self.ids = ids
        # Bans, timeouts, blocked terms and slow mode, from this gateway's copy of the one
        # moderation state (region/moderation_service.py): no round trip to anyone.
        self.moderation = moderation
        self.replies = replies
        self.metrics = metrics  # post to stored (chorus_post_stored_seconds)
        # A hot stream's token bucket, by its tier (region/tiers.py); None: always the
        # stream's own. A stream in the push tier costs a dictionary lookup.
        self.buckets = buckets
        # A hot stream's priority comment, once stored, to the other regions at once.
        self.expedite = expedite

    async def post(self, claims: Claims, stream: str, post: PostInput) -> Appended:
        began = time.perf_counter()
        slow_ms, moderated_shadow = 0, False
        if self.moderation is not None:
            check = self.moderation.check_post(claims, stream, post.text)
            await self.moderation.ready()
            slow_ms, moderated_shadow = check.slow_ms, check.shadow
        if post.reply_to is not None and self.replies is not None:
            await self.replies.check_parent(stream, post.reply_to)
        bucket = self.buckets.bucket(stream) if self.buckets is not None else None
        await self.admission.admit(claims.user, stream, slow_ms=slow_ms, bucket=bucket)
        comment = Comment(id=self.ids.next(), stream=stream, region=self.region,
                          user=claims.user, name=claims.name, text=post.text,
                          ts=time.time_ns() // 1_000_000, reply_to=post.reply_to,
                          badge=claims.badge, shadow=moderated_shadow)
        msg_id = (f"k:{stream}:{claims.user}:{post.client_key}" if post.client_key
                  else comment.id)
        # Above push (the stream has a hot bucket), what is outside the priority lane goes to
        # a hot partition of the log (region/log_jetstream.py): no one sequence takes the
        # whole stream's ingest. A reply stays in the chained log: its thread is ordered and
        # paged by the chained sequence (region/replies.py).
        hot = bucket is not None and not priority(comment) and comment.reply_to is None
        try:
            appended = await self.log.append(comment, msg_id=msg_id, hot=hot)
        except LogUnavailable as exc:
            raise ApiError(ErrorCode.UNAVAILABLE, "the region's log did not store the comment; "
                           "retry with the same client_key", retry_after_s=1) from exc
        if self.metrics is not None:
            self.metrics.post_stored(time.perf_counter() - began)
        if (self.expedite is not None and not appended.duplicate and priority(comment)
                and self.buckets is not None and self.buckets.hot(stream)):
            self.expedite(comment)  # global_/priority.py: ahead of the outbox's queue
        return appended
