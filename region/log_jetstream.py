"""`CommentLog` on the region's JetStream.

One stream, ``COMMENTS``, in the region's domain, captures ``cmt.<region>.<stream>``: the
region's own posts and comments forwarded from other regions. Subjects carry the region's
name so that no other region's stream captures them. JetStream re-publishes each stored
message on ``live.<region>.<stream>`` with its sequence and the previous sequence of the same
subject: that is the live feed the gateways subscribe to. Every name is chorus/names.py's.
With ``hot_partitions`` P, P more streams (``COMMENTS_HOT_k``, ``hot.<region>.<k>.<stream>``)
hold a hot stream's comments outside the priority lane and re-publish on the same live
subjects; their sequences are never cursors.

Reads use Direct Get: a batch request streams a subject's messages after a sequence (or a
start time, for bootstrap) in one round trip; ``multi_last`` with ``up_to_seq`` steps
backwards for history pages. The cursor's reads (`read_after`, `read_before`, `count_after`,
`head`) are the chained log's; `read_since`, `count` and `page_before` read every part and
merge them by the time each stored a comment (region/log_merge.py). Driver errors leave as
`LogUnavailable` (chorus/drivers.py). Appends go through one `AckedPublisher`
(region/log_publish.py): many posts in flight share its reply subscription and its timer.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.js.api import DiscardPolicy, RePublish, StorageType, StreamConfig
from nats.js.errors import Error as JsError

from chorus.drivers import translated
from chorus.model import Comment
from chorus.names import (
    COMMENTS_STREAM,
    DIRECT_GET,
    comment_subject,
    comment_subjects,
    hot_direct_get,
    hot_stream,
    hot_subject,
    hot_subjects,
    live_subjects,
)
from region.log import Appended, Entry, LogUnavailable, Page, part_of
from region.log_merge import (
    Bound,
    Placed,
    Position,
    first_bound,
    merge_oldest_first,
    newest_first,
    older_bound,
    stamp_of,
    stored_ns,
)
from region.log_publish import AckedPublisher, AckError

DUPLICATE_WINDOW_S = 600     # a retried post with the same client key within this is one post
MAX_AGE_S = 7 * 24 * 3600    # the log is the replay window's source, not the archive
REQUEST_TIMEOUT_S = 5.0


def _epoch(created: Any) -> str:
    # The stream's creation time in ms, base 36: a new log (wiped store) gets a new epoch.
    ms = int(created.timestamp() * 1000)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while ms:
        ms, rem = divmod(ms, 36)
        out = digits[rem] + out
    return out or "0"


class JetStreamLog:
    def __init__(self, nc: Nats, region: str, *, hot_partitions: int = 0) -> None:
        self.nc = nc
        self.region = region
        self.hot_partitions = hot_partitions
        self.js = nc.jetstream(timeout=REQUEST_TIMEOUT_S)
        self.publisher = AckedPublisher(nc, timeout_s=REQUEST_TIMEOUT_S)
        self.epoch = ""

    async def ensure(self) -> None:
        """Creates the streams (every gateway calls this; the same config is a no-op): the
        chained log and each hot partition, every one re-publishing on the live subjects."""
        info = await self._ensure(COMMENTS_STREAM, comment_subjects(self.region))
        self.epoch = _epoch(info.created)
        for part in range(1, self.hot_partitions + 1):
            await self._ensure(hot_stream(part), hot_subjects(self.region, part))

    async def _ensure(self, name: str, subjects: str) -> Any:
        config = StreamConfig(
            name=name, subjects=[subjects], storage=StorageType.FILE,
            max_age=MAX_AGE_S, duplicate_window=DUPLICATE_WINDOW_S, allow_direct=True,
            discard=DiscardPolicy.OLD,
            republish=RePublish(src=subjects, dest=live_subjects(self.region)),
        )
        with translated(LogUnavailable, "creating the comment log"):
            try:
                return await self.js.add_stream(config)
            except JsError as exc:
                if "already in use" not in str(exc):
                    raise
                return await self.js.update_stream(config)

    async def append(self, comment: Comment, *, msg_id: str, hot: bool = False) -> Appended:
        part = part_of(msg_id, self.hot_partitions) if hot and self.hot_partitions else 0
        subj = self._subject(comment.stream, part)
        with translated(LogUnavailable, "storing a comment"):
            try:
                ack = await self.publisher.publish(subj, comment.encode(),
                                                   headers={"Nats-Msg-Id": msg_id})
            except AckError as exc:
                raise LogUnavailable(f"storing a comment: {exc}") from exc
        if not ack.duplicate:
            return Appended(seq=ack.seq, comment=comment, duplicate=False, part=part)
        original = await self._get(ack.seq, part)
        return Appended(seq=ack.seq, comment=original, duplicate=True, part=part)

    async def _get(self, seq: int, part: int = 0) -> Comment:
        msgs = await self._direct({"seq": seq}, part)
        if not msgs:
            raise LogUnavailable(f"comment at sequence {seq} is gone")
        return Comment.decode(msgs[0].data)

    async def _direct(self, body: dict[str, Any], part: int = 0) -> list[Msg]:
        """A Direct Get on the chained log (``part`` 0) or a hot partition; batch requests
        end with an EOB status message, single ones don't."""
        batch = "batch" in body or "multi_last" in body
        out: list[Msg] = []
        with translated(LogUnavailable, "reading the comment log"):
            inbox = self.nc.new_inbox()
            sub = await self.nc.subscribe(inbox)
            try:
                await self.nc.publish(hot_direct_get(part) if part else DIRECT_GET,
                                      json.dumps(body).encode(), reply=inbox)
                while True:
                    msg = await sub.next_msg(timeout=REQUEST_TIMEOUT_S)
                    status = (msg.headers or {}).get("Status")
                    if status:
                        if status in ("204", "404"):
                            return out  # end of batch, or nothing there
                        raise LogUnavailable(f"direct get failed: {status} "
                                             f"{(msg.headers or {}).get('Description', '')}")
                    out.append(msg)
                    if not batch:
                        return out
            finally:
                await sub.unsubscribe()

    async def read_after(self, stream: str, after_seq: int, limit: int) -> Page:
        msgs = await self._direct({"seq": after_seq + 1, "next_by_subj": comment_subject(
            self.region, stream), "batch": limit})
        entries = []
        prev = after_seq
        more = False
        for msg in msgs:
            headers = msg.headers or {}
            seq = int(headers["Nats-Sequence"])
            # Consecutive messages of one subject from a next_by_subj read: each one's
            # predecessor on the subject is the one before it (the first's is after_seq's
            # successor chain start, i.e. nothing of the subject lies in between).
            entries.append(Entry(seq=seq, prev=prev, comment=Comment.decode(msg.data)))
            prev = seq
            more = int(headers.get("Nats-Num-Pending", "0")) > 0
        return Page(entries=tuple(entries), more=more)

    async def read_since(self, stream: str, since_ms: int, limit: int) -> list[Entry]:
        """Up to ``limit`` entries stored at or after ``since_ms`` (wall clock), oldest first
        by the time stored: one batch Direct Get from the start time on the chained log and
        on each hot partition at once, merged (region/log_merge.py)."""
        start = stamp_of(since_ms * 1_000_000)
        reads = await asyncio.gather(*(
            self._direct({"start_time": start, "next_by_subj": self._subject(stream, part),
                          "batch": limit}, part) for part in self._parts()))
        placed = [[self._placed(m, part) for m in msgs]
                  for part, msgs in zip(self._parts(), reads, strict=True)]
        return [p.entry for p in merge_oldest_first(placed, limit)]

    async def read_before(self, stream: str, before_seq: int | None, limit: int
                          ) -> list[Entry]:
        out: list[Entry] = []
        up_to = (before_seq - 1) if before_seq is not None else None
        subj = comment_subject(self.region, stream)
        while len(out) < limit and (up_to is None or up_to > 0):
            body: dict[str, Any] = {"multi_last": [subj]}
            if up_to is not None:
                body["up_to_seq"] = up_to
            msgs = await self._direct(body)
            if not msgs:
                break
            seq = int((msgs[0].headers or {})["Nats-Sequence"])
            out.append(Entry(seq=seq, prev=0, comment=Comment.decode(msgs[0].data)))
            up_to = seq - 1
        # prev pointers backwards: each entry's prev is the next one in this list.
        return [Entry(e.seq, out[i + 1].seq if i + 1 < len(out) else 0, e.comment)
                for i, e in enumerate(out)]

    async def count_after(self, stream: str, after_seq: int) -> int:
        msgs = await self._direct({"seq": after_seq + 1, "next_by_subj": comment_subject(
            self.region, stream), "batch": 1})
        if not msgs:
            return 0
        return 1 + int((msgs[0].headers or {}).get("Nats-Num-Pending", "0"))

    async def head(self, stream: str) -> int:
        msgs = await self._direct({"last_by_subj": comment_subject(self.region, stream)})
        return int((msgs[0].headers or {})["Nats-Sequence"]) if msgs else 0

    # -- every comment of a stream, the hot partitions' too ----------------------------------

    def _parts(self) -> range:
        return range(self.hot_partitions + 1)

    def _subject(self, stream: str, part: int) -> str:
        return (hot_subject(self.region, part, stream) if part
                else comment_subject(self.region, stream))

    @staticmethod
    def _position(msg: Msg, part: int) -> Position:
        headers = msg.headers or {}
        try:
            return Position(stored_ns(headers.get("Nats-Time-Stamp", "")), part,
                            int(headers["Nats-Sequence"]))
        except (KeyError, ValueError) as exc:
            raise LogUnavailable(f"a direct get answer without its place: {exc}") from exc

    def _placed(self, msg: Msg, part: int) -> Placed:
        at = self._position(msg, part)
        return Placed(at, Entry(seq=at.seq, prev=0, comment=Comment.decode(msg.data),
                                part=part))

    async def count(self, stream: str) -> int:
        firsts = await asyncio.gather(*(
            self._direct({"seq": 1, "next_by_subj": self._subject(stream, part), "batch": 1},
                         part) for part in self._parts()))
        return sum(1 + int((msgs[0].headers or {}).get("Nats-Num-Pending", "0"))
                   for msgs in firsts if msgs)

    async def position_of(self, stream: str, seq: int) -> Position:
        if seq <= 0:
            return Position(0, 0, 0)   # before the log's first sequence: nothing is older
        # The message at the sequence, of whatever stream (or the next one, if it is gone):
        # the chained log's time grows with its sequence, so its time places the cursor.
        msgs = await self._direct({"seq": seq, "batch": 1})
        if not msgs:
            # Past the log's end: everything stored until now is older.
            return Position(time.time_ns(), 0, seq)
        return Position(self._position(msgs[0], 0).stored_ns, 0, seq)

    async def page_before(self, stream: str, before: Position | None, limit: int
                          ) -> list[Placed]:
        bounds = [(part, first_bound(part, before)) for part in self._parts()]
        firsts = await asyncio.gather(*(self._last(stream, part, bound)
                                        for part, bound in bounds if bound is not None))
        heads = {p.at.part: p for p in firsts if p is not None}

        async def older(placed: Placed) -> Placed | None:
            bound = older_bound(placed)
            return None if bound is None else await self._last(stream, placed.at.part, bound)
        return await newest_first(heads, older, limit)

    async def _last(self, stream: str, part: int, bound: Bound) -> Placed | None:
        """The part's newest entry of ``stream`` within ``bound`` (None: none)."""
        body: dict[str, Any] = {"multi_last": [self._subject(stream, part)]}
        if bound.up_to_seq is not None:
            body["up_to_seq"] = bound.up_to_seq
        if bound.before_ns is not None:
            body["up_to_time"] = stamp_of(bound.before_ns)
        msgs = await self._direct(body, part)
        return self._placed(msgs[0], part) if msgs else None
