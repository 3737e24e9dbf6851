"""Taking a comment: admit (bans, rate limits), give it an id, store it durably.

The 201 goes out only after the region's JetStream acknowledged the write. A retry with the
same ``client_key`` (same user and stream) within the log's duplicate window returns the
comment stored the first time, which JetStream reports through ``Nats-Msg-Id``: idempotency
needs no other store, and survives a Redis restart.
"""

from __future__ import annotations

import time

from chorus.ids import IdGenerator
from chorus.metrics import Metrics
from chorus.model import Comment
from region.admission import Admission
from region.auth import Claims
from region.errors import ApiError, ErrorCode
from region.log import Appended, CommentLog, LogUnavailable
from region.validation import PostInput


class Ingest:
    def __init__(self, region: str, log: CommentLog, admission: Admission,
                 ids: IdGenerator, *, metrics: Metrics | None = None) -> None:
        self.region = region
        self.log = log
        self.admission = admission
        self.ids = ids
        self.metrics = metrics  # post to stored (chorus_post_stored_seconds)

    async def post(self, claims: Claims, stream: str, post: PostInput) -> Appended:
        began = time.perf_counter()
        shadow = await self.admission.admit(claims.user, stream)
        comment = Comment(id=self.ids.next(), stream=stream, region=self.region,
                          user=claims.user, name=claims.name, text=post.text,
                          ts=time.time_ns() // 1_000_000, reply_to=post.reply_to,
                          badge=claims.badge, shadow=shadow)
        msg_id = (f"k:{stream}:{claims.user}:{post.client_key}" if post.client_key
                  else comment.id)
        try:
            appended = await self.log.append(comment, msg_id=msg_id)
        except LogUnavailable as exc:
            raise ApiError(ErrorCode.UNAVAILABLE, "the region's log did not store the comment; "
                           "retry with the same client_key", retry_after_s=1) from exc
        if self.metrics is not None:
            self.metrics.post_stored(time.perf_counter() - began)
        return appended
